import type { CallOptions } from './config.js';
import type { Transport } from './http.js';

/** Per-key limits (absent: unlimited); over one, creates get a `RateLimitError`-style 429. */
export interface ApiKeyLimits {
  maxSandboxes?: number;
  cpu?: number;
  memoryMiB?: number;
  diskMiB?: number;
  createsPerMinute?: number;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  limits: ApiKeyLimits | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  /** The secret: shown only in this answer. */
  key: string;
}

export interface ApiKeyCreateOptions extends CallOptions {
  /** Shape the key as `e2b_<hex>`, for e2b SDKs older than 2.46 (they check the format). */
  e2b?: boolean;
  limits?: ApiKeyLimits;
}

/** `hutch.keys`: API keys (each works as `Authorization: Bearer` and as E2B's `X-API-KEY`). */
export class ApiKeys {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  async create(name: string, opts: ApiKeyCreateOptions = {}): Promise<CreatedApiKey> {
    const { signal, timeoutMs, e2b, limits } = opts;
    return this.transport.json<CreatedApiKey>({
      method: 'POST',
      path: '/v1/keys',
      json: { name, ...(e2b ? { e2b: true } : {}), ...(limits ? { limits } : {}) },
      signal,
      timeoutMs,
    });
  }

  /** Replaces a key's limits (null: unlimited). */
  async setLimits(id: string, limits: ApiKeyLimits | null, opts?: CallOptions): Promise<void> {
    await this.transport.json({ method: 'PUT', path: `/v1/keys/${encodeURIComponent(id)}/limits`, json: limits, ...opts });
  }

  async list(opts?: CallOptions): Promise<ApiKeyInfo[]> {
    return (await this.transport.json<{ keys: ApiKeyInfo[] }>({ method: 'GET', path: '/v1/keys', ...opts })).keys;
  }
}
