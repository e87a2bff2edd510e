import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, ApiKeyStore, KeyLimits, MetaStore } from '../core/stores.js';
import { ROLES, type Role } from '../core/tenancy.js';
import type { ApiKeyTable, Db } from './database.js';

/**
 * Keys are stored as SHA-256 digests, never in plain text. A fast hash is enough here, unlike for
 * passwords: every key is at least 160 random bits (core/key-service.ts), so nobody can brute-force a
 * digest back to its key, and a slow hash (bcrypt, argon2) would only add milliseconds to every
 * request. Lookups go by digest; the lookup's timing depends on the digest of what the client
 * sent, which tells it nothing about any stored key, and the final comparison is constant-time.
 */
const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');

/** A verified key is read from the store again after this long (several replicas share the store). */
const CACHE_MAX_AGE_MS = 5_000;

/** Last-used times are written at most this often per key (a busy key costs one write a minute). */
const LAST_USED_EVERY_MS = 60_000;

function parseLimits(text: string | null): KeyLimits | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as KeyLimits;
  } catch {
    return null;
  }
}

function toRecord(row: ApiKeyTable): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    tenant: row.tenant,
    // An unknown role in the column gives the least access.
    role: (ROLES as readonly string[]).includes(row.role) ? (row.role as Role) : 'read-only',
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at),
    limits: parseLimits(row.limits),
  };
}

export class SqliteApiKeyStore implements ApiKeyStore {
  /** Verified keys by digest, so the hot path does not touch the store on every call. Revocation evicts. */
  private readonly cache = new Map<string, ApiKeyRecord>();
  /** When each cached verification was read from the store. */
  private readonly cachedAt = new Map<string, number>();

  constructor(private readonly db: Db) {}

  async insert(key: string, record: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: record.id,
        hash: hashKey(key),
        name: record.name,
        tenant: record.tenant,
        role: record.role,
        created_at: record.createdAt.getTime(),
        last_used_at: null,
        revoked_at: null,
        limits: record.limits ? JSON.stringify(record.limits) : null,
      })
      .execute();
  }

  async verify(key: string): Promise<ApiKeyRecord | null> {
    const hash = hashKey(key);
    const now = Date.now();
    let record = this.cache.get(hash) ?? null;
    // Read again after CACHE_MAX_AGE_MS: another replica sharing the store may have revoked the
    // key or changed its limits (this replica's own revocations evict at once).
    const stale = record !== null && now - (this.cachedAt.get(hash) ?? 0) >= CACHE_MAX_AGE_MS;
    if (!record || stale) {
      const seen = record?.lastUsedAt ?? null;
      this.cache.delete(hash);
      const row = await this.db
        .selectFrom('api_keys')
        .selectAll()
        .where('hash', '=', hash)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (!row || !timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash))) return null;
      record = toRecord(row);
      if (seen && (!record.lastUsedAt || seen > record.lastUsedAt)) record.lastUsedAt = seen;
      // A revoke may have landed while the row was read: only cache what is still valid.
      if (this.revokedIds.has(record.id)) return null;
      this.cache.set(hash, record);
      this.cachedAt.set(hash, now);
    }
    if (record.lastUsedAt === null || now - record.lastUsedAt.getTime() >= LAST_USED_EVERY_MS) {
      record.lastUsedAt = new Date(now);
      await this.db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', record.id).execute();
    }
    return record;
  }

  /** Ids revoked since start (a verify racing a revoke must not cache the key again). */
  private readonly revokedIds = new Set<string>();

  async isRevoked(key: string): Promise<boolean> {
    const row = await this.db.selectFrom('api_keys').select('revoked_at').where('hash', '=', hashKey(key)).executeTakeFirst();
    return row !== undefined && row.revoked_at !== null;
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const row = await this.db.selectFrom('api_keys').selectAll().where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return row ? this.fresh(toRecord(row)) : null;
  }

  async list(tenant: string | null): Promise<ApiKeyRecord[]> {
    let q = this.db.selectFrom('api_keys').selectAll().where('revoked_at', 'is', null);
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    const rows = await q.orderBy('created_at', 'asc').execute();
    return rows.map((r) => this.fresh(toRecord(r)));
  }

  /** A row's record with the last use seen in memory (written to the store at most once a minute). */
  private fresh(record: ApiKeyRecord): ApiKeyRecord {
    for (const cached of this.cache.values()) {
      if (cached.id === record.id && cached.lastUsedAt && (!record.lastUsedAt || cached.lastUsedAt > record.lastUsedAt))
        return { ...record, lastUsedAt: cached.lastUsedAt };
    }
    return record;
  }

  async setLimits(id: string, limits: KeyLimits | null): Promise<boolean> {
    const result = await this.db
      .updateTable('api_keys')
      .set({ limits: limits ? JSON.stringify(limits) : null })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    // Cached verifications carry the old limits.
    for (const cached of this.cache.values()) if (cached.id === id) cached.limits = limits;
    return Number(result.numUpdatedRows) > 0;
  }

  async revoke(id: string): Promise<boolean> {
    this.revokedIds.add(id);
    for (const [hash, cached] of this.cache) {
      if (cached.id !== id) continue;
      this.cache.delete(hash);
      this.cachedAt.delete(hash);
    }
    const result = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: Date.now() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async countAdmins(): Promise<number> {
    const row = await this.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('role', '=', 'admin')
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}

export class SqliteMetaStore implements MetaStore {
  constructor(private readonly db: Db) {}

  async get(key: string): Promise<string | null> {
    const row = await this.db.selectFrom('meta').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('meta')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute();
  }
}
