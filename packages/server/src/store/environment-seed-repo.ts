import type { SeedKey, SeedRecord, SeedStore } from '../core/environment-seeds.js';
import type { Db, EnvironmentSeedTable } from './database.js';

function toRecord(r: EnvironmentSeedTable): SeedRecord {
  return {
    tenant: r.tenant,
    project: r.project,
    baseRef: r.base_ref,
    volume: r.volume,
    inputsHash: r.inputs_hash,
    snapshotVolume: r.snapshot_volume,
    environment: r.environment,
    createdAt: new Date(Number(r.created_at)),
  };
}

/** SQLite implementation of the golden seed volumes (one row per tenant, project, base branch, Compose volume). */
export class SqliteSeedStore implements SeedStore {
  constructor(private readonly db: Db) {}

  async get(key: SeedKey): Promise<SeedRecord | null> {
    const row = await this.db
      .selectFrom('environment_seeds')
      .selectAll()
      .where('tenant', '=', key.tenant)
      .where('project', '=', key.project)
      .where('base_ref', '=', key.baseRef)
      .where('volume', '=', key.volume)
      .executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async put(s: SeedRecord): Promise<void> {
    const values = {
      tenant: s.tenant,
      project: s.project,
      base_ref: s.baseRef,
      volume: s.volume,
      inputs_hash: s.inputsHash,
      snapshot_volume: s.snapshotVolume,
      state: 'ready',
      environment: s.environment,
      created_at: s.createdAt.getTime(),
    };
    await this.db
      .insertInto('environment_seeds')
      .values(values)
      .onConflict((oc) =>
        oc.columns(['tenant', 'project', 'base_ref', 'volume']).doUpdateSet({
          inputs_hash: values.inputs_hash,
          snapshot_volume: values.snapshot_volume,
          state: values.state,
          environment: values.environment,
          created_at: values.created_at,
        }),
      )
      .execute();
  }

  async remove(key: SeedKey): Promise<void> {
    await this.db
      .deleteFrom('environment_seeds')
      .where('tenant', '=', key.tenant)
      .where('project', '=', key.project)
      .where('base_ref', '=', key.baseRef)
      .where('volume', '=', key.volume)
      .execute();
  }

  async list(tenant: string | null, filter: { project?: string; baseRef?: string } = {}): Promise<SeedRecord[]> {
    let q = this.db.selectFrom('environment_seeds').selectAll();
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    if (filter.project !== undefined) q = q.where('project', '=', filter.project);
    if (filter.baseRef !== undefined) q = q.where('base_ref', '=', filter.baseRef);
    return (await q.orderBy('created_at', 'asc').execute()).map(toRecord);
  }
}
