import type { CallOptions } from './config.js';
import type { Transport } from './http.js';

/** A point in time for a range: a Date, an RFC 3339 string, or milliseconds since the epoch. */
export type TimeInput = Date | string | number;

export interface TimeRange {
  start?: TimeInput;
  end?: TimeInput;
}

/** One reading of a sandbox, taken by the server's sampler every few seconds. */
export interface SandboxMetricsSample {
  timestamp: string;
  /** Cpu in use since the previous sample, as a share of the sandbox's cpu limit (100 = all of it); null for the first sample. */
  cpuPercent: number | null;
  /** Cores in use since the previous sample. */
  cpuCores: number | null;
  /** Cpu time since the sandbox (re)started (gVisor: its user-space kernel's work included). */
  cpuSeconds: number;
  /** Memory charged to the sandbox's cgroup (page cache and tmpfs included): what its limit counts. */
  memoryBytes: number;
  /** Of which page cache and shared memory (a gVisor sandbox's memory shows here). */
  memoryCacheBytes: number;
  /** Tasks in its cgroup (gVisor: the sentry's threads); null when unknown. */
  pids: number | null;
  diskUsedBytes: number | null;
  diskSizeBytes: number | null;
  /** Bytes received and sent on its network link since it started; null without a network. */
  netRxBytes: number | null;
  netTxBytes: number | null;
}

export interface SandboxMetrics {
  sandboxId: string;
  state: string;
  isolation: string;
  cpuLimit: number;
  memoryLimitBytes: number;
  /** How often the server samples, and how long it keeps samples. */
  intervalSeconds: number;
  windowSeconds: number;
  samples: SandboxMetricsSample[];
}

/** What one tenant used over a range of whole hours. */
export interface UsageTotals {
  tenant: string;
  /** Cpu time actually consumed (vCPU-seconds). */
  cpuSeconds: number;
  /** Cpu limit × running time. */
  cpuReservedSeconds: number;
  /** Memory limit × running time (what billing normally uses). */
  memoryGiBSeconds: number;
  /** Sampled memory use × running time. */
  memoryUsedGiBSeconds: number;
  /** Allocated storage (sandbox disks, volumes, snapshots) × time. */
  storageGiBHours: number;
  /** Running time of its sandboxes. */
  sandboxSeconds: number;
  networkRxBytes: number;
  networkTxBytes: number;
}

export interface UsageReport {
  /** The range, widened to whole UTC hours. */
  start: string;
  end: string;
  bucketSeconds: number;
  tenants: UsageTotals[];
}

export interface UsageOptions extends TimeRange, CallOptions {
  /** Admins: one tenant (default: all). Other keys always get their own tenant. */
  tenant?: string;
}

export interface MetricsOptions extends TimeRange, CallOptions {}

/** RFC 3339 for the server. */
export function timeParam(t: TimeInput | undefined): string | undefined {
  if (t === undefined) return undefined;
  if (t instanceof Date) return t.toISOString();
  if (typeof t === 'number') return new Date(t).toISOString();
  return t;
}

/** GET /v1/usage. */
export function fetchUsage(transport: Transport, opts: UsageOptions = {}): Promise<UsageReport> {
  const { start, end, tenant, ...call } = opts;
  return transport.json<UsageReport>({
    method: 'GET',
    path: '/v1/usage',
    query: { start: timeParam(start), end: timeParam(end), tenant },
    ...call,
  });
}

/** GET /v1/sandboxes/{id}/metrics. */
export function fetchSandboxMetrics(transport: Transport, path: string, opts: MetricsOptions = {}): Promise<SandboxMetrics> {
  const { start, end, ...call } = opts;
  return transport.json<SandboxMetrics>({
    method: 'GET',
    path: `${path}/metrics`,
    query: { start: timeParam(start), end: timeParam(end) },
    ...call,
  });
}
