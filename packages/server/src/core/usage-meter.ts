import pLimit from 'p-limit';
import type { Logger } from './logger.js';
import type { Provider, SandboxStats } from './provider.js';
import { SampleRing } from './sample-ring.js';
import type { Isolation } from './sandbox.js';

/**
 * The sampler and the usage meter. Every `intervalMs` (default 5 s) it reads the counters of each
 * running sandbox (cgroup cpu, memory and pids, its filesystem, its link's bytes: a few in-memory
 * kernel files, see Provider.stats) and
 *  - keeps them per sandbox for `windowMs` (default 1 h): GET /v1/sandboxes/{id}/metrics;
 *  - accounts what each sandbox used since the previous reading to its tenant, by UTC hour, in the
 *    store: GET /v1/usage.
 *
 * What is accounted (per tenant and hour):
 *  - cpuSeconds: cpu time actually consumed (the cgroup's cumulative counter; for gVisor the
 *    sentry's and gofer's work too: what the host spent);
 *  - cpuReservedSeconds: the cpu limit × running time;
 *  - memoryGiBSeconds: the memory limit (reserved) × running time — what billing normally uses,
 *    because the reservation is what the node sets aside; memoryUsedGiBSeconds: the sampled
 *    actual use (cgroup memory, page cache included) × time, for right-sizing limits;
 *  - sandboxSeconds: running time;
 *  - storageGiBSeconds: allocated storage (sandbox disks of sandboxes that are not deleted,
 *    running or not, plus volume sizes plus snapshot sizes) × time, sampled at each tick;
 *  - network bytes received and sent on sandbox links.
 *
 * Each running sandbox has a meter (its counters as last accounted, persisted in the store), so
 * a server restart loses nothing: the first reading after it accounts what ran meanwhile (the
 * sandboxes outlive the server). Lifecycle changes account a final reading (`final`: after a
 * delete's kill, before a stop or pause tears the cgroup down), so a sandbox deleted between two
 * samples still gets its last cpu counted; `started` opens a meter when a sandbox starts running.
 */
export interface UsageAmounts {
  cpuSeconds: number;
  cpuReservedSeconds: number;
  memoryGiBSeconds: number;
  memoryUsedGiBSeconds: number;
  storageGiBSeconds: number;
  sandboxSeconds: number;
  netRxBytes: number;
  netTxBytes: number;
}

export const ZERO_USAGE: UsageAmounts = {
  cpuSeconds: 0,
  cpuReservedSeconds: 0,
  memoryGiBSeconds: 0,
  memoryUsedGiBSeconds: 0,
  storageGiBSeconds: 0,
  sandboxSeconds: 0,
  netRxBytes: 0,
  netTxBytes: 0,
};

const USAGE_FIELDS = Object.keys(ZERO_USAGE) as Array<keyof UsageAmounts>;

/** A sandbox's counters as last accounted. */
export interface MeterRow {
  sandboxId: string;
  tenant: string;
  /** Its limits (for the reserved figures). */
  cpu: number;
  memoryMiB: number;
  /** Accounted up to this time (ms). */
  at: number;
  cpuNs: number;
  netRx: number;
  netTx: number;
}

export interface RunningSandboxRow {
  id: string;
  tenant: string;
  isolation: Isolation;
  cpu: number;
  memoryMiB: number;
}

export interface UsageBucket {
  tenant: string;
  /** Start of the UTC hour (ms). */
  hour: number;
  amounts: UsageAmounts;
}

export interface TenantUsageTotals extends UsageAmounts {
  tenant: string;
}

/** What the meter needs from the store (store/usage-repo.ts). */
export interface UsageStore {
  loadMeters(): Promise<MeterRow[]>;
  /** Sandboxes the store records as running. */
  running(): Promise<RunningSandboxRow[]>;
  /** Allocated storage per tenant (MiB): disks of sandboxes not deleted, volumes, snapshots. */
  storageMiB(): Promise<Map<string, number>>;
  /** Until when storage was accounted (ms), null before the first time. */
  storageAt(): Promise<number | null>;
  /** One transaction: meters written, meters removed, hourly amounts added, storage clock. */
  commit(change: { meters: MeterRow[]; closed: string[]; buckets: UsageBucket[]; storageAt: number | null }): Promise<void>;
  /** Sums of the hours in [start, end) per tenant (one tenant, or null: all). */
  totals(range: { start: number; end: number; tenant: string | null }): Promise<TenantUsageTotals[]>;
}

