import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { TestServer } from './harness.js';
import type { ApiError } from './hostile-lib.js';

/**
 * Calls as one API key of one tenant, for the tests of tenancy, audit and metrics: each needs
 * keys of several tenants and roles, sandboxes made with them, and calls that assert their status.
 */
export interface TenantKey {
  id: string;
  key: string;
  tenant: string;
  role: string;
}

export interface TenantClient {
  bearer(k: TenantKey | string): Record<string, string>;
  /** A call with `k`'s bearer token (and extra headers). */
  as<T = unknown>(
    k: TenantKey,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T & ApiError; headers: Headers }>;
  /** POST /v1/keys: by the server's admin key, or by `by`; asserts 201. */
  newKey<K extends TenantKey = TenantKey>(body: Record<string, unknown>, by?: TenantKey): Promise<K>;
  /** POST /v1/sandboxes as `k` with the test's defaults and `body` on top; asserts 201. */
  make<S extends { id: string } = { id: string }>(k: TenantKey, body?: Record<string, unknown>): Promise<S>;
  /** POST …/exec as `k`; asserts 200. */
  exec(
    k: TenantKey,
    id: string,
    cmd: string,
    timeoutMs?: number,
  ): Promise<{ pid: number; exitCode: number; stdout: string; stderr: string }>;
  /** Opens a WebSocket as `k`; resolves with it once open, or with the HTTP status that refused the upgrade. */
  openWs(path: string, k: TenantKey): Promise<{ ws: WebSocket | null; status: number }>;
}

/** `server` is read at each call: tests assign it in `before`. */
export function tenantClient(server: () => TestServer, sandboxDefaults: Record<string, unknown>): TenantClient {
  const bearer = (k: TenantKey | string): Record<string, string> => ({ authorization: `Bearer ${typeof k === 'string' ? k : k.key}` });
  const as = <T = unknown>(k: TenantKey, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    server().api<T & ApiError>(method, path, body, { ...bearer(k), ...headers });
  return {
    bearer,
    as,
    async newKey<K extends TenantKey = TenantKey>(body: Record<string, unknown>, by?: TenantKey): Promise<K> {
      const res = by ? await as<K>(by, 'POST', '/v1/keys', body) : await server().api<K & ApiError>('POST', '/v1/keys', body);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body;
    },
    async make<S extends { id: string } = { id: string }>(k: TenantKey, body: Record<string, unknown> = {}): Promise<S> {
      const res = await as<S>(k, 'POST', '/v1/sandboxes', { ...sandboxDefaults, ...body });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body;
    },
    async exec(k: TenantKey, id: string, cmd: string, timeoutMs = 30_000) {
      const res = await as<{ pid: number; exitCode: number; stdout: string; stderr: string }>(k, 'POST', `/v1/sandboxes/${id}/exec`, {
        cmd,
        timeoutMs,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    },
    openWs(path: string, k: TenantKey): Promise<{ ws: WebSocket | null; status: number }> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(`${server().url.replace('http:', 'ws:')}${path}`, { headers: bearer(k) });
        ws.once('open', () => resolve({ ws, status: 101 }));
        ws.once('unexpected-response', (_req, res) => {
          resolve({ ws: null, status: res.statusCode ?? 0 });
          res.resume();
          ws.terminate();
        });
        ws.once('error', (err) => reject(err));
      });
    },
  };
}
