import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, REPO, startServer, type TestServer } from './harness.js';
import { tenantClient } from './tenant-client.js';
import { sleep, waitFor, type ApiError } from './hostile-lib.js';

/**
 * Issue 7, observability: GET /metrics (Prometheus text; who may read it), per-sandbox samples
 * (GET /v1/sandboxes/{id}/metrics: memory growing with an allocation, cpu following a busy
 * loop, on both tiers), usage accounting (GET /v1/usage: a 2-core busy loop of 10 s per core
 * accounts ~20 vCPU-seconds, matching the sandbox's own cgroup counter read independently; it
 * survives a kill -9 of the server, and cpu burnt while the server was down is counted; tenants
 * see only their own usage), OTLP traces of create and exec reaching a collector on loopback,
 * and the CLI's `hutch usage` / `hutch metrics`. Real server, real sandboxes, sampling every 1 s.
 */
let server: TestServer;
let collector: Server;
/** OTLP/HTTP requests the collector received. */
const otlp: Array<{ path: string; contentType: string; body: string }> = [];
let metricsPort: number;
const METRICS_TOKEN = randomBytes(24).toString('hex');

interface Key {
  id: string;
  key: string;
  tenant: string;
  role: string;
}
interface Sb {
  id: string;
  tenant: string;
  state: string;
  isolation: string;
}
interface Sample {
  timestamp: string;
  cpuPercent: number | null;
  cpuCores: number | null;
  cpuSeconds: number;
  memoryBytes: number;
  memoryCacheBytes: number;
  pids: number | null;
  diskUsedBytes: number | null;
  diskSizeBytes: number | null;
  netRxBytes: number | null;
  netTxBytes: number | null;
}
interface SandboxMetrics {
  sandboxId: string;
  cpuLimit: number;
  memoryLimitBytes: number;
  intervalSeconds: number;
  samples: Sample[];
}
interface Totals {
  tenant: string;
  cpuSeconds: number;
  cpuReservedSeconds: number;
  memoryGiBSeconds: number;
  memoryUsedGiBSeconds: number;
  storageGiBHours: number;
  sandboxSeconds: number;
  networkRxBytes: number;
  networkTxBytes: number;
}
interface Usage {
  start: string;
  end: string;
  bucketSeconds: number;
  tenants: Totals[];
}

let M1: Key; // member of tm1
let M2: Key; // member of tm2
let R1: Key; // read-only of tm1
let U: Key; // member of tu (usage accounting)
let UR: Key; // read-only of tu

const SMALL = { template: 'minimal', isolation: 'container', cpu: 0.5, memoryMiB: 64, pids: 64, diskMiB: 128, timeoutSeconds: 600 };
const client = tenantClient(() => server, SMALL);
const { bearer, as } = client;
const newKey = (body: Record<string, unknown>): Promise<Key> => client.newKey<Key>(body);
const make = (k: Key, body?: Record<string, unknown>): Promise<Sb> => client.make<Sb>(k, body);
const run = (k: Key, id: string, cmd: string, timeoutMs = 60_000): ReturnType<typeof client.exec> => client.exec(k, id, cmd, timeoutMs);

// --- Prometheus text format ------------------------------------------------------------------------

interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text exposition format (0.0.4): every line is a comment
 * (`# HELP name text`, `# TYPE name type`) or `name{label="value",…} number`; label values are
 * escaped. Throws on anything else, so a malformed exposition fails the test.
 */
function parseExposition(text: string): { series: Series[]; types: Map<string, string> } {
  const series: Series[] = [];
  const types = new Map<string, string>();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      assert.ok(m, `line ${i + 1}: bad comment: ${line}`);
      if (m[1] === 'TYPE') {
        assert.match(m[3]!, /^(counter|gauge|histogram|summary|untyped)$/, `line ${i + 1}`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    assert.ok(name, `line ${i + 1}: no metric name: ${line}`);
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      while (!rest.startsWith('}')) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\["\\n])*)",?/.exec(rest);
        assert.ok(lm, `line ${i + 1}: bad label at: ${rest}`);
        labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
        rest = rest.slice(lm[0].length);
      }
      rest = rest.slice(1);
    }
    const vm = /^ (\S+)( -?\d+)?$/.exec(rest);
    assert.ok(vm, `line ${i + 1}: bad value: ${line}`);
    const value = vm[1] === 'Nan' || vm[1] === 'NaN' ? NaN : Number(vm[1]);
    assert.ok(!Number.isNaN(value) || /^Na[Nn]$/.test(vm[1]!), `line ${i + 1}: not a number: ${vm[1]}`);
    series.push({ name, labels, value });
  }
  return { series, types };
}

