import type { CapacityLedger } from './capacity.js';
import type { CreateQueue } from './create-queue.js';
import { HutchError, invalidArgument, notFound } from './errors.js';
import type { Logger } from './logger.js';
import type { Quotas } from './quotas.js';
import { type Isolation, SANDBOX_DEFAULTS } from './sandbox.js';
import { NOOP_TELEMETRY, type Telemetry } from './telemetry.js';

/**
 * Warm pools: sandboxes booted ahead of demand, keyed by what makes them interchangeable
 * (template, tier, cpu, memory, pids, disk; always egress `none`). A create that matches claims
 * one and gets only its per-request settings applied (env, metadata, TTL, egress policy); a
 * claimed sandbox never returns to a pool, so nothing carries over from one use to the next.
 *
 * Sizing: each pool keeps `target` ready while it sees demand, more when demand is high (enough
 * for POOL_HORIZON_S seconds at the recent rate of creates that matched it), never above `max`
 * nor beyond what capacity allows with headroom; after IDLE_DRAIN_MS without demand it shrinks to
 * `min`. Refills run one at a time per pool and only while the create queue has a free slot and
 * nobody waiting, so foreground creates are not starved. Members exist only in memory and in the
 * runtime: a graceful stop destroys them (close), after a crash the reconciler reaps them as
 * orphans; the pools refill after the start.
 *
 * Pools belong to a tenant (names are unique per tenant) and only that tenant's creates claim
 * their members. Unclaimed members count for the node's capacity, not the tenant's quotas; a pool
 * may not be sized above what the tenant's quotas allow at once.
 */

export interface PoolSpec {
  template: string;
  isolation: Isolation;
  cpu: number;
  memoryMiB: number;
  pids: number;
  diskMiB: number;
  min: number;
  max: number;
  target: number;
}

/** What a pool is defined with: resources left out take the create defaults, as in a create. */
export type PoolSpecInput = Pick<PoolSpec, 'template' | 'max' | 'target'> & Partial<Omit<PoolSpec, 'template' | 'max' | 'target'>>;

export interface PoolDefinition {
  tenant: string;
  name: string;
  spec: PoolSpec;
  createdAt: Date;
  updatedAt: Date;
}

export interface PoolStore {
  list(): Promise<PoolDefinition[]>;
  put(def: PoolDefinition): Promise<void>;
  remove(tenant: string, name: string): Promise<void>;
}

/** What the pools need from the sandbox service. */
export interface WarmSandboxes {
  /** The template's (or the tenant's snapshot's) current digest (members of an older one are replaced). */
  templateDigest(template: string, tenant: string): Promise<string>;
  /** Boots a sandbox that has no record yet (admitted by the caller); resolves when its agent answers. */
  bootWarm(id: string, spec: PoolSpec, tenant: string, pool?: string): Promise<{ digest: string }>;
  /** A pool was deleted (its members are destroyed separately): runtime objects of the pool go. */
  poolRemoved?(tenant: string, pool: string): Promise<void>;
  /** Destroys a member that was never claimed. */
  destroyWarm(id: string): Promise<void>;
  newId(): string;
}

/** The part of a create request a pool must match. */
export interface PoolKey {
  template: string;
  digest: string;
  isolation: Isolation;
  cpu: number;
  memoryMiB: number;
  pids: number;
  diskMiB: number;
}

interface Member {
  id: string;
  digest: string;
}

interface PoolState {
  def: PoolDefinition;
  members: Member[];
  starting: number;
  hits: number;
  misses: number;
  fills: number;
  fillFailures: number;
  /** Times (ms) of recent creates that matched this pool, hit or miss. */
  demand: number[];
  /** Times (ms) of recent completed fills. */
  filled: number[];
  lastFillMs: number | null;
  lastError: string | null;
  draining: boolean;
}

