import type { Allocation, CapacityLedger, OwnerFilter } from './capacity.js';
import { HutchError } from './errors.js';
import type { Caller, ResourceLimits } from './tenancy.js';

/**
 * Quotas: what a tenant (and, inside it, one API key) may hold. Checked against the capacity
 * ledger, which records every live sandbox with its tenant and key, so a check and the
 * reservation that follows it happen without an await in between (concurrent creates cannot both
 * take the last unit). Over a quota is a 429 naming the tenant or key, the quota and the use, with
 * Retry-After. Warm-pool members count once claimed; a pool may not hold more than its tenant's
 * quota allows (checkPool).
 */
export interface QuotaSource {
  /** A tenant's quotas (null: unlimited); synchronous (the tenant service keeps them in memory). */
  quotas(tenant: string): ResourceLimits | null;
  /** MiB of volumes the tenant has. */
  volumeMiB(tenant: string): Promise<number>;
}

const RATE_WINDOW_MS = 60_000;
const RETRY_AFTER_SECONDS = 5;

interface Scope {
  /** How the refusal names it: `tenant "a" quota` or `API key limit`. */
  label: string;
  /** Its admission-reason prefix (metrics): `tenant_quota` or `key_limit`. */
  code: 'tenant_quota' | 'key_limit';
  filter: OwnerFilter;
  limits: ResourceLimits;
  /** Key of its create times (createsPerMinute). */
  rateKey: string;
  /** Storage the scope holds outside sandboxes (a tenant's volumes). */
  extraDiskMiB: number;
}

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2));

export class Quotas {
  private readonly recentCreates = new Map<string, number[]>();

  constructor(
    private readonly ledger: CapacityLedger,
    private readonly source: QuotaSource,
  ) {}

  /**
   * Storage a tenant's volumes take, when its quota caps storage (0 otherwise, without a read).
   * Read before the synchronous checks below.
   */
  async volumeUse(tenant: string): Promise<number> {
    return this.source.quotas(tenant)?.diskMiB === undefined ? 0 : this.source.volumeMiB(tenant);
  }

  /** Throws 429 when one more sandbox of `want` would pass the tenant's quota or the key's limit. */
  checkCreate(caller: Caller, want: Allocation, tenantVolumeMiB: number): void {
    for (const scope of this.scopes(caller, tenantVolumeMiB)) {
      const { limits, label } = scope;
      if (limits.createsPerMinute !== undefined) {
        const recent = this.recent(scope.rateKey);
        if (recent.length >= limits.createsPerMinute) {
          const wait = Math.max(1, Math.ceil((RATE_WINDOW_MS - (Date.now() - recent[0]!)) / 1000));
          throw new HutchError(
            'resource_exhausted',
            `${label} reached: createsPerMinute ${limits.createsPerMinute} (${recent.length} in the last minute)`,
            { retryAfterSeconds: wait, admissionReason: `${scope.code}_creates_per_minute` },
          );
        }
      }
      const count = this.ledger.count(scope.filter);
      if (limits.maxSandboxes !== undefined && count >= limits.maxSandboxes)
        refuse(scope, 'sandboxes', `maxSandboxes ${limits.maxSandboxes} (it has ${count}; delete some first)`);
      this.checkResources(scope, want, ['cpu', 'memoryMiB', 'diskMiB']);
    }
  }

  /**
   * Counts a create for the per-minute quotas (call once the create is admitted). Counted whether
   * or not a quota is set, so one set later applies to the minute before it too.
   */
  noteCreate(caller: Caller): void {
    const now = Date.now();
    for (const rateKey of [`tenant:${caller.tenant}`, `key:${caller.keyId}`]) {
      const recent = this.recent(rateKey);
      recent.push(now);
      this.recentCreates.set(rateKey, recent);
    }
  }

