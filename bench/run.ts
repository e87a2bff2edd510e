/**
 * `npm run bench`: latency of Hutch's sandbox lifecycle against `podman run --rm`, per tier.
 *
 * Starts its own server (fresh data dir, shared layer cache) on loopback, measures sequentially
 * with warm-up runs discarded, interleaves Hutch and podman runs, cleans up every sandbox it
 * created (also on failure and Ctrl-C), and prints medians, p95 and the targets. `--write`
 * rewrites the results block of docs/benchmarks.md. See docs/benchmarks.md for the method.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { LAYERS_DIR, REPO } from '../tests/harness.js';
import { Api, ApiError } from './client.js';
import { describeHost, hostFacts } from './host.js';
import { timedRun } from './proc.js';
import { podmanArgs, podmanOnce, removePodmanLeftovers } from './podman.js';
import { benchPersistence, type PersistenceRow } from './persistence.js';
import { benchE2b, renderE2b, type E2bBenchResult } from './e2b.js';
import { benchLoadTier, renderLoad, type LoadTier, type LoadTierResult } from './load.js';
import { startBenchServer, type BenchServer } from './server.js';
import { benchK8s, renderK8s } from './k8s.js';
import { benchEnv, renderEnv } from './env.js';
import {
  evaluateTargets,
  renderMarkdown,
  renderText,
  SERIES,
  TIERS,
  writeDocs,
  type BenchResult,
  type SeriesName,
  type Tier,
  type TierResult,
  type PolicyResult,
} from './report.js';
import { summarize } from './stats.js';

const execFileP = promisify(execFile);
const CLI_MAIN = join(REPO, 'packages/cli/dist/main.js');
const DOCS = join(REPO, 'docs/benchmarks.md');
const TEMPLATE = 'minimal';
const E2B_VERSION = (JSON.parse(readFileSync(join(REPO, 'node_modules/e2b/package.json'), 'utf8')) as { version: string }).version;

interface Options {
  runs: number;
  warmup: number;
  execSamples: number;
  execWarmup: number;
  tiers: Tier[];
  json: boolean;
  write: boolean;
  cli: boolean;
  podman: boolean;
  network: boolean;
  persistence: boolean;
  /** `e2b`: only the E2B compatibility series; `load`: warm pools, churn, burst, density; `k8s`: the kubernetes provider. */
  mode: 'all' | 'e2b' | 'load' | 'k8s' | 'env';
  warmRuns: number;
  churnSeconds: number;
  burst: number;
  densityCap: number | null;
}

const USAGE = `usage: npm run bench -- [e2b | load | k8s | env] [options]

  e2b                only the E2B compatibility series: the published e2b SDK's
                     create → commands.run → kill against the native API (overhead)
  load               warm-pool create latency, churn (8 clients), a burst of creates
                     and density, per tier (options below; --tier applies)
    --warm-runs N      warm samples per tier (default 200)
    --churn-seconds N  churn duration (default 60)
    --burst N          creates sent at once (default 1000)
    --density-cap N    most idle sandboxes to hold (default 600 container, 250 gvisor)
  k8s                create → first exec on the kubernetes provider (pods) and the local
                     provider in the same run, cold and warm (a pool of 2), per tier;
                     uses the cluster KUBECONFIG names, else brings ../shared/k8s-local up
                     and down (--runs, --warmup and --tier apply)
  env                preview environments of the webhook sample app (postgres, a seed
                     job, an API built from a Dockerfile, web, worker) from a signed
                     GitHub delivery: cold (no build cache, no seed snapshot) and warm
                     (build cache, seed snapshot) to all services up, the build's
                     share, wake from sleep, destroy on close (--runs applies;
                     default 3 here)

  --runs N           measured runs per series (default 20; --write needs ≥ 20)
  --warmup N         discarded warm-up runs per series (default 3)
  --exec-samples N   exec round-trip samples (default 200; --write needs ≥ 100)
  --exec-warmup N    discarded exec round trips before sampling (default 20)
  --tier T           container | gvisor (repeatable; default both)
  --no-cli           skip the \`hutch run\` CLI process measurement
  --no-podman        skip the podman comparison
  --no-network       skip the egress policy cost series (per tier)
  --no-persistence   skip pause/resume, snapshot and create-from-snapshot series
  --json             print machine-readable results (with raw samples) instead of the table
  --write            rewrite the results block of docs/benchmarks.md
  -h, --help         this text

Runs as root (the server must). By default only prints; nothing is written without --write.`;

