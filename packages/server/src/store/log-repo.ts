import { sql } from 'kysely';
import type { LogDrops, LogEntry, LogReadQuery, LogStream, SandboxLogStore, StoredLogEntry } from '../core/sandbox-logs.js';
import type { Db, SandboxLogTable } from './database.js';
import { dialectOf } from './dialect.js';

/** Sandbox logs (SQLite or PostgreSQL): entries by (sandbox, seq), trimmed oldest first, with a per-sandbox count of what was dropped. */
function toEntry(row: SandboxLogTable): LogEntry {
  return { seq: row.seq, time: new Date(row.time), pid: row.pid, stream: row.stream as LogStream, text: row.text };
}

/** Seq numbers a replica takes at a time on PostgreSQL (the sequence of migration 0015 steps by this). */
export const SEQ_BLOCK = 1_000_000;

export class SqliteSandboxLogStore implements SandboxLogStore {
  private readonly shared: boolean;

  constructor(private readonly db: Db) {
    // On PostgreSQL several replicas may write: each takes seq numbers from blocks of its own.
    this.shared = dialectOf(db) === 'postgres';
  }

  async reserveSeqBlock(): Promise<{ first: number; size: number } | null> {
    if (!this.shared) return null;
    const { rows } = await sql<{ first: number }>`SELECT nextval('sandbox_log_seq_blocks') AS first`.execute(this.db);
    return { first: Number(rows[0]!.first), size: SEQ_BLOCK };
  }

  async append(entries: StoredLogEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < entries.length; i += 500) {
        await trx
          .insertInto('sandbox_logs')
          .values(
            entries.slice(i, i + 500).map((e) => ({
              seq: e.seq,
              sandbox_id: e.sandboxId,
              time: e.time.getTime(),
              pid: e.pid,
              stream: e.stream,
              text: e.text,
              bytes: e.bytes,
            })),
          )
          .execute();
      }
    });
  }

  async read(sandboxId: string, q: LogReadQuery): Promise<LogEntry[]> {
    let query = this.db.selectFrom('sandbox_logs').selectAll().where('sandbox_id', '=', sandboxId);
    if (q.since) query = query.where('time', '>=', q.since.getTime());
    if (q.after !== undefined) {
      return (await query.where('seq', '>', q.after).orderBy('seq', 'asc').limit(q.limit).execute()).map(toEntry);
    }
    // The newest `limit`, shown oldest first.
    return (await query.orderBy('seq', 'desc').limit(q.limit).execute()).reverse().map(toEntry);
  }

  async load(): Promise<{ sizes: Map<string, number>; maxSeq: number }> {
    const rows = await this.db
      .selectFrom('sandbox_logs')
      .select(['sandbox_id', sql<number>`SUM(bytes)`.as('size')])
      .groupBy('sandbox_id')
      .execute();
    const max = await this.db
      .selectFrom('sandbox_logs')
      .select(sql<number | null>`MAX(seq)`.as('max'))
      .executeTakeFirst();
    return { sizes: new Map(rows.map((r) => [r.sandbox_id, Number(r.size)])), maxSeq: Number(max?.max ?? 0) };
  }

  async trim(sandboxId: string, bytes: number): Promise<LogDrops> {
    return this.db.transaction().execute(async (trx) => {
      let freed = 0;
      let entries = 0;
      let last = -1;
      // The excess is usually a batch's worth: read the oldest entries a page at a time.
      while (freed < bytes) {
        const page = await trx
          .selectFrom('sandbox_logs')
          .select(['seq', 'bytes'])
          .where('sandbox_id', '=', sandboxId)
          .where('seq', '>', last)
          .orderBy('seq', 'asc')
          .limit(256)
          .execute();
        if (page.length === 0) break;
        for (const row of page) {
          if (freed >= bytes) break;
          freed += row.bytes;
          entries++;
          last = row.seq;
        }
      }
      if (entries === 0) return { bytes: 0, entries: 0 };
      await trx.deleteFrom('sandbox_logs').where('sandbox_id', '=', sandboxId).where('seq', '<=', last).execute();
      await addDrops(trx, sandboxId, { bytes: freed, entries });
      return { bytes: freed, entries };
    });
  }

  async drops(sandboxId: string): Promise<LogDrops> {
    const row = await this.db.selectFrom('sandbox_log_drops').selectAll().where('sandbox_id', '=', sandboxId).executeTakeFirst();
    return { bytes: row?.bytes ?? 0, entries: row?.entries ?? 0 };
  }

  async addDrops(sandboxId: string, drops: LogDrops): Promise<void> {
    await addDrops(this.db, sandboxId, drops);
  }

  async remove(sandboxId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('sandbox_logs').where('sandbox_id', '=', sandboxId).execute();
      await trx.deleteFrom('sandbox_log_drops').where('sandbox_id', '=', sandboxId).execute();
    });
  }

  async removeOrphans(): Promise<number> {
    const live = this.db.selectFrom('sandboxes').select('id').where('state', '!=', 'deleted');
    const result = await this.db.deleteFrom('sandbox_logs').where('sandbox_id', 'not in', live).executeTakeFirst();
    await this.db.deleteFrom('sandbox_log_drops').where('sandbox_id', 'not in', live).execute();
    return Number(result.numDeletedRows);
  }
}

async function addDrops(db: Pick<Db, 'insertInto'>, sandboxId: string, drops: LogDrops): Promise<void> {
  await db
    .insertInto('sandbox_log_drops')
    .values({ sandbox_id: sandboxId, bytes: drops.bytes, entries: drops.entries })
    .onConflict((oc) =>
      oc.column('sandbox_id').doUpdateSet({
        bytes: (eb) => eb('sandbox_log_drops.bytes', '+', drops.bytes),
        entries: (eb) => eb('sandbox_log_drops.entries', '+', drops.entries),
      }),
    )
    .execute();
}
