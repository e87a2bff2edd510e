import type { Hutch, ServerInfo } from '@hutch/sdk';
import { json, table } from '../format.js';

/** `hutch info`: server version, isolation tiers (and why one is missing), templates. */
export async function info(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const i = await hutch.info();
  process.stdout.write(opts.json ? json(i) : describe(i, hutch.config.url));
  return 0;
}

function describe(i: ServerInfo, url: string): string {
  const lines = [
    `server:             ${url}`,
    `version:            ${i.version ?? '-'}`,
    `server id:          ${i.serverId ?? '-'}`,
    `data dir:           ${i.dataDir ?? '-'}`,
    `default isolation:  ${i.defaultIsolation ?? '-'}`,
    `templates:          ${(i.templates ?? []).map(templateName).join(', ') || '-'}`,
    '',
    'isolation tiers:',
  ];
  const rows = [['  TIER', 'AVAILABLE', 'RUNTIME', 'PAUSE KEEPS', 'NOTE']];
  for (const [name, t] of Object.entries(i.tiers ?? {})) {
    const runtime = [t.runtime, t.version].filter(Boolean).join(' ') || '-';
    const pause = (t.pause ?? null) as { mode?: string } | null;
    const keeps = pause?.mode === 'memory' ? 'memory + files' : pause?.mode === 'filesystem' ? 'files only' : '-';
    rows.push([`  ${name}`, t.available ? 'yes' : 'no', runtime, keeps, t.reason ?? '']);
  }
  return `${lines.join('\n')}\n${table(rows)}`;
}

function templateName(t: unknown): string {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && 'name' in t) return String((t as { name: unknown }).name);
  return JSON.stringify(t);
}