async function scrape(headers: Record<string, string> = {}): Promise<{ series: Series[]; types: Map<string, string>; text: string }> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.key}`, ...headers } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { ...parseExposition(text), text };
}

/** The value of one series (0 when absent: counters start at zero). */
function value(s: Series[], name: string, labels: Record<string, string> = {}): number {
  const found = s.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return found?.value ?? 0;
}

// --- the sandbox's cgroup, read independently ------------------------------------------------------

/** The sandbox's cgroup cpu counter in seconds, straight from cgroupfs (v1 cpuacct or v2 cpu.stat). */
function cgroupCpuSeconds(id: string): number | null {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const file = `/sys/fs/cgroup/hutch/${id}/cpu.stat`;
    if (!existsSync(file)) return null;
    const usec = /^usage_usec (\d+)$/m.exec(readFileSync(file, 'utf8'))?.[1];
    return usec === undefined ? null : Number(usec) / 1e6;
  }
  const file = `/sys/fs/cgroup/cpuacct/hutch/${id}/cpuacct.usage`;
  if (!existsSync(file)) return null;
  return Number(readFileSync(file, 'utf8').trim()) / 1e9;
}

/** Two processes each spinning until they used `seconds` of cpu (not wall time: the host is shared). */
const BUSY_PAIR = (seconds: number): string =>
  `for i in 1 2; do python3 -c 'import time
while time.process_time() < ${seconds}: pass
print(round(time.process_time(), 3))' & done; wait`;

async function usageOf(k: Key | null, query = ''): Promise<{ status: number; body: Usage & ApiError }> {
  return k ? as<Usage>(k, 'GET', `/v1/usage${query}`) : server.api<Usage & ApiError>('GET', `/v1/usage${query}`);
}

async function samplesOf(k: Key, id: string, query = ''): Promise<SandboxMetrics> {
  const res = await as<SandboxMetrics>(k, 'GET', `/v1/sandboxes/${id}/metrics${query}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

const tiers = (): string[] => {
  const out = spawnSync('sh', ['-c', 'command -v runsc'], { encoding: 'utf8' });
  return out.status === 0 ? ['container', 'gvisor'] : ['container'];
};

before(async () => {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      otlp.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
  const address = collector.address();
  const collectorPort = typeof address === 'object' && address ? address.port : 0;
  metricsPort = await freePort();
  server = await startServer({
    // Its own address pools: other test files (and other servers on this host) use theirs.
    networkPool4: '10.226.0.0/16',
    networkPool6: 'fd68:7574:6375::/48',
    sampleIntervalSeconds: 1,
    metricsToken: METRICS_TOKEN,
    metricsListen: `127.0.0.1:${metricsPort}`,
    otlpEndpoint: `http://127.0.0.1:${collectorPort}`,
  });
  for (const name of ['tm1', 'tm2', 'tu', 'tq']) assert.equal((await server.api('POST', '/v1/admin/tenants', { name })).status, 201);
  assert.equal((await server.api('PUT', '/v1/admin/tenants/tq/quotas', { maxSandboxes: 0 })).status, 200);
  M1 = await newKey({ tenant: 'tm1', role: 'member', name: 'm1' });
  M2 = await newKey({ tenant: 'tm2', role: 'member', name: 'm2' });
  R1 = await newKey({ tenant: 'tm1', role: 'read-only', name: 'r1' });
  U = await newKey({ tenant: 'tu', role: 'member', name: 'u' });
  UR = await newKey({ tenant: 'tu', role: 'read-only', name: 'ur' });
});
after(async () => {
  await server?.stop();
  await new Promise<void>((r) => (collector ? collector.close(() => r()) : r()));
});

