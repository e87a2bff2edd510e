/**
 * `npm run bench -- e2b`: the E2B compatibility layer's cost. The same work — create a `base`
 * sandbox, run `echo hi` in it, delete it — done through the published `e2b` SDK
 * (`Sandbox.create` → `commands.run` → `kill`, against E2B_API_URL/E2B_SANDBOX_URL = this server)
 * and through Hutch's native API, interleaved run by run (order alternating), medians over
 * ≥ 20 runs after warm-up. Target: the E2B path at most 15% slower than the native one.
 */
import { performance } from 'node:perf_hooks';
import { Sandbox } from 'e2b';
import type { Api } from './client.js';
import { summarize, type Summary } from './stats.js';
import { fmtMs } from './stats.js';

export interface E2bBenchResult {
  runs: number;
  e2b: Summary | null;
  native: Summary | null;
  /** e2b median / native median − 1. */
  overhead: number | null;
  pass: boolean | null;
}

export async function benchE2b(ctx: {
  api: Api;
  url: string;
  key: string;
  runs: number;
  warmup: number;
  progress: (msg: string) => void;
  checkAbort: () => void;
  tracked: Set<string>;
}): Promise<E2bBenchResult> {
  const opts = { apiKey: ctx.key, apiUrl: ctx.url, sandboxUrl: ctx.url };
  const viaE2b = async (): Promise<number> => {
    const t0 = performance.now();
    const sb = await Sandbox.create('base', { ...opts, timeoutMs: 300_000 });
    ctx.tracked.add(sb.sandboxId);
    const r = await sb.commands.run('echo hi');
    if (r.stdout !== 'hi\n') throw new Error(`e2b commands.run: ${JSON.stringify(r)}`);
    await sb.kill();
    ctx.tracked.delete(sb.sandboxId);
    return performance.now() - t0;
  };
  const native = async (): Promise<number> => {
    const t0 = performance.now();
    const sb = await ctx.api.call<{ id: string }>('POST', '/v1/sandboxes', { template: 'base' });
    ctx.tracked.add(sb.id);
    // What commands.run does: bash -l -c, as the default user.
    const r = await ctx.api.call<{ stdout: string }>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: ['/bin/bash', '-l', '-c', 'echo hi'] });
    if (r.stdout !== 'hi\n') throw new Error(`native exec: ${JSON.stringify(r)}`);
    await ctx.api.call('DELETE', `/v1/sandboxes/${sb.id}`);
    ctx.tracked.delete(sb.id);
    return performance.now() - t0;
  };
  const e2bSamples: number[] = [];
  const nativeSamples: number[] = [];
  ctx.progress(`e2b vs native: ${ctx.warmup} warm-up + ${ctx.runs} runs of create → echo hi → delete, interleaved`);
  for (let i = 0; i < ctx.warmup + ctx.runs; i++) {
    ctx.checkAbort();
    const order = i % 2 === 0 ? [viaE2b, native] : [native, viaE2b];
    for (const run of order) {
      const ms = await run();
      if (i >= ctx.warmup) (run === viaE2b ? e2bSamples : nativeSamples).push(ms);
    }
  }
  const e2b = summarize(e2bSamples);
  const nat = summarize(nativeSamples);
  const overhead = e2b && nat ? e2b.median / nat.median - 1 : null;
  return { runs: ctx.runs, e2b, native: nat, overhead, pass: overhead === null ? null : overhead <= 0.15 };
}

export function renderE2b(r: E2bBenchResult, markdown: boolean): string {
  const rows = [
    ['e2b SDK: Sandbox.create → commands.run(echo hi) → kill', r.e2b],
    ['native API: POST /v1/sandboxes → exec → DELETE', r.native],
  ] as const;
  const pct = r.overhead === null ? '–' : `${(r.overhead * 100).toFixed(1)}%`;
  const verdict = r.pass === null ? 'n/a' : r.pass ? 'pass' : 'miss';
  if (markdown) {
    return [
      '| path | n | median | p95 | min | max |',
      '|---|---|---|---|---|---|',
      ...rows.map(
        ([name, s]) =>
          `| ${name} | ${s?.n ?? 0} | ${s ? fmtMs(s.median) : '–'} | ${s ? fmtMs(s.p95) : '–'} | ${s ? fmtMs(s.min) : '–'} | ${s ? fmtMs(s.max) : '–'} |`,
      ),
      '',
      `Compatibility-layer overhead (median e2b / median native − 1): **${pct}** (target ≤ 15%: ${verdict}).`,
    ].join('\n');
  }
  return [
    ...rows.map(
      ([name, s]) => `${name.padEnd(58)} n=${s?.n ?? 0}  median ${s ? fmtMs(s.median) : '–'} ms  p95 ${s ? fmtMs(s.p95) : '–'} ms`,
    ),
    `overhead of the E2B layer: ${pct} (target ≤ 15%: ${verdict.toUpperCase()})`,
  ].join('\n');
}