class UsageError extends Error {}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    runs: 20,
    warmup: 3,
    execSamples: 200,
    execWarmup: 20,
    tiers: [],
    json: false,
    write: false,
    cli: true,
    podman: true,
    network: true,
    persistence: true,
    mode: 'all',
    warmRuns: 200,
    churnSeconds: 60,
    burst: 1000,
    densityCap: null,
  };
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`${name}: expected an integer ${min}–${max}, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const next = (): string | undefined => value ?? argv[++i];
    switch (arg) {
      case '--runs':
        o.runs = int(arg, next(), 1, 1000);
        break;
      case '--warmup':
        o.warmup = int(arg, next(), 0, 100);
        break;
      case '--exec-samples':
        o.execSamples = int(arg, next(), 1, 100_000);
        break;
      case '--exec-warmup':
        o.execWarmup = int(arg, next(), 0, 10_000);
        break;
      case '--no-network':
        o.network = false;
        break;
      case '--no-persistence':
        o.persistence = false;
        break;
      case 'e2b':
        o.mode = 'e2b';
        break;
      case 'load':
        o.mode = 'load';
        break;
      case 'k8s':
        o.mode = 'k8s';
        break;
      case 'env':
        o.mode = 'env';
        break;
      case '--warm-runs':
        o.warmRuns = int(arg, next(), 1, 100_000);
        break;
      case '--churn-seconds':
        o.churnSeconds = int(arg, next(), 1, 3600);
        break;
      case '--burst':
        o.burst = int(arg, next(), 1, 10_000);
        break;
      case '--density-cap':
        o.densityCap = int(arg, next(), 1, 100_000);
        break;
      case '--tier': {
        for (const t of (next() ?? '').split(',')) {
          if (!(TIERS as readonly string[]).includes(t)) throw new UsageError(`--tier: expected ${TIERS.join(' or ')}, got "${t}"`);
          if (!o.tiers.includes(t as Tier)) o.tiers.push(t as Tier);
        }
        break;
      }
      case '--json':
        o.json = true;
        break;
      case '--write':
        o.write = true;
        break;
      case '--no-cli':
        o.cli = false;
        break;
      case '--no-podman':
        o.podman = false;
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${argv[i]}`);
    }
  }
  if (o.tiers.length === 0) o.tiers = [...TIERS];
  if (o.write && o.mode !== 'env' && (o.runs < 20 || o.execSamples < 100))
    throw new UsageError('--write needs --runs ≥ 20 and --exec-samples ≥ 100 (the documented method)');
  return o;
}

const progress = (msg: string): void => void process.stderr.write(`[bench] ${msg}\n`);

// Interruption: the first SIGINT/SIGTERM stops after the current step and cleans up; a second exits at once.
let aborting = false;
class Aborted extends Error {}
const checkAbort = (): void => {
  if (aborting) throw new Aborted('interrupted');
};

interface ExecResult {
  exitCode: number;
  durationMs: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}
interface TierStatus {
  available: boolean;
  runtime: string;
  version: string | null;
  reason?: string;
  egress?: { available: boolean; reason?: string };
}
interface Info {
  version: string;
  tiers: Record<Tier, TierStatus>;
}
interface TemplateInfo {
  name: string;
  digest: string;
  state: string;
}

class Bench {
  /** Sandboxes this run created and has not deleted yet. */
  readonly tracked = new Set<string>();

  constructor(
    readonly api: Api,
    readonly server: BenchServer,
    readonly opts: Options,
  ) {}

  async create(tier: Tier, network?: unknown): Promise<string> {
    const sb = await this.api.call<{ id: string; state: string }>('POST', '/v1/sandboxes', {
      template: TEMPLATE,
      isolation: tier,
      ...(network !== undefined ? { network } : {}),
    });
    this.tracked.add(sb.id);
    if (sb.state !== 'running') throw new Error(`sandbox ${sb.id} was created in state ${sb.state}`);
    return sb.id;
  }

