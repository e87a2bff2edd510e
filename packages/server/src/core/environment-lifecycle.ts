import { parseTtl } from '../environments/ttl.js';
import type { EnvironmentRecord, EnvironmentStore } from './environment.js';
import { invalidArgument, notFound } from './errors.js';
import type { Logger } from './logger.js';

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
}

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
  constructor(
    private readonly store: EnvironmentStore,
    private readonly log: Logger,
    private readonly defaults: LifecycleDefaults,
  ) {}

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
