/**
 * `npm run bench -- k8s`: create → first exec on the kubernetes provider (pods on ../shared/k8s-local,
 * or the cluster KUBECONFIG names) against the local provider in the same run, per tier, cold and
 * warm (a pool of ready sandboxes; each warm sample waits for a ready member, claims it, runs
 * `echo hi`, deletes it). Samples of each series alternate provider by provider, so a slow period
 * of this shared machine hits both. The cluster is brought up (and down) when KUBECONFIG is unset.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO } from '../tests/harness.js';
import { Api } from './client.js';
import { startBenchServer, type BenchServer } from './server.js';
import { fmtMs, summarize, type Summary } from './stats.js';

export type K8sTier = 'container' | 'gvisor';
export type Provider = 'kubernetes' | 'local';
const PROVIDERS: Provider[] = ['kubernetes', 'local'];
const SHAPE = { template: 'minimal', cpu: 0.25, memoryMiB: 128, pids: 128, diskMiB: 256 };

export interface K8sOptions {
  runs: number;
  warmup: number;
  tiers: K8sTier[];
  progress: (message: string) => void;
  checkAbort: () => void;
}

export interface K8sRow {
  provider: Provider;
  tier: K8sTier;
  cold: Summary | null;
  warm: Summary | null;
  /** Warm samples served cold (the pool had no member ready in time). */
  warmMisses: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The cluster: the one KUBECONFIG names, else k8s-local brought up for the run (and taken down after). */
function cluster(progress: (m: string) => void): { kubeconfig: string; k8sLocal: string; down: (() => void) | null } {
  const k8sLocal = process.env.HUTCH_K8S_LOCAL ?? resolve(REPO, '../shared/k8s-local');
  if (process.env.KUBECONFIG) return { kubeconfig: process.env.KUBECONFIG, k8sLocal, down: null };
  if (!existsSync(`${k8sLocal}/up`)) throw new Error(`no KUBECONFIG and no k8s-local at ${k8sLocal} (set HUTCH_K8S_LOCAL)`);
  progress('bringing k8s-local up');
  let out = '';
  for (let attempt = 1; attempt <= 2 && !out; attempt++) {
    try {
      out = execFileSync(`${k8sLocal}/up`, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    } catch (err) {
      if (attempt === 2) throw err;
    }
  }
  const kubeconfig = /KUBECONFIG=(\S+)/.exec(out)?.[1];
  if (!kubeconfig) throw new Error(`k8s-local up printed no KUBECONFIG: ${out}`);
  // Pod addresses above 198.18.0.255 (see scripts/test-k8s.sh: net-fixture routes 198.18.0.0/24).
  const ipam = `${process.env.HUTCH_K8S_DIR ?? '/var/lib/hutch-k8s'}/state/cni-ipam/k8s-local`;
  mkdirSync(ipam, { recursive: true });
  writeFileSync(`${ipam}/last_reserved_ip.0`, '198.18.0.255');
  return { kubeconfig, k8sLocal, down: () => execFileSync(`${k8sLocal}/down`, { stdio: 'inherit' }) };
}

async function createToFirstExec(api: Api, tier: K8sTier): Promise<{ ms: number; warm: boolean }> {
  const t0 = performance.now();
  const sb = await api.call<{ id: string; warm?: boolean }>('POST', '/v1/sandboxes', { ...SHAPE, isolation: tier, timeoutSeconds: 300 });
  const r = await api.call<{ exitCode: number; stdout: string }>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: ['echo', 'hi'] });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0 || r.stdout !== 'hi\n')
    throw new Error(`exec echo hi in ${sb.id}: exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}`);
  await api.call('DELETE', `/v1/sandboxes/${sb.id}`);
  return { ms, warm: sb.warm === true };
}

async function waitPoolReady(api: Api, pool: string, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if ((await api.call<{ size: number }>('GET', `/v1/pools/${pool}`)).size >= 1) return true;
    await sleep(20);
  }
  return false;
}

