import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { describeHost, type HostFacts } from './host.js';
import { fmtMs, type Summary } from './stats.js';
import type { PersistenceRow } from './persistence.js';

export const TIERS = ['container', 'gvisor'] as const;
export type Tier = (typeof TIERS)[number];

export const SERIES = [
  'createToFirstExec',
  'create',
  'firstExec',
  'execRtt',
  'execServer',
  'delete',
  'oneshotApi',
  'oneshotCli',
  'podman',
] as const;
export type SeriesName = (typeof SERIES)[number];

export interface TierResult {
  tier: Tier;
  /** Why the tier was not measured (unavailable on this host). */
  skipped?: string;
  /** What went wrong if measuring failed part-way. */
  error?: string;
  series: Partial<Record<SeriesName, Summary>>;
  samples: Partial<Record<SeriesName, number[]>>;
  /** podman median / Hutch median for the one-shot (how many times faster Hutch is). */
  ratios: { cli: number | null; api: number | null };
  /** The exact podman command (rootfs path shown as <rootfs>). */
  podmanCommand: string | null;
}

export interface TargetResult {
  label: string;
  tier: Tier;
  measured: number | null;
  goal: string;
  pass: boolean | null;
}

export interface PolicyResult {
  tier: 'container' | 'gvisor';
  policy: 'none' | 'open' | 'allowlist';
  createToFirstExec: Summary | null;
  delete: Summary | null;
  /** Median create → first exec minus the `none` median. */
  addedMs: number | null;
}

export interface BenchResult {
  date: string;
  commit: string;
  command: string;
  params: { runs: number; warmup: number; execSamples: number; execWarmup: number };
  host: HostFacts;
  serverVersion: string | null;
  template: { name: string; digest: string; layer: string };
  cli: { available: boolean; reason?: string; floor: Summary | null };
  tiers: TierResult[];
  /** Egress policy set-up cost (container tier); null when not measured. */
  network: PolicyResult[] | null;
  /** Pause/resume, snapshot and create-from-snapshot series; null when not measured. */
  persistence?: PersistenceRow[] | null;
  targets: TargetResult[];
  errors: string[];
}

function policyRows(r: BenchResult): string[][] {
  return (r.network ?? []).map((p) => [
    p.tier,
    p.policy,
    String(p.createToFirstExec?.n ?? 0),
    fmtMs(p.createToFirstExec?.median),
    fmtMs(p.createToFirstExec?.p95),
    p.addedMs === null ? '–' : p.policy === 'none' ? '(baseline)' : `+${fmtMs(p.addedMs)}`,
    fmtMs(p.delete?.median),
  ]);
}
const PERSISTENCE_HEADER = ['measure', 'tier', 'n', 'median', 'p95', 'note'];
function persistenceRows(r: BenchResult): string[][] {
  return (r.persistence ?? []).map((p) => [
    p.measure,
    p.tier,
    String(p.summary?.n ?? 0),
    p.summary ? fmtMs(p.summary.median) : '–',
    p.summary ? fmtMs(p.summary.p95) : '–',
    p.note,
  ]);
}

const POLICY_HEADER = ['tier', 'egress policy', 'n', 'create → first exec median', 'p95', 'added vs none', 'delete median'];

const LABELS: Record<SeriesName, string> = {
  createToFirstExec: 'create → first exec result (API)',
  create: '  of which POST /v1/sandboxes (→ 201)',
  firstExec: '  of which the first exec',
  execRtt: 'exec round trip, running sandbox',
  execServer: '  of which server-side (result durationMs, whole ms)',
  delete: 'delete (DELETE /v1/sandboxes/{id})',
  oneshotApi: 'one-shot create+exec+delete (API)',
  oneshotCli: 'one-shot `hutch run` (CLI process)',
  podman: '`podman run --rm` (same rootfs)',
};

/** Targets: fixed goals, evaluated on medians. */
export function evaluateTargets(tiers: TierResult[]): TargetResult[] {
  const get = (tier: Tier): TierResult | undefined => tiers.find((t) => t.tier === tier && !t.skipped);
  const out: TargetResult[] = [];
  const atMost = (tier: Tier, series: SeriesName, label: string, limit: number): void => {
    const t = get(tier);
    if (!t) return;
    const m = t.series[series]?.median ?? null;
    out.push({ label, tier, measured: m, goal: `≤ ${limit} ms median`, pass: m === null ? null : m <= limit });
  };
  atMost('container', 'createToFirstExec', 'container create → first exec', 60);
  atMost('container', 'execRtt', 'container exec round trip', 5);
  atMost('gvisor', 'createToFirstExec', 'gVisor create → first exec', 250);
  const c = get('container');
  if (c) {
    out.push({
      label: 'one-shot `hutch run` (CLI) vs podman run --rm (runc)',
      tier: 'container',
      measured: c.ratios.cli,
      goal: '≥ 2× faster',
      pass: c.ratios.cli === null ? null : c.ratios.cli >= 2,
    });
    out.push({
      label: 'one-shot via API vs podman run --rm (runc)',
      tier: 'container',
      measured: c.ratios.api,
      goal: '≥ 2× faster',
      pass: c.ratios.api === null ? null : c.ratios.api >= 2,
    });
  }
  return out;
}

