import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/**
 * The request a piece of work is done for: its id travels with the async context (the HTTP layer
 * enters it for every request it accepts), so every log line written while serving the request,
 * by any service, carries `requestId` (see the logger's mixin in server.ts) without passing it
 * around.
 */
export interface RequestContext {
  requestId: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

/** What an incoming `X-Request-Id` may be: printable, no spaces or quotes, at most 128 characters. */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}$/;

/** The client's `X-Request-Id` when it is sane, else a fresh one (`req_` + 16 random letters and digits). */
export function requestIdFrom(header: string | string[] | undefined): string {
  if (typeof header === 'string' && REQUEST_ID.test(header)) return header;
  return newRequestId();
}

export function newRequestId(): string {
  return `req_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
}

/** The current request's id, if the caller runs inside one. */
export function currentRequestId(): string | undefined {
  return requestContext.getStore()?.requestId;
}
