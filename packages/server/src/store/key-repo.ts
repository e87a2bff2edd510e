import { createHash, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, ApiKeyStore, KeyLimits, MetaStore } from '../core/stores.js';
import type { Db } from './database.js';

const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');

function parseLimits(text: string | null): KeyLimits | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as KeyLimits;
  } catch {
    return null;
  }
}

export class SqliteApiKeyStore implements ApiKeyStore {
  /** Verified keys are cached by hash so the hot path does not touch SQLite on every call. */
  private readonly cache = new Map<string, ApiKeyRecord>();

  constructor(private readonly db: Db) {}

  async insert(key: string, record: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: record.id,
        hash: hashKey(key),
        name: record.name,
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
    const cached = this.cache.get(hash);
    if (cached) return cached;
    const row = await this.db
      .selectFrom('api_keys')
      .selectAll()
      .where('hash', '=', hash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    // The lookup is by hash, so timing reveals nothing about the key; compare again in constant time anyway.
    if (!row || !timingSafeEqual(Buffer.from(row.hash), Buffer.from(hash))) return null;
    const record: ApiKeyRecord = {
      id: row.id,
      name: row.name,
      role: 'admin',
      createdAt: new Date(row.created_at),
      limits: parseLimits(row.limits),
    };
    await this.db.updateTable('api_keys').set({ last_used_at: Date.now() }).where('id', '=', row.id).execute();
    this.cache.set(hash, record);
    return record;
  }

  async list(): Promise<Array<ApiKeyRecord & { lastUsedAt: Date | null }>> {
    const rows = await this.db.selectFrom('api_keys').selectAll().where('revoked_at', 'is', null).orderBy('created_at', 'asc').execute();
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      role: 'admin' as const,
      createdAt: new Date(r.created_at),
      limits: parseLimits(r.limits),
      lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at),
    }));
  }

  async setLimits(id: string, limits: KeyLimits | null): Promise<boolean> {
    const result = await this.db
      .updateTable('api_keys')
      .set({ limits: limits ? JSON.stringify(limits) : null })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    // Cached verifications carry the old limits.
    for (const [hash, cached] of this.cache) if (cached.id === id) this.cache.set(hash, { ...cached, limits });
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