export interface UsageMeterOptions {
  /** Sampling interval (default 5000 ms). */
  intervalMs?: number;
  /** How long samples are kept per sandbox (default 1 h). */
  windowMs?: number;
  /** Sandboxes read at once during a tick (default 8). */
  concurrency?: number;
}

/** One reading of a sandbox as the metrics API returns it. */
export interface SandboxSample {
  timestamp: Date;
  /** Cores in use since the previous sample (null for the first one). */
  cpuCores: number | null;
  /** Cpu time since the sandbox (re)started. */
  cpuSeconds: number;
  memoryBytes: number;
  memoryCacheBytes: number;
  pids: number | null;
  diskUsedBytes: number | null;
  diskSizeBytes: number | null;
  netRxBytes: number | null;
  netTxBytes: number | null;
}

const HOUR_MS = 3_600_000;
const GIB = 1024 ** 3;
/** A sandbox finalized this recently is not metered again if a late reading sees it. */
const FINAL_GRACE_MS = 60_000;
/** Ring columns. */
const F_AT = 0;
const F_CORES = 1;
const F_CPU_S = 2;
const F_MEM = 3;
const F_CACHE = 4;
const F_PIDS = 5;
const F_DISK_USED = 6;
const F_DISK_SIZE = 7;
const F_RX = 8;
const F_TX = 9;
const FIELDS = 10;

export const hourOf = (ms: number): number => Math.floor(ms / HOUR_MS) * HOUR_MS;

/** Splits [from, to) at UTC hour boundaries: each hour with its share of the span (shares sum to 1). */
export function splitByHour(from: number, to: number): Array<{ hour: number; share: number }> {
  if (!(to > from)) return [{ hour: hourOf(to), share: 1 }];
  const out: Array<{ hour: number; share: number }> = [];
  for (let t = from; t < to;) {
    const hour = hourOf(t);
    const end = Math.min(to, hour + HOUR_MS);
    out.push({ hour, share: (end - t) / (to - from) });
    t = end;
  }
  return out;
}

interface Meter extends MeterRow {
  /** performance.now() when it was opened: a tick that listed running sandboxes earlier does not close it. */
  openedAt: number;
}

export class UsageMeter {
  readonly intervalMs: number;
  readonly windowMs: number;
  private readonly meters = new Map<string, Meter>();
  private readonly rings = new Map<string, SampleRing>();
  /** Per-sandbox operations (sample, start, final) run one at a time, in order. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly finalized = new Map<string, number>();
  private readonly limit: ReturnType<typeof pLimit>;
  private timer: NodeJS.Timeout | null = null;
  /** The sampling round in progress. */
  private round: Promise<void> | null = null;
  /** A follower replica: the leader meters (see follow()). */
  private following = false;
  private closedForGood = false;

  // Not yet written to the store.
  private pending = new Map<string, UsageBucket>();
  private dirty = new Set<string>();
  private closed = new Set<string>();
  private storageClock: number | null = null;
  private storageDirty = false;
  private flushing: Promise<void> = Promise.resolve();

  /** The last tick: how long it took and how many sandboxes it read. */
  lastTick: { seconds: number; sandboxes: number; at: Date | null } = { seconds: 0, sandboxes: 0, at: null };
  /** Called with what each accounting step added for a tenant (Prometheus counters). */
  onAccount: ((tenant: string, amounts: UsageAmounts) => void) | null = null;

  constructor(
    private readonly store: UsageStore,
    private readonly provider: Pick<Provider, 'stats'>,
    private readonly log: Logger,
    options: UsageMeterOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 5000;
    this.windowMs = options.windowMs ?? HOUR_MS;
    this.limit = pLimit(options.concurrency ?? 8);
  }

  /** Loads the meters and the storage clock the previous run left (before reconciliation). */
  async load(): Promise<void> {
    for (const row of await this.store.loadMeters()) this.meters.set(row.sandboxId, { ...row, openedAt: 0 });
    this.storageClock = await this.store.storageAt();
  }

  start(): void {
    if (this.timer || this.closedForGood) return;
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** Stops sampling and writes what is pending; start() resumes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.round;
    await this.flush().catch(() => undefined);
  }

