import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hutch } from '../packages/sdk/src/index.js';
import { startServer, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { IMPORT_IMAGE, pods, rbacServerForFile, sandboxSelector } from './k8s-lib.js';

/**
 * `--kubernetes-agent-access api-server`: the server reaches every agent through the API server's
 * port-forward (a WebSocket per request), never by pod IP. The server holds only the permissions
 * of deploy/kubernetes/rbac.yaml, so this also shows `pods/portforward` there is enough. runc and
 * gVisor pods: exec, files, a streamed process and delete work this way, and no pod is left.
 * (That pod IPs really are unreachable is not simulated: k8s-local's server could route to them;
 * the mode forces the API-server path, which /v1/info reports.)
 */
let server: TestServer;
let kubeconfig = '';
const namespace = rbacServerForFile(
  'hutch-pfwd',
  (s, file) => {
    server = s;
    kubeconfig = file;
  },
  { agentAccess: 'api-server' },
);

test('info reports the agent-access mode and the path in use', async () => {
  const info = await server.api<{ posture: { kubernetes: { agentAccess: unknown } } }>('GET', '/v1/info');
  assert.deepEqual(info.body.posture.kubernetes.agentAccess, { mode: 'api-server', using: 'api-server' });
});

for (const isolation of ['container', 'gvisor'] as const) {
  test(`${isolation}: exec, files, a streamed process and delete through the API server`, { timeout: 180_000 }, async () => {
    const s = server;
    const hutch = new Hutch({ url: s.url, apiKey: s.key });
    const sb = await hutch.sandboxes.create({ template: 'minimal', isolation, cpu: 0.25, memoryMiB: 128, timeoutSeconds: 600 });
    let deleted = false;
    try {
      assert.equal(sb.info.state, 'running');
      assert.equal((await pods(namespace, sandboxSelector(sb.id))).length, 1, 'the sandbox is a pod');

      const run = await sb.exec('echo through the api server; cat /proc/1/comm; exit 4');
      assert.deepEqual([run.exitCode, run.stdout], [4, 'through the api server\nhutch-agent\n']);

      // A body larger than one WebSocket frame of the client's reads, both ways.
      const big = 'x'.repeat(300_000) + '\n';
      await sb.files.write('/tmp/pfwd.txt', big);
      assert.equal(await sb.files.read('/tmp/pfwd.txt'), big);
      assert.equal((await sb.exec('wc -c < /tmp/pfwd.txt')).stdout.trim(), '300001');

      const chunks: string[] = [];
      const handle = await sb.processes.start('for i in 1 2 3; do echo line-$i; sleep 0.3; done', { onStdout: (d) => chunks.push(d) });
      const done = await handle.wait();
      assert.equal(done.exitCode, 0);
      assert.equal(chunks.join(''), 'line-1\nline-2\nline-3\n');
      assert.ok(chunks.length >= 2, `the output streamed (${chunks.length} chunks)`);

      // The ingress: its /tunnel upgrade to the agent rides a port-forward stream too. runc only:
      // busybox httpd does not answer under gVisor here (its own wget inside the pod gets EAGAIN).
      if (isolation === 'container') {
        await sb.exec('mkdir -p /tmp/www && echo ingress-page > /tmp/www/index.html && httpd -p 8080 -h /tmp/www');
        const page = await waitFor(async () => {
          const res = await fetch(`${s.url}/v1/sandboxes/${sb.id}/ports/8080/index.html`, {
            headers: { authorization: `Bearer ${s.key}` },
            signal: AbortSignal.timeout(5000),
          }).catch(() => null);
          const text = await res?.text().catch(() => null);
          return res?.status === 200 ? text : null;
        }, 15_000);
        assert.equal(page, 'ingress-page\n');
      }

      assert.equal(await sb.kill(), true);
      deleted = true;
      assert.deepEqual(await pods(namespace, sandboxSelector(sb.id)), [], 'the pod is gone when delete answers');
    } finally {
      if (!deleted) await sb.kill().catch(() => undefined);
    }
  });
}

test('auto (the default): the first pod decides, and on a cluster whose pod IPs answer that is pod-ip', { timeout: 120_000 }, async () => {
  // A second server (another installation) on the same namespace, without the setting.
  const auto = await startServer({ provider: 'kubernetes', kubernetes: { kubeconfig, namespace, imageImport: [IMPORT_IMAGE] } });
  try {
    const access = async (): Promise<unknown> =>
      (await auto.api<{ posture: { kubernetes: { agentAccess: unknown } } }>('GET', '/v1/info')).body.posture.kubernetes.agentAccess;
    assert.deepEqual(await access(), { mode: 'auto', using: null }, 'undecided before any pod');
    const hutch = new Hutch({ url: auto.url, apiKey: auto.key });
    const sb = await hutch.sandboxes.create({ template: 'minimal', cpu: 0.25, memoryMiB: 128 });
    try {
      assert.equal((await sb.exec('echo by pod ip')).stdout, 'by pod ip\n');
      assert.deepEqual(await access(), { mode: 'auto', using: 'pod-ip' });
    } finally {
      assert.equal(await sb.kill(), true);
    }
    assert.deepEqual(await pods(namespace, sandboxSelector(sb.id)), []);
  } finally {
    await auto.stop();
  }
});