describe('GET /metrics', () => {
  test(
    'Prometheus text that parses; create, exec, admission, pool, egress and ingress counters move; no sandbox id is a label',
    { timeout: 180_000 },
    async () => {
      const before = await scrape();
      for (const name of [
        'hutch_sandboxes',
        'hutch_create_duration_seconds',
        'hutch_exec_duration_seconds',
        'hutch_pool_claims_total',
        'hutch_admission_rejections_total',
        'hutch_egress_denials_total',
        'hutch_proxy_bytes_total',
        'hutch_store_up',
        'hutch_store_query_seconds',
        'nodejs_eventloop_lag_seconds',
        'process_cpu_seconds_total',
      ])
        assert.ok(before.types.has(name), `${name} is not exported`);
      assert.equal(before.types.get('hutch_create_duration_seconds'), 'histogram');
      assert.equal(value(before.series, 'hutch_store_up'), 1);

      const createOk = { tier: 'container', warm: 'false', outcome: 'ok' };
      const sb = await make(M1, { template: 'base', network: { egress: { allow: ['allowed.example.org'] } } });
      await run(M1, sb.id, 'echo hi');
      // Refused by admission: tenant tq may hold no sandbox.
      const tq = await newKey({ tenant: 'tq', role: 'member', name: 'tq' });
      assert.equal((await as(tq, 'POST', '/v1/sandboxes', SMALL)).status, 429);
      // Egress denials: a name outside the allowlist (DNS) and an HTTP request to it (the proxy).
      const denied = await run(
        M1,
        sb.id,
        `python3 -c "import socket
try: socket.getaddrinfo('denied.example.org', 80)
except Exception as e: print('dns', type(e).__name__)"; curl -s -o /dev/null -w 'http %{http_code}\\n' -H 'Host: denied.example.org' http://192.0.2.1/`,
      );
      assert.match(denied.stdout, /dns gaierror/, `${denied.stdout}${denied.stderr}`);
      assert.match(denied.stdout, /http 403/, `${denied.stdout}${denied.stderr}`);
      // Ingress: a page through /v1/sandboxes/{id}/ports/8000/.
      await run(M1, sb.id, 'cd /tmp && echo ingress-page > index.html && (nohup python3 -m http.server 8000 >/dev/null 2>&1 &)');
      const page = await waitFor(async () => {
        const res = await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports/8000/index.html`, { headers: bearer(M1) });
        const text = await res.text();
        return res.status === 200 ? text : null;
      }, 15_000);
      assert.equal(page, 'ingress-page\n');
      // A warm pool: the first matching create is a hit, one right after it a miss (the pool refills in the background).
      const pool = { template: 'minimal', isolation: 'container', cpu: 0.25, memoryMiB: 48, pids: 48, diskMiB: 128 };
      assert.equal((await as(M1, 'PUT', '/v1/pools/metrics-pool', { ...pool, min: 1, target: 1, max: 1 })).status, 200);
      await waitFor(async () => ((await as<{ size: number }>(M1, 'GET', '/v1/pools/metrics-pool')).body.size ?? 0) >= 1, 30_000, 200);
      const warm = await make(M1, { ...pool, timeoutSeconds: 600 });
      const cold = await make(M1, { ...pool, timeoutSeconds: 600 });
      assert.equal((await as(M1, 'DELETE', '/v1/pools/metrics-pool')).status, 204);

      const after = await scrape();
      assert.equal(
        value(after.series, 'hutch_create_duration_seconds_count', createOk) -
          value(before.series, 'hutch_create_duration_seconds_count', createOk),
        2,
        'two cold creates (the sandbox and the pool miss)',
      );
      assert.ok(value(after.series, 'hutch_create_duration_seconds_count', { tier: 'container', warm: 'true', outcome: 'ok' }) >= 1);
      assert.ok(
        value(after.series, 'hutch_create_duration_seconds_bucket', { ...createOk, le: '+Inf' }) >=
          value(after.series, 'hutch_create_duration_seconds_count', createOk),
      );
      const execOk = { tier: 'container', outcome: 'ok' };
      assert.ok(
        value(after.series, 'hutch_exec_duration_seconds_count', execOk) -
          value(before.series, 'hutch_exec_duration_seconds_count', execOk) >=
          3,
      );
      assert.equal(value(after.series, 'hutch_sandboxes', { tenant: 'tm1', tier: 'container', state: 'running' }), 3);
      assert.equal(value(after.series, 'hutch_admission_rejections_total', { tenant: 'tq', reason: 'tenant_quota_sandboxes' }), 1);
      assert.equal(
        value(after.series, 'hutch_create_duration_seconds_count', { tier: 'container', warm: 'false', outcome: 'rejected' }),
        1,
      );
      assert.equal(value(after.series, 'hutch_pool_claims_total', { tenant: 'tm1', result: 'hit' }), 1, `${warm.id}`);
      assert.equal(value(after.series, 'hutch_pool_claims_total', { tenant: 'tm1', result: 'miss' }), 1, `${cold.id}`);
      assert.ok(value(after.series, 'hutch_egress_denials_total', { kind: 'dns', reason: 'not_allowed' }) >= 1);
      assert.ok(value(after.series, 'hutch_egress_denials_total', { kind: 'http', reason: 'not_allowed' }) >= 1);
      assert.ok(value(after.series, 'hutch_proxy_bytes_total', { proxy: 'ingress', direction: 'out' }) >= 'ingress-page\n'.length);
      assert.ok(
        value(after.series, 'hutch_proxy_bytes_total', { proxy: 'egress', direction: 'in' }) > 0,
        'the 403 went back through the proxy',
      );
      assert.ok(value(after.series, 'hutch_http_requests_total', { method: 'POST', route: '/v1/sandboxes/:id/exec', status: '200' }) >= 3);
      // Bounded labels: no sandbox id anywhere in the exposition.
      for (const id of [sb.id, warm.id, cold.id]) assert.ok(!after.text.includes(id), `sandbox id ${id} appears in /metrics`);
      for (const id of [sb.id, warm.id, cold.id]) assert.equal((await as(M1, 'DELETE', `/v1/sandboxes/${id}`)).status, 204);
    },
  );

  test('admin keys and the metrics token read it; members and read-only keys get 403, no key 401; the token opens nothing else; --metrics-listen needs no key', async () => {
    const get = (headers: Record<string, string>) => fetch(`${server.url}/metrics`, { headers });
    assert.equal((await get(bearer(M1))).status, 403);
    assert.equal((await get(bearer(R1))).status, 403);
    const none = await get({});
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await get(bearer('hutch_not_a_key'))).status, 401);
    const byToken = await get(bearer(METRICS_TOKEN));
    assert.equal(byToken.status, 200);
    parseExposition(await byToken.text());
    assert.equal((await fetch(`${server.url}/v1/sandboxes`, { headers: bearer(METRICS_TOKEN) })).status, 401);
    const side = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(side.status, 200);
    assert.ok(parseExposition(await side.text()).types.has('hutch_sandboxes'));
    assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/v1/sandboxes`)).status, 404);
  });
});

