import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ApiextensionsV1Api, KubeConfig } from '@kubernetes/client-node';
import { Hutch, TierUnavailableError } from '../packages/sdk/src/index.js';
import { REPO, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { k8sServerForFile, kubeconfigPath } from './k8s-lib.js';

/**
 * Volume snapshots on the kubernetes provider, through the real REST API. The local cluster has
 * no snapshot CRDs and no CSI snapshot controller: without the CRD every call is a 422 naming what
 * to install; with a minimal stand-in CRD (installed here, cluster-scoped, removed afterwards) the
 * server finds it by discovery and lists the volume's VolumeSnapshots from the API server.
 *
 * No VolumeSnapshot is created here: k8s-local's kube-apiserver (1.20.2 built with Go 1.19, whose
 * vendored reflect2 1.0.1 predates Go 1.18's map iterator) dies with SIGSEGV on any write of a
 * custom resource (json-iterator's map encoder in the CRD handler). The object the server writes
 * is checked as a pure function (packages/server/test/kubernetes-objects.test.ts); that a CSI
 * driver makes a snapshot of it is not proven on this machine.
 */
const CRD = 'volumesnapshots.snapshot.storage.k8s.io';
const SNAPSHOT_CLASS = 'csi-test-class';
let server!: TestServer;
k8sServerForFile(
  'hutch-vsnap',
  (s) => (server = s),
  async (s) => s.api('DELETE', '/v1/volumes/data'),
  { volumeSnapshotClass: SNAPSHOT_CLASS },
);

function clients(): { ext: ApiextensionsV1Api } {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath());
  return { ext: config.makeApiClient(ApiextensionsV1Api) };
}

/** The `hutch` CLI against the test server. */
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), '--url', server.url, '--api-key', server.key, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

let installedCrd = false;
after(async () => {
  if (!installedCrd) return;
  const { ext } = clients();
  await ext.deleteCustomResourceDefinition({ name: CRD }).catch(() => undefined);
  await waitFor(
    () =>
      ext.readCustomResourceDefinition({ name: CRD }).then(
        () => false,
        () => true,
      ),
    60_000,
    500,
  );
});

interface ErrorAnswer {
  error: { code: string; message: string };
}
interface SnapshotAnswer {
  name: string;
  volume: string;
  readyToUse: boolean;
  restoreSizeMiB: number | null;
  error: string | null;
}

test('without the VolumeSnapshot CRD, volume snapshots are a clear 422 through the API', { timeout: 60_000 }, async () => {
  const { ext } = clients();
  const present = await ext.readCustomResourceDefinition({ name: CRD }).then(
    () => true,
    () => false,
  );
  assert.equal(present, false, 'the local cluster has no snapshot CRD (this test needs its absence)');
  assert.equal((await server.api('POST', '/v1/volumes', { name: 'data', sizeMiB: 64 })).status, 201);
  const create = await server.api<ErrorAnswer>('POST', '/v1/volumes/data/snapshots', { name: 'first' });
  assert.equal(create.status, 422, JSON.stringify(create.body));
  assert.equal(
    create.body.error.message,
    'volume snapshots are unsupported on this cluster: no snapshot.storage.k8s.io/v1 VolumeSnapshot CRD (install the external-snapshotter CRDs and a CSI driver)',
  );
  const list = await server.api<ErrorAnswer>('GET', '/v1/volumes/data/snapshots');
  assert.equal(list.status, 422);
  const bad = await server.api<ErrorAnswer>('POST', '/v1/volumes/data/snapshots', { name: 'Not A Name' });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /name/);
  const hutch = new Hutch({ url: server.url, apiKey: server.key });
  await assert.rejects(hutch.volumes.snapshot('data', 'first'), (err: unknown) => {
    assert.ok(err instanceof TierUnavailableError, String(err));
    assert.match(err.message, /no snapshot.storage.k8s.io\/v1 VolumeSnapshot CRD/);
    return true;
  });
  const viaCli = cli('volume', 'snapshot', 'data', 'first');
  assert.equal(viaCli.status, 1);
  assert.match(viaCli.stderr, /volume snapshots are unsupported on this cluster/);
  const missing = await server.api<ErrorAnswer>('POST', '/v1/volumes/nope/snapshots', { name: 'x' });
  assert.equal(missing.status, 404, 'an unknown volume is a 404');
});

test(
  'with a VolumeSnapshot CRD, the server finds it by discovery and lists the volume snapshots from the cluster',
  { timeout: 120_000 },
  async () => {
    const { ext } = clients();
    installedCrd = true;
    await ext.createCustomResourceDefinition({
      body: {
        metadata: {
          name: CRD,
          labels: { 'hutch.dev/test': 'stand-in' },
          // *.k8s.io groups need it; the external-snapshotter CRDs carry this one.
          annotations: { 'api-approved.kubernetes.io': 'https://github.com/kubernetes-csi/external-snapshotter/pull/419' },
        },
        spec: {
          group: 'snapshot.storage.k8s.io',
          scope: 'Namespaced',
          names: { plural: 'volumesnapshots', singular: 'volumesnapshot', kind: 'VolumeSnapshot', listKind: 'VolumeSnapshotList' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
            },
          ],
        },
      },
    });
    const established = await waitFor(
      async () =>
        (await ext.readCustomResourceDefinition({ name: CRD })).status?.conditions?.some(
          (c) => c.type === 'Established' && c.status === 'True',
        ),
      30_000,
      250,
    );
    assert.ok(established, 'the stand-in CRD is established');
    const listed = await waitFor(
      async () => {
        const answer = await server.api<{ snapshots: SnapshotAnswer[] }>('GET', '/v1/volumes/data/snapshots');
        return answer.status === 422 ? undefined : answer;
      },
      30_000,
      500,
    );
    assert.ok(listed, 'discovery finds the CRD once it is served (no restart)');
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.snapshots, [], 'listed from the API server (label selector of the claim): none yet');
    const hutch = new Hutch({ url: server.url, apiKey: server.key });
    assert.deepEqual(await hutch.volumes.snapshots('data'), [], 'the SDK lists them');
    assert.equal(await hutch.volumes.deleteSnapshot('data', 'first'), false, 'nothing to delete');
    const listedByCli = cli('volume', 'snapshots', 'data', '--json');
    assert.equal(listedByCli.status, 0, listedByCli.stderr);
    assert.deepEqual(JSON.parse(listedByCli.stdout), []);
    const removedByCli = cli('volume', 'snapshot-rm', 'data', 'first');
    assert.equal(removedByCli.status, 1);
    assert.match(removedByCli.stderr, /volume data has no snapshot named first/);
    assert.equal((await server.api('GET', '/v1/volumes/data/snapshots/first')).status, 404);
    assert.equal((await server.api('DELETE', '/v1/volumes/data/snapshots/first')).status, 404, 'deleting a snapshot that is not there');
    assert.doesNotMatch(server.output(), /forbidden/i);
    assert.equal((await server.api('DELETE', '/v1/volumes/data')).status, 204, 'a volume without snapshots is deleted');
  },
);
