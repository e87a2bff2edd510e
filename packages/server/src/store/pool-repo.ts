import type { PoolDefinition, PoolStore } from '../core/pool-service.js';
import type { Db } from './database.js';

/** SQLite implementation of the warm-pool definitions (members live only in memory). */
export class SqlitePoolStore implements PoolStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<PoolDefinition[]> {
    const rows = await this.db.selectFrom('pools').selectAll().orderBy('tenant', 'asc').orderBy('name', 'asc').execute();
    return rows.map((r) => ({
      tenant: r.tenant,
      name: r.name,
      spec: JSON.parse(r.spec) as PoolDefinition['spec'],
      createdAt: new Date(r.created_at),
      updatedAt: new Date(r.updated_at),
    }));
  }

  async put(def: PoolDefinition): Promise<void> {
    const spec = JSON.stringify(def.spec);
    await this.db
      .insertInto('pools')
      .values({ tenant: def.tenant, name: def.name, spec, created_at: def.createdAt.getTime(), updated_at: def.updatedAt.getTime() })
      .onConflict((oc) => oc.columns(['tenant', 'name']).doUpdateSet({ spec, updated_at: def.updatedAt.getTime() }))
      .execute();
  }

  async remove(tenant: string, name: string): Promise<void> {
    await this.db.deleteFrom('pools').where('tenant', '=', tenant).where('name', '=', name).execute();
  }
}
