import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type LogEntry, type LogEvent, MAX_FOLLOWER_QUEUE } from '../../core/sandbox-logs.js';
import { lineWriter, NDJSON_HEADERS } from '../ndjson.js';
import { ErrorBody, IdParams } from '../schemas.js';
import type { Services } from '../services.js';
import { parseTime } from './audit.js';

/**
 * A sandbox's log (core/sandbox-logs.ts): the kept output of the processes started through the
 * API. As JSON (the newest `limit` entries, or the `limit` after a cursor), or with `follow=1` as
 * NDJSON: the same entries, then new ones as they come, until the client leaves or the sandbox is
 * deleted. Another tenant's sandbox is a 404 (api/access.ts), like everywhere.
 */
const LogQuery = z
  .object({
    since: z.string().min(1).max(64).optional(),
    after: z.coerce.number().int().min(0).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).optional(),
    follow: z.enum(['1', 'true', '0', 'false']).optional(),
  })
  .strict();

const LogEntryJson = z.object({ seq: z.number(), time: z.string(), pid: z.number(), stream: z.string(), text: z.string() });
const LogPage = z.object({
  entries: z.array(LogEntryJson),
  dropped: z.object({ bytes: z.number(), entries: z.number() }),
  cursor: z.number().nullable(),
});

function entryJson(e: LogEntry) {
  return { seq: e.seq, time: e.time.toISOString(), pid: e.pid, stream: e.stream, text: e.text };
}

export function logRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/sandboxes/:id/logs',
      {
        schema: {
          params: IdParams,
          querystring: LogQuery,
          response: { 200: LogPage, 404: ErrorBody },
          tags: ['logs'],
          summary:
            'Output of the processes started through the API (stdout/stderr, not PTYs), capped per sandbox: the newest `limit` entries (default 1000), or those after `after`; follow=1 streams NDJSON',
        },
      },
      async (req, reply) => {
        const { id } = req.params;
        const q = req.query;
        const query = {
          limit: q.limit ?? 1000,
          ...(q.after !== undefined ? { after: q.after } : {}),
          ...(q.since !== undefined ? { since: parseTime(q.since, 'since') } : {}),
        };
        if (q.follow !== '1' && q.follow !== 'true') {
          const { entries, dropped } = await services.logs.read(id, query);
          return { entries: entries.map(entryJson), dropped, cursor: entries[entries.length - 1]?.seq ?? q.after ?? null };
        }

        // Subscribed before the read, so nothing made in between is missed (duplicates are skipped by seq).
        const queue: LogEvent[] = [];
        let lagged = 0;
        let wake: (() => void) | null = null;
        const unsubscribe = services.logs.subscribe(id, (event) => {
          if (queue.length >= MAX_FOLLOWER_QUEUE && event.type === 'entry') lagged++;
          else queue.push(event);
          wake?.();
        });
        const raw = reply.raw;
        let closed = false;
        raw.once('close', () => {
          closed = true;
          wake?.();
        });
        try {
          const { entries, dropped } = await services.logs.read(id, query);
          reply.hijack();
          raw.writeHead(200, NDJSON_HEADERS);
          const write = lineWriter(raw);
          if (dropped.bytes > 0 || dropped.entries > 0) await write({ type: 'dropped', ...dropped });
          let last = query.after ?? 0;
          for (const e of entries) {
            await write({ type: 'log', ...entryJson(e) });
            last = e.seq;
          }
          for (;;) {
            while (queue.length > 0 && !closed) {
              const event = queue.shift()!;
              if (event.type === 'end') {
                await write({ type: 'end', reason: event.reason });
                return;
              }
              if (event.type === 'entry' && event.entry.seq > last) {
                await write({ type: 'log', ...entryJson(event.entry) });
                last = event.entry.seq;
              }
            }
            if (lagged > 0 && !closed) {
              await write({ type: 'lagged', entries: lagged });
              lagged = 0;
            }
            if (closed) return;
            // Nothing can arrive between this check and the wait: no await in between.
            if (queue.length === 0 && lagged === 0)
              await new Promise<void>((resolve) => {
                wake = resolve;
              });
            wake = null;
          }
        } finally {
          unsubscribe();
          if (reply.sent || reply.raw.headersSent) raw.end();
        }
      },
    );
  };
}
