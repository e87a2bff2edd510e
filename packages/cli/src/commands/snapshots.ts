import type { GcResult, Hutch } from '@hutch/sdk';
import { bytes, json, labels, relativeTime, table } from '../format.js';
import { CREATE_TIMEOUT_MS } from './sandboxes.js';

/** Capturing a large sandbox copies its changed files into the pool; gc walks the whole pool. */
const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;

/** `hutch snapshot <id>`: prints the snapshot id (or the snapshot as JSON). */
export async function snapshot(
  hutch: Hutch,
  opts: { id: string; metadata?: Record<string, string>; memory?: boolean; json: boolean },
): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const snap = await sandbox.snapshot({
    ...(opts.metadata !== undefined ? { metadata: opts.metadata } : {}),
    ...(opts.memory ? { memory: true } : {}),
    timeoutMs: SNAPSHOT_TIMEOUT_MS,
  });
  process.stdout.write(opts.json ? json(snap) : `${snap.id}\n`);
  return 0;
}

/** `hutch snapshot ls`: a table, or a JSON array. */
export async function snapshotList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const snapshots = await hutch.snapshots.list();
  if (opts.json) {
    process.stdout.write(json(snapshots));
    return 0;
  }
  const rows = [['ID', 'SOURCE', 'TEMPLATE', 'ISOLATION', 'SIZE', 'LAYERS', 'CREATED', 'METADATA']];
  for (const s of snapshots) {
    rows.push([
      s.id,
      s.sourceSandbox,
      s.template,
      String(s.isolation),
      bytes(s.sizeBytes),
      String(s.layers.length),
      relativeTime(s.createdAt),
      labels(s.metadata),
    ]);
  }
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch snapshot rm`: deletes each snapshot, printing the ones deleted; fails (1) if any was unknown or in use. */
export async function snapshotRemove(hutch: Hutch, opts: { ids: string[] }): Promise<number> {
  let status = 0;
  for (const id of opts.ids) {
    try {
      if (await hutch.snapshots.delete(id)) process.stdout.write(`${id}\n`);
      else {
        process.stderr.write(`hutch: no snapshot with id ${id}\n`);
        status = 1;
      }
    } catch (err) {
      process.stderr.write(`hutch: ${id}: ${err instanceof Error ? err.message : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}

/** `hutch fork <id>`: prints the new sandbox ids one per line (or `{snapshot, sandboxes}` as JSON). */
export async function fork(
  hutch: Hutch,
  opts: { id: string; count?: number; metadata?: Record<string, string>; memory?: boolean; json: boolean },
): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const { snapshot: snap, sandboxes } = await sandbox.fork({
    ...(opts.count !== undefined ? { count: opts.count } : {}),
    ...(opts.memory ? { memory: true } : {}),
    ...(opts.metadata !== undefined ? { metadata: opts.metadata } : {}),
    timeoutMs: SNAPSHOT_TIMEOUT_MS + (opts.count ?? 1) * CREATE_TIMEOUT_MS,
  });
  process.stdout.write(
    opts.json ? json({ snapshot: snap, sandboxes: sandboxes.map((s) => s.info) }) : sandboxes.map((s) => `${s.id}\n`).join(''),
  );
  return 0;
}

/** `hutch gc [--dry-run]`: one line saying what was (or would be) removed. */
export async function gc(hutch: Hutch, opts: { dryRun: boolean; json: boolean }): Promise<number> {
  const result = await hutch.gc({ dryRun: opts.dryRun, timeoutMs: SNAPSHOT_TIMEOUT_MS });
  process.stdout.write(opts.json ? json(result) : describeGc(result));
  return 0;
}

/** `removed 2 layers, 17 objects, 1.2 MiB` / `would remove …`, plus crashed captures' leftovers. */
export function describeGc(r: Pick<GcResult, 'layers' | 'objects' | 'bytes' | 'staging' | 'dryRun'>): string {
  const parts = [count(r.layers.length, 'layer'), count(r.objects, 'object'), bytes(r.bytes)];
  const staging = r.staging.length;
  if (staging > 0) parts.push(count(staging, 'leftover capture dir'));
  return `${r.dryRun ? 'would remove' : 'removed'} ${parts.join(', ')}\n`;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
