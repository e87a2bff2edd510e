/**
 * `npm run bench -- load`: warm pools, churn, burst and density on this machine (issue 6).
 *
 * Per tier, against a fresh server of its own:
 *  - warm create → first exec: a pool of `minimal` sandboxes; each sample claims one (the pool
 *    is given time to hold a ready member before each sample, so this is the hit path), runs
 *    `echo hi`, deletes it; median and p99 over the warm samples; misses are counted.
 *  - churn: 8 clients loop create → exec → delete for 60 s against the same pool; completed
 *    cycles per second, cycle p50/p99, 429s and errors.
 *  - burst: 1000 creates sent at once: each must be 201 or 429 with Retry-After; the server's RSS
 *    and its event-loop lag (GET /healthz latency, sampled every 50 ms) during the burst; every
 *    created sandbox deleted and the host checked for leftovers (cgroups, mounts, loop devices).
 *  - density: idle `minimal` sandboxes (cpu 0.1, 64 MiB, 32 pids, 64 MiB disk) created until a
 *    create is refused or the bench's cap; memory per idle sandbox from MemAvailable before/after.
 * Bounded everywhere in count and time; only loopback traffic.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { leftoversOfMany } from '../tests/hostile-lib.js';
import { Api } from './client.js';
import type { BenchServer } from './server.js';
import { fmtMs } from './stats.js';

export type LoadTier = 'container' | 'gvisor';

export interface LoadOptions {
  warmRuns: number;
  churnSeconds: number;
  churnClients: number;
  burst: number;
  densityCap: Record<LoadTier, number>;
  progress: (msg: string) => void;
  checkAbort: () => void;
}

export interface Dist {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface LoadTierResult {
  tier: LoadTier;
  warm: { dist: Dist | null; hits: number; misses: number; coldSamples: number };
  churn: {
    seconds: number;
    clients: number;
    cycles: number;
    perSecond: number;
    dist: Dist | null;
    warmShare: number;
    refused: number;
    errors: string[];
  };
  burst: {
    sent: number;
    created: number;
    refused: number;
    refusedWithRetryAfter: number;
    other: string[];
    rssBeforeMiB: number;
    rssPeakMiB: number;
    rssAfterMiB: number;
    lagMaxMs: number;
    lagP99Ms: number;
    seconds: number;
    /** From the last delete's answer until nothing was left on the host. */
    cleanSeconds: number;
    leftovers: string[];
  };
  density: { created: number; stoppedBy: string; memPerSandboxMiB: number | null; pidsPerSandbox: number | null; seconds: number };
}

export function dist(samples: number[]): Dist | null {
  if (samples.length === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  const rank = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n: s.length, p50: rank(0.5), p99: rank(0.99), max: s[s.length - 1]! };
}

const SHAPE = { template: 'minimal', cpu: 0.5, memoryMiB: 64, pids: 64, diskMiB: 256 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

function memAvailableMiB(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function threadsInUse(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[3]?.split('/')[1] ?? 0);
}

async function deleteAll(client: Api, ids: string[], parallel = 8): Promise<void> {
  const queue = [...ids];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) await client.request('DELETE', `/v1/sandboxes/${id}`);
    }),
  );
}

