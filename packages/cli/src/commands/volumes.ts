import type { Hutch } from '@hutch/sdk';
import { bytes, json, labels, relativeTime, table } from '../format.js';

/** `hutch volume create`: prints the name (or the volume as JSON). */
export async function volumeCreate(
  hutch: Hutch,
  opts: { name: string; sizeMiB?: number; labels?: Record<string, string>; json: boolean },
): Promise<number> {
  const volume = await hutch.volumes.create(opts.name, {
    ...(opts.sizeMiB !== undefined ? { sizeMiB: opts.sizeMiB } : {}),
    ...(opts.labels !== undefined ? { labels: opts.labels } : {}),
  });
  process.stdout.write(opts.json ? json(volume) : `${volume.name}\n`);
  return 0;
}

/** `hutch volume ls`: a table, or a JSON array. */
export async function volumeList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const volumes = await hutch.volumes.list();
  if (opts.json) {
    process.stdout.write(json(volumes));
    return 0;
  }
  const rows = [['NAME', 'SIZE', 'USED', 'USED BY', 'CREATED', 'LABELS']];
  for (const v of volumes) {
    rows.push([
      v.name,
      bytes(v.sizeMiB * 1024 * 1024),
      bytes(v.usedBytes),
      v.usedBy.length ? v.usedBy.join(',') : '-',
      relativeTime(v.createdAt),
      labels(v.labels),
    ]);
  }
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch volume rm`: deletes each volume, printing the ones deleted; fails (1) if any was unknown or in use. */
export async function volumeRemove(hutch: Hutch, opts: { names: string[] }): Promise<number> {
  let status = 0;
  for (const name of opts.names) {
    try {
      if (await hutch.volumes.delete(name)) process.stdout.write(`${name}\n`);
      else {
        process.stderr.write(`hutch: no volume named ${name}\n`);
        status = 1;
      }
    } catch (err) {
      process.stderr.write(`hutch: ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}
