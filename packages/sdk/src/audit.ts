import type { CallOptions } from './config.js';
import type { Query, Transport } from './http.js';
import { readNdjson } from './ndjson.js';

/** One recorded call (see docs/api.md, "Audit log"). */
export interface AuditEntry {
  /** Increases in the order entries were recorded. */
  id: number;
  /** When the call arrived (ISO 8601). */
  time: string;
  /** The caller's tenant (for a sandbox token: the sandbox's); null when the caller was not identified. */
  tenant: string | null;
  /** The API key's id; `token:<sandbox id>` for a sandbox's envd token or signed URL; null when unidentified. */
  keyId: string | null;
  auth: 'key' | 'sandbox-token' | 'signed-url' | null;
  role: string | null;
  /** `sandbox.create`, `sandbox.exec`, `file.write`, `pty.open`, `key.revoke`, … */
  action: string;
  /** The object: an id or name; `<sandbox>:<path>` for files, `<sandbox>#<pid>` for processes. */
  target: string | null;
  /** Method and route pattern, e.g. `POST /v1/sandboxes/:id/exec`. */
  route: string;
  /** HTTP status (499: the client went away first). */
  status: number;
  /** Error code of a failed call (`not_found`, `permission_denied`, …). */
  error: string | null;
  /** Time to the answer (streams and PTY sessions: to when they opened). */
  durationMs: number;
  client: string | null;
  requestId: string | null;
}

export interface AuditFilter {
  /** Admins: one tenant (default: all). Others see only their own tenant. */
  tenant?: string;
  /** An API key id (or `token:<sandbox id>`). */
  key?: string;
  /** `sandbox` matches `sandbox.*`; `sandbox.exec` matches itself. */
  action?: string;
  /** An object id: matches it and its files and processes. */
  target?: string;
  /** `ok`, `error`, a status (`404`) or an error code (`not_found`). */
  outcome?: string | number;
  /** A Date, an ISO 8601 time, or a duration back from now (`15m`, `1h`, `7d`). */
  since?: Date | string;
  until?: Date | string;
}

export interface AuditListOptions extends AuditFilter, CallOptions {
  /** At most this many entries (default 100, max 1000). */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

export interface AuditExportOptions extends AuditFilter, CallOptions {
  /** At most this many entries (default: all). */
  limit?: number;
}

export interface AuditPage {
  /** Newest first. */
  entries: AuditEntry[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

function filterQuery(f: AuditFilter): Query {
  const time = (t: Date | string | undefined): string | undefined => (t instanceof Date ? t.toISOString() : t);
  return {
    tenant: f.tenant,
    key: f.key,
    action: f.action,
    target: f.target,
    outcome: f.outcome,
    since: time(f.since),
    until: time(f.until),
  };
}

/**
 * `hutch.audit`: the server's audit log — every mutating call and every exec, process start, file
 * transfer and PTY session, with who, what, outcome and request id. Keys see their own tenant's
 * entries (read-only keys too); admin keys every tenant's.
 */
export class Audit {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /** A page of entries, newest first. */
  async list(opts: AuditListOptions = {}): Promise<AuditPage> {
    const { signal, timeoutMs, limit, cursor, ...filter } = opts;
    return this.transport.json<AuditPage>({
      method: 'GET',
      path: '/v1/audit',
      query: { ...filterQuery(filter), limit, cursor },
      signal,
      timeoutMs,
    });
  }

  /** Every matching entry, newest first, fetching pages of `pageSize` (default 500) as it goes. */
  async *iterate(opts: Omit<AuditListOptions, 'cursor' | 'limit'> & { pageSize?: number } = {}): AsyncGenerator<AuditEntry> {
    const { pageSize = 500, ...rest } = opts;
    let cursor: string | undefined;
    for (;;) {
      const page = await this.list({ ...rest, limit: pageSize, ...(cursor ? { cursor } : {}) });
      yield* page.entries;
      if (!page.nextCursor) return;
      cursor = page.nextCursor;
    }
  }

  /**
   * Every matching entry, oldest first, streamed as the server reads them (JSON lines,
   * `GET /v1/audit/export`). The deadline covers only the wait for the answer to begin.
   */
  async *export(opts: AuditExportOptions = {}): AsyncGenerator<AuditEntry> {
    const { signal, timeoutMs, limit, ...filter } = opts;
    const stream = await this.transport.stream({
      method: 'GET',
      path: '/v1/audit/export',
      query: { ...filterQuery(filter), limit },
      accept: 'application/x-ndjson',
      signal,
      timeoutMs,
    });
    try {
      for await (const value of readNdjson(stream.body)) yield value as AuditEntry;
    } finally {
      stream.close();
    }
  }
}
