import type { Hutch, SandboxMetrics, UsageReport } from '@hutch/sdk';
import { bytes, json, table } from '../format.js';

/** `hutch usage`: usage per tenant over whole UTC hours. */
export async function usageReport(hutch: Hutch, opts: { since?: string; until?: string; tenant?: string; json: boolean }): Promise<number> {
  const report = await hutch.usage({
    ...(opts.since ? { start: opts.since } : {}),
    ...(opts.until ? { end: opts.until } : {}),
    ...(opts.tenant ? { tenant: opts.tenant } : {}),
  });
  process.stdout.write(opts.json ? json(report) : describeUsageReport(report));
  return 0;
}

/** Seconds as `12.3 s`, `4.5 min`, `6.7 h`. */
export function seconds(n: number): string {
  if (n < 120) return `${n.toFixed(1)} s`;
  if (n < 7200) return `${(n / 60).toFixed(1)} min`;
  return `${(n / 3600).toFixed(1)} h`;
}

export function describeUsageReport(r: UsageReport): string {
  const head = `${r.start} → ${r.end} (whole UTC hours)\n`;
  if (r.tenants.length === 0) return `${head}no usage recorded\n`;
  const rows = [
    ['TENANT', 'CPU USED', 'CPU RESERVED', 'MEMORY GiB-h', 'MEM USED GiB-h', 'STORAGE GiB-h', 'SANDBOX TIME', 'NET IN', 'NET OUT'],
  ];
  for (const t of r.tenants)
    rows.push([
      t.tenant,
      seconds(t.cpuSeconds),
      seconds(t.cpuReservedSeconds),
      (t.memoryGiBSeconds / 3600).toFixed(3),
      (t.memoryUsedGiBSeconds / 3600).toFixed(3),
      t.storageGiBHours.toFixed(3),
      seconds(t.sandboxSeconds),
      bytes(t.networkRxBytes),
      bytes(t.networkTxBytes),
    ]);
  return head + table(rows);
}

/** `hutch metrics <id>`: the sandbox's recent samples. */
export async function sandboxMetrics(
  hutch: Hutch,
  opts: { id: string; since?: string; until?: string; tail: number; json: boolean },
): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const m = await sandbox.metrics({ ...(opts.since ? { start: opts.since } : {}), ...(opts.until ? { end: opts.until } : {}) });
  process.stdout.write(opts.json ? json(m) : describeMetrics(m, opts.tail));
  return 0;
}

export function describeMetrics(m: SandboxMetrics, tail: number): string {
  const limits = `cpu ${m.cpuLimit}, memory ${bytes(m.memoryLimitBytes)}`;
  const head = `${m.sandboxId} ${m.state} (${m.isolation}; ${limits}); a sample every ${m.intervalSeconds} s, kept ${m.windowSeconds} s\n`;
  if (m.samples.length === 0)
    return `${head}no samples${m.state === 'running' ? ' yet' : ` (samples are taken while a sandbox runs; it is ${m.state})`}\n`;
  const shown = m.samples.slice(-tail);
  const rows = [['TIME', 'CPU', 'CPU TIME', 'MEMORY', 'PIDS', 'DISK', 'NET IN', 'NET OUT']];
  for (const s of shown)
    rows.push([
      s.timestamp.replace(/\.\d+Z$/, 'Z'),
      s.cpuPercent === null ? '-' : `${s.cpuPercent.toFixed(1)}%`,
      `${s.cpuSeconds.toFixed(2)} s`,
      bytes(s.memoryBytes),
      s.pids === null ? '-' : String(s.pids),
      s.diskUsedBytes === null ? '-' : bytes(s.diskUsedBytes),
      bytes(s.netRxBytes),
      bytes(s.netTxBytes),
    ]);
  const more = m.samples.length > shown.length ? `(${m.samples.length - shown.length} earlier samples not shown; --tail or --json)\n` : '';
  return head + more + table(rows);
}
