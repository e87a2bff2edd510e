import { conflict, invalidArgument, isDuplicateKey, notFound } from './errors.js';
import type { KeyService } from './key-service.js';
import type { Logger } from './logger.js';
import type { PoolService } from './pool-service.js';
import type { QuotaSource } from './quotas.js';
import type { SandboxService } from './sandbox-service.js';
import type { SecretService } from './secret-service.js';
import type { SnapshotService } from './snapshot-service.js';
import type { TenantRecord, TenantStore } from './stores.js';
import { type Caller, DEFAULT_TENANT, isTenantName, requireRole, type ResourceLimits, SYSTEM_CALLER } from './tenancy.js';
import type { VolumeService } from './volume-service.js';

/** What a tenant holds now, against its quotas. */
export interface TenantUsage {
  sandboxes: number;
  /** Of its running sandboxes. */
  cpu: number;
  memoryMiB: number;
  /** Its sandboxes' disks and its volumes. */
  diskMiB: number;
  volumes: number;
  snapshots: number;
  pools: number;
  keys: number;
}

export interface TenantView extends TenantRecord {
  usage: TenantUsage;
}

const SINGULAR = { sandboxes: 'sandbox', volumes: 'volume', snapshots: 'snapshot', pools: 'pool' } as const;

/** The services a tenant's deletion goes through (wired after construction). */
export interface TenantContents {
  sandboxes: SandboxService;
  volumes: VolumeService;
  snapshots: SnapshotService;
  pools: PoolService;
  keys: KeyService;
  secrets: SecretService;
  /** The capacity ledger's view of a tenant's sandboxes. */
  allocated(tenant: string): { cpu: number; memoryMiB: number; diskMiB: number };
}

/**
 * Tenants: created, listed, given quotas and deleted by admins. Quotas are kept in memory too, so
 * admission reads them without a store round trip (QuotaSource). A tenant that still owns
 * sandboxes, volumes, snapshots or pools is deleted only with `force` (which deletes them); its
 * keys are revoked either way, and the default tenant is never deleted.
 */
export class TenantService implements QuotaSource {
  private readonly cache = new Map<string, TenantRecord>();
  contents: TenantContents | null = null;

  constructor(
    private readonly store: TenantStore,
    private readonly log: Logger,
  ) {}

  /** Reads every tenant (at start, and periodically when several replicas share the store). */
  async load(): Promise<void> {
    const fresh = await this.store.list();
    this.cache.clear();
    for (const t of fresh) this.cache.set(t.name, t);
  }

  quotas(tenant: string): ResourceLimits | null {
    return this.cache.get(tenant)?.quotas ?? null;
  }

  async volumeMiB(tenant: string): Promise<number> {
    return this.wired().volumes.totalMiB(tenant);
  }

  /** The tenant, or 404. */
  async require(name: string): Promise<TenantRecord> {
    const record = this.cache.get(name) ?? (await this.store.get(name));
    if (!record) throw notFound(`tenant ${name.slice(0, 70)} not found`);
    return record;
  }

  async create(caller: Caller, input: { name: string; quotas?: ResourceLimits | null }): Promise<TenantView> {
    requireRole(caller, 'admin', 'managing tenants');
    if (!isTenantName(input.name)) throw invalidArgument(`name: "${input.name.slice(0, 70)}" must be 1-63 characters a-z, 0-9 and -`);
    if (this.cache.has(input.name) || (await this.store.get(input.name))) throw conflict(`tenant ${input.name} already exists`);
    const record: TenantRecord = { name: input.name, quotas: input.quotas ?? null, createdAt: new Date() };
    try {
      await this.store.insert(record);
    } catch (err) {
      if (isDuplicateKey(err)) throw conflict(`tenant ${input.name} already exists`);
      throw err;
    }
    this.cache.set(record.name, record);
    this.log.info({ tenant: record.name, quotas: record.quotas, by: caller.keyId }, 'tenant created');
    return this.view(record);
  }

  async list(caller: Caller): Promise<TenantView[]> {
    requireRole(caller, 'admin', 'managing tenants');
    return Promise.all((await this.store.list()).map((t) => this.view(t)));
  }

