import type { CallOptions } from './config.js';
import { NotFoundError } from './errors.js';
import type { Transport } from './http.js';
import type { SnapshotInfo, TenantScope } from './types.js';

/**
 * `hutch.snapshots`: sandboxes' files captured as layers. Take one with `sandbox.snapshot()` (or
 * `sandbox.fork()`); create from one with `hutch.sandboxes.create({ template: snapshot.id })`.
 */
export class Snapshots {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /** The key's tenant's snapshots (an admin's: every tenant's, or `tenant`'s). */
  async list(opts: CallOptions & TenantScope = {}): Promise<SnapshotInfo[]> {
    const { tenant, ...call } = opts;
    const res = await this.transport.json<{ snapshots: SnapshotInfo[] }>({
      method: 'GET',
      path: '/v1/snapshots',
      query: { tenant },
      ...call,
    });
    return res.snapshots;
  }

  /** One snapshot; rejects with `NotFoundError` when there is none. */
  async get(id: string, opts?: CallOptions): Promise<SnapshotInfo> {
    return this.transport.json<SnapshotInfo>({ method: 'GET', path: snapshotPath(id), ...opts });
  }

  /**
   * Deletes a snapshot (its layers go at the next `hutch.gc()` unless another snapshot shares
   * them). Idempotent: resolves `true` when this call deleted it, `false` when there was no such
   * snapshot. A snapshot some sandbox (in any state but deleted) was created from is a
   * `ConflictError` naming the sandboxes.
   */
  async delete(id: string, opts?: CallOptions): Promise<boolean> {
    try {
      await this.transport.bytes({ method: 'DELETE', path: snapshotPath(id), ...opts });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}

function snapshotPath(id: string): string {
  return `/v1/snapshots/${encodeURIComponent(id)}`;
}
