import { sql } from 'kysely';
import type { AuditAuth, AuditEntry, AuditQuery, AuditStore } from '../core/audit.js';
import type { AuditTable, Db } from './database.js';

/**
 * SQLite audit log: appended in batches (one multi-row insert), read newest or oldest first by id
 * with the filters in the query, pruned by time. The table refuses updates, and deletes of rows
 * newer than the recorded pruning cut-off (triggers of migration 0007).
 */
type Row = Omit<AuditTable, 'id'> & { id: number };

function toEntry(row: Row): AuditEntry {
  return {
    id: row.id,
    time: new Date(row.time),
    tenant: row.tenant,
    keyId: row.key_id,
    auth: row.auth as AuditAuth | null,
    role: row.role,
    action: row.action,
    target: row.target,
    route: row.route,
    status: row.status,
    error: row.error,
    durationMs: row.duration_ms,
    client: row.client,
    requestId: row.request_id,
  };
}

/** LIKE pattern for a literal prefix (`%`, `_` and the escape character escaped). */
function likePrefix(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

export class SqliteAuditStore implements AuditStore {
  constructor(private readonly db: Db) {}

  async append(entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    // 14 values a row: 200 rows stay far below SQLite's bound on variables per statement.
    for (let i = 0; i < entries.length; i += 200) {
      await this.db
        .insertInto('audit_log')
        .values(
          entries.slice(i, i + 200).map((e) => ({
            time: e.time.getTime(),
            tenant: e.tenant,
            key_id: e.keyId,
            auth: e.auth,
            role: e.role,
            action: e.action,
            target: e.target,
            route: e.route,
            status: e.status,
            error: e.error,
            duration_ms: Math.max(0, Math.round(e.durationMs)),
            client: e.client,
            request_id: e.requestId,
          })),
        )
        .execute();
    }
  }

  async query(q: AuditQuery): Promise<AuditEntry[]> {
    let query = this.db.selectFrom('audit_log').selectAll();
    if (q.tenant !== null) query = query.where('tenant', '=', q.tenant);
    if (q.keyId !== undefined) query = query.where('key_id', '=', q.keyId);
    if (q.action !== undefined) {
      const action = q.action.replace(/\.$/, '');
      query = query.where((eb) =>
        eb.or([eb('action', '=', action), eb('action', 'like', sql<string>`${likePrefix(`${action}.`)} ESCAPE '\\'`)]),
      );
    }
    if (q.target !== undefined) {
      const target = q.target;
      query = query.where((eb) =>
        eb.or([
          eb('target', '=', target),
          eb('target', 'like', sql<string>`${likePrefix(`${target}:`)} ESCAPE '\\'`),
          eb('target', 'like', sql<string>`${likePrefix(`${target}#`)} ESCAPE '\\'`),
        ]),
      );
    }
    if (q.outcome) {
      const o = q.outcome;
      if (o.kind === 'ok') query = query.where('status', '<', 400);
      else if (o.kind === 'error') query = query.where('status', '>=', 400);
      else if (o.kind === 'status') query = query.where('status', '=', o.status);
      else query = query.where('error', '=', o.code);
    }
    if (q.since) query = query.where('time', '>=', q.since.getTime());
    if (q.until) query = query.where('time', '<', q.until.getTime());
    if (q.before !== undefined) query = query.where('id', '<', q.before);
    if (q.after !== undefined) query = query.where('id', '>', q.after);
    const rows = await query.orderBy('id', q.order).limit(q.limit).execute();
    return rows.map((r) => toEntry(r as Row));
  }

  async prune(before: Date): Promise<number> {
    const cutoff = before.getTime();
    return this.db.transaction().execute(async (trx) => {
      // The delete trigger lets through only rows older than this recorded cut-off.
      await sql`INSERT INTO meta (key, value) VALUES ('audit_prune_before', ${String(cutoff)})
                ON CONFLICT (key) DO UPDATE SET value = excluded.value`.execute(trx);
      const result = await trx.deleteFrom('audit_log').where('time', '<', cutoff).executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }
}
