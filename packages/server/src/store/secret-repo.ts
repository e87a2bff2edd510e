import type { SecretRecord, StoredSecret } from '../core/secrets.js';
import type { SecretStore } from '../core/stores.js';
import type { Db, SecretTable } from './database.js';

/** SQLite implementation of the secret store (sealed values only: the cipher lives in core). */
export class SqliteSecretStore implements SecretStore {
  constructor(private readonly db: Db) {}

  async upsert(r: StoredSecret): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const existing = await tx
        .selectFrom('secrets')
        .select('created_at')
        .where('tenant', '=', r.tenant)
        .where('name', '=', r.name)
        .executeTakeFirst();
      await tx
        .insertInto('secrets')
        .values({
          tenant: r.tenant,
          name: r.name,
          nonce: r.nonce,
          ciphertext: r.ciphertext,
          size_bytes: r.sizeBytes,
          created_at: r.createdAt.getTime(),
          updated_at: r.updatedAt.getTime(),
        })
        .onConflict((oc) =>
          oc.columns(['tenant', 'name']).doUpdateSet({
            nonce: r.nonce,
            ciphertext: r.ciphertext,
            size_bytes: r.sizeBytes,
            updated_at: r.updatedAt.getTime(),
          }),
        )
        .execute();
      return existing === undefined;
    });
  }

  async get(tenant: string, name: string): Promise<StoredSecret | null> {
    const row = await this.db.selectFrom('secrets').selectAll().where('tenant', '=', tenant).where('name', '=', name).executeTakeFirst();
    return row ? { ...toRecord(row), nonce: row.nonce, ciphertext: row.ciphertext } : null;
  }

  async list(tenant: string | null): Promise<SecretRecord[]> {
    let q = this.db.selectFrom('secrets').select(['tenant', 'name', 'size_bytes', 'created_at', 'updated_at']);
    if (tenant !== null) q = q.where('tenant', '=', tenant);
    return (await q.orderBy('tenant', 'asc').orderBy('name', 'asc').execute()).map(toRecord);
  }

  async remove(tenant: string, name: string): Promise<boolean> {
    const result = await this.db.deleteFrom('secrets').where('tenant', '=', tenant).where('name', '=', name).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async count(): Promise<number> {
    const row = await this.db
      .selectFrom('secrets')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }
}

function toRecord(row: Pick<SecretTable, 'tenant' | 'name' | 'size_bytes' | 'created_at' | 'updated_at'>): SecretRecord {
  return {
    tenant: row.tenant,
    name: row.name,
    sizeBytes: row.size_bytes,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}