  async exec(id: string, cmd: string[]): Promise<ExecResult> {
    return this.api.call<ExecResult>('POST', `/v1/sandboxes/${id}/exec`, { cmd });
  }

  async delete(id: string): Promise<void> {
    await this.api.call('DELETE', `/v1/sandboxes/${id}`);
    this.tracked.delete(id);
  }

  /** create → exec `echo hi` → delete, timed at each response. */
  async oneshotApi(
    tier: Tier,
  ): Promise<{ create: number; firstExec: number; createToFirstExec: number; delete: number; oneshotApi: number }> {
    const t0 = performance.now();
    const id = await this.create(tier);
    const t1 = performance.now();
    const r = await this.exec(id, ['echo', 'hi']);
    const t2 = performance.now();
    if (r.exitCode !== 0 || r.stdout !== 'hi\n')
      throw new Error(
        `exec echo hi in ${id}: exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`,
      );
    await this.delete(id);
    const t3 = performance.now();
    return { create: t1 - t0, firstExec: t2 - t1, createToFirstExec: t2 - t0, delete: t3 - t2, oneshotApi: t3 - t0 };
  }

  async oneshotCli(tier: Tier): Promise<number> {
    const env = { ...process.env, HUTCH_URL: this.server.url, HUTCH_API_KEY: this.server.key };
    const r = await timedRun(process.execPath, [CLI_MAIN, 'run', '--template', TEMPLATE, '--isolation', tier, '--', 'echo', 'hi'], {
      env,
      timeoutMs: 60_000,
    });
    if (r.code !== 0 || r.stdout !== 'hi\n')
      throw new Error(
        `hutch run: exit ${r.code ?? r.signal}, stdout ${JSON.stringify(r.stdout.slice(0, 200))}, stderr ${JSON.stringify(r.stderr.slice(0, 500))}`,
      );
    return r.ms;
  }

  /** create (with an egress policy) → first exec → delete: what each policy adds to the lifecycle. */
  async policyOneshot(tier: Tier, network: unknown): Promise<{ createToFirstExec: number; delete: number }> {
    const t0 = performance.now();
    const id = await this.create(tier, network);
    const r = await this.exec(id, ['echo', 'hi']);
    const t1 = performance.now();
    if (r.exitCode !== 0 || r.stdout !== 'hi\n')
      throw new Error(`exec echo hi in ${id}: exit ${r.exitCode}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
    await this.delete(id);
    return { createToFirstExec: t1 - t0, delete: performance.now() - t1 };
  }

  /** Client-side round trips of exec `true`, and the server's own `durationMs` for each. */
  async execRoundTrips(tier: Tier): Promise<{ rtt: number[]; server: number[] }> {
    const id = await this.create(tier);
    const samples: number[] = [];
    const server: number[] = [];
    try {
      for (let i = 0; i < this.opts.execWarmup + this.opts.execSamples; i++) {
        if (i % 50 === 0) checkAbort();
        const t0 = performance.now();
        const r = await this.exec(id, ['true']);
        const t1 = performance.now();
        if (r.exitCode !== 0) throw new Error(`exec true in ${id}: exit ${r.exitCode}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
        if (i >= this.opts.execWarmup) {
          samples.push(t1 - t0);
          server.push(r.durationMs);
        }
      }
    } finally {
      await this.delete(id);
    }
    return { rtt: samples, server };
  }
}

