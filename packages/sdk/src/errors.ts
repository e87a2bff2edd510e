/**
 * Typed errors. Every failure the SDK reports is a {@link HutchError}; the subclass says what kind
 * of failure it is, so callers can `instanceof`-check instead of parsing messages. Server errors
 * (`{"error": {"code", "message"}}`) are mapped to a subclass by {@link errorFromResponse}, using
 * the one table below.
 */

/** The base of every error the SDK throws. `status` is the HTTP status when the server answered. */
export class HutchError extends Error {
  /** The wire code (`not_found`, `conflict`, …) or a client-side code (`connection`, `timeout`). */
  readonly code: string;
  /** The HTTP status of the response, or `undefined` when no response arrived. */
  readonly status: number | undefined;

  constructor(code: string, message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** 400: a field failed validation, malformed id or path. The message names the field. */
export class InvalidArgumentError extends HutchError {}
/** 401: missing or wrong API key. */
export class AuthenticationError extends HutchError {}
/** 403: the key's role does not allow the call (a read-only key writing, a member on an admin route). */
export class PermissionDeniedError extends HutchError {}
/** 404: unknown sandbox, process or file. */
export class NotFoundError extends HutchError {}
/** 409: the object is in the wrong state for this call (e.g. exec on a stopped sandbox). */
export class ConflictError extends HutchError {}
/** 413: the request body is over the server's limit. */
export class PayloadTooLargeError extends HutchError {}
/** 422: the requested isolation tier is not available on this host; the message says why. */
export class TierUnavailableError extends HutchError {}
/** 429: too many concurrent requests; retry after `retryAfterSeconds` when the server said. */
export class RateLimitError extends HutchError {
  readonly retryAfterSeconds: number | undefined;
  constructor(code: string, message: string, status?: number, retryAfterSeconds?: number) {
    super(code, message, status);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
/** 5xx: a server bug, a runtime failure, or the server starting/stopping (503). */
export class ServerError extends HutchError {}
/** 503 `unavailable`: the node is full (the message names the resource) or the server is stopping. */
export class UnavailableError extends ServerError {
  readonly retryAfterSeconds: number | undefined;
  constructor(code: string, message: string, status?: number, retryAfterSeconds?: number) {
    super(code, message, status);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}
/** The server could not be reached at all (refused, DNS, reset before a response). */
export class ConnectionError extends HutchError {}
/** The call did not finish within its `timeoutMs`. */
export class TimeoutError extends HutchError {}

type ErrorClass = new (code: string, message: string, status?: number) => HutchError;

/**
 * The one mapping table: wire code ⇄ HTTP status ⇄ error class. Lookup is by code first (the
 * server always sends one), then by status (a proxy in between may not).
 */
export const ERROR_TABLE: ReadonlyArray<{ code: string; status: number; type: ErrorClass }> = [
  { code: 'invalid_argument', status: 400, type: InvalidArgumentError },
  { code: 'unauthenticated', status: 401, type: AuthenticationError },
  { code: 'permission_denied', status: 403, type: PermissionDeniedError },
  { code: 'not_found', status: 404, type: NotFoundError },
  { code: 'conflict', status: 409, type: ConflictError },
  { code: 'payload_too_large', status: 413, type: PayloadTooLargeError },
  { code: 'tier_unavailable', status: 422, type: TierUnavailableError },
  { code: 'resource_exhausted', status: 429, type: RateLimitError },
  { code: 'internal', status: 500, type: ServerError },
  { code: 'unavailable', status: 503, type: UnavailableError },
];

/** What to do next, appended to the server's message for kinds where the fix is on the caller. */
const HINTS: Record<string, string> = {
  unauthenticated: 'pass an API key (apiKey option, --api-key, or HUTCH_API_KEY); the admin key is in <data-dir>/admin.key',
  permission_denied: 'use a key with that role (hutch keys ls shows roles)',
  resource_exhausted: 'retry later',
  unavailable: 'retry later',
};

function codeForStatus(status: number): string {
  const row = ERROR_TABLE.find((r) => r.status === status);
  if (row) return row.code;
  if (status >= 500) return 'internal';
  return 'invalid_argument';
}

/**
 * Builds the typed error for a non-2xx response. `body` is the response text (may be empty or
 * not JSON); `retryAfter` is the raw `Retry-After` header, when present.
 */
export function errorFromResponse(status: number, body: string, retryAfter?: string | null): HutchError {
  let code: string | undefined;
  let message: string | undefined;
  try {
    const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
    if (parsed && typeof parsed.error === 'object' && parsed.error !== null) {
      if (typeof parsed.error.code === 'string') code = parsed.error.code;
      if (typeof parsed.error.message === 'string') message = parsed.error.message;
    }
  } catch {
    // Not JSON: fall back to the status.
  }
  return makeError(code ?? codeForStatus(status), message ?? fallbackMessage(status, body), status, retryAfter);
}

/**
 * Builds the typed error for a wire code without an HTTP response (e.g. an `error` event inside an
 * NDJSON stream). Unknown codes become a plain {@link HutchError} (or by status when given).
 */
export function makeError(code: string, message: string, status?: number, retryAfter?: string | null): HutchError {
  const row = ERROR_TABLE.find((r) => r.code === code) ?? (status ? ERROR_TABLE.find((r) => r.status === status) : undefined);
  const hint = HINTS[code];
  const text = hint && !message.includes(hint) ? `${message} (${hint})` : message;
  if (row?.type === RateLimitError || row?.type === UnavailableError) {
    const seconds = retryAfter != null && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) : undefined;
    return row.type === RateLimitError
      ? new RateLimitError(code, text, status, seconds)
      : new UnavailableError(code, text, status, seconds);
  }
  if (row) return new row.type(code, text, status);
  if (status !== undefined && status >= 500) return new ServerError(code, text, status);
  return new HutchError(code, text, status);
}

function fallbackMessage(status: number, body: string): string {
  const snippet = body.trim().slice(0, 200);
  return snippet ? `HTTP ${status}: ${snippet}` : `HTTP ${status}`;
}

/** The error for a server that cannot be reached at `url`; says how to start or point at one. */
export function connectionError(url: string, cause: unknown): ConnectionError {
  const detail = describeCause(cause);
  return new ConnectionError(
    'connection',
    `cannot reach the Hutch server at ${url}${detail ? ` (${detail})` : ''}; ` +
      'start one with `hutch server`, or set HUTCH_URL (or --url) to where it runs',
    undefined,
    { cause },
  );
}

function describeCause(cause: unknown): string {
  if (cause && typeof cause === 'object') {
    const c = cause as { code?: unknown; message?: unknown };
    if (typeof c.code === 'string') return c.code;
    if (typeof c.message === 'string') return c.message;
  }
  return '';
}
