import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { REPO, startServer, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { core, IMPORT_IMAGE, K8S_LOCAL, kubeconfigPath, pods, removeNamespace, uniqueNamespace } from './k8s-lib.js';

/**
 * deploy/kubernetes/rbac.yaml is enough: a server holding only those permissions (a
 * ServiceAccount token, as in a pod) creates, runs and deletes sandboxes with egress policies,
 * makes and deletes volume claims, and reconciles after a restart.
 */
const namespace = uniqueNamespace('hutch-rbac');
const tmp = mkdtempSync('/var/tmp/hutch-rbac-');
const manifest = readFileSync(join(REPO, 'deploy/kubernetes/rbac.yaml'), 'utf8').replaceAll('NAMESPACE', namespace);
let server: TestServer | undefined;

const kubectl = (args: string[], input?: string): string =>
  execFileSync(`${K8S_LOCAL}/kubectl`, args, {
    encoding: 'utf8',
    ...(input ? { input } : {}),
    env: { ...process.env, KUBECONFIG: kubeconfigPath() },
  });

before(async () => {
  await core().createNamespace({ body: { metadata: { name: namespace } } });
  kubectl(['apply', '-f', '-'], manifest);
  // Kubernetes 1.20 makes a token Secret for every ServiceAccount.
  const secretName = await waitFor(
    async () => (await core().readNamespacedServiceAccount({ name: 'hutch-server', namespace })).secrets?.[0]?.name,
    30_000,
    250,
  );
  assert.ok(secretName, 'the ServiceAccount has its token');
  const secret = await core().readNamespacedSecret({ name: secretName, namespace });
  const admin = new KubeConfig();
  admin.loadFromFile(kubeconfigPath());
  const limited = new KubeConfig();
  limited.loadFromOptions({
    clusters: [{ name: 'k8s', server: admin.getCurrentCluster()!.server, caData: secret.data!['ca.crt']! }],
    users: [{ name: 'hutch-server', token: Buffer.from(secret.data!.token!, 'base64').toString() }],
    contexts: [{ name: 'hutch', cluster: 'k8s', user: 'hutch-server', namespace }],
    currentContext: 'hutch',
  });
  const file = join(tmp, 'kubeconfig');
  writeFileSync(file, limited.exportConfig(), { mode: 0o600 });
  server = await startServer({ provider: 'kubernetes', kubernetes: { kubeconfig: file, namespace, imageImport: [IMPORT_IMAGE] } });
});
after(async () => {
  await server?.stop();
  const left = await pods(namespace).catch(() => []);
  await removeNamespace(namespace);
  kubectl(['delete', 'clusterrole,clusterrolebinding', `hutch-server-${namespace}`, '--ignore-not-found']);
  rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(
    left.map((p) => p.metadata?.name),
    [],
  );
});

test(
  'a server with only the documented permissions runs sandboxes, policies, volume claims and restarts',
  { timeout: 240_000 },
  async () => {
    const s = server!;
    const info = await s.api<{ tiers: Record<string, { available: boolean }>; capacity: { node: { cpu: number } } }>('GET', '/v1/info');
    assert.equal(info.body.tiers.gvisor!.available, true, 'the RuntimeClass could be read');
    assert.ok(
      info.body.capacity.node.cpu > 0 && info.body.capacity.node.cpu < 1024,
      'the nodes could be listed (capacity from the cluster)',
    );

    const sb = await s.api<{ id: string }>('POST', '/v1/sandboxes', {
      template: 'minimal',
      cpu: 0.25,
      memoryMiB: 128,
      network: { egress: { allow: ['203.0.113.0/24'], deny: [] } },
    });
    assert.equal(sb.status, 201, JSON.stringify(sb.body));
    const run = await s.api<{ stdout: string }>('POST', `/v1/sandboxes/${sb.body.id}/exec`, { cmd: 'echo limited' });
    assert.equal(run.body.stdout, 'limited\n');
    const put = await s.api('PUT', `/v1/sandboxes/${sb.body.id}/network`, { egress: 'open' });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    const volume = await s.api('POST', '/v1/volumes', { name: 'claims', sizeMiB: 64 });
    assert.equal(volume.status, 201, JSON.stringify(volume.body));
    assert.equal((await s.api('DELETE', '/v1/volumes/claims')).status, 204);

    await s.restart();
    const again = await s.api<{ stdout: string }>('POST', `/v1/sandboxes/${sb.body.id}/exec`, { cmd: 'echo after restart' });
    assert.equal(again.body.stdout, 'after restart\n', 'reattached after the restart');
    assert.equal((await s.api('DELETE', `/v1/sandboxes/${sb.body.id}`)).status, 204);
    assert.doesNotMatch(s.output(), /forbidden/i, 'no permission was refused');
  },
);