  async get(caller: Caller, name: string): Promise<TenantView> {
    requireRole(caller, 'admin', 'managing tenants');
    return this.view(await this.require(name));
  }

  /** Replaces a tenant's quotas (null: unlimited); applies to its next creates. */
  async setQuotas(caller: Caller, name: string, quotas: ResourceLimits | null): Promise<TenantView> {
    requireRole(caller, 'admin', 'managing tenants');
    const record = await this.require(name);
    await this.store.setQuotas(name, quotas);
    const updated = { ...record, quotas };
    this.cache.set(name, updated);
    this.log.info({ tenant: name, quotas, by: caller.keyId }, 'tenant quotas set');
    return this.view(updated);
  }

  /**
   * Deletes a tenant. Without `force`, 409 while it owns sandboxes, volumes, snapshots or pools;
   * with it, those are deleted first. Its keys are revoked (ending their connections) before
   * anything else goes, so nothing new appears meanwhile; its secrets go last (a tenant made
   * later with the same name starts without them).
   */
  async delete(caller: Caller, name: string, options: { force?: boolean } = {}): Promise<{ deleted: Record<string, number> }> {
    requireRole(caller, 'admin', 'managing tenants');
    if (name === DEFAULT_TENANT) throw conflict(`the ${DEFAULT_TENANT} tenant cannot be deleted`);
    await this.require(name);
    const c = this.wired();
    const usage = await this.usage(name);
    const held = (['sandboxes', 'volumes', 'snapshots', 'pools'] as const).filter((k) => usage[k] > 0);
    if (held.length > 0 && !options.force)
      throw conflict(
        `tenant ${name} still owns ${held.map((k) => `${usage[k]} ${usage[k] === 1 ? SINGULAR[k] : k}`).join(', ')}; ` +
          'delete them first, or delete the tenant with ?force=true (which deletes them)',
      );
    const keys = await c.keys.revokeTenant(name);
    for (const p of c.pools.list(name)) await c.pools.delete(name, p.name);
    const sandboxes = await c.sandboxes.list({ tenant: name });
    for (const s of sandboxes) await c.sandboxes.delete(s.id).catch((err: unknown) => this.failed(name, s.id, err));
    const snapshots = await c.snapshots.list(name);
    for (const s of snapshots) await c.snapshots.delete(s.id).catch((err: unknown) => this.failed(name, s.id, err));
    const volumes = await c.volumes.list(name);
    for (const v of volumes) await c.volumes.delete(name, v.name).catch((err: unknown) => this.failed(name, v.name, err));
    const left = await this.usage(name);
    if (left.sandboxes + left.snapshots + left.volumes > 0)
      throw conflict(`tenant ${name}: some of its objects could not be deleted (see the server log); its keys are revoked; retry`);
    const secrets = await c.secrets.deleteAll(name);
    await this.store.remove(name);
    this.cache.delete(name);
    const deleted = {
      keys,
      pools: usage.pools,
      sandboxes: sandboxes.length,
      snapshots: snapshots.length,
      volumes: volumes.length,
      secrets,
    };
    this.log.info({ tenant: name, deleted, by: caller.keyId }, 'tenant deleted');
    return { deleted };
  }

  private failed(tenant: string, what: string, err: unknown): void {
    this.log.error({ tenant, object: what, err: (err as Error).message }, 'tenant delete: could not delete an object');
  }

  private async view(record: TenantRecord): Promise<TenantView> {
    return { ...record, usage: await this.usage(record.name) };
  }

  private async usage(name: string): Promise<TenantUsage> {
    const c = this.wired();
    const allocated = c.allocated(name);
    const volumes = await c.volumes.records(name);
    return {
      sandboxes: (await c.sandboxes.list({ tenant: name })).length,
      cpu: allocated.cpu,
      memoryMiB: allocated.memoryMiB,
      diskMiB: allocated.diskMiB + volumes.reduce((sum, v) => sum + v.sizeMiB, 0),
      volumes: volumes.length,
      snapshots: (await c.snapshots.list(name)).length,
      pools: c.pools.list(name).length,
      keys: (await c.keys.list(SYSTEM_CALLER, name)).length,
    };
  }

  private wired(): TenantContents {
    if (!this.contents) throw new Error('tenant service not wired');
    return this.contents;
  }
}
