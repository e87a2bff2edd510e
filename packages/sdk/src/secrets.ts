import type { CallOptions } from './config.js';
import { NotFoundError } from './errors.js';
import type { Transport } from './http.js';
import type { TenantScope } from './types.js';

/** A secret as the server shows it: metadata, never the value. */
export interface SecretInfo {
  tenant: string;
  name: string;
  /** The value's length in UTF-8 bytes. */
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
}

/** `put`'s answer: the metadata, and whether the call created the secret (false: replaced it). */
export interface PutSecretResult extends SecretInfo {
  created: boolean;
}

/** Admins act on another tenant's secrets with `tenant`. */
export interface SecretCallOptions extends CallOptions, TenantScope {}

/**
 * `hutch.secrets`: a tenant's named values, stored encrypted by the server and never returned by
 * it. A sandbox gets them at create (`secrets: [{ name, env }]`, `{ name, file }` below
 * /run/secrets, or `{ name, injectHeader }` for the egress proxy); see docs/security.md.
 */
export class Secrets {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /**
   * Creates or replaces a secret (a UTF-8 string of at most 64 KiB). Sandboxes already given it
   * keep their value until they start again.
   */
  async put(name: string, value: string, opts: SecretCallOptions = {}): Promise<PutSecretResult> {
    const { tenant, ...call } = opts;
    const res = await this.transport.jsonWithStatus<SecretInfo>({
      method: 'PUT',
      path: secretPath(name),
      query: { tenant },
      json: { value },
      ...call,
    });
    return { ...res.body, created: res.status === 201 };
  }

  /** One secret's metadata; rejects with `NotFoundError` when there is none (also another tenant's). */
  async get(name: string, opts: SecretCallOptions = {}): Promise<SecretInfo> {
    const { tenant, ...call } = opts;
    return this.transport.json<SecretInfo>({ method: 'GET', path: secretPath(name), query: { tenant }, ...call });
  }

  /** The key's tenant's secrets (an admin's: every tenant's, or `tenant`'s), metadata only. */
  async list(opts: SecretCallOptions = {}): Promise<SecretInfo[]> {
    const { tenant, ...call } = opts;
    const res = await this.transport.json<{ secrets: SecretInfo[] }>({ method: 'GET', path: '/v1/secrets', query: { tenant }, ...call });
    return res.secrets;
  }

  /**
   * Deletes a secret. Idempotent: `true` when this call deleted it, `false` when there was none.
   * Running sandboxes keep what they were given; a stopped one naming it cannot start until it is
   * written again.
   */
  async delete(name: string, opts: SecretCallOptions = {}): Promise<boolean> {
    const { tenant, ...call } = opts;
    try {
      await this.transport.bytes({ method: 'DELETE', path: secretPath(name), query: { tenant }, ...call });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}

function secretPath(name: string): string {
  return `/v1/secrets/${encodeURIComponent(name)}`;
}
