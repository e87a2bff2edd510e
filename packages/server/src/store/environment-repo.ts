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
    keep: r.keep === 1,
    ttl: {
      idleMs: r.idle_ttl_ms === null ? null : Number(r.idle_ttl_ms),
      deleteMs: r.delete_ttl_ms === null ? null : Number(r.delete_ttl_ms),
    },
    activeAt: new Date(Number(r.active_at ?? r.created_at)),
    sleptAt: r.slept_at === null ? null : new Date(Number(r.slept_at)),
    slug: r.slug ?? r.id,
    project: r.project,
    baseRef: r.base_ref,
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
        keep: e.keep ? 1 : 0,
        idle_ttl_ms: e.ttl.idleMs,
        delete_ttl_ms: e.ttl.deleteMs,
        active_at: e.activeAt.getTime(),
        slept_at: e.sleptAt?.getTime() ?? null,
        slug: e.slug,
        project: e.project,
        base_ref: e.baseRef,
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
    if (patch.keep !== undefined) values.keep = patch.keep ? 1 : 0;
    if (patch.ttl !== undefined) {
      values.idle_ttl_ms = patch.ttl.idleMs;
      values.delete_ttl_ms = patch.ttl.deleteMs;
    }
    if (patch.activeAt !== undefined) values.active_at = patch.activeAt.getTime();
    if (patch.sleptAt !== undefined) values.slept_at = patch.sleptAt?.getTime() ?? null;
    await this.db.updateTable('environments').set(values).where('id', '=', id).execute();
  }

  async list(tenant: string | null, states?: EnvironmentState[]): Promise<EnvironmentRecord[]> {
    let q = this.db.selectFrom('environments').selectAll();
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    q = states && states.length > 0 ? q.where('state', 'in', states) : q.where('state', '!=', 'deleted');
    return (await q.orderBy('created_at', 'asc').execute()).map(toRecord);
  }

  async bySlug(slug: string): Promise<EnvironmentRecord | null> {
    const row = await this.db
      .selectFrom('environments')
      .selectAll()
      .where('slug', '=', slug)
      .where('state', 'not in', ['deleting', 'deleted'])
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    return row ? toRecord(row) : null;
  }
}
