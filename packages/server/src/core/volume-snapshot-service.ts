import { HutchError, invalidArgument, notFound } from './errors.js';
import type { Logger } from './logger.js';
import { canSnapshotVolumes, type VolumeBackend, type VolumeSnapshotInfo } from './provider.js';
import { type VolumeService, volumeKey } from './volume-service.js';

const SNAPSHOT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface VolumeSnapshotView extends VolumeSnapshotInfo {
  tenant: string;
  volume: string;
}

/**
 * Point-in-time copies of volumes, where the volume backend can make them (the kubernetes
 * provider: CSI VolumeSnapshots; runtime/kubernetes/kube-volume-snapshots.ts). The backend is
 * their record: nothing is stored here, they are listed from it. Elsewhere every call is a
 * `tier_unavailable` error saying so.
 */
export class VolumeSnapshotService {
  constructor(
    private readonly volumes: VolumeService,
    private readonly backend: VolumeBackend,
    private readonly log: Logger,
  ) {}

  private snapshotter() {
    const backend = this.backend;
    if (!canSnapshotVolumes(backend))
      throw new HutchError(
        'tier_unavailable',
        'volume snapshots are unsupported on the local provider (they need the kubernetes provider)',
      );
    return backend;
  }

  async create(tenant: string, volume: string, input: { name: string }): Promise<VolumeSnapshotView> {
    if (!SNAPSHOT_NAME.test(input.name))
      throw invalidArgument(`name: "${input.name.slice(0, 70)}" is not a snapshot name (1-63 of a-z, 0-9, ".", "_", "-")`);
    const backend = this.snapshotter();
    await this.volumes.get(tenant, volume);
    const info = await backend.snapshotVolume(volumeKey(tenant, volume), input.name);
    this.log.info({ volume, tenant, snapshot: input.name }, 'volume snapshot created');
    return { ...info, tenant, volume };
  }

  async list(tenant: string, volume: string): Promise<VolumeSnapshotView[]> {
    const backend = this.snapshotter();
    await this.volumes.get(tenant, volume);
    return (await backend.listVolumeSnapshots(volumeKey(tenant, volume))).map((s) => ({ ...s, tenant, volume }));
  }

  async get(tenant: string, volume: string, name: string): Promise<VolumeSnapshotView> {
    const found = (await this.list(tenant, volume)).find((s) => s.name === name);
    if (!found) throw notFound(`volume "${volume}" has no snapshot "${name.slice(0, 70)}"`);
    return found;
  }

  async delete(tenant: string, volume: string, name: string): Promise<void> {
    const backend = this.snapshotter();
    await this.volumes.get(tenant, volume);
    await backend.deleteVolumeSnapshot(volumeKey(tenant, volume), name);
    this.log.info({ volume, tenant, snapshot: name }, 'volume snapshot deleted');
  }
}
