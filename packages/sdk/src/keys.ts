import type { CallOptions } from './config.js';
import type { Transport } from './http.js';

export interface ApiKeyInfo {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface CreatedApiKey extends ApiKeyInfo {
  /** The secret: shown only in this answer. */
  key: string;
}

export interface ApiKeyCreateOptions extends CallOptions {
  /** Shape the key as `e2b_<hex>`, for e2b SDKs older than 2.46 (they check the format). */
  e2b?: boolean;
}

/** `hutch.keys`: API keys (each works as `Authorization: Bearer` and as E2B's `X-API-KEY`). */
export class ApiKeys {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  async create(name: string, opts: ApiKeyCreateOptions = {}): Promise<CreatedApiKey> {
    const { signal, timeoutMs, e2b } = opts;
    return this.transport.json<CreatedApiKey>({
      method: 'POST',
      path: '/v1/keys',
      json: { name, ...(e2b ? { e2b: true } : {}) },
      signal,
      timeoutMs,
    });
  }

  async list(opts?: CallOptions): Promise<ApiKeyInfo[]> {
    return (await this.transport.json<{ keys: ApiKeyInfo[] }>({ method: 'GET', path: '/v1/keys', ...opts })).keys;
  }
}