async function benchTier(
  bench: Bench,
  tier: Tier,
  status: TierStatus | undefined,
  ctx: { cli: boolean; podmanRootfs: string | null },
): Promise<TierResult> {
  const result: TierResult = { tier, series: {}, samples: {}, ratios: { cli: null, api: null }, podmanCommand: null };
  if (!status?.available) {
    result.skipped = `the server reports the tier unavailable: ${status?.reason ?? 'unknown reason'}`;
    return result;
  }
  const samples: Partial<Record<SeriesName, number[]>> = {};
  const push = (name: SeriesName, ms: number): void => void (samples[name] ??= []).push(ms);
  const kinds: Array<'api' | 'cli' | 'podman'> = ['api'];
  if (ctx.cli) kinds.push('cli');
  if (ctx.podmanRootfs) {
    kinds.push('podman');
    result.podmanCommand = `podman ${podmanArgs(tier, '<rootfs>').join(' ')}`;
  }
  const { runs, warmup } = bench.opts;
  try {
    progress(`${tier}: ${warmup} warm-up + ${runs} runs of ${kinds.join(', ')} (interleaved)`);
    for (let i = 0; i < warmup + runs; i++) {
      checkAbort();
      const keep = i >= warmup;
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(i + k) % kinds.length]!;
        if (kind === 'api') {
          const t = await bench.oneshotApi(tier);
          if (keep) for (const [name, ms] of Object.entries(t)) push(name as SeriesName, ms);
        } else if (kind === 'cli') {
          const ms = await bench.oneshotCli(tier);
          if (keep) push('oneshotCli', ms);
        } else {
          const ms = await podmanOnce(tier, ctx.podmanRootfs!);
          if (keep) push('podman', ms);
        }
      }
      if ((i + 1) % 5 === 0 || i + 1 === warmup + runs) progress(`${tier}: ${i + 1}/${warmup + runs}`);
    }
    progress(`${tier}: exec round trips (${bench.opts.execWarmup} warm-up + ${bench.opts.execSamples})`);
    const rt = await bench.execRoundTrips(tier);
    samples.execRtt = rt.rtt;
    samples.execServer = rt.server;
  } catch (err) {
    // A step that failed because of the interruption (a child got the terminal's SIGINT) is not a result.
    if (err instanceof Aborted || aborting) throw new Aborted('interrupted');
    result.error = (err as Error).message;
  }
  for (const name of SERIES) {
    const s = samples[name] && summarize(samples[name]!);
    if (s) result.series[name] = s;
  }
  result.samples = samples;
  const podman = result.series.podman?.median;
  if (podman !== undefined) {
    if (result.series.oneshotCli) result.ratios.cli = podman / result.series.oneshotCli.median;
    if (result.series.oneshotApi) result.ratios.api = podman / result.series.oneshotApi.median;
  }
  return result;
}

/**
 * The CLI counts when it is built, has `run` with `--isolation`, and one `hutch run` (container
 * tier, not measured) prints "hi": a CLI that cannot do the job is reported, not timed.
 */
/**
 * The egress policies' set-up cost: create → first exec and delete for `none`, `open` and a
 * domain + CIDR allowlist, interleaved run by run (order rotated), per tier. No traffic is sent:
 * this is the cost of the namespace, link, nftables table and resolver state (and, on gVisor,
 * of starting netstack on the link).
 */
async function benchPolicies(bench: Bench, opts: Options, tier: Tier): Promise<PolicyResult[]> {
  const policies: { name: PolicyResult['policy']; network: unknown }[] = [
    { name: 'none', network: { egress: 'none' } },
    { name: 'open', network: { egress: 'open' } },
    { name: 'allowlist', network: { egress: { allow: ['pypi.example.test', '*.example.org', '198.18.0.0/24'] } } },
  ];
  const samples = new Map(policies.map((p) => [p.name, { c: [] as number[], d: [] as number[] }]));
  progress(`network policies (${tier}): ${opts.warmup} warm-up + ${opts.runs} runs of create → first exec → delete per policy`);
  for (let run = 0; run < opts.warmup + opts.runs; run++) {
    checkAbort();
    for (let k = 0; k < policies.length; k++) {
      const p = policies[(run + k) % policies.length]!;
      const r = await bench.policyOneshot(tier, p.network);
      if (run >= opts.warmup) {
        samples.get(p.name)!.c.push(r.createToFirstExec);
        samples.get(p.name)!.d.push(r.delete);
      }
    }
  }
  const base = summarize(samples.get('none')!.c)?.median ?? null;
  return policies.map((p) => {
    const s = samples.get(p.name)!;
    const createToFirstExec = summarize(s.c);
    return {
      tier,
      policy: p.name,
      createToFirstExec,
      delete: summarize(s.d),
      addedMs: base !== null && createToFirstExec ? createToFirstExec.median - base : null,
    };
  });
}

