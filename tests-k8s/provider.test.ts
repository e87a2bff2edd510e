import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { Sandbox as E2BSandbox } from 'e2b';
import { Hutch } from '../packages/sdk/src/index.js';
import type { TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { core, k8sServerForFile, pods, sandboxSelector } from './k8s-lib.js';

/**
 * `hutch server --provider kubernetes` against the k8s-local cluster: sandboxes are pods (runc and
 * gVisor), reached through the same REST API, SDK and E2B SDK; TTLs, deletes, restarts and a
 * server killed mid-create leave no pod behind and lose no sandbox.
 */
interface SandboxBody {
  id: string;
  state: string;
  isolation: string;
  error: string | null;
}
interface ExecBody {
  exitCode: number;
  stdout: string;
  stderr: string;
}
const SMALL = { template: 'minimal', cpu: 0.25, memoryMiB: 128 };

let server: TestServer;
const namespace = k8sServerForFile('hutch-k8s', (s) => (server = s));

async function create(body: Record<string, unknown>): Promise<SandboxBody> {
  const res = await server.api<SandboxBody>('POST', '/v1/sandboxes', body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

async function exec(id: string, cmd: string): Promise<ExecBody> {
  const res = await server.api<ExecBody>('POST', `/v1/sandboxes/${id}/exec`, { cmd });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function remove(id: string): Promise<void> {
  const res = await server.api('DELETE', `/v1/sandboxes/${id}`);
  assert.equal(res.status, 204);
}

/** A pod carrying a sandbox's labels (as a crashed server could leave), running busybox. */
function labelledPod(id: string, installation: string): V1Pod {
  return {
    metadata: {
      name: `hutch-${id}`,
      labels: {
        'app.kubernetes.io/managed-by': 'hutch',
        'hutch.dev/installation': installation,
        'hutch.dev/sandbox': id,
        'hutch.dev/isolation': 'container',
      },
    },
    spec: {
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'sandbox', image: 'localhost/busybox:1.35', imagePullPolicy: 'Never', command: ['sleep', '600'] }],
    },
  };
}

async function serverId(): Promise<string> {
  return (await server.api<{ serverId: string }>('GET', '/v1/info')).body.serverId;
}

test('info: provider kubernetes, both tiers through RuntimeClasses, and what is unsupported', async () => {
  const info = await server.api<{
    provider: string;
    tiers: Record<string, { available: boolean; runtime: string; egress: { available: boolean }; pause: { note: string } }>;
    posture: { kubernetes: { namespace: string } };
  }>('GET', '/v1/info');
  assert.equal(info.body.provider, 'kubernetes');
  assert.equal(info.body.posture.kubernetes.namespace, namespace);
  assert.equal(info.body.tiers.container!.available, true);
  assert.equal(info.body.tiers.gvisor!.available, true);
  assert.equal(info.body.tiers.gvisor!.runtime, 'RuntimeClass gvisor');
  assert.match(info.body.tiers.container!.pause.note, /unsupported on the kubernetes provider/);
});

for (const isolation of ['container', 'gvisor'] as const) {
  test(`${isolation}: a sandbox is a pod; exec and files go through its agent; delete leaves no pod`, { timeout: 180_000 }, async () => {
    const sb = await create({ ...SMALL, isolation, timeoutSeconds: 600, env: { GREETING: 'hello' } });
    assert.equal(sb.state, 'running');
    const [pod] = await pods(namespace, sandboxSelector(sb.id));
    assert.ok(pod, 'the sandbox has a pod');
    assert.equal(pod.metadata?.labels?.['hutch.dev/tenant'], 'default');
    assert.equal(pod.metadata?.labels?.['hutch.dev/isolation'], isolation);
    assert.equal(pod.metadata?.labels?.['hutch.dev/installation'], await serverId());
    assert.equal(pod.spec?.runtimeClassName, isolation === 'gvisor' ? 'gvisor' : undefined);
    assert.equal(pod.spec?.activeDeadlineSeconds, 600 + 3600, 'the TTL backstop');
    assert.equal(pod.spec?.automountServiceAccountToken, false);
    // Requests: cpu at the request ratio (0.1 of the limit), memory and disk in full.
    assert.deepEqual(pod.spec?.containers[0]?.resources?.limits, { cpu: '250m', memory: '128Mi', 'ephemeral-storage': '2Gi' });
    assert.deepEqual(pod.spec?.containers[0]?.resources?.requests, { cpu: '25m', memory: '128Mi', 'ephemeral-storage': '2Gi' });

    const run = await exec(sb.id, 'echo $GREETING; cat /proc/1/comm; echo $HUTCH_AGENT_ACCESS_TOKEN');
    assert.equal(run.exitCode, 0);
    assert.equal(run.stdout, 'hello\nhutch-agent\n\n', 'env reaches processes; the agent is PID 1; its token is not passed on');
    if (isolation === 'gvisor') assert.match((await exec(sb.id, 'dmesg')).stdout, /Starting gVisor/);
    const failing = await exec(sb.id, 'echo oops >&2; exit 3');
    assert.deepEqual([failing.exitCode, failing.stderr], [3, 'oops\n']);

    const put = await server.api('PUT', `/v1/sandboxes/${sb.id}/files?path=/tmp/k8s.txt`, 'written through the API\n');
    assert.ok(put.status === 200 || put.status === 204, `PUT files: ${put.status}`);
    assert.equal((await exec(sb.id, 'cat /tmp/k8s.txt')).stdout, 'written through the API\n');
    const got = await server.api<string>('GET', `/v1/sandboxes/${sb.id}/files?path=/tmp/k8s.txt`);
    assert.equal(got.status, 200);
    assert.equal(got.body, 'written through the API\n');

    await remove(sb.id);
    assert.deepEqual(await pods(namespace, sandboxSelector(sb.id)), [], 'the pod is gone when delete answers');
    assert.equal((await server.api('GET', `/v1/sandboxes/${sb.id}`)).status, 404, 'a deleted sandbox is gone from the API');
  });
}

test('the SDK works unchanged against a kubernetes-mode server', { timeout: 120_000 }, async () => {
  const hutch = new Hutch({ url: server.url, apiKey: server.key });
  const sb = await hutch.sandboxes.create({ template: 'minimal', cpu: 0.25, memoryMiB: 128 });
  try {
    await sb.files.write('/tmp/sdk.txt', 'from the sdk');
    assert.equal(await sb.files.read('/tmp/sdk.txt'), 'from the sdk');
    const out = await sb.exec('wc -c < /tmp/sdk.txt');
    assert.equal(out.stdout.trim(), '12');
  } finally {
    assert.equal(await sb.kill(), true);
  }
  assert.deepEqual(await pods(namespace, sandboxSelector(sb.id)), []);
});

test('the E2B SDK works unchanged against a kubernetes-mode server', { timeout: 240_000 }, async () => {
  process.env.E2B_API_KEY = server.key;
  process.env.E2B_API_URL = server.url;
  process.env.E2B_SANDBOX_URL = server.url;
  // The E2B SDK runs commands with /bin/bash: the base template (its image is exported and imported on first use).
  const sb = await E2BSandbox.create('base', { timeoutMs: 120_000 });
  try {
    assert.equal((await sb.commands.run('echo e2b on k8s')).stdout, 'e2b on k8s\n');
    await sb.files.write('/tmp/e2b.txt', 'e2b file');
    assert.equal(await sb.files.read('/tmp/e2b.txt'), 'e2b file');
  } finally {
    await sb.kill();
  }
  assert.deepEqual(await pods(namespace, sandboxSelector(sb.sandboxId)), []);
});

test('what has no mapping yet fails clearly: pause, stop, snapshots', { timeout: 120_000 }, async () => {
  const sb = await create(SMALL);
  for (const [path, what] of [
    ['pause', 'pause'],
    ['stop', 'stop'],
    ['snapshots', 'snapshots'],
  ] as const) {
    const res = await server.api<{ error: { message: string } }>('POST', `/v1/sandboxes/${sb.id}/${path}`, {});
    assert.equal(res.status, 422, `${path}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.error.message, new RegExp(`${what} is unsupported on the kubernetes provider`));
  }
  assert.equal((await exec(sb.id, 'echo still running')).stdout, 'still running\n', 'the refusals leave the sandbox running');
  await remove(sb.id);
});

test('the TTL deletes the sandbox and its pod', { timeout: 120_000 }, async () => {
  const sb = await create({ ...SMALL, timeoutSeconds: 2 });
  const deleted = await waitFor(async () => (await server.api('GET', `/v1/sandboxes/${sb.id}`)).status === 404, 20_000, 250);
  assert.ok(deleted, 'deleted by the reaper after its TTL');
  assert.deepEqual(await pods(namespace, sandboxSelector(sb.id)), []);
});

describe('restarts', () => {
  test('a server killed with -9 and restarted keeps its sandboxes (state, files, processes)', { timeout: 180_000 }, async () => {
    const sb = await create({ ...SMALL, timeoutSeconds: 600 });
    await exec(sb.id, 'echo kept > /tmp/kept.txt');
    const bg = await server.api('POST', `/v1/sandboxes/${sb.id}/processes`, { cmd: 'sleep 600', tag: 'sleeper' });
    assert.equal(bg.status, 201, JSON.stringify(bg.body));
    await server.restart(); // kill -9, then start on the same data dir
    const got = await server.api<SandboxBody>('GET', `/v1/sandboxes/${sb.id}`);
    assert.equal(got.body.state, 'running', JSON.stringify(got.body));
    assert.equal((await exec(sb.id, 'cat /tmp/kept.txt')).stdout, 'kept\n');
    const procs = await server.api<{ processes: Array<{ tag: string | null }> }>('GET', `/v1/sandboxes/${sb.id}/processes`);
    assert.ok(
      procs.body.processes.some((p) => p.tag === 'sleeper'),
      'the background process still runs',
    );
    await remove(sb.id);
  });

  test('a server killed mid-create leaves no pod; the sandbox is recorded as interrupted', { timeout: 180_000 }, async () => {
    const before = new Set((await pods(namespace)).map((p) => p.metadata?.name));
    const pending = server.api('POST', '/v1/sandboxes', SMALL).catch(() => null);
    // Killed once the pod exists (the create is waiting for it to run).
    const pod = await waitFor(async () => (await pods(namespace)).find((p) => !before.has(p.metadata?.name)), 60_000, 20);
    assert.ok(pod, 'the create made a pod');
    await server.kill9();
    await pending;
    const id = pod.metadata!.labels!['hutch.dev/sandbox']!;
    await server.restart();
    const record = await server.api<SandboxBody>('GET', `/v1/sandboxes/${id}`);
    assert.equal(record.body.state, 'error');
    assert.match(record.body.error ?? '', /interrupted by a server restart/);
    const gone = await waitFor(async () => (await pods(namespace, sandboxSelector(id))).length === 0, 15_000, 250);
    assert.ok(gone, 'the half-created pod is deleted at start');
  });

  test('a pod of this installation without a record is deleted at start', { timeout: 180_000 }, async () => {
    const orphan = 'orphan0000000000000a';
    await core().createNamespacedPod({ namespace, body: labelledPod(orphan, await serverId()) });
    const stranger = 'stranger000000000000';
    await core().createNamespacedPod({ namespace, body: labelledPod(stranger, 'another-installation') });
    // The store must not be empty (an empty store next to live pods is not reaped: see reconcile).
    const kept = await create({ ...SMALL, timeoutSeconds: 600 });
    await server.restart();
    const gone = await waitFor(async () => (await pods(namespace, sandboxSelector(orphan))).length === 0, 15_000, 250);
    assert.ok(gone, 'the orphan pod is deleted');
    assert.equal((await pods(namespace, sandboxSelector(stranger))).length, 1, "another installation's pod is left alone");
    assert.equal((await server.api<SandboxBody>('GET', `/v1/sandboxes/${kept.id}`)).body.state, 'running');
    await core().deleteNamespacedPod({ name: `hutch-${stranger}`, namespace, gracePeriodSeconds: 0 });
    await remove(kept.id);
  });
});
