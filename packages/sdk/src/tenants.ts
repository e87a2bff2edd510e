import type { CallOptions } from './config.js';
import type { Transport } from './http.js';

/** What a tenant may hold at once (absent fields: unlimited); over one, creates get a `RateLimitError` (429). */
export interface TenantQuotas {
  /** Sandboxes (running, paused or stopped). */
  maxSandboxes?: number;
  /** Sum of the cpu limits of its running sandboxes. */
  cpu?: number;
  /** Sum of the memory limits of its running sandboxes. */
  memoryMiB?: number;
  /** Storage: its sandboxes' disk quotas plus its volumes' sizes. */
  diskMiB?: number;
  createsPerMinute?: number;
}

export interface TenantUsage {
  sandboxes: number;
  cpu: number;
  memoryMiB: number;
  diskMiB: number;
  volumes: number;
  snapshots: number;
  pools: number;
  keys: number;
}

export interface TenantInfo {
  name: string;
  quotas: TenantQuotas | null;
  createdAt: string;
  usage: TenantUsage;
}

export interface TenantCreateOptions extends CallOptions {
  quotas?: TenantQuotas;
}

export interface TenantDeleteOptions extends CallOptions {
  /** Also delete its sandboxes, volumes, snapshots and pools (without it: `ConflictError` while it has any). */
  force?: boolean;
}

export interface TenantDeleteResult {
  name: string;
  /** How many of each it had: keys (revoked), pools, sandboxes, snapshots, volumes. */
  deleted: Record<string, number>;
}

/**
 * `hutch.tenants` (admin keys only): the teams sharing a server. Every sandbox, volume, snapshot,
 * pool and key belongs to one; keys of one tenant never see another's objects.
 */
export class Tenants {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  async create(name: string, opts: TenantCreateOptions = {}): Promise<TenantInfo> {
    const { quotas, signal, timeoutMs } = opts;
    return this.transport.json<TenantInfo>({
      method: 'POST',
      path: '/v1/admin/tenants',
      json: { name, ...(quotas ? { quotas } : {}) },
      signal,
      timeoutMs,
    });
  }

  async list(opts?: CallOptions): Promise<TenantInfo[]> {
    return (await this.transport.json<{ tenants: TenantInfo[] }>({ method: 'GET', path: '/v1/admin/tenants', ...opts })).tenants;
  }

  async get(name: string, opts?: CallOptions): Promise<TenantInfo> {
    return this.transport.json<TenantInfo>({ method: 'GET', path: tenantPath(name), ...opts });
  }

  /** Replaces the tenant's quotas (null: unlimited). */
  async setQuotas(name: string, quotas: TenantQuotas | null, opts?: CallOptions): Promise<TenantInfo> {
    return this.transport.json<TenantInfo>({ method: 'PUT', path: `${tenantPath(name)}/quotas`, json: quotas, ...opts });
  }

  /** Deletes the tenant and revokes its keys (the `default` tenant cannot be deleted). */
  async delete(name: string, opts: TenantDeleteOptions = {}): Promise<TenantDeleteResult> {
    const { force, ...call } = opts;
    return this.transport.json<TenantDeleteResult>({
      method: 'DELETE',
      path: tenantPath(name),
      query: { force: force ? true : undefined },
      ...call,
    });
  }
}

function tenantPath(name: string): string {
  return `/v1/admin/tenants/${encodeURIComponent(name)}`;
}
