import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { IMPORT_IMAGE, kubeconfigPath, pods, removeNamespace, sandboxSelector, uniqueNamespace } from './k8s-lib.js';

/**
 * Usage of pods: the kubernetes provider's stats come from the agent inside the pod (GET
 * /hutch/stats: the container's cgroup under runc, procfs under gVisor). A pod running a busy loop
 * shows its cpu seconds in GET /v1/sandboxes/{id}/metrics within a tolerance of an independent
 * counter — the container's cgroup read by a process in the pod (runc), the pod's cgroup on the
 * node (gVisor, whose task times follow the sentry's clock: looser bounds) — memory non-zero, and
 * GET /v1/usage accounts them to the tenant.
 */
const namespace = uniqueNamespace('hutch-usage');
let server!: TestServer;

before(async () => {
  server = await startServer({
    provider: 'kubernetes',
    kubernetes: { kubeconfig: kubeconfigPath(), namespace, imageImport: [IMPORT_IMAGE] },
    sampleIntervalSeconds: 1,
  });
});
after(async () => {
  await server?.stop();
  const left = await pods(namespace).catch(() => []);
  await removeNamespace(namespace);
  assert.deepEqual(
    left.map((p) => p.metadata?.name),
    [],
  );
});

interface Sample {
  timestamp: string;
  cpuSeconds: number;
  memoryBytes: number;
  pids: number | null;
}

async function samples(id: string): Promise<Sample[]> {
  const res = await server.api<{ samples: Sample[] }>('GET', `/v1/sandboxes/${id}/metrics`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.samples;
}

/** The first sample taken after `at` (ms), waiting for the sampler (1 s interval). */
async function sampleAfter(id: string, at: number): Promise<Sample> {
  const found = await waitFor(async () => (await samples(id)).find((s) => new Date(s.timestamp).getTime() > at + 50), 20_000, 250);
  assert.ok(found, 'a sample after the reading');
  return found;
}

async function exec(id: string, cmd: string): Promise<string> {
  const res = await server.api<{ stdout: string; exitCode: number }>('POST', `/v1/sandboxes/${id}/exec`, { cmd, timeoutMs: 30_000 });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.exitCode, 0);
  return res.body.stdout;
}

async function create(isolation: 'container' | 'gvisor'): Promise<string> {
  const res = await server.api<{ id: string }>('POST', '/v1/sandboxes', { template: 'minimal', isolation, cpu: 1, memoryMiB: 128 });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}

const BUSY = "timeout 3 sh -c 'while :; do :; done'; true";

test('runc pod: cpu seconds of a busy loop match the container cgroup counter; memory is non-zero', { timeout: 120_000 }, async (t) => {
  const id = await create('container');
  await exec(id, BUSY);
  // Read inside the pod: the container's own cgroup (cgroup v1 on this node), as the agent does not.
  const before = Number((await exec(id, 'cat /sys/fs/cgroup/cpuacct/cpuacct.usage')).trim()) / 1e9;
  const readAt = Date.now();
  const sample = await sampleAfter(id, readAt);
  const afterwards = Number((await exec(id, 'cat /sys/fs/cgroup/cpuacct/cpuacct.usage')).trim()) / 1e9;
  assert.ok(before > 0.5, `the busy loop used cpu (${before} s)`);
  assert.ok(
    sample.cpuSeconds >= before - 0.01 && sample.cpuSeconds <= afterwards + 0.01,
    `the sample's ${sample.cpuSeconds} s lies between the counter's ${before} s and ${afterwards} s`,
  );
  t.diagnostic(`counter ${before.toFixed(3)}..${afterwards.toFixed(3)} s, sample ${sample.cpuSeconds} s, memory ${sample.memoryBytes} B`);
  assert.ok(sample.memoryBytes > 0, 'memory is non-zero');
  assert.ok((sample.pids ?? 0) >= 1, 'the agent at least');
  const usage = await server.api<{ tenants: Array<{ tenant: string; cpuSeconds: number; memoryUsedGiBSeconds: number }> }>(
    'GET',
    '/v1/usage',
  );
  assert.equal(usage.status, 200);
  const mine = usage.body.tenants.find((t) => t.tenant === 'default');
  assert.ok(mine, JSON.stringify(usage.body));
  assert.ok(mine.cpuSeconds >= before - 0.01, `the tenant is accounted the busy loop: ${mine.cpuSeconds} s >= ${before} s`);
  assert.ok(mine.memoryUsedGiBSeconds > 0, 'used memory is accounted');
  assert.equal((await server.api('DELETE', `/v1/sandboxes/${id}`)).status, 204);
});

/** cpuacct.usage of a pod's cgroup on this node (the test runs on the cluster's only node). */
function podCgroupCpuSeconds(uid: string): number {
  for (const qos of ['', 'burstable/', 'besteffort/']) {
    const file = `/sys/fs/cgroup/cpuacct/kubepods/${qos}pod${uid}/cpuacct.usage`;
    if (existsSync(file)) return Number(readFileSync(file, 'utf8').trim()) / 1e9;
  }
  throw new Error(`no cgroup of pod ${uid} on this node (cgroup v1 expected)`);
}

test(
  'gVisor pod: cpu seconds of a busy loop (procfs in the sandbox) are near the pod cgroup on the node',
  { timeout: 120_000 },
  async (t) => {
    const id = await create('gvisor');
    await exec(id, BUSY);
    const readAt = Date.now();
    const sample = await sampleAfter(id, readAt);
    const [pod] = await pods(namespace, sandboxSelector(id));
    const host = podCgroupCpuSeconds(pod!.metadata!.uid!);
    t.diagnostic(`sample ${sample.cpuSeconds} s, pod cgroup on the node ${host.toFixed(3)} s, memory ${sample.memoryBytes} B`);
    assert.ok(sample.cpuSeconds > 0.5, `the busy loop is counted (${sample.cpuSeconds} s)`);
    // gVisor's task times run on the sentry's clock while a task runs application code: time the
    // host takes away (a 1-cpu quota, 2 busy cores here) counts as running, so the figure follows
    // the loop's wall time, not the host's cpu (measured: 2.8-2.99 s against 1.87-2.41 s of the
    // pod's cgroup). Bounds: at least half the host's figure, at most the loop's 3 s of wall time.
    assert.ok(sample.cpuSeconds >= host * 0.5, `the workload's ${sample.cpuSeconds} s is at least half the pod's ${host} s on the node`);
    assert.ok(sample.cpuSeconds <= 3.2, `at most the loop's wall time: ${sample.cpuSeconds} s`);
    assert.ok(sample.memoryBytes > 0, 'memory is non-zero');
    assert.equal((await server.api('DELETE', `/v1/sandboxes/${id}`)).status, 204);
  },
);
