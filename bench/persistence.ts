/**
 * The persistence series of `npm run bench`: pause and resume latency per tier (and so per pause
 * mode), snapshot time and size for a sandbox with 100 MB of changes, and create → first exec from
 * a snapshot against the same from the plain template. Sequential, warm-up runs discarded; every
 * sandbox and snapshot it creates is deleted (also on failure).
 */
import { performance } from 'node:perf_hooks';
import type { Api } from './client.js';
import type { Tier } from './report.js';
import { summarize, type Summary } from './stats.js';

export interface PersistenceRow {
  measure: string;
  tier: Tier;
  summary: Summary | null;
  note: string;
}

export interface PersistenceContext {
  api: Api;
  tiers: Tier[];
  runs: number;
  warmup: number;
  template: string;
  progress: (msg: string) => void;
  checkAbort: () => void;
  /** Sandboxes created here, for the caller's cleanup. */
  tracked: Set<string>;
}

interface Created {
  id: string;
}

const CHANGE_MB = 100;

export async function benchPersistence(ctx: PersistenceContext): Promise<PersistenceRow[]> {
  const rows: PersistenceRow[] = [];
  const snapshots: string[] = [];
  const create = async (body: Record<string, unknown>): Promise<string> => {
    const sb = await ctx.api.call<Created>('POST', '/v1/sandboxes', { timeoutSeconds: 1800, ...body });
    ctx.tracked.add(sb.id);
    return sb.id;
  };
  const remove = async (id: string): Promise<void> => {
    await ctx.api.call('DELETE', `/v1/sandboxes/${id}`);
    ctx.tracked.delete(id);
  };
  const exec = (id: string, cmd: string, timeoutMs = 120_000) =>
    ctx.api.call<{ exitCode: number; stdout: string; stderr: string }>(
      'POST',
      `/v1/sandboxes/${id}/exec`,
      { cmd, timeoutMs },
      timeoutMs + 10_000,
    );
  try {
    for (const tier of ctx.tiers) {
      // Pause / resume on one sandbox with a background process (what a paused agent session has).
      const id = await create({ template: ctx.template, isolation: tier });
      await ctx.api.call('POST', `/v1/sandboxes/${id}/processes`, { cmd: 'while true; do sleep 1; done', tag: 'bg' });
      const pause: number[] = [];
      const resume: number[] = [];
      let mode = '';
      ctx.progress(`${tier}: pause/resume, ${ctx.warmup} warm-up + ${ctx.runs} runs`);
      for (let i = 0; i < ctx.warmup + ctx.runs; i++) {
        ctx.checkAbort();
        const t0 = performance.now();
        const p = await ctx.api.call<{ pauseMode: string }>('POST', `/v1/sandboxes/${id}/pause`, undefined, 300_000);
        const t1 = performance.now();
        await ctx.api.call('POST', `/v1/sandboxes/${id}/resume`, undefined, 300_000);
        const t2 = performance.now();
        const check = await exec(id, 'echo ok');
        if (check.stdout !== 'ok\n') throw new Error(`${tier}: exec after resume: ${JSON.stringify(check)}`);
        mode = p.pauseMode;
        if (i >= ctx.warmup) {
          pause.push(t1 - t0);
          resume.push(t2 - t1);
        }
      }
      rows.push({
        measure: `pause (${mode})`,
        tier,
        summary: summarize(pause),
        note: 'until the answer: the sandbox uses no memory or cpu',
      });
      rows.push({ measure: `resume (${mode})`, tier, summary: summarize(resume), note: 'until the answer: the agent answers again' });
      await remove(id);
    }

    // Snapshot of 100 MB of fresh changes (random, so neither compressible nor deduplicated), then
    // create → first exec from it vs from the plain template. Fewer runs: each writes 100 MB.
    const snapRuns = Math.max(3, Math.min(ctx.runs, 5));
    const source = await create({ template: ctx.template, isolation: 'container', diskMiB: 4096 });
    const took: number[] = [];
    const sizes: number[] = [];
    ctx.progress(`snapshot of ${CHANGE_MB} MB of changes: 1 warm-up + ${snapRuns} runs`);
    let lastSnapshot = '';
    for (let i = 0; i < 1 + snapRuns; i++) {
      ctx.checkAbort();
      const w = await exec(
        source,
        `rm -rf /root/data && mkdir -p /root/data && for i in $(seq 1 ${CHANGE_MB}); do head -c 1048576 /dev/urandom > /root/data/f$i; done && echo done`,
      );
      if (w.stdout !== 'done\n') throw new Error(`writing ${CHANGE_MB} MB: ${JSON.stringify(w).slice(0, 300)}`);
      const t0 = performance.now();
      const s = await ctx.api.call<{ id: string; sizeBytes: number }>('POST', `/v1/sandboxes/${source}/snapshots`, undefined, 600_000);
      const t1 = performance.now();
      snapshots.push(s.id);
      lastSnapshot = s.id;
      if (i >= 1) {
        took.push(t1 - t0);
        sizes.push(s.sizeBytes / 1e6);
      }
    }
    const size = summarize(sizes);
    rows.push({
      measure: `snapshot, ${CHANGE_MB} MB of changes`,
      tier: 'container',
      summary: summarize(took),
      note: `layer size median ${size ? size.median.toFixed(1) : '–'} MB (the source keeps running, frozen during the capture)`,
    });
    await remove(source);

    for (const tier of ctx.tiers) {
      const fromSnapshot: number[] = [];
      const fromTemplate: number[] = [];
      ctx.progress(`${tier}: create → first exec from a snapshot vs the template, ${ctx.warmup} warm-up + ${ctx.runs} runs`);
      for (let i = 0; i < ctx.warmup + ctx.runs; i++) {
        ctx.checkAbort();
        for (const [template, samples] of [
          [lastSnapshot, fromSnapshot],
          [ctx.template, fromTemplate],
        ] as const) {
          const t0 = performance.now();
          const id = await create({ template, isolation: tier });
          const r = await exec(id, 'echo hi');
          const t1 = performance.now();
          if (r.stdout !== 'hi\n') throw new Error(`exec in a sandbox from ${template}: ${JSON.stringify(r).slice(0, 300)}`);
          await remove(id);
          if (i >= ctx.warmup) samples.push(t1 - t0);
        }
      }
      const base = summarize(fromTemplate);
      rows.push({ measure: 'create → first exec, from the template', tier, summary: base, note: ctx.template });
      const snap = summarize(fromSnapshot);
      rows.push({
        measure: 'create → first exec, from a snapshot',
        tier,
        summary: snap,
        note: `${CHANGE_MB} MB snapshot layer over ${ctx.template}${snap && base ? `; +${(snap.median - base.median).toFixed(1)} ms` : ''}`,
      });
    }
  } finally {
    for (const id of [...ctx.tracked]) await remove(id).catch(() => undefined);
    for (const s of snapshots) await ctx.api.call('DELETE', `/v1/snapshots/${s}`).catch(() => undefined);
    await ctx.api.call('POST', '/v1/gc').catch(() => undefined);
  }
  return rows;
}
