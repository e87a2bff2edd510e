import type {
  DeliveryFilter,
  DeliveryOutcome,
  DeliveryPatch,
  DeliveryRecord,
  DeliveryStore,
  HookProvider,
  PreviewPatch,
  PreviewRecord,
  PreviewState,
  PreviewStore,
  ProjectRecord,
  ProjectStore,
} from '../core/hooks.js';
import type { Db, HookDeliveryTable, HookProjectTable, PreviewTable } from './database.js';

/** SQL stores of webhook projects, deliveries and previews (migration 0011_hooks). */

type DeliveryRow = Omit<HookDeliveryTable, 'id'> & { id: number };

function toDelivery(r: DeliveryRow): DeliveryRecord {
  return {
    id: r.id,
    provider: r.provider as HookProvider,
    deliveryId: r.delivery_id,
    event: r.event,
    action: r.action,
    repository: r.repository,
    number: r.number,
    sha: r.sha,
    signatureOk: r.signature_ok === 1,
    duplicateOf: r.duplicate_of,
    outcome: r.outcome as DeliveryOutcome,
    reason: r.reason,
    targetKey: r.target_key,
    environmentId: r.environment_id,
    tenant: r.tenant,
    feedback: r.feedback,
    time: new Date(Number(r.time)),
    updatedAt: new Date(Number(r.updated_at)),
  };
}

export class SqlDeliveryStore implements DeliveryStore {
  constructor(private readonly db: Db) {}

  async record(d: Omit<DeliveryRecord, 'id' | 'duplicateOf' | 'updatedAt'>): Promise<DeliveryRecord> {
    return this.db.transaction().execute(async (trx) => {
      let duplicateOf: number | null = null;
      if (d.signatureOk && d.deliveryId !== null) {
        const first = await trx
          .selectFrom('hook_deliveries')
          .select('id')
          .where('provider', '=', d.provider)
          .where('delivery_id', '=', d.deliveryId)
          .where('signature_ok', '=', 1)
          .where('duplicate_of', 'is', null)
          .executeTakeFirst();
        if (first) duplicateOf = first.id;
      }
      const now = Date.now();
      const row = {
        provider: d.provider,
        delivery_id: d.deliveryId,
        event: d.event,
        action: d.action,
        repository: d.repository,
        number: d.number,
        sha: d.sha,
        signature_ok: d.signatureOk ? 1 : 0,
        duplicate_of: duplicateOf,
        outcome: duplicateOf !== null ? 'duplicate' : d.outcome,
        reason: duplicateOf !== null ? `a replay of delivery ${duplicateOf} (same delivery id): nothing done` : d.reason,
        target_key: d.targetKey,
        environment_id: d.environmentId,
        tenant: d.tenant,
        feedback: d.feedback,
        time: d.time.getTime(),
        updated_at: now,
      };
      const inserted = await trx.insertInto('hook_deliveries').values(row).returning('id').executeTakeFirstOrThrow();
      return toDelivery({ ...row, id: Number(inserted.id) });
    });
  }