export interface PoolView {
  tenant: string;
  name: string;
  spec: PoolSpec;
  /** Ready members. */
  size: number;
  /** Members booting now. */
  starting: number;
  /** What the pool is sizing itself to now (between min and max). */
  desired: number;
  hits: number;
  misses: number;
  /** Matching creates per minute over the last minute. */
  demandPerMinute: number;
  /** Members filled per minute over the last minute. */
  refillPerMinute: number;
  lastFillMs: number | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

const TICK_MS = 200;
const RATE_WINDOW_MS = 60_000;
const SHORT_WINDOW_MS = 10_000;
const POOL_HORIZON_S = 10;
const IDLE_DRAIN_MS = 5 * 60_000;
/** Pools fill only while this fraction of allocatable capacity stays free for foreground creates. */
const POOL_HEADROOM = 0.1;
/** After a failed fill, wait this long before the next try. */
const FAILURE_BACKOFF_MS = 5_000;
const POOL_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Pools by `<tenant>/<name>`. */
const poolId = (tenant: string, name: string): string => `${tenant}/${name}`;

export class PoolService {
  private readonly pools = new Map<string, PoolState>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private stopped = false;
  private readonly backoffUntil = new Map<string, number>();
  /** Hits and misses are counted here too (wired by the server). */
  telemetry: Telemetry = NOOP_TELEMETRY;
  /** Member destructions under way (close waits for them). */
  private readonly destroying = new Set<Promise<void>>();

  constructor(
    private readonly store: PoolStore,
    private readonly sandboxes: WarmSandboxes,
    private readonly capacity: CapacityLedger,
    private readonly queue: CreateQueue,
    private readonly log: Logger,
    private readonly options: { idleDrainMs?: number; tickMs?: number } = {},
    /** Tenant quotas bound pool sizes (none: unbounded). */
    private readonly quotas: Quotas | null = null,
  ) {}

  async load(): Promise<void> {
    for (const def of await this.store.list()) this.pools.set(poolId(def.tenant, def.name), this.freshState(def));
  }

  /** Starts (or, after shutdown(), resumes) refilling: the leader replica's duty (core/leadership.ts). */
  start(): void {
    if (this.timer) return;
    this.stopped = false;
    this.timer = setInterval(() => void this.tick(), this.options.tickMs ?? TICK_MS);
    this.timer.unref();
  }

