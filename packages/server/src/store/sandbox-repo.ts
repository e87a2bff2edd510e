import type { Isolation, Lifecycle, PauseMode, SandboxRecord, SandboxState, VolumeMount } from '../core/sandbox.js';
import type { SandboxPatch, SandboxStore, SandboxFilter } from '../core/stores.js';
import type { Db, SandboxTable } from './database.js';
import type { NetworkSettings } from '../core/network.js';
import type { SecretRef } from '../core/secrets.js';

/** SQLite implementation of the sandbox store. */
function toRecord(row: SandboxTable): SandboxRecord {
  return {
    id: row.id,
    state: row.state as SandboxState,
    template: row.template,
    templateDigest: row.template_digest,
    isolation: row.isolation as Isolation,
    cpu: row.cpu,
    memoryMiB: row.memory_mib,
    pids: row.pids,
    // 0 in the column: no TTL (persistent sandboxes).
    timeoutSeconds: row.timeout_seconds === 0 ? null : row.timeout_seconds,
    env: JSON.parse(row.env) as Record<string, string>,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    idempotencyKey: row.idempotency_key,
    createdAt: new Date(row.created_at),
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at),
    deletedAt: row.deleted_at === null ? null : new Date(row.deleted_at),
    error: row.error,
    network: parseNetwork(row.network),
    accessToken: row.access_token,
    diskMiB: row.disk_mib,
    lifecycle: parseLifecycle(row.lifecycle),
    volumes: parseJson<VolumeMount[]>(row.volumes, []),
    pauseMode: (row.pause_mode as PauseMode | null) ?? null,
    stateChangedAt: row.state_changed_at === null ? null : new Date(row.state_changed_at),
    owner: row.owner ?? null,
    tenant: row.tenant,
    secrets: parseJson<SecretRef[]>(row.secrets, []),
  };
}

function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

function parseLifecycle(text: string): Lifecycle {
  const l = parseJson<Partial<Lifecycle>>(text, {});
  return {
    persistent: l.persistent === true,
    onTimeout: l.onTimeout === 'pause' ? 'pause' : 'delete',
    idleTimeoutSeconds: l.idleTimeoutSeconds ?? null,
    autoDeleteAfterSeconds: l.autoDeleteAfterSeconds ?? null,
    autoResume: l.autoResume === true,
  };
}

function parseNetwork(text: string): NetworkSettings {
  try {
    const parsed = JSON.parse(text) as Partial<NetworkSettings>;
    return { egress: parsed.egress ?? 'none', public: parsed.public === true, publicPorts: parsed.publicPorts ?? [] };
  } catch {
    return { egress: 'none', public: false, publicPorts: [] };
  }
}

function toRow(r: SandboxRecord): SandboxTable {
  return {
    id: r.id,
    state: r.state,
    template: r.template,
    template_digest: r.templateDigest,
    isolation: r.isolation,
    cpu: r.cpu,
    memory_mib: r.memoryMiB,
    pids: r.pids,
    timeout_seconds: r.timeoutSeconds ?? 0,
    env: JSON.stringify(r.env),
    metadata: JSON.stringify(r.metadata),
    idempotency_key: r.idempotencyKey,
    created_at: r.createdAt.getTime(),
    expires_at: r.expiresAt?.getTime() ?? null,
    deleted_at: r.deletedAt?.getTime() ?? null,
    error: r.error,
    network: JSON.stringify(r.network),
    access_token: r.accessToken,
    disk_mib: r.diskMiB,
    lifecycle: JSON.stringify(r.lifecycle),
    volumes: JSON.stringify(r.volumes),
    pause_mode: r.pauseMode,
    state_changed_at: r.stateChangedAt?.getTime() ?? null,
    owner: r.owner,
    tenant: r.tenant,
    secrets: JSON.stringify(r.secrets),
  };
}

export class SqliteSandboxStore implements SandboxStore {
  constructor(private readonly db: Db) {}

  async insert(record: SandboxRecord): Promise<void> {
    await this.db.insertInto('sandboxes').values(toRow(record)).execute();
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const row = await this.db.selectFrom('sandboxes').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async getByIdempotencyKey(tenant: string, key: string): Promise<SandboxRecord | null> {
    const row = await this.db
      .selectFrom('sandboxes')
      .selectAll()
      .where('tenant', '=', tenant)
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async update(id: string, patch: SandboxPatch): Promise<void> {
    const values: Partial<SandboxTable> = {};
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.pauseMode !== undefined) values.pause_mode = patch.pauseMode;
    if (patch.stateChangedAt !== undefined) values.state_changed_at = patch.stateChangedAt?.getTime() ?? null;
    if (patch.lifecycle !== undefined) values.lifecycle = JSON.stringify(patch.lifecycle);
    if (patch.expiresAt !== undefined) values.expires_at = patch.expiresAt?.getTime() ?? null;
    if (patch.deletedAt !== undefined) values.deleted_at = patch.deletedAt?.getTime() ?? null;
    if (patch.error !== undefined) values.error = patch.error;
    if (patch.timeoutSeconds !== undefined) values.timeout_seconds = patch.timeoutSeconds ?? 0;
    if (patch.network !== undefined) values.network = JSON.stringify(patch.network);
    await this.db.updateTable('sandboxes').set(values).where('id', '=', id).execute();
  }

  async list(filter: SandboxFilter = {}): Promise<SandboxRecord[]> {
    let q = this.db.selectFrom('sandboxes').selectAll();
    if (filter.tenant !== undefined) q = q.where('tenant', '=', filter.tenant);
    if (filter.states && filter.states.length > 0) q = q.where('state', 'in', filter.states);
    if (filter.expiredBefore) q = q.where('expires_at', '<=', filter.expiredBefore.getTime());
    const rows = await q.orderBy('created_at', 'asc').execute();
    let records = rows.map(toRecord);
    if (filter.metadata) {
      const wanted = Object.entries(filter.metadata);
      records = records.filter((r) => wanted.every(([k, v]) => r.metadata[k] === v));
    }
    return records;
  }

  async usingVolume(tenant: string, name: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('sandboxes')
      .select(['id', 'volumes'])
      .where('tenant', '=', tenant)
      .where('state', '!=', 'deleted')
      .execute();
    return rows.filter((r) => parseJson<VolumeMount[]>(r.volumes, []).some((v) => v.name === name)).map((r) => r.id);
  }

  async usingTemplate(template: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('sandboxes')
      .select('id')
      .where('state', '!=', 'deleted')
      .where('template', '=', template)
      .execute();
    return rows.map((r) => r.id);
  }

  async countOf(tenant: string): Promise<number> {
    const row = await this.db
      .selectFrom('sandboxes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant', '=', tenant)
      .where('state', '!=', 'deleted')
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('sandboxes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}