function targetFor(targets: TargetResult[], tier: Tier, series: SeriesName): TargetResult | undefined {
  const label =
    series === 'createToFirstExec'
      ? tier === 'container'
        ? 'container create → first exec'
        : 'gVisor create → first exec'
      : series === 'execRtt'
        ? 'container exec round trip'
        : '';
  return targets.find((t) => t.tier === tier && t.label === label);
}

const verdict = (t: TargetResult | undefined): string => (!t ? '' : `${t.goal}: ${t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'MISS'}`);
const ratio = (r: number | null): string => (r === null ? '–' : `${r.toFixed(2)}×`);

function seriesRows(t: TierResult, targets: TargetResult[], r: BenchResult): string[][] {
  const rows: string[][] = [];
  for (const name of SERIES) {
    const s = t.series[name];
    if (!s) continue;
    let label = LABELS[name];
    if (name === 'execRtt') label += ` (\`true\`, after ${r.params.execWarmup} warm-up)`;
    if (name === 'podman') label = `\`podman run --rm\` (${t.tier === 'container' ? 'runc' : 'runsc'}, same rootfs)`;
    rows.push([label, String(s.n), fmtMs(s.median), fmtMs(s.p95), fmtMs(s.min), fmtMs(s.max), verdict(targetFor(targets, t.tier, name))]);
  }
  return rows;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function renderText(r: BenchResult): string {
  const out: string[] = [];
  out.push(`Hutch benchmark — ${r.date} (commit ${r.commit})`);
  out.push(`Host: ${describeHost(r.host)}`);
  out.push(
    `Method: ${r.params.runs} measured runs per series after ${r.params.warmup} discarded warm-up runs, sequential, API / CLI / podman interleaved (order rotated each run); exec round trip: ${r.params.execSamples} samples after ${r.params.execWarmup} warm-up; times in ms (performance.now()).`,
  );
  for (const t of r.tiers) {
    out.push('', `== ${t.tier}`);
    if (t.skipped) {
      out.push(`skipped: ${t.skipped}`);
      continue;
    }
    if (t.error) out.push(`ERROR: ${t.error}`);
    out.push(table(['measure', 'n', 'median', 'p95', 'min', 'max', 'target'], seriesRows(t, r.targets, r)));
    if (t.series.podman) {
      out.push(`ratio podman / Hutch (medians): hutch run (CLI) ${ratio(t.ratios.cli)}, API one-shot ${ratio(t.ratios.api)}`);
    }
  }
  if (r.network) out.push('', '== egress policy cost', table(POLICY_HEADER, policyRows(r)));
  if (r.persistence) out.push('', '== persistence', table(PERSISTENCE_HEADER, persistenceRows(r)));
  if (r.cli.floor)
    out.push(
      '',
      `CLI process floor (\`hutch --version\`, Node start + module load): median ${fmtMs(r.cli.floor.median)} ms, p95 ${fmtMs(r.cli.floor.p95)} ms (n=${r.cli.floor.n})`,
    );
  if (!r.cli.available) out.push('', `CLI not measured: ${r.cli.reason}`);
  out.push('', 'Targets:');
  for (const t of r.targets) {
    const m = t.measured === null ? '–' : t.goal.includes('×') ? ratio(t.measured) : `${fmtMs(t.measured)} ms`;
    out.push(`  ${t.pass === null ? 'n/a ' : t.pass ? 'PASS' : 'MISS'}  ${t.label}: ${m} (goal ${t.goal})`);
  }
  for (const e of r.errors) out.push(`ERROR: ${e}`);
  return out.join('\n');
}

function mdTable(header: string[], rows: string[][]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|').replace(/^ {2}/, '  ↳ ');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 || i === header.length - 1 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

export function renderMarkdown(r: BenchResult): string {
  const out: string[] = [];
  out.push(`_Measured ${r.date} with \`${r.command}\` at commit \`${r.commit}\`._`, '');
  out.push(`**Machine:** ${describeHost(r.host)}.`, '');
  out.push(
    `**Method:** a fresh server (own data dir, shared layer cache) on loopback; template \`${r.template.name}\` (\`${r.template.digest.slice(0, 12)}…\`). ` +
      `Per tier, ${r.params.runs} measured runs per series after ${r.params.warmup} discarded warm-up runs, strictly sequential; ` +
      `each run does the API one-shot, the CLI one-shot and \`podman run --rm\` back to back, in an order rotated every run. ` +
      `Exec round trip: ${r.params.execSamples} samples on one running sandbox after ${r.params.execWarmup} discarded ones. ` +
      `Times in ms from \`performance.now()\` in the benchmark process; p95 is nearest-rank. Ratios are podman median / Hutch median.`,
    '',
  );
  for (const t of r.tiers) {
    out.push(`### ${t.tier === 'container' ? 'container (runc)' : 'gvisor (runsc, ptrace)'}`, '');
    if (t.skipped) {
      out.push(`Not measured: ${t.skipped}.`, '');
      continue;
    }
    if (t.error) out.push(`**Error:** ${t.error}`, '');
    out.push(mdTable(['measure', 'n', 'median', 'p95', 'min', 'max', 'target'], seriesRows(t, r.targets, r)), '');
    if (t.series.podman) {
      out.push(`podman / Hutch (ratio of medians): **\`hutch run\` ${ratio(t.ratios.cli)}**, API one-shot ${ratio(t.ratios.api)}.`, '');
      if (t.podmanCommand) out.push(`podman command: \`${t.podmanCommand}\``, '');
    }
  }
  if (r.network) {
    out.push('### egress policy cost', '');
    out.push(
      'Same method, create → first exec → delete per policy, interleaved (order rotated each run); no traffic is sent, so this is the set-up cost of the namespace, veth link, nftables table and resolver state.',
      '',
    );
    out.push(mdTable(POLICY_HEADER, policyRows(r)), '');
  }
  if (r.persistence) {
    out.push('### persistence', '');
    out.push(
      'Pause and resume on one sandbox with a background process (memory mode on gVisor, filesystem mode on the container tier), timed until each answer; snapshot of 100 MB of fresh random files (fewer runs: each writes 100 MB); create → first exec from that snapshot and from the plain template, interleaved.',
      '',
    );
    out.push(mdTable(PERSISTENCE_HEADER, persistenceRows(r)), '');
  }
  if (r.cli.floor)
    out.push(
      `CLI process floor (\`node packages/cli/dist/main.js --version\`: Node start + module load, no request): median ${fmtMs(r.cli.floor.median)} ms, p95 ${fmtMs(r.cli.floor.p95)} ms.`,
      '',
    );
  if (!r.cli.available) out.push(`CLI not measured: ${r.cli.reason}.`, '');
  out.push('**Targets** (on medians):', '');
  out.push(
    mdTable(
      ['target', 'goal', 'measured', 'result'],
      r.targets.map((t) => [
        t.label,
        t.goal,
        t.measured === null ? '–' : t.goal.includes('×') ? ratio(t.measured) : `${fmtMs(t.measured)} ms`,
        t.pass === null ? 'n/a' : t.pass ? 'pass' : '**miss**',
      ]),
    ),
  );
  return out.join('\n');
}

export const BEGIN = '<!-- bench:results:begin (generated by `npm run bench -- --write`; edits inside are overwritten) -->';
export const END = '<!-- bench:results:end -->';
export const E2B_BEGIN = '<!-- bench:e2b:begin (generated by `npm run bench -- e2b --write`) -->';
export const E2B_END = '<!-- bench:e2b:end -->';
export const LOAD_BEGIN = '<!-- bench:load:begin (generated by `npm run bench -- load --write`) -->';
export const LOAD_END = '<!-- bench:load:end -->';
export const K8S_BEGIN = '<!-- bench:k8s:begin (generated by `npm run bench -- k8s --write`) -->';
export const K8S_END = '<!-- bench:k8s:end -->';
export const ENV_BEGIN = '<!-- bench:env:begin (generated by `npm run bench -- env --write`) -->';
export const ENV_END = '<!-- bench:env:end -->';

/**
 * Replaces a generated block of the docs page (the page must already have both markers):
 * `results` (the main run) or `e2b` (`npm run bench -- e2b --write`).
 */
export function writeDocs(path: string, markdown: string, block: 'results' | 'e2b' | 'load' | 'k8s' | 'env' = 'results'): void {
  if (!existsSync(path)) throw new Error(`${path} does not exist`);
  const begin = { results: BEGIN, e2b: E2B_BEGIN, load: LOAD_BEGIN, k8s: K8S_BEGIN, env: ENV_BEGIN }[block];
  const end = { results: END, e2b: E2B_END, load: LOAD_END, k8s: K8S_END, env: ENV_END }[block];
  const text = readFileSync(path, 'utf8');
  const from = text.indexOf(begin.slice(0, begin.indexOf(' (') > 0 ? begin.indexOf(' (') : begin.length));
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${path} lacks the markers "${begin}" and "${end}"`);
  writeFileSync(path, `${text.slice(0, from)}${begin}\n\n${markdown}\n\n${text.slice(to)}`);
}