  /** Stops refilling (server shutdown, leadership lost). Ready members stay (claims still take them). */
  shutdown(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Graceful shutdown: stops refilling and destroys every member, ready ones now and booting ones
   * as they finish (waited for at most `withinMs`), so nothing of the pools outlives the server
   * (a crash still leaves them to the next start's reconcile). Definitions stay stored.
   */
  async close(withinMs = 30_000): Promise<void> {
    this.shutdown();
    const ready = [...this.pools.values()].flatMap((p) => p.members.splice(0));
    await Promise.all(ready.map((m) => this.destroy(m.id, 'server stopping')));
    const deadline = Date.now() + withinMs;
    while ([...this.pools.values()].some((p) => p.starting > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await Promise.all([...this.destroying]);
  }

  async put(tenant: string, name: string, input: PoolSpecInput): Promise<PoolView> {
    const spec: PoolSpec = {
      template: input.template,
      isolation: input.isolation ?? SANDBOX_DEFAULTS.isolation,
      cpu: input.cpu ?? SANDBOX_DEFAULTS.cpu,
      memoryMiB: input.memoryMiB ?? SANDBOX_DEFAULTS.memoryMiB,
      pids: input.pids ?? SANDBOX_DEFAULTS.pids,
      diskMiB: input.diskMiB ?? SANDBOX_DEFAULTS.diskMiB,
      min: input.min ?? 0,
      max: input.max,
      target: input.target,
    };
    if (!POOL_NAME.test(name)) throw invalidArgument(`name: "${name.slice(0, 70)}" must be 1-63 characters a-z, 0-9 and -`);
    if (spec.min > spec.max) throw invalidArgument(`min: ${spec.min} is above max ${spec.max}`);
    if (spec.target < spec.min || spec.target > spec.max)
      throw invalidArgument(`target: ${spec.target} must lie between min ${spec.min} and max ${spec.max}`);
    this.quotas?.checkPool(tenant, spec);
    await this.sandboxes.templateDigest(spec.template, tenant); // unknown templates fail here, naming the field
    const now = new Date();
    const id = poolId(tenant, name);
    const existing = this.pools.get(id);
    const def: PoolDefinition = { tenant, name, spec, createdAt: existing?.def.createdAt ?? now, updatedAt: now };
    await this.store.put(def);
    if (existing) {
      const changed = JSON.stringify(keyOf(existing.def.spec)) !== JSON.stringify(keyOf(spec));
      existing.def = def;
      // Members booted for other settings are no longer interchangeable with what the pool promises.
      if (changed) this.discard(existing, existing.members.splice(0), 'pool settings changed');
    } else {
      this.pools.set(id, this.freshState(def));
    }
    this.log.info({ pool: name, tenant, ...spec }, 'pool defined');
    void this.tick();
    return this.view(this.pools.get(id)!);
  }

  /** One tenant's pools, or (null) every tenant's. */
  list(tenant: string | null): PoolView[] {
    return [...this.pools.values()].filter((p) => tenant === null || p.def.tenant === tenant).map((p) => this.view(p));
  }

  get(tenant: string, name: string): PoolView {
    const p = this.pools.get(poolId(tenant, name));
    if (!p) throw notFound(`pool ${name.slice(0, 70)} not found`);
    return this.view(p);
  }

  /** Removes the pool and destroys its ready members (booting ones are destroyed when they finish). */
  async delete(tenant: string, name: string): Promise<void> {
    const id = poolId(tenant, name);
    const p = this.pools.get(id);
    if (!p) throw notFound(`pool ${name.slice(0, 70)} not found`);
    p.draining = true;
    this.pools.delete(id);
    await this.store.remove(tenant, name);
    await Promise.all(p.members.splice(0).map((m) => this.destroy(m.id, 'pool deleted')));
    await this.sandboxes
      .poolRemoved?.(tenant, name)
      .catch((err: unknown) => this.log.error({ pool: name, tenant, err: (err as Error).message }, 'pool cleanup in the runtime failed'));
    this.log.info({ pool: name, tenant }, 'pool deleted');
  }

  /**
   * Claims a ready member of the tenant's pools for a create that matches one (counted as a hit),
   * or null (counted as a miss when a pool matched but was empty). A member is removed from its
   * pool before this returns, so no two creates can get the same one.
   */
  claim(tenant: string, key: PoolKey): { id: string; pool: string } | null {
    const now = Date.now();
    for (const p of this.pools.values()) {
      if (p.draining || p.def.tenant !== tenant || !sameKey(p.def.spec, key)) continue;
      p.demand.push(now);
      const index = p.members.findIndex((m) => m.digest === key.digest);
      if (index >= 0) {
        const [member] = p.members.splice(index, 1);
        p.hits++;
        this.telemetry.poolClaim(tenant, true);
        void this.tick();
        return { id: member!.id, pool: p.def.name };
      }
      p.misses++;
      this.telemetry.poolClaim(tenant, false);
      void this.tick();
      return null;
    }
    return null;
  }

  /** Size the pool is aiming for now. */
  private desired(p: PoolState, now: number): number {
    const { min, max, target } = p.def.spec;
    this.prune(p, now);
    const last = p.demand.at(-1);
    if (last === undefined ? now - p.def.updatedAt.getTime() > this.idleDrainMs() : now - last > this.idleDrainMs()) return min;
    const recent = p.demand.filter((t) => now - t <= SHORT_WINDOW_MS).length;
    const rate = recent / (SHORT_WINDOW_MS / 1000);
    return Math.min(max, Math.max(target, Math.ceil(rate * POOL_HORIZON_S)));
  }

  private idleDrainMs(): number {
    return this.options.idleDrainMs ?? IDLE_DRAIN_MS;
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      const now = Date.now();
      for (const p of this.pools.values()) {
        const desired = this.desired(p, now);
        // Too many (demand fell, or the pool shrank): the oldest go first.
        const surplus = p.members.length + p.starting - desired;
        if (surplus > 0 && p.members.length > 0)
          this.discard(p, p.members.splice(0, Math.min(surplus, p.members.length)), 'pool shrinking');
        // Members of an older template digest are replaced; a template that is gone (a deleted
        // snapshot) takes its members with it, so none stays mounted on layers a gc may remove.
        const digest = await this.sandboxes.templateDigest(p.def.spec.template, p.def.tenant).catch((err: unknown) => {
          if (err instanceof HutchError && (err.kind === 'not_found' || err.kind === 'invalid_argument')) return null;
          return undefined; // cannot tell now: keep what is there
        });
        if (digest === null) {
          if (p.members.length > 0) this.discard(p, p.members.splice(0), 'template gone');
          p.lastError = `template ${p.def.spec.template} no longer exists`;
          continue;
        }
        if (digest !== undefined) {
          const stale = p.members.filter((m) => m.digest !== digest);
          if (stale.length > 0) {
            p.members = p.members.filter((m) => m.digest === digest);
            this.discard(p, stale, 'template changed');
          }
        }
        if (p.starting > 0 || p.members.length >= desired) continue;
        if ((this.backoffUntil.get(poolId(p.def.tenant, p.def.name)) ?? 0) > now) continue;
        const { running, queued, concurrency } = this.queue.stats;
        if (queued > 0 || running >= concurrency) continue; // foreground creates first
        this.fill(p);
      }
    } finally {
      this.ticking = false;
    }
  }

  private fill(p: PoolState): void {
    const spec = p.def.spec;
    const want = { cpu: spec.cpu, memoryMiB: spec.memoryMiB, pids: spec.pids, diskMiB: spec.diskMiB };
    const id = this.sandboxes.newId();
    try {
      this.capacity.admit(id, want, null, POOL_HEADROOM);
    } catch (err) {
      p.lastError = (err as Error).message;
      return;
    }
    p.starting++;
    const started = Date.now();
    void this.queue
      .run({ tenant: p.def.tenant, key: `pool:${p.def.name}` }, () => this.sandboxes.bootWarm(id, spec, p.def.tenant, p.def.name))
      .then(({ digest }) => {
        p.starting--;
        p.fills++;
        p.filled.push(Date.now());
        p.lastFillMs = Date.now() - started;
        p.lastError = null;
        if (this.stopped || p.draining || this.pools.get(poolId(p.def.tenant, p.def.name)) !== p || !sameKey(p.def.spec, keyOf(spec)))
          return void this.destroy(id, 'pool changed while booting');
        p.members.push({ id, digest });
        void this.tick();
      })
      .catch((err: unknown) => {
        p.starting--;
        p.fillFailures++;
        p.lastError = (err as Error).message;
        this.capacity.release(id);
        this.backoffUntil.set(poolId(p.def.tenant, p.def.name), Date.now() + FAILURE_BACKOFF_MS);
        this.log.warn({ pool: p.def.name, tenant: p.def.tenant, err: p.lastError }, 'pool fill failed');
      });
  }

  private discard(p: PoolState, members: Member[], why: string): void {
    for (const m of members) void this.destroy(m.id, why);
    if (members.length > 0) this.log.info({ pool: p.def.name, count: members.length, why }, 'pool members discarded');
  }

  private destroy(id: string, why: string): Promise<void> {
    const done = this.destroyNow(id, why).finally(() => this.destroying.delete(done));
    this.destroying.add(done);
    return done;
  }

  private async destroyNow(id: string, why: string): Promise<void> {
    try {
      await this.sandboxes.destroyWarm(id);
    } catch (err) {
      this.log.error({ sandbox: id, why, err: (err as Error).message }, 'pool member cleanup failed');
    } finally {
      this.capacity.release(id);
    }
  }

  private prune(p: PoolState, now: number): void {
    while (p.demand.length > 0 && now - p.demand[0]! > RATE_WINDOW_MS) p.demand.shift();
    while (p.filled.length > 0 && now - p.filled[0]! > RATE_WINDOW_MS) p.filled.shift();
  }

  private view(p: PoolState): PoolView {
    const now = Date.now();
    const desired = this.desired(p, now);
    return {
      tenant: p.def.tenant,
      name: p.def.name,
      spec: p.def.spec,
      size: p.members.length,
      starting: p.starting,
      desired,
      hits: p.hits,
      misses: p.misses,
      demandPerMinute: p.demand.length,
      refillPerMinute: p.filled.length,
      lastFillMs: p.lastFillMs,
      lastError: p.lastError,
      createdAt: p.def.createdAt.toISOString(),
      updatedAt: p.def.updatedAt.toISOString(),
    };
  }

  private freshState(def: PoolDefinition): PoolState {
    return {
      def,
      members: [],
      starting: 0,
      hits: 0,
      misses: 0,
      fills: 0,
      fillFailures: 0,
      demand: [],
      filled: [],
      lastFillMs: null,
      lastError: null,
      draining: false,
    };
  }
}

function keyOf(spec: PoolSpec): Omit<PoolKey, 'digest'> {
  return {
    template: spec.template,
    isolation: spec.isolation,
    cpu: spec.cpu,
    memoryMiB: spec.memoryMiB,
    pids: spec.pids,
    diskMiB: spec.diskMiB,
  };
}

function sameKey(spec: PoolSpec, key: Omit<PoolKey, 'digest'>): boolean {
  return (
    spec.template === key.template &&
    spec.isolation === key.isolation &&
    spec.cpu === key.cpu &&
    spec.memoryMiB === key.memoryMiB &&
    spec.pids === key.pids &&
    spec.diskMiB === key.diskMiB
  );
}
