import type { CallOptions } from './config.js';
import { NotFoundError } from './errors.js';
import type { Transport } from './http.js';
import type { Isolation, TenantScope } from './types.js';

/** A warm pool's definition: creates with these settings claim a ready sandbox. */
export interface PoolSpec {
  template: string;
  isolation?: Isolation;
  cpu?: number;
  memoryMiB?: number;
  pids?: number;
  diskMiB?: number;
  /** Ready sandboxes kept even when idle (default 0). */
  min?: number;
  /** Never more than this (ready + booting). */
  max: number;
  /** Ready sandboxes kept while the pool sees demand. */
  target: number;
}

export interface PoolInfo {
  tenant: string;
  name: string;
  spec: Required<PoolSpec>;
  size: number;
  starting: number;
  /** What the pool is sizing itself to now (follows demand, between min and max). */
  desired: number;
  hits: number;
  misses: number;
  demandPerMinute: number;
  refillPerMinute: number;
  lastFillMs: number | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * `hutch.pools`: warm pools. A `sandboxes.create` whose template, isolation, cpu, memoryMiB, pids
 * and diskMiB match a pool claims a ready sandbox (its `warm` is true) instead of booting one.
 */
export class Pools {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /** Creates or replaces a pool. */
  async put(name: string, spec: PoolSpec, opts?: CallOptions): Promise<PoolInfo> {
    return this.transport.json<PoolInfo>({ method: 'PUT', path: poolPath(name), json: spec, ...opts });
  }

  /** The key's tenant's pools (an admin's: every tenant's, or `tenant`'s). */
  async list(opts: CallOptions & TenantScope = {}): Promise<PoolInfo[]> {
    const { tenant, ...call } = opts;
    return (await this.transport.json<{ pools: PoolInfo[] }>({ method: 'GET', path: '/v1/pools', query: { tenant }, ...call })).pools;
  }

  async get(name: string, opts?: CallOptions): Promise<PoolInfo> {
    return this.transport.json<PoolInfo>({ method: 'GET', path: poolPath(name), ...opts });
  }

  /** Removes the pool and destroys its ready sandboxes; false when there was no such pool. */
  async delete(name: string, opts?: CallOptions): Promise<boolean> {
    try {
      await this.transport.bytes({ method: 'DELETE', path: poolPath(name), ...opts });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}

function poolPath(name: string): string {
  return `/v1/pools/${encodeURIComponent(name)}`;
}
