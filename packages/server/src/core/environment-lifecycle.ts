import { parseTtl } from '../environments/ttl.js';
import type { EnvironmentRecord, EnvironmentStore } from './environment.js';
import type { EnvironmentService } from './environment-service.js';
import { HutchError, invalidArgument, notFound } from './errors.js';
import type { Logger } from './logger.js';
import type { SandboxRecord } from './sandbox.js';

/**
 * The lifetime of environments: `keep` (pinned: no TTL, no janitor), the idle TTL (after it, the
 * environment sleeps: its service sandboxes are stopped) and the delete TTL (after it, it is
 * destroyed). Both count from the environment's last activity: a deploy, a redeploy, a wake, or a
 * request through one of its URLs. A TTL is the environment's own (x-hutch.ttl at create, then
 * PATCH) or the server's default; 0 is off.
 */
export interface LifecycleDefaults {
  /** Idle TTL of environments that set none (0: never sleep). */
  idleTtlMs: number;
  /** Delete TTL of environments that set none (0: never deleted by age). */
  deleteTtlMs: number;
  /** How often TTLs are checked (default 30 s). */
  sweepIntervalMs?: number;
  /** How long a request through the ingress waits for a wake (default 120 s). */
  wakeTimeoutMs?: number;
}

/** Traffic renews an environment's TTLs; written at most this often per environment. */
const TOUCH_WRITE_MS = 5000;

export interface LifecyclePatch {
  keep?: boolean;
  /** A duration (`30m`, `72h`, `3d`), `off`/`0`, or null: back to the server's default. */
  ttl?: { idle?: unknown; delete?: unknown };
}

/** When an environment sleeps and is deleted, as the server's defaults and its own settings say. */
export interface Expiry {
  /** In ms; 0: off. */
  idleTtlMs: number;
  deleteTtlMs: number;
  /** null: it does not (kept, off, or not awake). */
  sleepsAt: Date | null;
  deletesAt: Date | null;
}

export class EnvironmentLifecycle {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly store: EnvironmentStore,
    private readonly environments: EnvironmentService,
    private readonly log: Logger,
    private readonly defaults: LifecycleDefaults,
  ) {}

  /** Starts the periodic TTL check (idempotent). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), this.defaults.sweepIntervalMs ?? 30_000);
    this.timer.unref();
  }

  /** Stops the periodic check and waits for a check in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping;
  }

  /**
   * One pass: environments past their delete TTL are destroyed, running ones past their idle TTL
   * sleep; kept ones are left alone. A pass already in progress is not started twice.
   */
  sweep(now = Date.now()): Promise<void> {
    this.sweeping ??= this.sweepOnce(now).finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async sweepOnce(now: number): Promise<void> {
    for (const record of await this.store.list(null, ['running', 'error', 'sleeping'])) {
      const expiry = this.expiry(record);
      try {
        if (expiry.deletesAt && expiry.deletesAt.getTime() <= now) {
          this.log.info({ environment: record.id, deleteTtlMs: expiry.deleteTtlMs }, 'environment delete TTL reached');
          await this.environments.delete(record.id);
        } else if (expiry.sleepsAt && expiry.sleepsAt.getTime() <= now) {
          this.log.info({ environment: record.id, idleTtlMs: expiry.idleTtlMs }, 'environment idle TTL reached');
          await this.environments.sleep(record.id);
        }
      } catch (err) {
        this.log.error({ environment: record.id, err: (err as Error).message }, 'environment TTL action failed');
      }
    }
  }

  /**
   * Before the ingress proxies to a sandbox (the caller is authorized): when it is a service of an
   * environment, the request renews the environment's TTLs, and a sleeping environment is woken
   * first — the request waits (bounded) and concurrent ones share the wake.
   */
  async beforeProxy(sandbox: SandboxRecord): Promise<void> {
    const id = sandbox.metadata['hutch.environment'];
    if (!id) return;
    const record = await this.store.get(id);
    if (!record || record.state === 'deleting' || record.state === 'deleted') return;
    if (record.state === 'sleeping' || record.state === 'waking') {
      const limit = this.defaults.wakeTimeoutMs ?? 120_000;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new HutchError('unavailable', `environment ${id} is still waking up after ${limit / 1000} s; try again`)),
          limit,
        );
      });
      try {
        await Promise.race([this.environments.wake(id), timeout]);
      } finally {
        clearTimeout(timer);
      }
      this.touched.set(id, Date.now());
      return;
    }
    const last = this.touched.get(id) ?? 0;
    // Written at most every 5 s, and at least twice per idle TTL (a short one must not run out under traffic).
    const idle = this.expiry(record).idleTtlMs;
    if (Date.now() - last >= (idle > 0 ? Math.min(TOUCH_WRITE_MS, idle / 2) : TOUCH_WRITE_MS)) {
      this.touched.set(id, Date.now());
      await this.store.update(id, { activeAt: new Date() });
    }
  }

  /** The TTLs that apply to `record` and when they fall due. */
  expiry(record: EnvironmentRecord): Expiry {
    const idleTtlMs = record.ttl.idleMs ?? this.defaults.idleTtlMs;
    const deleteTtlMs = record.ttl.deleteMs ?? this.defaults.deleteTtlMs;
    const live = record.state !== 'deleting' && record.state !== 'deleted';
    const from = record.activeAt.getTime();
    return {
      idleTtlMs,
      deleteTtlMs,
      sleepsAt: live && !record.keep && idleTtlMs > 0 && record.state === 'running' ? new Date(from + idleTtlMs) : null,
      deletesAt: live && !record.keep && deleteTtlMs > 0 ? new Date(from + deleteTtlMs) : null,
    };
  }

  /**
   * Sets `keep` and the TTL overrides (fields named in errors). Changing them counts as activity:
   * a TTL shortened below the time already idle does not sleep or delete the environment at once.
   */
  async update(id: string, patch: LifecyclePatch): Promise<EnvironmentRecord> {
    const record = await this.store.get(id);
    if (!record || record.state === 'deleted') throw notFound(`environment ${id} not found`);
    if (record.state === 'deleting') throw invalidArgument(`environment ${id} is being deleted`);
    const ttl = { ...record.ttl };
    if (patch.ttl !== undefined) {
      if (patch.ttl.idle !== undefined) ttl.idleMs = patch.ttl.idle === null ? null : parseTtl(patch.ttl.idle, 'ttl.idle');
      if (patch.ttl.delete !== undefined) ttl.deleteMs = patch.ttl.delete === null ? null : parseTtl(patch.ttl.delete, 'ttl.delete');
    }
    const keep = patch.keep ?? record.keep;
    const activeAt = new Date();
    await this.store.update(id, { keep, ttl, activeAt });
    this.log.info({ environment: id, keep, idleTtlMs: ttl.idleMs, deleteTtlMs: ttl.deleteMs }, 'environment lifecycle updated');
    return { ...record, keep, ttl, activeAt };
  }

  /** Renews the TTLs (a deploy or redeploy of the environment). */
  async renew(id: string): Promise<void> {
    await this.store.update(id, { activeAt: new Date() });
  }
}
