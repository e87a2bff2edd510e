import type http from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ProcessEvent } from '../core/process-events.js';
import { toHutchError } from './errors.js';
import { STATUS_BY_KIND, errorBody } from './errors.js';
import { auditOpened } from './audit.js';

export const NDJSON_HEADERS = { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

/** Writes lines to a response, waiting while the client is slow (backpressure); resolves at once once it closed. */
export function lineWriter(raw: http.ServerResponse): (value: unknown) => Promise<void> {
  return async (value) => {
    if (raw.destroyed || raw.writableEnded) return;
    if (!raw.write(JSON.stringify(value) + '\n'))
      await new Promise<void>((resolve) => {
        raw.once('drain', resolve);
        raw.once('close', resolve);
      });
  };
}

/**
 * Streams process events as newline-delimited JSON. Honours backpressure (a slow client slows the
 * agent stream instead of growing server memory) and stops, without killing the process, when the
 * client goes away. An error before the first event becomes an ordinary JSON error response.
 */
export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  open: (signal: AbortSignal) => AsyncGenerator<ProcessEvent>,
): Promise<void> {
  const controller = new AbortController();
  const raw = reply.raw;
  // The response's close (not the request's: that fires once the body is read) means the client left.
  raw.once('close', () => controller.abort());
  const events = open(controller.signal);
  let first: IteratorResult<ProcessEvent>;
  try {
    first = await events.next();
  } catch (err) {
    const e = toHutchError(err);
    return reply.status(STATUS_BY_KIND[e.kind]).send(errorBody(e.kind, e.message));
  }
  reply.hijack();
  raw.writeHead(200, NDJSON_HEADERS);
  // The stream is open: the audit entry of the call is made now, not when the process ends.
  auditOpened(request, 200);
  const write = async (line: string): Promise<void> => {
    if (!raw.write(line))
      await new Promise<void>((resolve) => {
        raw.once('drain', resolve);
        raw.once('close', resolve);
      });
  };
  try {
    if (!first.done) await write(JSON.stringify(first.value) + '\n');
    if (!first.done) {
      for await (const event of events) {
        if (controller.signal.aborted) break;
        await write(JSON.stringify(event) + '\n');
      }
    }
  } catch (err) {
    if (!controller.signal.aborted) {
      const e = toHutchError(err);
      await write(JSON.stringify({ type: 'error', code: e.kind, message: e.message }) + '\n').catch(() => undefined);
    }
  } finally {
    await events.return(undefined).catch(() => undefined);
    raw.end();
  }
}
