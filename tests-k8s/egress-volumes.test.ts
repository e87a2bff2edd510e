import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { NetworkingV1Api, KubeConfig, type V1NetworkPolicy } from '@kubernetes/client-node';
import { startServer, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { core, IMPORT_IMAGE, kubeconfigPath, pods, removeNamespace, sandboxSelector, uniqueNamespace } from './k8s-lib.js';

/**
 * Egress policies as NetworkPolicy objects and volumes as PersistentVolumeClaims. The local
 * cluster's CNI does not enforce NetworkPolicy, so policies are checked for shape only (what a
 * policy-capable CNI would enforce); volumes are real: a static hostPath PersistentVolume binds the
 * claim, and a file written by one sandbox is read by the next one and found on the host.
 */
interface SandboxBody {
  id: string;
  state: string;
}
const SMALL = { template: 'minimal', cpu: 0.25, memoryMiB: 128 };
const STORAGE_CLASS = 'hutch-test-hostpath';

const namespace = uniqueNamespace('hutch-netvol');
const hostDir = mkdtempSync('/var/tmp/hutch-k8s-pv-');
const pvName = `${namespace}-pv`;
let server: TestServer;
let networking: NetworkingV1Api;

before(async () => {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath());
  networking = config.makeApiClient(NetworkingV1Api);
  server = await startServer({
    provider: 'kubernetes',
    kubernetes: { kubeconfig: kubeconfigPath(), namespace, imageImport: [IMPORT_IMAGE], volumeStorageClass: STORAGE_CLASS },
  });
});
after(async () => {
  await server?.stop();
  const leftPods = await pods(namespace).catch(() => []);
  const leftPolicies = networking ? (await networking.listNamespacedNetworkPolicy({ namespace }).catch(() => ({ items: [] }))).items : [];
  const leftClaims = (
    await core()
      .listNamespacedPersistentVolumeClaim({ namespace })
      .catch(() => ({ items: [] }))
  ).items;
  await removeNamespace(namespace);
  await core()
    .deletePersistentVolume({ name: pvName })
    .catch(() => undefined);
  rmSync(hostDir, { recursive: true, force: true });
  assert.deepEqual(
    [...leftPods, ...leftPolicies, ...leftClaims].map((o) => o.metadata?.name),
    [],
    'no pod, NetworkPolicy or claim is left',
  );
});

