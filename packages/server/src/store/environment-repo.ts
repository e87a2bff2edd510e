import type { EnvironmentPatch, EnvironmentRecord, EnvironmentState, EnvironmentStore } from '../core/environment.js';
import type { Db, EnvironmentTable } from './database.js';

function toRecord(r: EnvironmentTable): EnvironmentRecord {
  return {
    id: r.id,
    tenant: r.tenant,
    owner: r.owner,
    name: r.name,
    state: r.state as EnvironmentState,
    error: r.error,
    source: JSON.parse(r.source) as EnvironmentRecord['source'],
    gitSha: r.git_sha,
    prNumber: r.pr_number,
    profiles: JSON.parse(r.profiles) as string[],
    variables: JSON.parse(r.variables) as Record<string, string>,
    url: r.url,
    services: JSON.parse(r.services) as EnvironmentRecord['services'],
    volumes: JSON.parse(r.volumes) as EnvironmentRecord['volumes'],
    warnings: JSON.parse(r.warnings) as string[],
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}

/** SQLite implementation of the environment records (lists and maps as JSON columns). */
export class SqliteEnvironmentStore implements EnvironmentStore {
  constructor(private readonly db: Db) {}

  async insert(e: EnvironmentRecord): Promise<void> {
    await this.db
      .insertInto('environments')
      .values({
        id: e.id,
        tenant: e.tenant,
        owner: e.owner,
        name: e.name,
        state: e.state,
        error: e.error,
        source: JSON.stringify(e.source),
        git_sha: e.gitSha,
        pr_number: e.prNumber,
        profiles: JSON.stringify(e.profiles),
        variables: JSON.stringify(e.variables),
        url: e.url,
        services: JSON.stringify(e.services),
        volumes: JSON.stringify(e.volumes),
        warnings: JSON.stringify(e.warnings),
        created_at: e.createdAt.getTime(),
        updated_at: e.updatedAt.getTime(),
      })
      .execute();
  }

  async get(id: string): Promise<EnvironmentRecord | null> {
    const row = await this.db.selectFrom('environments').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async update(id: string, patch: EnvironmentPatch): Promise<void> {
    const values: Partial<EnvironmentTable> = { updated_at: Date.now() };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.error !== undefined) values.error = patch.error;
    if (patch.name !== undefined) values.name = patch.name;
    if (patch.url !== undefined) values.url = patch.url;
    if (patch.gitSha !== undefined) values.git_sha = patch.gitSha;
    if (patch.services !== undefined) values.services = JSON.stringify(patch.services);
    if (patch.volumes !== undefined) values.volumes = JSON.stringify(patch.volumes);
    if (patch.warnings !== undefined) values.warnings = JSON.stringify(patch.warnings);
    await this.db.updateTable('environments').set(values).where('id', '=', id).execute();
  }

  async list(tenant: string | null, states?: EnvironmentState[]): Promise<EnvironmentRecord[]> {
    let q = this.db.selectFrom('environments').selectAll();
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    q = states && states.length > 0 ? q.where('state', 'in', states) : q.where('state', '!=', 'deleted');
    return (await q.orderBy('created_at', 'asc').execute()).map(toRecord);
  }
}
