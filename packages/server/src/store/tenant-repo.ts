import type { TenantRecord, TenantStore } from '../core/stores.js';
import type { ResourceLimits } from '../core/tenancy.js';
import type { Db, TenantTable } from './database.js';

/** SQLite implementation of the tenant store. */
function toRecord(row: TenantTable): TenantRecord {
  let quotas: ResourceLimits | null = null;
  try {
    quotas = row.quotas ? (JSON.parse(row.quotas) as ResourceLimits) : null;
  } catch {
    quotas = null;
  }
  return { name: row.name, quotas, createdAt: new Date(row.created_at) };
}

export class SqliteTenantStore implements TenantStore {
  constructor(private readonly db: Db) {}

  async insert(r: TenantRecord): Promise<void> {
    await this.db
      .insertInto('tenants')
      .values({ name: r.name, quotas: r.quotas ? JSON.stringify(r.quotas) : null, created_at: r.createdAt.getTime() })
      .execute();
  }

  async get(name: string): Promise<TenantRecord | null> {
    const row = await this.db.selectFrom('tenants').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async list(): Promise<TenantRecord[]> {
    return (await this.db.selectFrom('tenants').selectAll().orderBy('created_at', 'asc').orderBy('name', 'asc').execute()).map(toRecord);
  }

  async setQuotas(name: string, quotas: ResourceLimits | null): Promise<boolean> {
    const result = await this.db
      .updateTable('tenants')
      .set({ quotas: quotas ? JSON.stringify(quotas) : null })
      .where('name', '=', name)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async remove(name: string): Promise<void> {
    await this.db.deleteFrom('tenants').where('name', '=', name).execute();
  }
}
