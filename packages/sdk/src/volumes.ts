import type { CallOptions } from './config.js';
import { NotFoundError } from './errors.js';
import type { Transport } from './http.js';
import type { TenantScope, VolumeCreateParams, VolumeInfo, VolumeSnapshotInfo } from './types.js';

export interface VolumeCreateOptions extends Omit<VolumeCreateParams, 'name'>, CallOptions {}

/**
 * `hutch.volumes`: named, quota'd directories that outlive sandboxes. Mount one with
 * `hutch.sandboxes.create({ volumes: [{ name, path }] })`; several sandboxes may mount it at once.
 */
export class Volumes {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /** Creates an empty volume; a `ConflictError` when the name is taken. */
  async create(name: string, opts: VolumeCreateOptions = {}): Promise<VolumeInfo> {
    const { signal, timeoutMs, ...params } = opts;
    const body: VolumeCreateParams = { name, ...params };
    return this.transport.json<VolumeInfo>({ method: 'POST', path: '/v1/volumes', json: body, signal, timeoutMs });
  }

  /** The key's tenant's volumes (an admin's: every tenant's, or `tenant`'s), with use and the sandboxes that mount them. */
  async list(opts: CallOptions & TenantScope = {}): Promise<VolumeInfo[]> {
    const { tenant, ...call } = opts;
    const res = await this.transport.json<{ volumes: VolumeInfo[] }>({ method: 'GET', path: '/v1/volumes', query: { tenant }, ...call });
    return res.volumes;
  }

  /** One volume; rejects with `NotFoundError` when there is none. */
  async get(name: string, opts?: CallOptions): Promise<VolumeInfo> {
    return this.transport.json<VolumeInfo>({ method: 'GET', path: volumePath(name), ...opts });
  }

  /**
   * Deletes a volume and its contents. Idempotent: resolves `true` when this call deleted it,
   * `false` when there was no such volume. A volume still mounted by a sandbox (in any state but
   * deleted) is a `ConflictError` naming the sandboxes.
   */
  async delete(name: string, opts?: CallOptions): Promise<boolean> {
    try {
      await this.transport.bytes({ method: 'DELETE', path: volumePath(name), ...opts });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /**
   * Takes a snapshot of a volume (kubernetes provider: a VolumeSnapshot of its claim; poll
   * `snapshots()` for `readyToUse`). A `TierUnavailableError` on the local provider and on a
   * cluster without the VolumeSnapshot CRD; a `ConflictError` when the name is taken.
   */
  async snapshot(name: string, snapshot: string, opts?: CallOptions): Promise<VolumeSnapshotInfo> {
    return this.transport.json<VolumeSnapshotInfo>({
      method: 'POST',
      path: `${volumePath(name)}/snapshots`,
      json: { name: snapshot },
      ...opts,
    });
  }

  /** A volume's snapshots, oldest first. */
  async snapshots(name: string, opts?: CallOptions): Promise<VolumeSnapshotInfo[]> {
    const res = await this.transport.json<{ snapshots: VolumeSnapshotInfo[] }>({
      method: 'GET',
      path: `${volumePath(name)}/snapshots`,
      ...opts,
    });
    return res.snapshots;
  }

  /** Deletes a snapshot: `true` when this call deleted it, `false` when there was none of that name. */
  async deleteSnapshot(name: string, snapshot: string, opts?: CallOptions): Promise<boolean> {
    try {
      await this.transport.bytes({ method: 'DELETE', path: `${volumePath(name)}/snapshots/${encodeURIComponent(snapshot)}`, ...opts });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}

function volumePath(name: string): string {
  return `/v1/volumes/${encodeURIComponent(name)}`;
}
