import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuditEntry, AuditFilter, AuditOutcome } from '../../core/audit.js';
import { invalidArgument } from '../../core/errors.js';
import { callerOf } from '../caller.js';
import { lineWriter, NDJSON_HEADERS } from '../ndjson.js';
import { ErrorBody } from '../schemas.js';
import type { Services } from '../services.js';

/**
 * The audit log (core/audit.ts): a page of entries, newest first, or every matching entry as JSON
 * lines, oldest first. Any role reads its own tenant's entries (read-only keys included: the log
 * holds no secrets, and reviewing it is what a read-only auditor key is for); admins read every
 * tenant's, or one with `?tenant=`; a non-admin naming another tenant gets a 404.
 */
const AuditQuerystring = z
  .object({
    tenant: z.string().max(63).optional(),
    key: z.string().min(1).max(128).optional(),
    action: z.string().min(1).max(128).optional(),
    target: z.string().min(1).max(4200).optional(),
    outcome: z.string().min(1).max(64).optional(),
    since: z.string().min(1).max(64).optional(),
    until: z.string().min(1).max(64).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    cursor: z.string().max(32).optional(),
    format: z.enum(['json', 'jsonl']).optional(),
  })
  .strict();

const ExportQuerystring = AuditQuerystring.omit({ cursor: true, format: true }).extend({
  limit: z.coerce.number().int().min(1).optional(),
});

const AuditEntryJson = z.object({
  id: z.number(),
  time: z.string(),
  tenant: z.string().nullable(),
  keyId: z.string().nullable(),
  auth: z.string().nullable(),
  role: z.string().nullable(),
  action: z.string(),
  target: z.string().nullable(),
  route: z.string(),
  status: z.number(),
  error: z.string().nullable(),
  durationMs: z.number(),
  client: z.string().nullable(),
  requestId: z.string().nullable(),
});

const AuditPage = z.object({ entries: z.array(AuditEntryJson), nextCursor: z.string().nullable() });

export function auditJson(e: AuditEntry): z.infer<typeof AuditEntryJson> {
  return {
    id: e.id ?? 0,
    time: e.time.toISOString(),
    tenant: e.tenant,
    keyId: e.keyId,
    auth: e.auth,
    role: e.role,
    action: e.action,
    target: e.target,
    route: e.route,
    status: e.status,
    error: e.error,
    durationMs: e.durationMs,
    client: e.client,
    requestId: e.requestId,
  };
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `2025-01-02T03:04:05Z` (any ISO 8601 date), epoch milliseconds, or a duration back from now (`90s`, `15m`, `1h`, `7d`). */
export function parseTime(text: string, field: string, now = Date.now()): Date {
  const ago = DURATION.exec(text);
  if (ago) return new Date(now - Number(ago[1]) * UNIT_MS[ago[2]!]!);
  if (/^\d{10,}$/.test(text)) return new Date(Number(text));
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw invalidArgument(`${field}: "${text.slice(0, 40)}" is not a time (ISO 8601, epoch ms, or a duration like 15m, 1h, 7d)`);
  return new Date(t);
}

/** A list cursor as the server issued it (`nextCursor`: an entry id). */
export function parseCursor(text: string): number {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw invalidArgument('cursor: not a cursor this server issued (use nextCursor)');
  return Number(text);
}

/** `ok`, `error`, a status (`404`) or an error code (`not_found`). */
export function parseOutcome(text: string): AuditOutcome {
  if (text === 'ok' || text === 'success') return { kind: 'ok' };
  if (text === 'error' || text === 'failure') return { kind: 'error' };
  if (/^[1-5]\d\d$/.test(text)) return { kind: 'status', status: Number(text) };
  if (/^[a-z][a-z0-9_]{0,63}$/.test(text)) return { kind: 'code', code: text };
  throw invalidArgument(`outcome: "${text.slice(0, 40)}" is not ok, error, a status code or an error code`);
}

function filterOf(q: z.infer<typeof ExportQuerystring>): AuditFilter {
  return {
    ...(q.tenant !== undefined ? { tenant: q.tenant } : {}),
    ...(q.key !== undefined ? { keyId: q.key } : {}),
    ...(q.action !== undefined ? { action: q.action } : {}),
    ...(q.target !== undefined ? { target: q.target } : {}),
    ...(q.outcome !== undefined ? { outcome: parseOutcome(q.outcome) } : {}),
    ...(q.since !== undefined ? { since: parseTime(q.since, 'since') } : {}),
    ...(q.until !== undefined ? { until: parseTime(q.until, 'until') } : {}),
  };
}

/** Streams every matching entry (at most `limit`), oldest first, as JSON lines. */
async function exportLines(services: Services, req: FastifyRequest, reply: FastifyReply, q: z.infer<typeof ExportQuerystring>) {
  const filter = filterOf(q);
  const entries = services.audit.export(callerOf(req), filter);
  // The first read checks the scope (another tenant: 404) before anything is sent.
  const first = await entries.next();
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { ...NDJSON_HEADERS, 'content-disposition': 'attachment; filename="hutch-audit.jsonl"' });
  const write = lineWriter(raw);
  let count = 0;
  const limit = q.limit ?? Number.POSITIVE_INFINITY;
  try {
    if (!first.done && count < limit) {
      await write(auditJson(first.value));
      count++;
      for await (const entry of entries) {
        if (raw.destroyed || count >= limit) break;
        await write(auditJson(entry));
        count++;
      }
    }
  } finally {
    await entries.return(undefined).catch(() => undefined);
    raw.end();
  }
}

export function auditRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/audit',
      {
        schema: {
          querystring: AuditQuerystring,
          response: { 200: AuditPage, 400: ErrorBody, 404: ErrorBody },
          tags: ['audit'],
          summary:
            'Audit log entries, newest first (filters: tenant [admins], key, action prefix, target, outcome, since, until; limit + cursor). format=jsonl: every match as JSON lines, oldest first',
        },
      },
      async (req, reply) => {
        const q = req.query;
        if (q.format === 'jsonl') {
          const { cursor: _c, format: _f, ...rest } = q;
          return exportLines(services, req, reply, rest);
        }
        const before = q.cursor !== undefined ? parseCursor(q.cursor) : undefined;
        const limit = q.limit ?? 100;
        const entries = await services.audit.list(callerOf(req), filterOf(q), { limit, ...(before !== undefined ? { before } : {}) });
        const last = entries[entries.length - 1];
        return { entries: entries.map(auditJson), nextCursor: entries.length === limit && last?.id ? String(last.id) : null };
      },
    );
    app.get(
      '/v1/audit/export',
      {
        schema: {
          querystring: ExportQuerystring,
          tags: ['audit'],
          summary: 'Every matching audit entry as JSON lines (application/x-ndjson), oldest first; the filters of GET /v1/audit',
        },
      },
      async (req, reply) => exportLines(services, req, reply, req.query),
    );
  };
}