export async function benchK8s(o: K8sOptions): Promise<{ rows: K8sRow[]; errors: string[] }> {
  const errors: string[] = [];
  const rows: K8sRow[] = [];
  const { kubeconfig, k8sLocal, down } = cluster(o.progress);
  const namespace = `hutch-bench-${process.pid}`;
  const servers = new Map<Provider, BenchServer>();
  const apis = new Map<Provider, Api>();
  try {
    servers.set(
      'kubernetes',
      await startBenchServer({ provider: 'kubernetes', kubernetes: { kubeconfig, namespace, imageImport: [`${k8sLocal}/import-image`] } }),
    );
    servers.set('local', await startBenchServer());
    for (const [p, s] of servers) apis.set(p, new Api(s.url, s.key));
    for (const tier of o.tiers) {
      const cold = new Map<Provider, number[]>(PROVIDERS.map((p) => [p, []]));
      o.progress(`${tier}: cold create → first exec, ${o.runs} runs after ${o.warmup} warm-up, alternating providers`);
      for (let i = 0; i < o.warmup + o.runs; i++) {
        o.checkAbort();
        for (const p of PROVIDERS) {
          const { ms } = await createToFirstExec(apis.get(p)!, tier);
          if (i >= o.warmup) cold.get(p)!.push(ms);
        }
      }
      const warm = new Map<Provider, number[]>(PROVIDERS.map((p) => [p, []]));
      const misses = new Map<Provider, number>(PROVIDERS.map((p) => [p, 0]));
      const pool = `bench-${tier}`;
      for (const p of PROVIDERS)
        await apis.get(p)!.call('PUT', `/v1/pools/${pool}`, { ...SHAPE, isolation: tier, min: 1, target: 2, max: 4 });
      o.progress(`${tier}: warm create → first exec (pool of 2), ${o.runs} runs`);
      try {
        for (let i = 0; i < o.warmup + o.runs; i++) {
          o.checkAbort();
          for (const p of PROVIDERS) {
            const api = apis.get(p)!;
            await waitPoolReady(api, pool, 120_000);
            const { ms, warm: wasWarm } = await createToFirstExec(api, tier);
            if (i < o.warmup) continue;
            if (wasWarm) warm.get(p)!.push(ms);
            else misses.set(p, misses.get(p)! + 1);
          }
        }
      } finally {
        for (const p of PROVIDERS)
          await apis
            .get(p)!
            .call('DELETE', `/v1/pools/${pool}`)
            .catch(() => undefined);
      }
      for (const p of PROVIDERS)
        rows.push({ provider: p, tier, cold: summarize(cold.get(p)!), warm: summarize(warm.get(p)!), warmMisses: misses.get(p)! });
    }
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    for (const [p, s] of servers) {
      const api = apis.get(p);
      // Pools first (their members have no record), then whatever is left.
      const pools = (await api?.call<{ pools: Array<{ name: string }> }>('GET', '/v1/pools').catch(() => null))?.pools ?? [];
      for (const pool of pools) await api?.call('DELETE', `/v1/pools/${pool.name}`).catch(() => undefined);
      const left = (await api?.call<{ sandboxes: Array<{ id: string }> }>('GET', '/v1/sandboxes').catch(() => null))?.sandboxes ?? [];
      for (const sb of left) await api?.call('DELETE', `/v1/sandboxes/${sb.id}`).catch(() => undefined);
      api?.close();
      // A pool member still booting when its pool went is left with no record: a second start on the
      // data dir reaps it (reconcile), after which the data dir can go.
      if (!(await s.stop()).removed) {
        await s.restart();
        if (!(await s.stop()).removed) errors.push(`${p}: sandboxes left behind (data dir ${s.dataDir} kept)`);
      }
    }
    try {
      execFileSync(`${k8sLocal}/kubectl`, ['delete', 'namespace', namespace, '--wait=false'], {
        env: { ...process.env, KUBECONFIG: kubeconfig },
        stdio: 'ignore',
      });
    } catch {
      /* the namespace may not exist (the server did not start) */
    }
    if (down) {
      o.progress('taking k8s-local down');
      down();
    }
  }
  return { rows, errors };
}

export function renderK8s(rows: K8sRow[], markdown: boolean): string {
  const head = ['provider', 'tier', 'cold median', 'cold p95', 'warm median', 'warm p95', 'warm misses'];
  const body = rows.map((r) => [
    r.provider,
    r.tier,
    `${fmtMs(r.cold?.median)} ms`,
    `${fmtMs(r.cold?.p95)} ms`,
    `${fmtMs(r.warm?.median)} ms`,
    `${fmtMs(r.warm?.p95)} ms`,
    String(r.warmMisses),
  ]);
  if (markdown)
    return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((b) => `| ${b.join(' | ')} |`)].join('\n');
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((line) => line.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}
