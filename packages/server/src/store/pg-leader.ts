import pg from 'pg';
import type { Leadership } from '../core/leadership.js';
import { connectionConfig, storeError } from './postgres.js';
import { redactStoreUrl } from './store-url.js';

/**
 * Leadership on a PostgreSQL store: the leader is the replica whose session holds the advisory
 * lock (LOCK_CLASS, LOCK_ID) of the store's database, taken with pg_try_advisory_lock on a
 * connection of its own (not the query pool: a session lock belongs to one connection).
 *
 * - Followers try again every `retryMs`.
 * - The leader checks every `retryMs` that its session still holds the lock (a query with a
 *   timeout); the connection's end or error, or a failed check, loses leadership at once.
 * - The session asks the database server for TCP keepalives (idle 10 s, then every 5 s, 3 probes),
 *   so a leader cut off by the network loses its lock on the database side within about 25 s
 *   plus `retryMs`, while its own check has stepped it down after at most 2 × `retryMs`: the old
 *   leader stops before a new one can start.
 * - A replica that lost leadership waits 2 × `retryMs` before trying again, so that a healthy
 *   follower takes over rather than the replica whose session just failed.
 * - close() unlocks and closes the connection: another replica leads within `retryMs`.
 */
export const LOCK_CLASS = 0x68757463; // "hutc"
export const LOCK_ID = 1; // the periodic loops

export interface PgLeaderLog {
  info(obj: object, message: string): void;
  warn(obj: object, message: string): void;
}

export interface PgLeadershipOptions {
  /** How often followers retry and the leader checks its lock (default 3000 ms). */
  retryMs?: number;
  /** Name of the session in pg_stat_activity (default hutch-leader). */
  applicationName?: string;
}

export class PostgresLeadership implements Leadership {
  private state = false;
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;
  private closed = false;
  /** After losing leadership, no attempt before this time: a healthy follower takes over first. */
  private quietUntil = 0;
  private lastWarning = '';
  private readonly listeners: Array<(leader: boolean) => void> = [];
  private readonly retryMs: number;
  private readonly applicationName: string;

  constructor(
    private readonly url: string,
    private readonly log: PgLeaderLog,
    options: PgLeadershipOptions = {},
  ) {
    this.retryMs = options.retryMs ?? 3000;
    this.applicationName = options.applicationName ?? 'hutch-leader';
  }

  get leader(): boolean {
    return this.state;
  }

  /** The backend pid of the elector's session (null when not connected): what pg_terminate_backend takes. */
  get sessionPid(): number | null {
    return (this.client as (pg.Client & { processID?: number }) | null)?.processID ?? null;
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    if (this.timer || this.closed) return;
    await this.round();
    this.timer = setInterval(() => void this.round(), this.retryMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.busy;
    const client = this.client;
    this.client = null;
    if (client) {
      if (this.state) await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCK_ID]).catch(() => undefined);
      await client.end().catch(() => undefined);
    }
    this.set(false, 'stepped down');
  }

  /** One attempt (follower) or check (leader); rounds never overlap. */
  private round(): Promise<void> {
    if (this.busy || this.closed) return this.busy ?? Promise.resolve();
    this.busy = (this.state ? this.check() : this.attempt()).finally(() => {
      this.busy = null;
    });
    return this.busy;
  }

  private async attempt(): Promise<void> {
    if (Date.now() < this.quietUntil) return;
    try {
      const client = this.client ?? (await this.connect());
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_CLASS, LOCK_ID]);
      if (rows[0]?.ok === true && client === this.client && !this.closed) this.set(true, 'lock acquired');
    } catch (err) {
      this.drop(storeError(this.url, 'leader election: the store is unreachable', err).message);
    }
  }

  private async check(): Promise<void> {
    const client = this.client;
    if (!client) return this.drop('no connection');
    try {
      const { rows } = await client.query<{ held: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                          AND classid = $1::bigint::oid AND objid = $2::bigint::oid) AS held`,
        [LOCK_CLASS, LOCK_ID],
      );
      if (rows[0]?.held !== true) this.drop('the lock is no longer held by this session');
    } catch (err) {
      this.drop(storeError(this.url, 'leader session check failed', err).message);
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({
      ...connectionConfig(this.url, this.applicationName),
      keepAlive: true,
      query_timeout: Math.max(2000, this.retryMs),
    });
    // Errors of an idle connection (pg_terminate_backend, a database restart) come here.
    client.on('error', (err) => this.drop(storeError(this.url, 'leader session failed', err).message, client));
    client.on('end', () => this.drop('leader session ended', client));
    this.client = client;
    try {
      await client.connect();
      await client.query('SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3');
    } catch (err) {
      this.client = null;
      await client.end().catch(() => undefined);
      throw err;
    }
    return client;
  }

  /** Forgets the session (a new one is opened on the next attempt) and, if leading, leadership. */
  private drop(why: string, which: pg.Client | null = this.client): void {
    if (which !== this.client) return;
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
    if (this.state) {
      this.quietUntil = Date.now() + 2 * this.retryMs;
      this.set(false, why);
    } else if (!this.closed && why !== this.lastWarning) {
      this.log.warn({ store: redactStoreUrl(this.url), why }, 'leader election: will retry');
    }
    this.lastWarning = why;
  }

  private set(leader: boolean, why: string): void {
    if (this.state === leader) return;
    this.state = leader;
    if (leader) this.log.info({ why }, 'leadership gained');
    else this.log.warn({ why }, 'leadership lost');
    for (const l of this.listeners) l(leader);
  }
}