  /**
   * Several replicas on one store (core/leadership.ts): only the leader meters. A follower stops
   * sampling and ignores starts and finals: the leader's rounds open a meter for a sandbox they
   * find running and close the meter of one that stopped, so no interval is counted twice (a
   * stop through a follower loses at most the last round's interval instead).
   */
  async follow(): Promise<void> {
    this.following = true;
    await this.stop();
  }

  /** Leads (again): takes the meters the previous leader left in the store, then samples. */
  async lead(): Promise<void> {
    if (this.following) {
      this.following = false;
      this.meters.clear();
      this.dirty.clear();
      await this.load();
    }
    this.start();
  }

  /** Stops sampling and writes what is pending (server shutdown; meters stay for the next start). */
  async close(): Promise<void> {
    this.closedForGood = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.round;
    await Promise.all(this.chains.values());
    await this.flush().catch(() => undefined);
  }

  /**
   * Opens the meter of a sandbox that now runs. `zero`: its cgroup is new (a cold create, a start
   * or resume), so everything it used counts; `current`: it ran before it was the tenant's (a warm
   * pool member), so only what it uses from now on counts.
   */
  started(s: { id: string; tenant: string; cpu: number; memoryMiB: number }, baseline: 'zero' | 'current'): Promise<void> {
    if (this.following) return Promise.resolve();
    return this.serial(s.id, async () => {
      let stats: SandboxStats | null = null;
      if (baseline === 'current') stats = await this.provider.stats(s.id).catch(() => null);
      this.finalized.delete(s.id);
      this.closed.delete(s.id);
      this.meters.set(s.id, {
        sandboxId: s.id,
        tenant: s.tenant,
        cpu: s.cpu,
        memoryMiB: s.memoryMiB,
        at: Date.now(),
        cpuNs: stats?.cpuNs ?? 0,
        netRx: stats?.net?.rxBytes ?? 0,
        netTx: stats?.net?.txBytes ?? 0,
        openedAt: performance.now(),
      });
      this.dirty.add(s.id);
    });
  }