async function cliSupport(server: BenchServer): Promise<{ available: boolean; reason?: string }> {
  if (!existsSync(CLI_MAIN)) return { available: false, reason: `${CLI_MAIN} does not exist (npm run build)` };
  try {
    const { stdout } = await execFileP(process.execPath, [CLI_MAIN, 'run', '--help'], { timeout: 30_000 });
    if (!/--isolation/.test(stdout)) return { available: false, reason: '`hutch run` has no --isolation option' };
  } catch (err) {
    return { available: false, reason: `\`hutch run --help\` failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const env = { ...process.env, HUTCH_URL: server.url, HUTCH_API_KEY: server.key };
  const r = await timedRun(process.execPath, [CLI_MAIN, 'run', '--template', TEMPLATE, '--isolation', 'container', '--', 'echo', 'hi'], {
    env,
    timeoutMs: 60_000,
  });
  if (r.code !== 0 || r.stdout !== 'hi\n') {
    const why = r.stderr.trim().split('\n').slice(-1)[0] ?? '';
    return {
      available: false,
      reason: `a trial \`hutch run --template minimal -- echo hi\` failed (exit ${r.code ?? r.signal}: ${JSON.stringify(why.slice(0, 300))})`,
    };
  }
  return { available: true };
}

async function cliFloor(opts: Options): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < opts.warmup + opts.runs; i++) {
    checkAbort();
    const r = await timedRun(process.execPath, [CLI_MAIN, '--version'], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`hutch --version: exit ${r.code ?? r.signal}`);
    if (i >= opts.warmup) samples.push(r.ms);
  }
  return samples;
}

