import type { SandboxRecord, SandboxState, Isolation } from '../core/sandbox.js';
import type { SandboxStore, SandboxFilter } from '../core/stores.js';
import type { Db, SandboxTable } from './database.js';
import type { NetworkSettings } from '../core/network.js';

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
    timeoutSeconds: row.timeout_seconds,
    env: JSON.parse(row.env) as Record<string, string>,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    idempotencyKey: row.idempotency_key,
    createdAt: new Date(row.created_at),
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at),
    deletedAt: row.deleted_at === null ? null : new Date(row.deleted_at),
    error: row.error,
    network: parseNetwork(row.network),
    accessToken: row.access_token,
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
    timeout_seconds: r.timeoutSeconds,
    env: JSON.stringify(r.env),
    metadata: JSON.stringify(r.metadata),
    idempotency_key: r.idempotencyKey,
    created_at: r.createdAt.getTime(),
    expires_at: r.expiresAt?.getTime() ?? null,
    deleted_at: r.deletedAt?.getTime() ?? null,
    error: r.error,
    network: JSON.stringify(r.network),
    access_token: r.accessToken,
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

  async getByIdempotencyKey(key: string): Promise<SandboxRecord | null> {
    const row = await this.db.selectFrom('sandboxes').selectAll().where('idempotency_key', '=', key).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async update(
    id: string,
    patch: Partial<Pick<SandboxRecord, 'state' | 'expiresAt' | 'deletedAt' | 'error' | 'timeoutSeconds' | 'network'>>,
  ): Promise<void> {
    const values: Partial<SandboxTable> = {};
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.expiresAt !== undefined) values.expires_at = patch.expiresAt?.getTime() ?? null;
    if (patch.deletedAt !== undefined) values.deleted_at = patch.deletedAt?.getTime() ?? null;
    if (patch.error !== undefined) values.error = patch.error;
    if (patch.timeoutSeconds !== undefined) values.timeout_seconds = patch.timeoutSeconds;
    if (patch.network !== undefined) values.network = JSON.stringify(patch.network);
    await this.db.updateTable('sandboxes').set(values).where('id', '=', id).execute();
  }

  async list(filter: SandboxFilter = {}): Promise<SandboxRecord[]> {
    let q = this.db.selectFrom('sandboxes').selectAll();
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

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('sandboxes')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}
