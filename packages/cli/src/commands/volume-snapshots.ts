import type { Hutch } from '@hutch/sdk';
import { json, relativeTime, table } from '../format.js';

/** `hutch volume snapshot <volume> <name>`: prints the name (or the snapshot as JSON). */
export async function volumeSnapshot(hutch: Hutch, opts: { volume: string; name: string; json: boolean }): Promise<number> {
  const snapshot = await hutch.volumes.snapshot(opts.volume, opts.name);
  process.stdout.write(opts.json ? json(snapshot) : `${snapshot.name}\n`);
  return 0;
}

/** `hutch volume snapshots <volume>`: a table, or a JSON array. */
export async function volumeSnapshotList(hutch: Hutch, opts: { volume: string; json: boolean }): Promise<number> {
  const snapshots = await hutch.volumes.snapshots(opts.volume);
  if (opts.json) {
    process.stdout.write(json(snapshots));
    return 0;
  }
  const rows = [['NAME', 'READY', 'RESTORE SIZE', 'CREATED', 'ERROR']];
  for (const s of snapshots)
    rows.push([
      s.name,
      s.readyToUse ? 'yes' : 'no',
      s.restoreSizeMiB === null ? '-' : `${s.restoreSizeMiB} MiB`,
      relativeTime(s.createdAt),
      s.error ?? '-',
    ]);
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch volume snapshot-rm <volume> <name...>`: prints the ones deleted; fails (1) if any was unknown. */
export async function volumeSnapshotRemove(hutch: Hutch, opts: { volume: string; names: string[] }): Promise<number> {
  let status = 0;
  for (const name of opts.names) {
    try {
      if (await hutch.volumes.deleteSnapshot(opts.volume, name)) process.stdout.write(`${name}\n`);
      else {
        process.stderr.write(`hutch: volume ${opts.volume} has no snapshot named ${name}\n`);
        status = 1;
      }
    } catch (err) {
      process.stderr.write(`hutch: ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}