async function waitTemplateReady(api: Api): Promise<TemplateInfo> {
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    const { templates } = await api.call<{ templates: TemplateInfo[] }>('GET', '/v1/templates');
    const t = templates.find((x) => x.name === TEMPLATE);
    if (!t) throw new Error(`the server has no "${TEMPLATE}" template`);
    if (t.state === 'ready') return t;
    if (t.state !== 'building' || Date.now() > deadline) throw new Error(`template "${TEMPLATE}" is ${t.state} (run npm run setup)`);
    checkAbort();
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Deletes everything this server holds (it is ours alone), restarting it first if it died. */
async function cleanup(bench: Bench, server: BenchServer): Promise<string[]> {
  if (!server.alive()) {
    progress('the server is down; restarting it on the same data dir to delete what is left');
    await server.restart();
  }
  const listAll = async (): Promise<string[]> =>
    (
      await bench.api.call<{ sandboxes: Array<{ id: string }> }>('GET', '/v1/sandboxes?state=creating,running,paused,stopped,error')
    ).sandboxes.map((s) => s.id);
  // Warm pools first: their ready sandboxes have no record, only the pool destroys them.
  const pools = await bench.api.call<{ pools: Array<{ name: string }> }>('GET', '/v1/pools').catch(() => ({ pools: [] }));
  for (const p of pools.pools) await bench.api.call('DELETE', `/v1/pools/${p.name}`).catch(() => undefined);
  const ids = new Set([...bench.tracked, ...(await listAll())]);
  for (const id of ids) {
    try {
      await bench.api.call('DELETE', `/v1/sandboxes/${id}`);
      bench.tracked.delete(id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) bench.tracked.delete(id);
      else progress(`could not delete ${id}: ${(err as Error).message}`);
    }
  }
  return listAll();
}

/** Rewrites a generated block of docs/benchmarks.md: "Measured <when> (commit …)<how>", then the table. */
function writeBlock(block: 'e2b' | 'load' | 'k8s' | 'env', how: string, table: string): void {
  const when = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  writeDocs(DOCS, [`Measured ${when} (commit ${gitCommit()})${how}`, '', table].join('\n'), block);
  progress(`wrote the ${block} results into ${DOCS}`);
}

function gitCommit(): string {
  try {
    const head = execFileSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return 'unknown';
  }
}

/** `npm run bench -- e2b`: its own server, the e2b series, cleanup; `--write` fills its block. */
async function mainE2b(opts: Options): Promise<number> {
  process.on('SIGINT', () => void (aborting = true));
  process.on('SIGTERM', () => void (aborting = true));
  const host = await hostFacts();
  progress(`host: ${describeHost(host)}`);
  const server = await startBenchServer();
  const api = new Api(server.url, server.key);
  const bench = new Bench(api, server, opts);
  let result: E2bBenchResult | null = null;
  const errors: string[] = [];
  try {
    result = await benchE2b({
      api,
      url: server.url,
      key: server.key,
      runs: opts.runs,
      warmup: opts.warmup,
      progress,
      checkAbort,
      tracked: bench.tracked,
    });
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    const left = await cleanup(bench, server).catch(() => ['(cleanup failed)']);
    api.close();
    if (left.length === 0) await server.stop();
    else errors.push(`left behind: ${left.join(', ')} (data dir ${server.dataDir} kept)`);
  }
  for (const e of errors) progress(`ERROR: ${e}`);
  if (!result) return 1;
  console.log(renderE2b(result, false));
  if (opts.write && errors.length === 0)
    writeBlock(
      'e2b',
      `, ${describeHost(host)}; ${opts.runs} runs after ${opts.warmup} warm-up, interleaved; e2b ${E2B_VERSION}.`,
      renderE2b(result, true),
    );
  return errors.length > 0 ? 1 : 0;
}

/** The podman one-shot median recorded by the foundation bench in docs/benchmarks.md (for scale). */
function recordedPodman(): string | null {
  try {
    const m = /\| `podman run --rm` \(runc, same rootfs\) \| \d+ \| ([\d.]+) \|/.exec(readFileSync(DOCS, 'utf8'));
    return m ? `${m[1]} ms median` : null;
  } catch {
    return null;
  }
}

/** `npm run bench -- load`: per tier a fresh server, the load series, cleanup; `--write` fills its block. */
async function mainLoad(opts: Options): Promise<number> {
  process.on('SIGINT', () => void (aborting = true));
  process.on('SIGTERM', () => void (aborting = true));
  const host = await hostFacts();
  progress(`host: ${describeHost(host)}`);
  const tiers: LoadTier[] = opts.tiers.length > 0 ? opts.tiers : ['container', 'gvisor'];
  const results: LoadTierResult[] = [];
  const errors: string[] = [];
  for (const tier of tiers) {
    const server = await startBenchServer();
    try {
      results.push(
        await benchLoadTier(server, tier, {
          warmRuns: opts.warmRuns,
          churnSeconds: opts.churnSeconds,
          churnClients: 8,
          burst: opts.burst,
          densityCap: { container: opts.densityCap ?? 600, gvisor: opts.densityCap ?? 250 },
          progress,
          checkAbort,
        }),
      );
    } catch (err) {
      errors.push(`${tier}: ${(err as Error).message}`);
    } finally {
      const api = new Api(server.url, server.key);
      const left = await cleanup(new Bench(api, server, opts), server).catch(() => ['(cleanup failed)']);
      api.close();
      if (left.length === 0) await server.stop();
      else errors.push(`left behind: ${left.join(', ')} (data dir ${server.dataDir} kept)`);
    }
    if (aborting) break;
  }
  for (const e of errors) progress(`ERROR: ${e}`);
  if (opts.json) console.log(JSON.stringify({ host, results, errors }, null, 2));
  else console.log(renderLoad(results, recordedPodman(), false));
  if (opts.write && errors.length === 0)
    writeBlock('load', ` with \`npm run bench -- load --write\`, ${describeHost(host)}.`, renderLoad(results, recordedPodman(), true));
  return errors.length > 0 ? 1 : 0;
}

async function mainK8s(opts: Options): Promise<number> {
  process.on('SIGINT', () => void (aborting = true));
  process.on('SIGTERM', () => void (aborting = true));
  const host = await hostFacts();
  progress(`host: ${describeHost(host)}`);
  const { rows, errors } = await benchK8s({ runs: opts.runs, warmup: opts.warmup, tiers: opts.tiers, progress, checkAbort });
  for (const e of errors) progress(`ERROR: ${e}`);
  if (opts.json) console.log(JSON.stringify({ host, rows, errors }, null, 2));
  else console.log(renderK8s(rows, false));
  if (opts.write && errors.length === 0)
    writeBlock(
      'k8s',
      ` with \`npm run bench -- k8s --write\`, ${describeHost(host)}; ${opts.runs} runs after ${opts.warmup} warm-up per series, providers alternating.`,
      renderK8s(rows, true),
    );
  return errors.length > 0 ? 1 : 0;
}

/** `npm run bench -- env`: its own server, webhook-driven environments; `--write` fills its block. */
async function mainEnv(opts: Options, runsGiven: boolean): Promise<number> {
  process.on('SIGINT', () => void (aborting = true));
  process.on('SIGTERM', () => void (aborting = true));
  const host = await hostFacts();
  progress(`host: ${describeHost(host)}`);
  const runs = runsGiven ? opts.runs : 3;
  const result = await benchEnv({ runs, progress, checkAbort });
  host.loadEnd = os.loadavg()[0]!;
  for (const e of result.errors) progress(`ERROR: ${e}`);
  if (opts.json) console.log(JSON.stringify({ host, result }, null, 2));
  else console.log(renderEnv(result, false));
  if (opts.write && result.errors.length === 0)
    writeBlock(
      'env',
      ` with \`npm run bench -- env --runs ${runs} --write\`, ${describeHost(host)}; ${runs} runs, no warm-up.`,
      renderEnv(result, true),
    );
  return result.errors.length > 0 ? 1 : 0;
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`bench: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench: must run as root (the server manages namespaces, cgroups and mounts)');
    return 1;
  }
  if (opts.mode === 'e2b') return mainE2b(opts);
  if (opts.mode === 'load') return mainLoad(opts);
  if (opts.mode === 'k8s') return mainK8s(opts);
  if (opts.mode === 'env')
    return mainEnv(
      opts,
      process.argv.slice(2).some((a) => a === '--runs' || a.startsWith('--runs=')),
    );
  let forceExit = (): void => undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (aborting) {
      progress(`${signal} again`);
      forceExit();
      process.exit(130);
    }
    aborting = true;
    progress(`${signal}: stopping after the current step, then cleaning up (send again to exit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const host = await hostFacts();
  progress(`host: ${describeHost(host)}`);
  const errors: string[] = [];
  let podmanWhy: string | null = null;
  if (!opts.podman) podmanWhy = 'disabled (--no-podman)';
  else if (!host.podman) podmanWhy = 'podman is not installed (apt-get install podman)';
  if (podmanWhy) progress(`podman comparison skipped: ${podmanWhy}`);

  progress('starting a server (fresh data dir, layers from ' + LAYERS_DIR + ')');
  const server = await startBenchServer();
  // Whatever happens, do not leave the server running behind us.
  process.on('exit', () => server.killNow());
  forceExit = () => {
    progress(`exiting without cleanup: sandboxes may remain in ${server.dataDir} (start a server on that data dir and delete them)`);
    server.killNow();
  };
  const api = new Api(server.url, server.key);
  const bench = new Bench(api, server, opts);
  let scratch: string | null = null;
  const tiers: TierResult[] = [];
  let template: TemplateInfo | null = null;
  let info: Info | null = null;
  let cli: BenchResult['cli'] = { available: false, reason: 'disabled (--no-cli)', floor: null };
  let interrupted = false;
  let network: PolicyResult[] | null = null;
  let persistence: PersistenceRow[] | null = null;
  try {
    info = await api.call<Info>('GET', '/v1/info');
    template = await waitTemplateReady(api);
    const layer = join(LAYERS_DIR, template.digest, 'rootfs');
    if (!existsSync(layer)) throw new Error(`the ${TEMPLATE} layer is not at ${layer}`);
    let podmanRootfs: string | null = null;
    if (!podmanWhy) {
      // podman writes into a --rootfs directory (etc/mtab, run/.containerenv, dev/shm), so it gets
      // a byte-identical private copy (same owner 100000) rather than the shared, content-addressed layer.
      scratch = mkdtempSync('/var/tmp/hutch-bench-');
      podmanRootfs = join(scratch, 'rootfs');
      await execFileP('cp', ['-a', layer, podmanRootfs], { timeout: 120_000 });
    }
    if (opts.cli) cli = { ...(await cliSupport(server)), floor: null };
    if (opts.cli && !cli.available) progress(`CLI not measured: ${cli.reason}`);

    for (const tier of opts.tiers) {
      const r = await benchTier(bench, tier, info.tiers[tier], { cli: cli.available, podmanRootfs });
      if (r.error) errors.push(`${tier}: ${r.error}`);
      if (r.skipped) progress(`${tier}: skipped — ${r.skipped}`);
      tiers.push(r);
    }
    if (opts.network) {
      network = [];
      for (const tier of opts.tiers) {
        if (info.tiers[tier]?.available && info.tiers[tier]?.egress?.available) network.push(...(await benchPolicies(bench, opts, tier)));
      }
    }
    if (opts.persistence) {
      const tiers = opts.tiers.filter((t) => info?.tiers[t]?.available);
      persistence = await benchPersistence({
        api,
        tiers,
        runs: opts.runs,
        warmup: opts.warmup,
        template: TEMPLATE,
        progress,
        checkAbort,
        tracked: bench.tracked,
      });
    }
    if (opts.cli && existsSync(CLI_MAIN)) {
      progress('CLI process floor (hutch --version)');
      cli.floor = summarize(await cliFloor(opts));
    }
  } catch (err) {
    if (err instanceof Aborted) interrupted = true;
    else {
      errors.push((err as Error).message);
      const tail = server.output().trim().split('\n').slice(-10).join('\n');
      if (tail) progress(`server output (tail):\n${tail}`);
    }
  } finally {
    let leftovers: string[] = [];
    try {
      leftovers = await cleanup(bench, server);
    } catch (err) {
      errors.push(`cleanup: ${(err as Error).message}`);
      leftovers = ['(unknown: cleanup failed)'];
    }
    api.close();
    if (leftovers.length > 0) {
      errors.push(
        `sandboxes may be left behind: ${leftovers.join(', ')}; data dir ${server.dataDir} kept (start a server on it to delete them)`,
      );
      server.killNow();
    } else if (!(await server.stop()).removed) {
      errors.push(`mounts remain under ${server.dataDir}/sandboxes: data dir kept`);
    }
    if (scratch) {
      await removePodmanLeftovers(scratch, progress).catch((err: unknown) => errors.push(`podman cleanup: ${(err as Error).message}`));
      rmSync(scratch, { recursive: true, force: true });
    }
  }
  if (interrupted) {
    for (const e of errors) progress(`ERROR: ${e}`);
    progress(errors.length > 0 ? 'interrupted: no results' : 'interrupted: no results; everything it created is cleaned up');
    return 130;
  }
  host.loadEnd = os.loadavg()[0]!;

  const result: BenchResult = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit: gitCommit(),
    // scripts/bench.sh sets HUTCH_BENCH_VIA=npm; run directly, the command is the node one.
    command:
      process.env.HUTCH_BENCH_VIA === 'npm'
        ? `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
        : ['node --import tsx bench/run.ts', ...process.argv.slice(2)].join(' '),
    params: { runs: opts.runs, warmup: opts.warmup, execSamples: opts.execSamples, execWarmup: opts.execWarmup },
    host,
    serverVersion: info?.version ?? null,
    template: { name: TEMPLATE, digest: template?.digest ?? 'unknown', layer: template ? join(LAYERS_DIR, template.digest, 'rootfs') : '' },
    cli,
    tiers,
    network,
    persistence,
    targets: evaluateTargets(tiers),
    errors,
  };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else console.log(renderText(result));

  if (opts.write) {
    if (errors.length > 0) progress(`not writing ${DOCS}: the run had errors`);
    else {
      writeDocs(DOCS, renderMarkdown(result));
      progress(`wrote the results into ${DOCS}`);
    }
  }
  return errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
