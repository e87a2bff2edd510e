import { createHash } from 'node:crypto';
import type { CoreV1Api, V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { HutchError } from '../../core/errors.js';
import type { DiskUsage, VolumeBackend, VolumeSnapshotInfo, VolumeSnapshotter } from '../../core/provider.js';
import { withRetry } from './kube-errors.js';
import { LABELS, MANAGED_BY } from './pod-spec.js';

/** What `attach` hands the provider for a PVC-backed volume: `pvc:<claim name>`. */
export const PVC_SOURCE_PREFIX = 'pvc:';

/**
 * Volumes on Kubernetes: one PersistentVolumeClaim per volume (ReadWriteOnce, the volume's size as
 * the request, the configured StorageClass or the cluster's default), mounted by the sandbox pods
 * that name it. The cluster provisions (or, with static PVs, binds) the storage; a claim that does
 * not bind keeps its pods from being scheduled, and their creates fail with the scheduler's reason.
 */
export class KubeVolumes implements VolumeBackend, VolumeSnapshotter {
  constructor(
    private readonly core: CoreV1Api,
    private readonly namespace: string,
    private readonly installation: string,
    private readonly storageClass: string | null,
    /** VolumeSnapshots of the claims (kube-volume-snapshots.ts). */
    private readonly snapshots: VolumeSnapshotter,
  ) {}

  snapshotVolume(key: string, snapshot: string): Promise<VolumeSnapshotInfo> {
    return this.snapshots.snapshotVolume(key, snapshot);
  }

  listVolumeSnapshots(key: string): Promise<VolumeSnapshotInfo[]> {
    return this.snapshots.listVolumeSnapshots(key);
  }

  deleteVolumeSnapshot(key: string, snapshot: string): Promise<void> {
    return this.snapshots.deleteVolumeSnapshot(key, snapshot);
  }

  /** The claim of a volume key (`name` or `name@tenant`): readable, and unique by a digest of the key. */
  static claimName(key: string): string {
    const readable = key
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 30);
    return `hutch-vol-${readable}-${createHash('sha256').update(key).digest('hex').slice(0, 10)}`;
  }

  async create(key: string, sizeMiB: number): Promise<void> {
    const body: V1PersistentVolumeClaim = {
      metadata: {
        name: KubeVolumes.claimName(key),
        namespace: this.namespace,
        labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.installation]: this.installation },
        annotations: { 'hutch.dev/volume': key },
      },
      spec: {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: `${sizeMiB}Mi` } },
        ...(this.storageClass ? { storageClassName: this.storageClass } : {}),
      },
    };
    await withRetry('create volume claim', () => this.core.createNamespacedPersistentVolumeClaim({ namespace: this.namespace, body }));
  }

  async attach(key: string): Promise<string> {
    const name = KubeVolumes.claimName(key);
    try {
      await withRetry('read volume claim', () => this.core.readNamespacedPersistentVolumeClaim({ name, namespace: this.namespace }));
    } catch (err) {
      if (err instanceof HutchError && err.kind === 'not_found')
        throw new HutchError('conflict', `volume ${key} has no PersistentVolumeClaim ${name} in namespace ${this.namespace}`);
      throw err;
    }
    return `${PVC_SOURCE_PREFIX}${name}`;
  }

  /** Not known without a metrics pipeline. */
  async usage(): Promise<DiskUsage | null> {
    return null;
  }

  /** Deletes the claim (the cluster keeps or deletes the storage as its reclaim policy says). Idempotent. */
  async remove(key: string): Promise<void> {
    try {
      await withRetry('delete volume claim', () =>
        this.core.deleteNamespacedPersistentVolumeClaim({ name: KubeVolumes.claimName(key), namespace: this.namespace }),
      );
    } catch (err) {
      if (err instanceof HutchError && err.kind === 'not_found') return;
      throw err;
    }
  }
}
