import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ProcessEvent } from '../core/process-events.js';
import { toHutchError } from './errors.js';
import { STATUS_BY_KIND, errorBody } from './errors.js';

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
  raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
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