describe('per-sandbox metrics', () => {
  for (const tier of tiers()) {
    test(
      `${tier}: memory grows while the sandbox holds 200 MiB; cpu time follows a busy loop; disk and pids are there`,
      { timeout: 120_000 },
      async () => {
        const sb = await make(M1, { template: 'base', isolation: tier, cpu: 1, memoryMiB: 512, diskMiB: 1024 });
        const first = await waitFor(async () => {
          const m = await samplesOf(M1, sb.id);
          return m.samples.length >= 2 ? m : null;
        }, 15_000);
        assert.ok(first, 'no samples within 15 s (interval 1 s)');
        assert.equal(first.intervalSeconds, 1);
        assert.equal(first.cpuLimit, 1);
        assert.equal(first.memoryLimitBytes, 512 * 1024 * 1024);
        const idle = first.samples.at(-1)!;
        assert.ok(idle.diskSizeBytes !== null && idle.diskSizeBytes > 900 * 1024 * 1024, JSON.stringify(idle));
        assert.ok(idle.pids !== null && idle.pids >= 1, JSON.stringify(idle));
        assert.equal(idle.netRxBytes, null, 'egress none: no link');

        // Hold 200 MiB for 4 s, then spin for 2 s of cpu time (measured by the process itself).
        const held = await run(
          M1,
          sb.id,
          `python3 -c "import time
x = bytearray(200 * 1024 * 1024)
for i in range(0, len(x), 4096): x[i] = 1
time.sleep(4)
del x
t = time.process_time()
while time.process_time() - t < 2: pass
print(round(time.process_time() - t, 3))"`,
        );
        assert.equal(held.exitCode, 0, held.stderr);
        await sleep(2500);
        const m = await samplesOf(M1, sb.id, `?start=${encodeURIComponent(idle.timestamp)}`);
        const peak = Math.max(...m.samples.map((s) => s.memoryBytes));
        assert.ok(peak - idle.memoryBytes >= 180 * 1024 * 1024, `memory ${idle.memoryBytes} → peak ${peak}`);
        const last = m.samples.at(-1)!;
        const cpu = last.cpuSeconds - idle.cpuSeconds;
        // Container: at least the 2 s the loop measured itself (the kernel's own accounting, a part
        // of the cgroup's); the rest is python and page faults for 200 MiB. gVisor: its sentry counts
        // a task's time on its own clock, which under the ptrace platform also runs while the host
        // preempts the stub (this host is shared), so the host's figure can be lower (1.83 s seen);
        // the sentry's own work (page faults under ptrace) makes it higher.
        const [low, high] = tier === 'gvisor' ? [1.2, 12] : [1.9, 5];
        assert.ok(cpu >= low && cpu <= high, `cpu ${cpu.toFixed(2)} s between samples (expected ${low}–${high})`);
        assert.ok(Math.max(...m.samples.map((s) => s.cpuPercent ?? 0)) > 15, 'a sample shows the busy loop');
        assert.ok(
          m.samples.every((s) => Date.parse(s.timestamp) >= Date.parse(idle.timestamp)),
          'start narrows the range',
        );

        // Another tenant's key: 404, as for every sandbox route.
        assert.equal((await as(M2, 'GET', `/v1/sandboxes/${sb.id}/metrics`)).status, 404);
        assert.equal((await as(M1, 'GET', `/v1/sandboxes/${sb.id}/metrics?start=yesterday`)).status, 400);
        assert.equal((await as(M1, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
        assert.equal((await as(M1, 'GET', `/v1/sandboxes/${sb.id}/metrics`)).status, 404);
      },
    );
  }
});

describe('usage accounting', () => {
  let afterBusy: Totals;

  test(
    'a 2-core busy loop of 10 s per core accounts ~20 vCPU-seconds (±15%) and matches the cgroup counter (±3%)',
    { timeout: 240_000 },
    async () => {
      const sb = await make(U, { template: 'base', cpu: 2, memoryMiB: 512, diskMiB: 1024 });
      const created = Date.now();
      const r = await run(U, sb.id, BUSY_PAIR(10), 200_000);
      assert.equal(r.exitCode, 0, r.stderr);
      const own = r.stdout.trim().split('\n').map(Number);
      assert.equal(own.length, 2, r.stdout);
      // The sandbox's counter, read from cgroupfs by the test (independent of the server), then the
      // delete: its final reading is accounted before the sandbox goes.
      const counter = cgroupCpuSeconds(sb.id);
      assert.ok(counter !== null, 'cannot read the sandbox cgroup');
      assert.equal((await as(U, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
      const lived = (Date.now() - created) / 1000;

      const usage = await usageOf(U);
      assert.equal(usage.status, 200, JSON.stringify(usage.body));
      assert.equal(usage.body.bucketSeconds, 3600);
      assert.deepEqual(
        usage.body.tenants.map((t) => t.tenant),
        ['tu'],
      );
      const t = usage.body.tenants[0]!;
      const report = `accounted ${t.cpuSeconds} s; cgroup ${counter.toFixed(3)} s; processes ${own.join(' + ')} s`;
      console.log(`usage: ${report}; sandbox ${t.sandboxSeconds} s of ${lived.toFixed(1)} s`);
      // The same counter, read a moment later (the delete's final reading): only idle time between.
      assert.ok(Math.abs(t.cpuSeconds - counter) <= Math.max(0.3, counter * 0.03), report);
      assert.ok(t.cpuSeconds >= 20 * 0.85 && t.cpuSeconds <= 20 * 1.15, report);
      // Reserved figures follow the running time and the limits (2 cores, 0.5 GiB).
      assert.ok(t.sandboxSeconds > 5 && t.sandboxSeconds <= lived + 1, `sandbox ${t.sandboxSeconds} s, lived ${lived} s`);
      assert.ok(Math.abs(t.cpuReservedSeconds - 2 * t.sandboxSeconds) < 0.05, JSON.stringify(t));
      assert.ok(Math.abs(t.memoryGiBSeconds - 0.5 * t.sandboxSeconds) < 0.05, JSON.stringify(t));
      assert.ok(t.memoryUsedGiBSeconds > 0 && t.memoryUsedGiBSeconds < t.memoryGiBSeconds, JSON.stringify(t));
      // 1 GiB of disk held for about its lifetime (sampled each second).
      assert.ok(t.storageGiBHours > 0 && t.storageGiBHours < ((lived + 5) * 1) / 3600, JSON.stringify(t));
      afterBusy = t;
    },
  );

  test('usage survives a kill -9 of the server, and cpu burnt while it was down is counted', { timeout: 180_000 }, async () => {
    assert.ok(afterBusy, 'needs the previous test');
    const sb = await make(U, { template: 'base', cpu: 1, memoryMiB: 256, diskMiB: 512 });
    // Its meter is in the store once a sampling round has passed (rounds write what they read).
    assert.ok(await waitFor(async () => (await samplesOf(U, sb.id)).samples.length >= 2, 15_000));
    const atKill = cgroupCpuSeconds(sb.id)!;
    const r = await run(
      U,
      sb.id,
      `nohup python3 -c 'import time
while time.process_time() < 4: pass' >/dev/null 2>&1 &`,
    );
    assert.equal(r.exitCode, 0);
    await server.kill9();
    // The sandbox outlives the server: wait (bounded) until its background loop has used its 4 s.
    assert.ok(await waitFor(() => (cgroupCpuSeconds(sb.id) ?? 0) - atKill >= 4, 60_000, 250), 'the background loop did not run');
    await server.restart();

    const kept = await usageOf(U);
    assert.equal(kept.status, 200);
    const k = kept.body.tenants[0]!;
    assert.ok(k.cpuSeconds >= afterBusy.cpuSeconds - 1e-3, `${k.cpuSeconds} after the restart, ${afterBusy.cpuSeconds} before`);
    const counter = cgroupCpuSeconds(sb.id)!;
    assert.equal((await as(U, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
    const t = (await usageOf(U)).body.tenants[0]!;
    const expected = afterBusy.cpuSeconds + counter;
    assert.ok(
      Math.abs(t.cpuSeconds - expected) <= 0.3,
      `accounted ${t.cpuSeconds} s, expected ${expected.toFixed(3)} s (before ${afterBusy.cpuSeconds} + cgroup ${counter.toFixed(3)})`,
    );
    assert.ok(t.sandboxSeconds > afterBusy.sandboxSeconds + 4, 'the downtime counts as running time');
  });

  test('members and read-only keys see only their tenant; admins see all or one', async () => {
    const own = await usageOf(M2);
    assert.equal(own.status, 200);
    assert.deepEqual(
      own.body.tenants.map((t) => t.tenant),
      ['tm2'],
    );
    assert.equal((await usageOf(M2, '?tenant=tu')).status, 404);
    assert.equal((await usageOf(M2, '?tenant=tm2')).status, 200);
    const reader = await usageOf(UR);
    assert.equal(reader.status, 200);
    assert.deepEqual(
      reader.body.tenants.map((t) => t.tenant),
      ['tu'],
    );
    assert.ok(reader.body.tenants[0]!.cpuSeconds > 20 * 0.85);
    const all = await usageOf(null);
    const names = all.body.tenants.map((t) => t.tenant);
    for (const name of ['tu', 'tm1']) assert.ok(names.includes(name), names.join(','));
    const one = await usageOf(null, '?tenant=tu');
    assert.deepEqual(
      one.body.tenants.map((t) => t.tenant),
      ['tu'],
    );
    // Ranges are whole UTC hours; an hour in the past holds nothing of this test.
    const past = await usageOf(U, '?start=2020-01-01T00:00:00Z&end=2020-01-01T05:30:00Z');
    assert.equal(past.body.start, '2020-01-01T00:00:00.000Z');
    assert.equal(past.body.end, '2020-01-01T06:00:00.000Z');
    assert.equal(past.body.tenants[0]!.cpuSeconds, 0);
    assert.equal((await usageOf(U, '?start=2020-02-01T00:00:00Z&end=2020-01-01T00:00:00Z')).status, 400);
  });
});

describe('traces', () => {
  test(
    'with an OTLP endpoint, create (with queue, provider and agent children) and exec spans reach the collector',
    { timeout: 60_000 },
    async () => {
      const sb = await make(M1);
      await run(M1, sb.id, 'true');
      const spans = await waitFor(
        () => {
          const all = otlp.flatMap((r) => {
            const doc = JSON.parse(r.body) as {
              resourceSpans?: Array<{
                scopeSpans?: Array<{
                  spans?: Array<{
                    name: string;
                    spanId: string;
                    parentSpanId?: string;
                    traceId: string;
                    attributes?: Array<{ key: string; value: Record<string, unknown> }>;
                  }>;
                }>;
              }>;
            };
            return (doc.resourceSpans ?? []).flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? []));
          });
          const create = all.find(
            (s) => s.name === 'sandbox.create' && s.attributes?.some((a) => a.key === 'hutch.sandbox_id' && a.value.stringValue === sb.id),
          );
          const exec = all.find(
            (s) => s.name === 'sandbox.exec' && s.attributes?.some((a) => a.key === 'hutch.sandbox_id' && a.value.stringValue === sb.id),
          );
          return create && exec ? { all, create, exec } : null;
        },
        20_000,
        200,
      );
      assert.ok(spans, `spans received: ${otlp.length} requests`);
      assert.ok(
        otlp.every((r) => r.path === '/v1/traces'),
        otlp.map((r) => r.path).join(','),
      );
      assert.ok(
        otlp.every((r) => r.contentType.startsWith('application/json')),
        otlp.map((r) => r.contentType).join(','),
      );
      const children = spans.all.filter((s) => s.parentSpanId === spans.create.spanId).map((s) => s.name);
      for (const name of ['sandbox.create.queue_wait', 'sandbox.create.provider', 'sandbox.create.agent_ready'])
        assert.ok(children.includes(name), `children of sandbox.create: ${children.join(', ')}`);
      assert.equal((await as(M1, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
    },
  );
});

describe('CLI', () => {
  const cli = (key: string, ...args: string[]) =>
    spawnSync(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), '--url', server.url, '--api-key', key, ...args], {
      encoding: 'utf8',
    });

  test('hutch usage [--json] and hutch metrics <id> [--json]', { timeout: 60_000 }, async () => {
    const table = cli(U.key, 'usage');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^TENANT\s+CPU USED/m);
    assert.match(table.stdout, /^tu\s+\d/m);
    const report = cli(U.key, 'usage', '--since', '2h', '--json');
    assert.equal(report.status, 0, report.stderr);
    const parsed = JSON.parse(report.stdout) as Usage;
    assert.deepEqual(
      parsed.tenants.map((t) => t.tenant),
      ['tu'],
    );
    assert.ok(parsed.tenants[0]!.cpuSeconds > 17);

    const sb = await make(U);
    await waitFor(async () => (await samplesOf(U, sb.id)).samples.length >= 2, 15_000);
    const rows = cli(U.key, 'metrics', sb.id);
    assert.equal(rows.status, 0, rows.stderr);
    assert.match(rows.stdout, /a sample every 1 s/);
    assert.match(rows.stdout, /^TIME\s+CPU\s+CPU TIME\s+MEMORY/m);
    const json = cli(U.key, 'metrics', sb.id, '--since', '10m', '--json');
    assert.equal(json.status, 0, json.stderr);
    assert.ok((JSON.parse(json.stdout) as SandboxMetrics).samples.length >= 2);
    const other = cli(M2.key, 'metrics', sb.id);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /not found/);
    assert.equal((await as(U, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
  });
});
