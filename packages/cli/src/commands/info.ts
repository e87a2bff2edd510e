import type { Hutch, ServerInfo } from '@hutch/sdk';
import { json, table } from '../format.js';

/** `hutch info`: server version, isolation tiers (and why one is missing, what pause keeps), templates. */
export async function info(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const i = await hutch.info();
  process.stdout.write(opts.json ? json(i) : describeInfo(i, hutch.config.url));
  return 0;
}

export function describeInfo(i: ServerInfo, url: string): string {
  const lines = [
    `server:             ${url}`,
    `version:            ${i.version ?? '-'}`,
    `server id:          ${i.serverId ?? '-'}`,
    `data dir:           ${i.dataDir ?? '-'}`,
    ...(i.store
      ? [`store:              ${i.store}${i.leader === undefined ? '' : i.leader ? ' (this replica leads)' : ' (another replica leads)'}`]
      : []),
    `provider:           ${describeProvider(i)}`,
    `default isolation:  ${i.defaultIsolation ?? '-'}`,
    `templates:          ${(i.templates ?? []).map(templateName).join(', ') || '-'}`,
    ...describeObservability(i.observability),
    '',
    'isolation tiers:',
  ];
  const rows = [['  TIER', 'AVAILABLE', 'RUNTIME', 'PAUSE KEEPS', 'NOTE']];
  const pauseNotes: string[] = [];
  for (const [name, t] of Object.entries(i.tiers ?? {})) {
    const runtime = [t.runtime, t.version].filter(Boolean).join(' ') || '-';
    const keeps = t.pause?.mode === 'memory' ? 'memory + files' : t.pause?.mode === 'filesystem' ? 'files only' : '-';
    rows.push([`  ${name}`, t.available ? 'yes' : 'no', runtime, keeps, t.reason ?? '']);
    if (t.available && t.pause?.note) pauseNotes.push(`  ${name}: ${t.pause.note}`);
  }
  const notes = pauseNotes.length > 0 ? `\npause:\n${pauseNotes.join('\n')}\n` : '';
  return `${lines.join('\n')}\n${table(rows)}${notes}`;
}

/** `local`, or `kubernetes (namespace N at URL)` from the posture the kubernetes provider reports. */
function describeProvider(i: ServerInfo): string {
  const k8s = i.posture?.kubernetes as { namespace?: string; server?: string } | undefined;
  if (i.provider !== 'kubernetes' || !k8s) return String(i.provider ?? '-');
  return `kubernetes (namespace ${k8s.namespace ?? '?'} at ${k8s.server ?? '?'})`;
}

/** Sampling and tracing settings (servers before they existed send none). */
function describeObservability(o: unknown): string[] {
  if (!o || typeof o !== 'object') return [];
  const v = o as { sampleIntervalSeconds?: number; metricsWindowSeconds?: number; metricsListen?: string | null; tracing?: string | null };
  const listen = v.metricsListen ? `; /metrics also on ${v.metricsListen}` : '';
  return [
    `metrics:            a sample every ${v.sampleIntervalSeconds ?? '-'} s, kept ${v.metricsWindowSeconds ?? '-'} s${listen}`,
    `traces:             ${v.tracing ? `OTLP to ${v.tracing}` : 'off'}`,
  ];
}

function templateName(t: unknown): string {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && 'name' in t) return String((t as { name: unknown }).name);
  return JSON.stringify(t);
}
