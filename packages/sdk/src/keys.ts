import type { CallOptions } from './config.js';
import type { Transport } from './http.js';

/** A key's own limits inside its tenant's quotas (absent: none); over one, creates get a `RateLimitError` (429). */
export interface ApiKeyLimits {
  maxSandboxes?: number;
  cpu?: number;
  memoryMiB?: number;
  diskMiB?: number;
  createsPerMinute?: number;
}

/** `admin`: every tenant and the admin routes; `member`: its tenant; `read-only`: its tenant, reads only. */
export type ApiKeyRole = 'admin' | 'member' | 'read-only';

export interface ApiKeyInfo {
  id: string;
  name: string;
  tenant: string;
  role: ApiKeyRole;
  createdAt: string;
  /** Recorded at most once a minute. */
  lastUsedAt: string | null;
  limits: ApiKeyLimits | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  /** The secret: shown only in this answer. */
  key: string;
}

export interface ApiKeyCreateOptions extends CallOptions {
  /** A name to recognise the key by (default `<tenant>-<role>`). */
  name?: string;
  /** The tenant it belongs to (default: the calling key's; only admins name another). */
  tenant?: string;
  /** Default `member`; never above the calling key's role. */
  role?: ApiKeyRole;
  /** Shape the key as `e2b_<hex>`, for e2b SDKs older than 2.46 (they check the format). */
  e2b?: boolean;
  limits?: ApiKeyLimits;
}

export interface ApiKeyListOptions extends CallOptions {
  /** Admins only: one tenant's keys (default: every tenant's for admins, the own tenant's otherwise). */
  tenant?: string;
}

export interface RevokedApiKey {
  id: string;
  revoked: true;
  /** Open streams and WebSockets of the key that the revocation closed. */
  closedConnections: number;
}

/**
 * `hutch.keys`: API keys of tenants, with roles (each works as `Authorization: Bearer` and as
 * E2B's `X-API-KEY`). Members manage their own tenant's keys up to their own role; admins any.
 */
export class ApiKeys {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /**
   * Creates a key; its secret is only in this answer. `create('ci')` names it; `create({ tenant,
   * role })` or `create('ci', { tenant, role })` says whose it is and what it may do.
   */
  async create(nameOrOptions?: string | ApiKeyCreateOptions, opts: ApiKeyCreateOptions = {}): Promise<CreatedApiKey> {
    const merged = typeof nameOrOptions === 'string' ? { ...opts, name: nameOrOptions } : { ...opts, ...(nameOrOptions ?? {}) };
    const { signal, timeoutMs, ...body } = merged;
    return this.transport.json<CreatedApiKey>({ method: 'POST', path: '/v1/keys', json: body, signal, timeoutMs });
  }

  /** Keys the calling key may see (never their secrets). */
  async list(opts: ApiKeyListOptions = {}): Promise<ApiKeyInfo[]> {
    const { tenant, ...call } = opts;
    return (await this.transport.json<{ keys: ApiKeyInfo[] }>({ method: 'GET', path: '/v1/keys', query: { tenant }, ...call })).keys;
  }

  /** One key; `NotFoundError` for an unknown id or another tenant's key. */
  async get(id: string, opts?: CallOptions): Promise<ApiKeyInfo> {
    return this.transport.json<ApiKeyInfo>({ method: 'GET', path: keyPath(id), ...opts });
  }

  /** Revokes a key: it stops working at once and its open streams and WebSockets are closed. */
  async revoke(id: string, opts?: CallOptions): Promise<RevokedApiKey> {
    return this.transport.json<RevokedApiKey>({ method: 'DELETE', path: keyPath(id), ...opts });
  }

  /** Replaces a key's limits (null: none). */
  async setLimits(id: string, limits: ApiKeyLimits | null, opts?: CallOptions): Promise<void> {
    await this.transport.json({ method: 'PUT', path: `${keyPath(id)}/limits`, json: limits, ...opts });
  }
}

function keyPath(id: string): string {
  return `/v1/keys/${encodeURIComponent(id)}`;
}