export async function benchLoadTier(server: BenchServer, tier: LoadTier, o: LoadOptions): Promise<LoadTierResult> {
  const client = new Api(server.url, server.key, 1100);
  const shape = { ...SHAPE, isolation: tier };
  const poolName = `load-${tier}`;
  try {
    // --- warm create → first exec
    await client.call('PUT', `/v1/pools/${poolName}`, { ...shape, min: 2, target: 4, max: 16 });
    const waitReady = async (n: number, withinMs: number): Promise<boolean> => {
      const deadline = Date.now() + withinMs;
      while (Date.now() < deadline) {
        const p = await client.call<{ size: number }>('GET', `/v1/pools/${poolName}`);
        if (p.size >= n) return true;
        await sleep(20);
      }
      return false;
    };
    o.progress(`${tier}: warm pool filling`);
    await waitReady(4, 60_000);
    const warmSamples: number[] = [];
    let coldSamples = 0;
    o.progress(`${tier}: warm create → first exec, ${o.warmRuns} samples`);
    for (let i = 0; i < o.warmRuns; i++) {
      o.checkAbort();
      await waitReady(1, 30_000);
      const t0 = performance.now();
      const sb = await client.call<{ id: string; warm?: boolean }>('POST', '/v1/sandboxes', { ...shape, timeoutSeconds: 300 });
      const r = await client.call<{ stdout: string }>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: ['echo', 'hi'] });
      const ms = performance.now() - t0;
      if (r.stdout !== 'hi\n') throw new Error(`exec in ${sb.id}: ${JSON.stringify(r)}`);
      if (sb.warm) warmSamples.push(ms);
      else coldSamples++;
      await client.call('DELETE', `/v1/sandboxes/${sb.id}`);
    }
    const afterWarm = await client.call<{ hits: number; misses: number }>('GET', `/v1/pools/${poolName}`);

    // --- churn
    o.progress(`${tier}: churn, ${o.churnClients} clients for ${o.churnSeconds} s`);
    await waitReady(4, 30_000);
    const cycleMs: number[] = [];
    const errors: string[] = [];
    let refused = 0;
    let warmCycles = 0;
    const churnEnd = Date.now() + o.churnSeconds * 1000;
    const churnStart = performance.now();
    await Promise.all(
      Array.from({ length: o.churnClients }, async () => {
        while (Date.now() < churnEnd) {
          o.checkAbort();
          const t0 = performance.now();
          const c = await client.request<{ id: string; warm?: boolean }>('POST', '/v1/sandboxes', { ...shape, timeoutSeconds: 300 });
          if (c.status === 429 || c.status === 503) {
            refused++;
            await sleep(Math.min(1000, Number(c.retryAfter ?? 1) * 1000));
            continue;
          }
          if (c.status !== 201) {
            if (errors.length < 5) errors.push(`create → ${c.status} ${JSON.stringify(c.body).slice(0, 200)}`);
            await sleep(100);
            continue;
          }
          const e = await client.request<{ stdout: string }>('POST', `/v1/sandboxes/${c.body.id}/exec`, { cmd: ['echo', 'hi'] });
          if (e.status !== 200 || e.body.stdout !== 'hi\n') if (errors.length < 5) errors.push(`exec → ${e.status}`);
          const d = await client.request('DELETE', `/v1/sandboxes/${c.body.id}`);
          if (d.status !== 204 && errors.length < 5) errors.push(`delete → ${d.status}`);
          cycleMs.push(performance.now() - t0);
          if (c.body.warm) warmCycles++;
        }
      }),
    );
    const churnSeconds = (performance.now() - churnStart) / 1000;
    await client.request('DELETE', `/v1/pools/${poolName}`);

    // --- burst
    o.progress(`${tier}: burst of ${o.burst} creates at once`);
    await sleep(1000);
    const pid = server.pid();
    const rssBefore = rssMiB(pid);
    let rssPeak = rssBefore;
    const lags: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      const probe = new Api(server.url, server.key, 1);
      while (sampling) {
        rssPeak = Math.max(rssPeak, rssMiB(pid));
        const t0 = performance.now();
        await probe.request('GET', '/healthz').catch(() => undefined);
        lags.push(performance.now() - t0);
        await sleep(50);
      }
      probe.close();
    })();
    const burstStart = performance.now();
    const answers = await Promise.all(
      Array.from({ length: o.burst }, () =>
        client
          .request<{ id?: string }>('POST', '/v1/sandboxes', { ...shape, timeoutSeconds: 600 }, 600_000)
          .catch((err: unknown) => ({ status: 0, body: { error: (err as Error).message } as { id?: string }, retryAfter: null })),
      ),
    );
    const burstSeconds = (performance.now() - burstStart) / 1000;
    sampling = false;
    await sampler;
    const created = answers.filter((a) => a.status === 201).map((a) => a.body.id!);
    const refusedBurst = answers.filter((a) => a.status === 429 || a.status === 503);
    const other = answers
      .filter((a) => a.status !== 201 && a.status !== 429 && a.status !== 503)
      .map((a) => `${a.status} ${JSON.stringify(a.body).slice(0, 160)}`);
    o.progress(`${tier}: burst answered (${created.length} created, ${refusedBurst.length} refused); deleting`);
    await deleteAll(client, created);
    // Deletes answer once the sandboxes are killed; their teardown finishes in the background.
    const cleanStart = performance.now();
    let leftovers = leftoversOfMany(server, tier, created);
    while (leftovers.length > 0 && performance.now() - cleanStart < 180_000) {
      await sleep(250);
      leftovers = leftoversOfMany(server, tier, created);
    }
    const cleanSeconds = (performance.now() - cleanStart) / 1000;
    const rssAfter = rssMiB(pid);
    const lagDist = dist(lags);

    // --- density
    o.progress(`${tier}: density, up to ${o.densityCap[tier]} idle sandboxes`);
    await sleep(1000);
    const memBefore = memAvailableMiB();
    const threadsBefore = threadsInUse();
    const densityStart = performance.now();
    const held: string[] = [];
    let stoppedBy = `the bench's cap of ${o.densityCap[tier]}`;
    const tiny = { template: 'minimal', isolation: tier, cpu: 0.1, memoryMiB: 64, pids: 32, diskMiB: 64, timeoutSeconds: 3600 };
    let stop = false;
    let asked = 0;
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        while (!stop && asked < o.densityCap[tier]) {
          o.checkAbort();
          asked++;
          const r = await client.request<{ id?: string; error?: { message: string } }>('POST', '/v1/sandboxes', tiny);
          if (r.status === 201) {
            held.push(r.body.id!);
            if (held.length % 100 === 0) o.progress(`${tier}: density ${held.length}`);
          } else {
            stop = true;
            stoppedBy = `create refused (${r.status}): ${r.body.error?.message ?? JSON.stringify(r.body).slice(0, 200)}`;
          }
        }
      }),
    );
    const densitySeconds = (performance.now() - densityStart) / 1000;
    await sleep(2000); // let page cache and the agents settle before reading memory
    const memAfter = memAvailableMiB();
    const threadsAfter = threadsInUse();
    const alive = await client.request<{ stdout: string }>('POST', `/v1/sandboxes/${held[held.length - 1]}/exec`, { cmd: ['echo', 'hi'] });
    if (held.length > 0 && alive.body.stdout !== 'hi\n') stoppedBy += ' (the last sandbox did not answer!)';
    o.progress(`${tier}: density ${held.length}; deleting`);
    await deleteAll(client, held);
    const settleStart = performance.now();
    while (leftoversOfMany(server, tier, held).length > 0 && performance.now() - settleStart < 300_000) await sleep(500);
    return {
      tier,
      warm: { dist: dist(warmSamples), hits: afterWarm.hits, misses: afterWarm.misses, coldSamples },
      churn: {
        seconds: churnSeconds,
        clients: o.churnClients,
        cycles: cycleMs.length,
        perSecond: cycleMs.length / churnSeconds,
        dist: dist(cycleMs),
        warmShare: cycleMs.length ? warmCycles / cycleMs.length : 0,
        refused,
        errors,
      },
      burst: {
        sent: o.burst,
        created: created.length,
        refused: refusedBurst.length,
        refusedWithRetryAfter: refusedBurst.filter((a) => Number(a.retryAfter) >= 1).length,
        other,
        rssBeforeMiB: rssBefore,
        rssPeakMiB: rssPeak,
        rssAfterMiB: rssAfter,
        lagMaxMs: lagDist?.max ?? 0,
        lagP99Ms: lagDist?.p99 ?? 0,
        seconds: burstSeconds,
        cleanSeconds,
        leftovers,
      },
      density: {
        created: held.length,
        stoppedBy,
        memPerSandboxMiB: held.length ? (memBefore - memAfter) / held.length : null,
        pidsPerSandbox: held.length ? (threadsAfter - threadsBefore) / held.length : null,
        seconds: densitySeconds,
      },
    };
  } finally {
    client.close();
  }
}

