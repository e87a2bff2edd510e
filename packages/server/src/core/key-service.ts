import { randomBytes, randomUUID } from 'node:crypto';
import { conflict, HutchError, notFound } from './errors.js';
import type { Logger } from './logger.js';
import type { OpenStream, OpenStreams } from './open-streams.js';
import type { ApiKeyRecord, ApiKeyStore, KeyLimits } from './stores.js';
import { type Caller, listScope, rank, requireRole, requireVisible, type Role } from './tenancy.js';

/** A new API key: 192 random bits (see store/key-repo.ts for why a SHA-256 digest of it is safe to store). */
export function newApiKey(): string {
  return `hutch_${randomBytes(24).toString('hex')}`;
}

/** A key in E2B's shape (`e2b_<hex>`, 160 random bits): e2b SDKs before 2.46 refuse keys of any other form. */
export function newE2bShapedKey(): string {
  return `e2b_${randomBytes(20).toString('hex')}`;
}

export interface CreateKeyInput {
  /** Default: the caller's tenant. Only admins name another. */
  tenant?: string;
  /** Default `member`; never above the caller's own role. */
  role?: Role;
  name?: string;
  e2b?: boolean;
  limits?: KeyLimits;
}

/** What the key service needs to know of tenants. */
export interface TenantDirectory {
  /** Throws 404 when there is no such tenant. */
  require(name: string): Promise<unknown>;
}

/**
 * API keys: created for a tenant with a role (the secret is returned once and only its digest is
 * stored), listed, limited and revoked. Members manage the keys of their own tenant up to their
 * own role; admins any key. Revoking ends the key's open connections at once (H21).
 */
export class KeyService {
  constructor(
    private readonly store: ApiKeyStore,
    private readonly tenants: TenantDirectory,
    private readonly streams: OpenStreams,
    private readonly log: Logger,
  ) {}

  /** The key's record when it is valid and not revoked. */
  verify(key: string): Promise<ApiKeyRecord | null> {
    return this.store.verify(key);
  }

  /** Tracks a connection made with a key, for `revoke` to end. */
  track(keyId: string, close: () => void): OpenStream {
    return this.streams.track(keyId, close);
  }

  async create(caller: Caller, input: CreateKeyInput): Promise<{ record: ApiKeyRecord; key: string }> {
    requireRole(caller, 'member', 'creating API keys');
    const tenant = input.tenant ?? caller.tenant;
    if (tenant !== caller.tenant && caller.role !== 'admin') throw notFound(`tenant ${tenant} not found`);
    const role = input.role ?? 'member';
    if (rank(role) > rank(caller.role))
      throw new HutchError('permission_denied', `role: a ${caller.role} key cannot create a key with role ${role}`);
    await this.tenants.require(tenant);
    const key = input.e2b ? newE2bShapedKey() : newApiKey();
    const record: ApiKeyRecord = {
      id: randomUUID(),
      name: input.name ?? `${tenant}-${role}`,
      tenant,
      role,
      createdAt: new Date(),
      lastUsedAt: null,
      limits: input.limits ?? null,
    };
    await this.store.insert(key, record);
    this.log.info({ key: record.id, tenant, role, by: caller.keyId }, 'API key created');
    return { record, key };
  }

  /** Keys the caller may see: its tenant's, or for an admin every tenant's (`tenant` narrows). */
  list(caller: Caller, tenant?: string): Promise<ApiKeyRecord[]> {
    return this.store.list(listScope(caller, tenant));
  }

  async get(caller: Caller, id: string): Promise<ApiKeyRecord> {
    const record = id.length <= 64 ? await this.store.get(id) : null;
    if (!record) throw notFound(`API key ${id.slice(0, 64)} not found`);
    requireVisible(caller, record.tenant, `API key ${id}`);
    return record;
  }

  async setLimits(caller: Caller, id: string, limits: KeyLimits | null): Promise<ApiKeyRecord> {
    const record = await this.manageable(caller, id, 'changing limits of');
    if (!(await this.store.setLimits(id, limits))) throw notFound(`API key ${id} not found`);
    return { ...record, limits };
  }

  /**
   * Revokes a key: it stops working at once and its open connections end, except `keep` (the
   * request doing the revoking, which gets its answer). The last admin key cannot be revoked.
   */
  async revoke(caller: Caller, id: string, keep?: OpenStream): Promise<{ closed: number }> {
    const record = await this.manageable(caller, id, 'revoking');
    if (record.role === 'admin' && (await this.store.countAdmins()) <= 1)
      throw conflict(`API key ${id} is the last admin key; create another admin key before revoking it`);
    return { closed: await this.revokeRecord(record, keep) };
  }

  /** Revokes every key of a tenant (it is being deleted); refused when that would leave no admin key. */
  async revokeTenant(tenant: string): Promise<number> {
    const keys = await this.store.list(tenant);
    const admins = keys.filter((k) => k.role === 'admin').length;
    if (admins > 0 && (await this.store.countAdmins()) <= admins)
      throw conflict(`tenant ${tenant} holds the last admin keys; create an admin key in another tenant first`);
    for (const k of keys) await this.revokeRecord(k);
    return keys.length;
  }

  /** Admin keys that are not revoked (the first start makes one when there is none). */
  countAdmins(): Promise<number> {
    return this.store.countAdmins();
  }

  private async revokeRecord(record: ApiKeyRecord, keep?: OpenStream): Promise<number> {
    await this.store.revoke(record.id);
    const closed = this.streams.closeKey(record.id, keep);
    this.log.info({ key: record.id, tenant: record.tenant, closed }, 'API key revoked');
    return closed;
  }

  /** A key the caller may manage: visible, and of a role no higher than its own. */
  private async manageable(caller: Caller, id: string, action: string): Promise<ApiKeyRecord> {
    requireRole(caller, 'member', `${action} API keys`);
    const record = await this.get(caller, id);
    if (rank(record.role) > rank(caller.role))
      throw new HutchError('permission_denied', `${action} a ${record.role} key needs a key of that role (this key is ${caller.role})`);
    return record;
  }
}