  async get(id: number): Promise<DeliveryRecord | null> {
    const row = await this.db.selectFrom('hook_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toDelivery(row as DeliveryRow) : null;
  }

  async update(id: number, patch: DeliveryPatch): Promise<void> {
    const values: Partial<DeliveryRow> = { updated_at: Date.now() };
    if (patch.outcome !== undefined) values.outcome = patch.outcome;
    if (patch.reason !== undefined) values.reason = patch.reason;
    if (patch.environmentId !== undefined) values.environment_id = patch.environmentId;
    if (patch.feedback !== undefined) values.feedback = patch.feedback;
    if (patch.tenant !== undefined) values.tenant = patch.tenant;
    if (patch.targetKey !== undefined) values.target_key = patch.targetKey;
    await this.db.updateTable('hook_deliveries').set(values).where('id', '=', id).execute();
  }

  async query(f: DeliveryFilter): Promise<DeliveryRecord[]> {
    let q = this.db.selectFrom('hook_deliveries').selectAll();
    if (f.tenant !== null) q = q.where('tenant', '=', f.tenant);
    if (f.provider !== undefined) q = q.where('provider', '=', f.provider);
    if (f.outcome !== undefined) q = q.where('outcome', '=', f.outcome);
    if (f.repository !== undefined) q = q.where('repository', '=', f.repository.toLowerCase());
    if (f.number !== undefined) q = q.where('number', '=', f.number);
    if (f.environmentId !== undefined) q = q.where('environment_id', '=', f.environmentId);
    if (f.targetKey !== undefined) q = q.where('target_key', '=', f.targetKey);
    if (f.since !== undefined) q = q.where('time', '>=', f.since.getTime());
    if (f.before !== undefined) q = q.where('id', '<', f.before);
    const rows = await q.orderBy('id', 'desc').limit(f.limit).execute();
    return rows.map((r) => toDelivery(r as DeliveryRow));
  }

  async prune(before: Date): Promise<number> {
    const result = await this.db.deleteFrom('hook_deliveries').where('time', '<', before.getTime()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

function toProject(r: HookProjectTable): ProjectRecord {
  return {
    id: r.id,
    provider: r.provider as HookProvider,
    repository: r.repository,
    tenant: r.tenant,
    cloneUrl: r.clone_url,
    branches: JSON.parse(r.branches) as string[],
    variables: JSON.parse(r.variables) as Record<string, string>,
    createdAt: new Date(Number(r.created_at)),
  };
}

export class SqlProjectStore implements ProjectStore {
  constructor(private readonly db: Db) {}

  async insert(p: ProjectRecord): Promise<void> {
    await this.db
      .insertInto('hook_projects')
      .values({
        id: p.id,
        provider: p.provider,
        repository: p.repository,
        tenant: p.tenant,
        clone_url: p.cloneUrl,
        branches: JSON.stringify(p.branches),
        variables: JSON.stringify(p.variables),
        created_at: p.createdAt.getTime(),
      })
      .execute();
  }

  async find(provider: HookProvider, repository: string): Promise<ProjectRecord | null> {
    const row = await this.db
      .selectFrom('hook_projects')
      .selectAll()
      .where('provider', '=', provider)
      .where('repository', '=', repository.toLowerCase())
      .executeTakeFirst();
    return row ? toProject(row) : null;
  }

  async get(id: string): Promise<ProjectRecord | null> {
    const row = await this.db.selectFrom('hook_projects').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toProject(row) : null;
  }

  async list(tenant: string | null): Promise<ProjectRecord[]> {
    let q = this.db.selectFrom('hook_projects').selectAll();
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    return (await q.orderBy('created_at', 'asc').execute()).map(toProject);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom('hook_projects').where('id', '=', id).execute();
  }
}

function toPreview(r: PreviewTable): PreviewRecord {
  return {
    key: r.key,
    provider: r.provider as HookProvider,
    repoId: r.repo_id,
    repository: r.repository,
    number: r.number,
    branch: r.branch,
    tenant: r.tenant,
    environmentId: r.environment_id,
    state: r.state as PreviewState,
    sha: r.sha,
    deployedSha: r.deployed_sha,
    cloneUrl: r.clone_url,
    fetchRef: r.fetch_ref,
    fork: r.fork === 1,
    approvedSha: r.approved_sha,
    labels: JSON.parse(r.labels) as string[],
    keep: r.keep === 1,
    commentId: r.comment_id,
    error: r.error,
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
  };
}

function previewColumns(p: PreviewPatch): Partial<PreviewTable> {
  const v: Partial<PreviewTable> = {};
  if (p.repository !== undefined) v.repository = p.repository;
  if (p.number !== undefined) v.number = p.number;
  if (p.branch !== undefined) v.branch = p.branch;
  if (p.tenant !== undefined) v.tenant = p.tenant;
  if (p.environmentId !== undefined) v.environment_id = p.environmentId;
  if (p.state !== undefined) v.state = p.state;
  if (p.sha !== undefined) v.sha = p.sha;
  if (p.deployedSha !== undefined) v.deployed_sha = p.deployedSha;
  if (p.cloneUrl !== undefined) v.clone_url = p.cloneUrl;
  if (p.fetchRef !== undefined) v.fetch_ref = p.fetchRef;
  if (p.fork !== undefined) v.fork = p.fork ? 1 : 0;
  if (p.approvedSha !== undefined) v.approved_sha = p.approvedSha;
  if (p.labels !== undefined) v.labels = JSON.stringify(p.labels);
  if (p.keep !== undefined) v.keep = p.keep ? 1 : 0;
  if (p.commentId !== undefined) v.comment_id = p.commentId;
  if (p.error !== undefined) v.error = p.error;
  return v;
}

export class SqlPreviewStore implements PreviewStore {
  constructor(private readonly db: Db) {}

  async upsert(p: PreviewRecord): Promise<void> {
    const columns = { ...previewColumns(p), updated_at: Date.now() } as Omit<PreviewTable, 'key' | 'provider' | 'repo_id' | 'created_at'>;
    await this.db
      .insertInto('previews')
      .values({ ...columns, key: p.key, provider: p.provider, repo_id: p.repoId, created_at: p.createdAt.getTime() })
      .onConflict((oc) => oc.column('key').doUpdateSet(columns))
      .execute();
  }

  async get(key: string): Promise<PreviewRecord | null> {
    const row = await this.db.selectFrom('previews').selectAll().where('key', '=', key).executeTakeFirst();
    return row ? toPreview(row) : null;
  }

  async update(key: string, patch: PreviewPatch): Promise<void> {
    await this.db
      .updateTable('previews')
      .set({ ...previewColumns(patch), updated_at: Date.now() })
      .where('key', '=', key)
      .execute();
  }

  async list(tenant: string | null): Promise<PreviewRecord[]> {
    let q = this.db.selectFrom('previews').selectAll().where('state', '!=', 'destroyed');
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    return (await q.orderBy('created_at', 'asc').execute()).map(toPreview);
  }
}
