import type { Logger } from './logger.js';
import { type Caller, listScope } from './tenancy.js';

/**
 * The audit log: who did what, to what, with which outcome. One entry per mutating API call
 * (native and E2B control plane) and per exec, process start, file transfer and PTY session
 * (E2B data plane included); the HTTP layer decides what is recorded (api/audit.ts), this service
 * buffers entries and writes them in batches (one insert per 100 ms or 256 entries, so a request
 * never waits for the disk), answers queries scoped by tenant, and prunes by age.
 *
 * Entries hold names, ids, paths, status codes and error codes: never a request body, an
 * environment value, file contents, a key or any other secret.
 */
export type AuditAuth = 'key' | 'sandbox-token' | 'signed-url';

export interface AuditEntry {
  /** Assigned by the store; increases in the order entries were recorded (when calls ended). */
  id?: number;
  /** When the call arrived. */
  time: Date;
  /** The caller's tenant (for a sandbox token: the sandbox's); null when the caller was not identified. */
  tenant: string | null;
  /** The API key's id; for a sandbox token or signed URL `token:<sandbox id>`; null when unidentified. */
  keyId: string | null;
  auth: AuditAuth | null;
  role: string | null;
  /** A stable name: `sandbox.create`, `sandbox.exec`, `file.write`, `pty.open`, `key.revoke`… */
  action: string;
  /** The object: an id or name; `<sandbox>:<path>` for files; `<sandbox>#<pid or tag:t>` for processes. */
  target: string | null;
  /** Method and route pattern, e.g. `POST /v1/sandboxes/:id/exec` (never the query string). */
  route: string;
  /** HTTP status; 499 when the client went away before an answer. */
  status: number;
  /** The error code of a failed call (`not_found`, `permission_denied`…), null on success. */
  error: string | null;
  /** Time to the answer (for streams and PTY sessions: until the stream or session opened). */
  durationMs: number;
  /** The client's address as the server saw it. */
  client: string | null;
  requestId: string | null;
}

export type AuditOutcome = { kind: 'ok' } | { kind: 'error' } | { kind: 'status'; status: number } | { kind: 'code'; code: string };

export interface AuditFilter {
  /** Admins: one tenant (default all); others: their own (another tenant is a 404). */
  tenant?: string;
  keyId?: string;
  /** `sandbox` matches `sandbox` and `sandbox.*`; `sandbox.exec` matches itself (and `sandbox.exec.*`). */
  action?: string;
  /** An object id: matches it and everything under it (`<id>:<path>`, `<id>#<pid>`). */
  target?: string;
  outcome?: AuditOutcome;
  since?: Date;
  until?: Date;
}

export interface AuditQuery extends Omit<AuditFilter, 'tenant'> {
  /** null: every tenant. */
  tenant: string | null;
  /** Entries with a smaller id (descending pages). */
  before?: number;
  /** Entries with a larger id (ascending pages). */
  after?: number;
  order: 'asc' | 'desc';
  limit: number;
}

export interface AuditStore {
  append(entries: AuditEntry[]): Promise<void>;
  query(q: AuditQuery): Promise<AuditEntry[]>;
  /** Deletes entries older than `before`; returns how many. */
  prune(before: Date): Promise<number>;
}

export interface AuditOptions {
  /** Entries older than this many days are pruned (0: kept forever). Default 90. */
  retentionDays?: number;
  /** How often pruning runs (default hourly; also once at start). */
  pruneIntervalMs?: number;
  /** A batch is written at most this long after its first entry (default 100 ms). */
  flushMs?: number;
  /** … or as soon as it has this many entries (default 256). */
  batchSize?: number;
}

export const DEFAULT_AUDIT_RETENTION_DAYS = 90;
/** Entries waiting for the store beyond this many (a store that keeps failing) are dropped, and counted in the server log. */
const MAX_PENDING = 50_000;

