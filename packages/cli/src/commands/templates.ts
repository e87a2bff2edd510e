import type { Hutch } from '@hutch/sdk';
import { bytes, json, relativeTime, table } from '../format.js';

/** `hutch template ls`. */
export async function templateList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const templates = await hutch.templates.list();
  if (opts.json) {
    process.stdout.write(json(templates));
    return 0;
  }
  const rows = [['NAME', 'STATE', 'DEFAULT USER', 'SIZE', 'BUILT', 'DIGEST']];
  for (const t of templates) {
    rows.push([t.name, t.state ?? '-', t.defaultUser ?? '-', bytes(t.sizeBytes), relativeTime(t.builtAt), (t.digest ?? '-').slice(0, 19)]);
  }
  process.stdout.write(table(rows));
  return 0;
}
