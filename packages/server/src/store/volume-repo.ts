import type { SnapshotRecord, SnapshotStore, VolumeRecord, VolumeStore } from '../core/stores.js';
import type { Db, SnapshotTable, VolumeTable } from './database.js';

/** SQLite implementations of the volume and snapshot stores. */
export class SqliteVolumeStore implements VolumeStore {
  constructor(private readonly db: Db) {}

  async insert(r: VolumeRecord): Promise<void> {
    await this.db
      .insertInto('volumes')
      .values({
        tenant: r.tenant,
        name: r.name,
        size_mib: r.sizeMiB,
        labels: JSON.stringify(r.labels),
        created_at: r.createdAt.getTime(),
      })
      .execute();
  }

  async get(tenant: string, name: string): Promise<VolumeRecord | null> {
    const row = await this.db.selectFrom('volumes').selectAll().where('tenant', '=', tenant).where('name', '=', name).executeTakeFirst();
    return row ? toVolume(row) : null;
  }

  async list(tenant: string | null): Promise<VolumeRecord[]> {
    let q = this.db.selectFrom('volumes').selectAll();
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    return (await q.orderBy('created_at', 'asc').execute()).map(toVolume);
  }

  async remove(tenant: string, name: string): Promise<void> {
    await this.db.deleteFrom('volumes').where('tenant', '=', tenant).where('name', '=', name).execute();
  }
}

function toVolume(row: VolumeTable): VolumeRecord {
  return {
    tenant: row.tenant,
    name: row.name,
    sizeMiB: row.size_mib,
    labels: JSON.parse(row.labels) as Record<string, string>,
    createdAt: new Date(row.created_at),
  };
}

export class SqliteSnapshotStore implements SnapshotStore {
  constructor(private readonly db: Db) {}

  async insert(r: SnapshotRecord): Promise<void> {
    await this.db
      .insertInto('snapshots')
      .values({
        id: r.id,
        tenant: r.tenant,
        source_sandbox: r.sourceSandbox,
        template: r.template,
        template_digest: r.templateDigest,
        layers: JSON.stringify(r.layers),
        isolation: r.isolation,
        default_user: r.defaultUser,
        memory: r.memory ? 1 : 0,
        spec: r.spec ? JSON.stringify(r.spec) : null,
        size_bytes: r.sizeBytes,
        metadata: JSON.stringify(r.metadata),
        created_at: r.createdAt.getTime(),
      })
      .execute();
  }

  async get(id: string): Promise<SnapshotRecord | null> {
    const row = await this.db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toSnapshot(row) : null;
  }

  async list(tenant: string | null): Promise<SnapshotRecord[]> {
    let q = this.db.selectFrom('snapshots').selectAll();
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    return (await q.orderBy('created_at', 'asc').execute()).map(toSnapshot);
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom('snapshots').where('id', '=', id).execute();
  }
}

function toSnapshot(row: SnapshotTable): SnapshotRecord {
  return {
    id: row.id,
    tenant: row.tenant,
    sourceSandbox: row.source_sandbox,
    template: row.template,
    templateDigest: row.template_digest,
    layers: JSON.parse(row.layers) as string[],
    isolation: row.isolation as SnapshotRecord['isolation'],
    defaultUser: row.default_user,
    memory: row.memory === 1,
    spec: row.spec ? (JSON.parse(row.spec) as SnapshotRecord['spec']) : null,
    sizeBytes: row.size_bytes,
    metadata: JSON.parse(row.metadata) as Record<string, string>,
    createdAt: new Date(row.created_at),
  };
}