  /** A stopped or paused sandbox of the tenant starting again needs its cpu and memory within the quota. */
  checkWake(tenant: string, want: Allocation): void {
    const limits = this.source.quotas(tenant);
    if (!limits) return;
    this.checkResources(this.tenantScope(tenant, limits, 0), want, ['cpu', 'memoryMiB']);
  }

  /** A new volume of the tenant must fit its storage quota with its sandboxes' disks and other volumes. */
  checkVolume(tenant: string, sizeMiB: number, volumeMiB: number): void {
    const limits = this.source.quotas(tenant);
    if (!limits) return;
    this.checkResources(this.tenantScope(tenant, limits, volumeMiB), { cpu: 0, memoryMiB: 0, pids: 0, diskMiB: sizeMiB }, ['diskMiB']);
  }

  /** A warm pool may not hold more sandboxes than its tenant's quota allows at once. */
  checkPool(tenant: string, spec: { max: number; cpu: number; memoryMiB: number; diskMiB: number }): void {
    const limits = this.source.quotas(tenant);
    if (!limits) return;
    const over = (field: string, limit: number, wants: number): never => {
      throw new HutchError(
        'invalid_argument',
        `max: a pool of ${spec.max} would hold ${fmt(wants)} ${field}, above tenant "${tenant}" quota ${field} ${fmt(limit)}`,
      );
    };
    if (limits.maxSandboxes !== undefined && spec.max > limits.maxSandboxes) over('maxSandboxes', limits.maxSandboxes, spec.max);
    for (const field of ['cpu', 'memoryMiB', 'diskMiB'] as const) {
      const limit = limits[field];
      if (limit !== undefined && spec.max * spec[field] > limit) over(field, limit, spec.max * spec[field]);
    }
  }

  private scopes(caller: Caller, tenantVolumeMiB: number): Scope[] {
    const scopes: Scope[] = [];
    const quotas = this.source.quotas(caller.tenant);
    if (quotas) scopes.push(this.tenantScope(caller.tenant, quotas, tenantVolumeMiB));
    if (caller.limits)
      scopes.push({
        label: 'API key limit',
        code: 'key_limit',
        filter: { key: caller.keyId },
        limits: caller.limits,
        rateKey: `key:${caller.keyId}`,
        extraDiskMiB: 0,
      });
    return scopes;
  }

  private tenantScope(tenant: string, limits: ResourceLimits, volumeMiB: number): Scope {
    return {
      label: `tenant "${tenant}" quota`,
      code: 'tenant_quota',
      filter: { tenant },
      limits,
      rateKey: `tenant:${tenant}`,
      extraDiskMiB: volumeMiB,
    };
  }

  private checkResources(scope: Scope, want: Allocation, fields: Array<'cpu' | 'memoryMiB' | 'diskMiB'>): void {
    const used = this.ledger.allocated(scope.filter);
    for (const field of fields) {
      const limit = scope.limits[field];
      if (limit === undefined) continue;
      const extra = field === 'diskMiB' ? scope.extraDiskMiB : 0;
      if (used[field] + extra + want[field] > limit + 1e-9) {
        const held =
          extra > 0 ? `its sandboxes use ${fmt(used[field])} and its volumes ${fmt(extra)}` : `its sandboxes use ${fmt(used[field])}`;
        refuse(scope, REASON[field], `${field} ${fmt(limit)} (${held}, this asks ${fmt(want[field])})`);
      }
    }
  }

  private recent(rateKey: string): number[] {
    const now = Date.now();
    return (this.recentCreates.get(rateKey) ?? []).filter((t) => now - t < RATE_WINDOW_MS);
  }
}

const REASON = { cpu: 'cpu', memoryMiB: 'memory', diskMiB: 'disk' } as const;

function refuse(scope: Scope, resource: string, what: string): never {
  throw new HutchError('resource_exhausted', `${scope.label} reached: ${what}`, {
    retryAfterSeconds: RETRY_AFTER_SECONDS,
    admissionReason: `${scope.code}_${resource}`,
  });
}