async function create(body: Record<string, unknown>): Promise<SandboxBody> {
  const res = await server.api<SandboxBody>('POST', '/v1/sandboxes', body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

/** The sandbox's policy as plain JSON (the client returns class instances). */
async function policyOf(id: string): Promise<V1NetworkPolicy | null> {
  const policy = await networking.readNamespacedNetworkPolicy({ name: `hutch-${id}`, namespace }).catch(() => null);
  return policy ? (JSON.parse(JSON.stringify(policy)) as V1NetworkPolicy) : null;
}

test('egress policies become NetworkPolicies (shape only: this CNI does not enforce them)', { timeout: 120_000 }, async () => {
  const info = await server.api<{ tiers: Record<string, { egress: { available: boolean; reason: string } }> }>('GET', '/v1/info');
  assert.equal(info.body.tiers.container!.egress.available, true);
  assert.match(info.body.tiers.container!.egress.reason, /NetworkPolicy/);

  const none = await create(SMALL);
  const nonePolicy = await policyOf(none.id);
  assert.ok(nonePolicy, 'every sandbox has a policy, egress none included');
  assert.deepEqual(nonePolicy.spec?.podSelector?.matchLabels?.['hutch.dev/sandbox'], none.id);
  assert.deepEqual(nonePolicy.spec?.policyTypes, ['Ingress', 'Egress']);
  // No egress rule with policyType Egress: nothing allowed (the API server stores the empty list as absent).
  assert.deepEqual(nonePolicy.spec?.egress ?? [], [], 'egress none: nothing allowed');
  assert.deepEqual(nonePolicy.spec?.ingress, [{ ports: [{ protocol: 'TCP', port: 49983 }] }], 'ingress: the agent port only');

  const listed = await create({
    ...SMALL,
    network: { egress: { allow: ['203.0.113.0/24', '198.51.100.7', '169.254.169.254/32'], deny: ['203.0.113.128/25'] } },
  });
  const listedPolicy = await policyOf(listed.id);
  assert.deepEqual(listedPolicy?.spec?.egress, [
    {
      to: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }, { ipBlock: { cidr: '198.51.100.7/32' } }],
    },
  ]);

  // Changing the policy of a running sandbox replaces the object.
  const put = await server.api('PUT', `/v1/sandboxes/${none.id}/network`, { egress: 'open' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const open = (await policyOf(none.id))?.spec?.egress?.[0]?.to ?? [];
  const v4 = open.find((p) => p.ipBlock?.cidr === '0.0.0.0/0');
  assert.ok(v4, 'open: everything over IPv4 …');
  for (const blocked of ['169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '127.0.0.0/8'])
    assert.ok(v4.ipBlock?.except?.includes(blocked), `… except ${blocked}`);

  const domains = await server.api<{ error: { message: string } }>('POST', '/v1/sandboxes', {
    ...SMALL,
    network: { egress: { allow: ['api.example.com'] } },
  });
  assert.equal(domains.status, 422);
  assert.match(domains.body.error.message, /domain names .* unsupported on the kubernetes provider/);

  for (const id of [none.id, listed.id]) {
    assert.equal((await server.api('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    // Deleted by the teardown after the answer (after the pod: a dying pod keeps its policy).
    const gone = await waitFor(async () => (await policyOf(id)) === null, 15_000, 200);
    assert.ok(gone, 'the policy goes with its sandbox');
  }
  assert.equal((await pods(namespace)).length, 0);
});

test('volumes are PersistentVolumeClaims: files outlive the sandbox and reach the next one', { timeout: 240_000 }, async () => {
  await core().createPersistentVolume({
    body: {
      metadata: { name: pvName },
      spec: {
        capacity: { storage: '1Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        storageClassName: STORAGE_CLASS,
        hostPath: { path: hostDir },
      },
    },
  });
  const made = await server.api('POST', '/v1/volumes', { name: 'data', sizeMiB: 64 });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const claims = (await core().listNamespacedPersistentVolumeClaim({ namespace })).items;
  assert.equal(claims.length, 1);
  assert.equal(claims[0]!.spec?.storageClassName, STORAGE_CLASS);
  assert.equal(claims[0]!.spec?.resources?.requests?.storage, '64Mi');
  const bound = await waitFor(
    async () =>
      (await core().readNamespacedPersistentVolumeClaim({ name: claims[0]!.metadata!.name!, namespace })).status?.phase === 'Bound',
    30_000,
    250,
  );
  assert.ok(bound, 'the claim binds to the static PV');

  const first = await create({ ...SMALL, volumes: [{ name: 'data', path: '/data' }] });
  const [pod] = await pods(namespace, sandboxSelector(first.id));
  assert.equal(pod?.spec?.volumes?.[0]?.persistentVolumeClaim?.claimName, claims[0]!.metadata!.name);
  const write = await server.api<{ exitCode: number }>('POST', `/v1/sandboxes/${first.id}/exec`, {
    cmd: 'echo kept on the volume > /data/note.txt',
  });
  assert.equal(write.body.exitCode, 0);
  assert.equal((await server.api('DELETE', `/v1/sandboxes/${first.id}`)).status, 204);
  assert.equal(readFileSync(join(hostDir, 'note.txt'), 'utf8'), 'kept on the volume\n', 'the file is on the PV');

  const second = await create({ ...SMALL, volumes: [{ name: 'data', path: '/mnt/data', readOnly: true }] });
  const read = await server.api<{ stdout: string }>('POST', `/v1/sandboxes/${second.id}/exec`, { cmd: 'cat /mnt/data/note.txt' });
  assert.equal(read.body.stdout, 'kept on the volume\n');
  const denied = await server.api<{ exitCode: number }>('POST', `/v1/sandboxes/${second.id}/exec`, { cmd: 'touch /mnt/data/x' });
  assert.notEqual(denied.body.exitCode, 0, 'a read-only mount refuses writes');
  assert.equal((await server.api('DELETE', `/v1/sandboxes/${second.id}`)).status, 204);

  assert.equal((await server.api('DELETE', '/v1/volumes/data')).status, 204);
  const gone = await waitFor(async () => (await core().listNamespacedPersistentVolumeClaim({ namespace })).items.length === 0, 30_000, 250);
  assert.ok(gone, 'deleting the volume deletes its claim');
});
