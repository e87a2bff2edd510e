import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AuthenticationError,
  ConflictError,
  ConnectionError,
  ERROR_TABLE,
  HutchError,
  InvalidArgumentError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  RateLimitError,
  UnavailableError,
  ServerError,
  TierUnavailableError,
  connectionError,
  errorFromResponse,
  makeError,
} from '../../src/errors.js';

const body = (code: string, message: string): string => JSON.stringify({ error: { code, message } });

test('each documented code maps to its class, keeping code, status and message', () => {
  const expected: Array<[string, number, new (...a: never[]) => HutchError]> = [
    ['invalid_argument', 400, InvalidArgumentError],
    ['unauthenticated', 401, AuthenticationError],
    ['permission_denied', 403, PermissionDeniedError],
    ['not_found', 404, NotFoundError],
    ['conflict', 409, ConflictError],
    ['payload_too_large', 413, PayloadTooLargeError],
    ['tier_unavailable', 422, TierUnavailableError],
    ['resource_exhausted', 429, RateLimitError],
    ['internal', 500, ServerError],
    ['unavailable', 503, UnavailableError],
  ];
  assert.equal(ERROR_TABLE.length, expected.length);
  for (const [code, status, type] of expected) {
    const err = errorFromResponse(status, body(code, `field "x" is wrong (${code})`));
    assert.ok(err instanceof type, `${code} → ${type.name}, got ${err.constructor.name}`);
    assert.ok(err instanceof HutchError);
    assert.ok(err instanceof Error);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    assert.match(err.message, new RegExp(`field "x" is wrong \\(${code}\\)`));
    assert.equal(err.name, type.name);
  }
});

test('the code wins over the status; the status is the fallback for bodies without one', () => {
  assert.ok(errorFromResponse(400, body('not_found', 'no such file')) instanceof NotFoundError);
  assert.ok(errorFromResponse(404, '<html>Not Found</html>') instanceof NotFoundError);
  assert.ok(errorFromResponse(409, '') instanceof ConflictError);
  const gateway = errorFromResponse(502, 'Bad Gateway');
  assert.ok(gateway instanceof ServerError);
  assert.equal(gateway.status, 502);
  assert.match(gateway.message, /HTTP 502: Bad Gateway/);
  assert.ok(errorFromResponse(403, '') instanceof PermissionDeniedError);
});

test('an unknown code keeps its code as a plain HutchError (ServerError when 5xx)', () => {
  const err = errorFromResponse(418, body('teapot', 'short and stout'));
  assert.equal(err.constructor, HutchError);
  assert.equal(err.code, 'teapot');
  assert.ok(errorFromResponse(507, body('disk_full', 'no space')) instanceof ServerError);
});

test('429 carries Retry-After seconds', () => {
  const err = errorFromResponse(429, body('resource_exhausted', 'too many creates'), '7');
  assert.ok(err instanceof RateLimitError);
  assert.equal(err.retryAfterSeconds, 7);
  const noHeader = errorFromResponse(429, body('resource_exhausted', 'too many creates'));
  assert.equal((noHeader as RateLimitError).retryAfterSeconds, undefined);
});

test('503 (node full) is a ServerError carrying Retry-After seconds', () => {
  const err = errorFromResponse(503, body('unavailable', 'node capacity exhausted: memory'), '10');
  assert.ok(err instanceof UnavailableError && err instanceof ServerError);
  assert.equal(err.retryAfterSeconds, 10);
  assert.match(err.message, /memory/);
});

test('messages say what to do next where the fix is on the caller', () => {
  assert.match(errorFromResponse(401, body('unauthenticated', 'bad key')).message, /HUTCH_API_KEY/);
  const conn = connectionError('http://127.0.0.1:7171', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  assert.ok(conn instanceof ConnectionError);
  assert.equal(conn.status, undefined);
  assert.match(conn.message, /http:\/\/127\.0\.0\.1:7171/);
  assert.match(conn.message, /ECONNREFUSED/);
  assert.match(conn.message, /hutch server/);
  assert.match(conn.message, /HUTCH_URL/);
});

test('stream error events map by code without a status', () => {
  const err = makeError('not_found', 'process 12 is gone');
  assert.ok(err instanceof NotFoundError);
  assert.equal(err.status, undefined);
});