  /**
   * Accounts a sandbox's last reading and closes its meter: call it when the sandbox stops running
   * (stop, pause, delete — after the kill, before the teardown — or a death), while its cgroup is
   * still there. `forget` drops its samples too (deleted). Written to the store before it returns.
   */
  async final(id: string, options: { forget?: boolean } = {}): Promise<void> {
    if (this.following) return;
    await this.serial(id, async () => {
      const m = this.meters.get(id);
      if (m) {
        const stats = await this.provider.stats(id).catch(() => null);
        const at = Date.now();
        if (stats) this.record(id, at, this.account(m, stats, at), stats);
        else this.accountTime(m, at);
        this.meters.delete(id);
        this.dirty.delete(id);
        this.closed.add(id);
      }
      this.finalized.set(id, Date.now());
      if (options.forget) this.rings.delete(id);
    });
    await this.flush().catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'usage: writing final figures failed'));
  }

  /** The samples of a sandbox between `from` and `to` (ms), oldest first. */
  samples(id: string, from: number, to: number): SandboxSample[] {
    const ring = this.rings.get(id);
    if (!ring) return [];
    const num = (v: number): number | null => (Number.isNaN(v) ? null : v);
    return ring.between(from, to).map((r) => ({
      timestamp: new Date(r[F_AT]!),
      cpuCores: num(r[F_CORES]!),
      cpuSeconds: r[F_CPU_S]!,
      memoryBytes: r[F_MEM]!,
      memoryCacheBytes: r[F_CACHE]!,
      pids: num(r[F_PIDS]!),
      diskUsedBytes: num(r[F_DISK_USED]!),
      diskSizeBytes: num(r[F_DISK_SIZE]!),
      netRxBytes: num(r[F_RX]!),
      netTxBytes: num(r[F_TX]!),
    }));
  }

  /** Usage per tenant over whole UTC hours [start, end), with everything accounted so far. */
  async totals(range: { start: number; end: number; tenant: string | null }): Promise<TenantUsageTotals[]> {
    await this.flush().catch(() => undefined);
    return this.store.totals(range);
  }

  /** One sampling round (one at a time: a call during a round waits for it instead). */
  tick(): Promise<void> {
    if (this.round) return this.round;
    if (this.closedForGood) return Promise.resolve();
    this.round = this.sampleRound().finally(() => {
      this.round = null;
    });
    return this.round;
  }

  private async sampleRound(): Promise<void> {
    const began = performance.now();
    let read = 0;
    try {
      const running = await this.store.running();
      const ids = new Set(running.map((r) => r.id));
      // A meter whose sandbox no longer runs, opened before the list was read: a lifecycle change
      // that did not go through final() (e.g. reconciliation after a host reboot). Closed without
      // a charge: nothing is known about what it used since the last reading.
      for (const [id, m] of this.meters) {
        if (ids.has(id) || m.openedAt > began || this.chains.has(id)) continue;
        this.meters.delete(id);
        this.dirty.delete(id);
        this.closed.add(id);
      }
      await Promise.all(
        running.map((r) =>
          this.limit(async () => {
            if (this.chains.has(r.id)) return; // a start or final is on it
            await this.serial(r.id, () => this.sampleOne(r));
            read++;
          }),
        ),
      );
      await this.accountStorage(Date.now());
      await this.flush();
      const now = Date.now();
      for (const [id, ring] of this.rings) {
        ring.prune(now - this.windowMs);
        if (ring.size === 0 && !ids.has(id)) this.rings.delete(id);
      }
      for (const [id, at] of this.finalized) if (now - at > FINAL_GRACE_MS) this.finalized.delete(id);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'usage sampling round failed');
    } finally {
      this.lastTick = { seconds: (performance.now() - began) / 1000, sandboxes: read, at: new Date() };
    }
  }

  private async sampleOne(r: RunningSandboxRow): Promise<void> {
    const stats = await this.provider.stats(r.id).catch(() => null);
    if (!stats) return;
    const at = Date.now();
    let m = this.meters.get(r.id);
    if (!m) {
      if (this.finalized.has(r.id)) return;
      // Running without a meter (it ran before this version, or a start was missed): what it
      // used before now is unknown, so it is metered from now on.
      m = {
        sandboxId: r.id,
        tenant: r.tenant,
        cpu: r.cpu,
        memoryMiB: r.memoryMiB,
        at,
        cpuNs: stats.cpuNs,
        netRx: stats.net?.rxBytes ?? 0,
        netTx: stats.net?.txBytes ?? 0,
        openedAt: performance.now(),
      };
      this.meters.set(r.id, m);
      this.dirty.add(r.id);
    }
    this.record(r.id, at, this.account(m, stats, at), stats);
  }

  /** Accounts a reading against the meter; returns the cores used since the previous one (NaN: unknown). */
  private account(m: Meter, stats: SandboxStats, at: number): number {
    const dt = Math.max(0, at - m.at) / 1000;
    // A counter below the last reading was reset (a new cgroup or link): all of it is new.
    const since = (now: number, before: number): number => (now >= before ? now - before : now);
    const cpuNs = since(stats.cpuNs, m.cpuNs);
    const rx = stats.net ? since(stats.net.rxBytes, m.netRx) : 0;
    const tx = stats.net ? since(stats.net.txBytes, m.netTx) : 0;
    this.add(m.tenant, m.at, at, {
      cpuSeconds: cpuNs / 1e9,
      cpuReservedSeconds: m.cpu * dt,
      memoryGiBSeconds: (m.memoryMiB / 1024) * dt,
      memoryUsedGiBSeconds: (stats.memoryBytes / GIB) * dt,
      storageGiBSeconds: 0,
      sandboxSeconds: dt,
      netRxBytes: rx,
      netTxBytes: tx,
    });
    m.at = Math.max(m.at, at);
    m.cpuNs = stats.cpuNs;
    if (stats.net) {
      m.netRx = stats.net.rxBytes;
      m.netTx = stats.net.txBytes;
    }
    this.dirty.add(m.sandboxId);
    return dt > 0 ? cpuNs / 1e9 / dt : NaN;
  }

  /** No reading possible (the cgroup is gone): only the running time is accounted. */
  private accountTime(m: Meter, at: number): void {
    const dt = Math.max(0, at - m.at) / 1000;
    this.add(m.tenant, m.at, at, {
      ...ZERO_USAGE,
      cpuReservedSeconds: m.cpu * dt,
      memoryGiBSeconds: (m.memoryMiB / 1024) * dt,
      sandboxSeconds: dt,
    });
    m.at = Math.max(m.at, at);
  }

  private record(id: string, at: number, cores: number, stats: SandboxStats): void {
    let ring = this.rings.get(id);
    if (!ring) {
      ring = new SampleRing(FIELDS, Math.ceil(this.windowMs / this.intervalMs) + 2);
      this.rings.set(id, ring);
    }
    const row = new Float64Array(FIELDS);
    row[F_AT] = at;
    row[F_CORES] = cores;
    row[F_CPU_S] = stats.cpuNs / 1e9;
    row[F_MEM] = stats.memoryBytes;
    row[F_CACHE] = stats.memoryCacheBytes;
    row[F_PIDS] = stats.pids ?? NaN;
    row[F_DISK_USED] = stats.disk?.usedBytes ?? NaN;
    row[F_DISK_SIZE] = stats.disk?.sizeBytes ?? NaN;
    row[F_RX] = stats.net?.rxBytes ?? NaN;
    row[F_TX] = stats.net?.txBytes ?? NaN;
    ring.push(row);
    ring.prune(at - this.windowMs);
  }

  private async accountStorage(now: number): Promise<void> {
    const storage = await this.store.storageMiB();
    const from = this.storageClock;
    this.storageClock = now;
    this.storageDirty = true;
    if (from === null || now <= from) return;
    const dt = (now - from) / 1000;
    for (const [tenant, mib] of storage) {
      if (mib > 0) this.add(tenant, from, now, { ...ZERO_USAGE, storageGiBSeconds: (mib / 1024) * dt });
    }
  }

  /** Adds amounts used over [from, to] to the tenant's hours, split at hour boundaries. */
  private add(tenant: string, from: number, to: number, amounts: UsageAmounts): void {
    for (const { hour, share } of splitByHour(from, to)) {
      const key = `${tenant}\0${hour}`;
      let bucket = this.pending.get(key);
      if (!bucket) this.pending.set(key, (bucket = { tenant, hour, amounts: { ...ZERO_USAGE } }));
      for (const f of USAGE_FIELDS) bucket.amounts[f] += amounts[f] * share;
    }
    this.onAccount?.(tenant, amounts);
  }

  /** Writes what is pending in one transaction; on failure it stays pending for the next try. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.write());
    this.flushing = next.catch(() => undefined);
    return next;
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0 && this.dirty.size === 0 && this.closed.size === 0 && !this.storageDirty) return;
    const buckets = [...this.pending.values()];
    const meters = [...this.dirty].flatMap((id) => {
      const m = this.meters.get(id);
      return m ? [{ ...m }] : [];
    });
    const closed = [...this.closed];
    const storageAt = this.storageDirty ? this.storageClock : null;
    this.pending = new Map();
    this.dirty = new Set();
    this.closed = new Set();
    this.storageDirty = false;
    try {
      await this.store.commit({ meters: meters.map(({ openedAt: _, ...row }) => row), closed, buckets, storageAt });
    } catch (err) {
      // Back in line for the next write (amounts add up; meters and closes keep their latest state).
      for (const b of buckets) {
        const key = `${b.tenant}\0${b.hour}`;
        const now = this.pending.get(key);
        if (now) for (const f of USAGE_FIELDS) now.amounts[f] += b.amounts[f];
        else this.pending.set(key, b);
      }
      for (const m of meters) if (this.meters.has(m.sandboxId) && !this.closed.has(m.sandboxId)) this.dirty.add(m.sandboxId);
      for (const id of closed) if (!this.meters.has(id)) this.closed.add(id);
      if (storageAt !== null) this.storageDirty = true;
      this.log.error({ err: (err as Error).message }, 'usage: writing to the store failed (kept for the next try)');
      throw err;
    }
  }

  /** Runs `work` after whatever else is running for the sandbox. */
  private serial(id: string, work: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tracked = next.catch((err: unknown) =>
      this.log.warn({ sandbox: id, err: (err as Error).message }, 'usage: reading a sandbox failed'),
    );
    this.chains.set(id, tracked);
    void tracked.finally(() => {
      if (this.chains.get(id) === tracked) this.chains.delete(id);
    });
    return tracked;
  }
}