export class AuditService {
  private pending: AuditEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private pruner: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private dropped = 0;
  private closed = false;
  readonly retentionDays: number;
  private readonly flushMs: number;
  private readonly batchSize: number;
  private readonly pruneIntervalMs: number;

  constructor(
    private readonly store: AuditStore,
    private readonly log: Logger,
    options: AuditOptions = {},
  ) {
    this.retentionDays = options.retentionDays ?? DEFAULT_AUDIT_RETENTION_DAYS;
    this.flushMs = options.flushMs ?? 100;
    this.batchSize = options.batchSize ?? 256;
    this.pruneIntervalMs = options.pruneIntervalMs ?? 3_600_000;
  }

  /** Queues an entry; it is written with the next batch. Never throws, never waits. */
  record(entry: AuditEntry): void {
    if (this.closed) return;
    if (this.pending.length >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.pending.push(entry);
    if (this.pending.length >= this.batchSize) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes what is queued; resolves once everything recorded before the call is in the store. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) {
      this.writing = this.writing.then(() =>
        this.store.append(batch).catch((err: unknown) => {
          // Kept for the next batch (bounded): a locked or full disk should not lose the log.
          this.log.error(
            { err: (err as Error).message, entries: batch.length },
            'audit: writing entries failed; retrying with the next batch',
          );
          const room = Math.max(0, MAX_PENDING - this.pending.length);
          this.dropped += Math.max(0, batch.length - room);
          this.pending.unshift(...batch.slice(0, room));
          if (!this.timer && !this.closed) {
            this.timer = setTimeout(() => void this.flush(), 1000);
            this.timer.unref();
          }
        }),
      );
    }
    if (this.dropped > 0) {
      this.log.error({ dropped: this.dropped }, 'audit: entries dropped (the store is not keeping up)');
      this.dropped = 0;
    }
    return this.writing;
  }

  /** Entries the caller may see, newest first; `cursor` continues a previous page. */
  async list(caller: Caller, filter: AuditFilter, page: { limit: number; before?: number }): Promise<AuditEntry[]> {
    const tenant = listScope(caller, filter.tenant);
    await this.flush();
    return this.store.query({
      ...filter,
      tenant,
      order: 'desc',
      limit: page.limit,
      ...(page.before !== undefined ? { before: page.before } : {}),
    });
  }

  /** Every entry the caller may see that matches, oldest first, read from the store a page at a time. */
  async *export(caller: Caller, filter: AuditFilter, pageSize = 1000): AsyncGenerator<AuditEntry> {
    const tenant = listScope(caller, filter.tenant);
    await this.flush();
    let after = 0;
    for (;;) {
      const page = await this.store.query({ ...filter, tenant, order: 'asc', limit: pageSize, after });
      for (const entry of page) yield entry;
      if (page.length < pageSize) return;
      after = page[page.length - 1]!.id!;
    }
  }

  /** Prunes at once and then periodically (nothing when retention is 0). */
  start(): void {
    if (this.retentionDays <= 0 || this.pruner) return;
    void this.prune();
    this.pruner = setInterval(() => void this.prune(), this.pruneIntervalMs);
    this.pruner.unref();
  }

  /** Stops the periodic pruning (leadership lost); start() resumes it. Recording goes on. */
  stopPruning(): void {
    if (this.pruner) clearInterval(this.pruner);
    this.pruner = null;
  }

  /** Deletes entries past the retention; returns how many. */
  async prune(now = Date.now()): Promise<number> {
    if (this.retentionDays <= 0) return 0;
    try {
      const removed = await this.store.prune(new Date(now - this.retentionDays * 86_400_000));
      if (removed > 0) this.log.info({ removed, retentionDays: this.retentionDays }, 'audit: pruned old entries');
      return removed;
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'audit: pruning failed');
      return 0;
    }
  }

  /** Stops pruning and writes what is queued (server shutdown). */
  async close(): Promise<void> {
    if (this.pruner) clearInterval(this.pruner);
    this.pruner = null;
    await this.flush();
    this.closed = true;
  }
}