const TARGETS = { warmP50: 10, warmP99: 30, churn: 30, density: 500 };

export function renderLoad(results: LoadTierResult[], podman: string | null, markdown: boolean): string {
  const lines: string[] = [];
  const mark = (ok: boolean | null): string => (ok === null ? 'n/a' : ok ? 'PASS' : 'MISS');
  for (const r of results) {
    const c = r.tier === 'container';
    const warmOk = c && r.warm.dist ? r.warm.dist.p50 <= TARGETS.warmP50 && r.warm.dist.p99 <= TARGETS.warmP99 : null;
    const rows: string[][] = [
      [
        'warm create → first exec (pool hit)',
        `${r.warm.dist?.n ?? 0} (${r.warm.coldSamples} cold excluded)`,
        `${fmtMs(r.warm.dist?.p50)} / ${fmtMs(r.warm.dist?.p99)} ms`,
        c ? `≤ 10 / ≤ 30 ms: ${mark(warmOk)}` : '',
      ],
      [
        `churn: ${r.churn.clients} clients × ${r.churn.seconds.toFixed(0)} s, create → exec → delete`,
        `${r.churn.cycles} cycles (${(r.churn.warmShare * 100).toFixed(0)}% warm), ${r.churn.refused} refused, ${r.churn.errors.length} errors`,
        `${r.churn.perSecond.toFixed(1)}/s; cycle ${fmtMs(r.churn.dist?.p50)} / ${fmtMs(r.churn.dist?.p99)} ms`,
        c ? `≥ 30/s: ${mark(r.churn.perSecond >= TARGETS.churn && r.churn.errors.length === 0)}` : '',
      ],
      [
        `burst: ${r.burst.sent} creates at once`,
        `${r.burst.created} created, ${r.burst.refused} refused (${r.burst.refusedWithRetryAfter} with Retry-After), ${r.burst.other.length} other`,
        `${r.burst.seconds.toFixed(1)} s; server RSS ${r.burst.rssBeforeMiB} → peak ${r.burst.rssPeakMiB} → ${r.burst.rssAfterMiB} MiB; /healthz lag p99 ${fmtMs(r.burst.lagP99Ms)}, max ${fmtMs(r.burst.lagMaxMs)} ms; leftovers ${r.burst.leftovers.length} (host clean ${r.burst.cleanSeconds.toFixed(1)} s after the last delete)`,
        `only 201/429, no leftovers: ${mark(r.burst.other.length === 0 && r.burst.leftovers.length === 0 && r.burst.refusedWithRetryAfter === r.burst.refused)}`,
      ],
      [
        'density: idle minimal sandboxes held at once',
        `${r.density.created} in ${r.density.seconds.toFixed(0)} s; stopped by ${r.density.stoppedBy}`,
        `${r.density.memPerSandboxMiB?.toFixed(1) ?? '–'} MiB and ${r.density.pidsPerSandbox?.toFixed(1) ?? '–'} host threads per sandbox`,
        c ? `≥ 500: ${mark(r.density.created >= TARGETS.density)}` : '',
      ],
    ];
    if (markdown) {
      lines.push(`### ${r.tier}`, '', '| measure | count | figures | target |', '|---|---|---|---|');
      for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
      lines.push('');
    } else {
      lines.push(`== ${r.tier}`);
      for (const row of rows) lines.push(`  ${row[0]}\n      ${row[1]}\n      ${row[2]}${row[3] ? `\n      target ${row[3]}` : ''}`);
    }
    if (r.churn.errors.length) lines.push(`${markdown ? '' : '  '}churn errors: ${r.churn.errors.join('; ')}`, '');
    if (r.burst.other.length) lines.push(`${markdown ? '' : '  '}burst other answers: ${r.burst.other.slice(0, 3).join('; ')}`, '');
  }
  lines.push(`For scale, the foundation bench's one-shot \`podman run --rm\` (runc): ${podman ?? 'not recorded'}.`);
  return lines.join('\n');
}
