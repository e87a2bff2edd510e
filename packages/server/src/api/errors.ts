import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { type ErrorKind, HutchError } from '../core/errors.js';

/** The one table from error kind to HTTP status, and the one place errors are rendered. */
export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  tier_unavailable: 422,
  resource_exhausted: 429,
  internal: 500,
  unavailable: 503,
};

export function errorBody(kind: ErrorKind, message: string): { error: { code: ErrorKind; message: string } } {
  return { error: { code: kind, message } };
}

/** Classifies anything thrown in a handler as a HutchError. */
export function toHutchError(err: unknown): HutchError {
  if (err instanceof HutchError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const first = err.validation[0];
    const where = (first?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
    const field = where || (first?.params as { issue?: { path?: unknown[] } } | undefined)?.issue?.path?.join('.') || '';
    const scope = (err as unknown as { validationContext?: string }).validationContext;
    const name = [scope === 'body' ? '' : scope ? `${scope}.` : '', field].join('') || scope || 'request';
    return new HutchError('invalid_argument', `${name}: ${first?.message ?? 'invalid'}`);
  }
  const fe = err as FastifyError;
  if (fe.statusCode === 413 || fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new HutchError('payload_too_large', 'request body is too large');
  if (fe.statusCode === 415) return new HutchError('invalid_argument', fe.message);
  if (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500) return new HutchError('invalid_argument', fe.message);
  return new HutchError('internal', fe.message || 'internal error', { cause: err });
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const e = toHutchError(err);
  const status = STATUS_BY_KIND[e.kind];
  if (status >= 500) request.log.error({ err, requestId: request.id }, e.message);
  if (e.retryAfterSeconds !== undefined) void reply.header('retry-after', String(e.retryAfterSeconds));
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  const send = (): void => void reply.status(status).send(errorBody(e.kind, e.message));
  // A body refused for its size is answered before it was read, and the connection is closed
  // after the answer: a client still writing it then sees a broken pipe instead of the 413. A
  // moderately large body is read and discarded first (never kept), so the client gets the answer.
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  if (e.kind === 'payload_too_large' && !request.raw.complete && declared <= DRAIN_LIMIT) {
    const timer = setTimeout(send, 5000);
    request.raw.once('end', () => {
      clearTimeout(timer);
      send();
    });
    request.raw.resume();
    return;
  }
  send();
}

/** Bodies up to this size that are over the limit are drained before the 413 (see errorHandler). */
const DRAIN_LIMIT = 32 * 1024 * 1024;
