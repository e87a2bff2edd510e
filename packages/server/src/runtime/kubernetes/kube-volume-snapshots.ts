import { createHash } from 'node:crypto';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { HutchError } from '../../core/errors.js';
import type { VolumeSnapshotInfo, VolumeSnapshotter } from '../../core/provider.js';
import type { Discovery } from './discovery.js';
import { kubeError, withRetry } from './kube-errors.js';
import { KubeVolumes } from './kube-volumes.js';
import { LABELS, MANAGED_BY } from './pod-spec.js';
import { quantity } from './quantity.js';

export const SNAPSHOT_GROUP = 'snapshot.storage.k8s.io';
export const SNAPSHOT_VERSION = 'v1';
export const SNAPSHOT_PLURAL = 'volumesnapshots';
/** Labels a VolumeSnapshot with the claim it copies (the claim name is unique per volume). */
export const CLAIM_LABEL = 'hutch.dev/volume-claim';

const UNSUPPORTED = new HutchError(
  'tier_unavailable',
  `volume snapshots are unsupported on this cluster: no ${SNAPSHOT_GROUP}/${SNAPSHOT_VERSION} VolumeSnapshot CRD (install the external-snapshotter CRDs and a CSI driver)`,
);

/** The part of a VolumeSnapshot this code reads. */
export interface VolumeSnapshotObject {
  metadata?: { name?: string; creationTimestamp?: string; annotations?: Record<string, string> };
  status?: { readyToUse?: boolean; restoreSize?: string; creationTime?: string; error?: { message?: string } };
}

/**
 * Volume snapshots on Kubernetes: a `snapshot.storage.k8s.io/v1` VolumeSnapshot of the volume's
 * claim (its class `--volume-snapshot-class`, else the cluster's default class for the driver),
 * labelled with the installation and the claim and annotated with the Hutch names; the CSI
 * snapshot controller does the copy. Where the cluster has no such CRD (asked by discovery at each
 * call until found), every call is a `tier_unavailable` error saying what to install.
 */
export class KubeVolumeSnapshots implements VolumeSnapshotter {
  private readonly custom: CustomObjectsApi;

  constructor(
    kubeConfig: KubeConfig,
    private readonly discovery: Discovery,
    private readonly namespace: string,
    private readonly installation: string,
    private readonly snapshotClass: string | null,
  ) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /** The object of a snapshot: readable, and unique by a digest of the volume key and snapshot name. */
  static objectName(key: string, snapshot: string): string {
    const readable = `${key}-${snapshot}`
      .replace(/[^a-z0-9-]/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40);
    return `hutch-vs-${readable}-${createHash('sha256').update(`${key}/${snapshot}`).digest('hex').slice(0, 10)}`;
  }

  private async supported(): Promise<void> {
    if (!(await this.discovery.serves(SNAPSHOT_GROUP, SNAPSHOT_VERSION, SNAPSHOT_PLURAL))) throw UNSUPPORTED;
  }

  private ref(): { group: string; version: string; namespace: string; plural: string } {
    return { group: SNAPSHOT_GROUP, version: SNAPSHOT_VERSION, namespace: this.namespace, plural: SNAPSHOT_PLURAL };
  }

  /** A 404 from a resource discovery found: its CRD was removed since. */
  private gone(err: unknown): never {
    if (err instanceof HutchError && err.kind === 'not_found' && /the server could not find the requested resource/i.test(err.message)) {
      this.discovery.forget(SNAPSHOT_GROUP, SNAPSHOT_VERSION, SNAPSHOT_PLURAL);
      throw UNSUPPORTED;
    }
    throw err;
  }

  async snapshotVolume(key: string, snapshot: string): Promise<VolumeSnapshotInfo> {
    await this.supported();
    const body = buildVolumeSnapshot({
      key,
      snapshot,
      namespace: this.namespace,
      installation: this.installation,
      snapshotClass: this.snapshotClass,
    });
    let created: VolumeSnapshotObject;
    try {
      // Not retried: a create the API server carried out would come back as a 409.
      created = (await this.custom.createNamespacedCustomObject({ ...this.ref(), body })) as VolumeSnapshotObject;
    } catch (err) {
      const mapped = kubeError('create volume snapshot', err);
      if (mapped.kind === 'conflict') throw new HutchError('conflict', `volume snapshot "${snapshot}" already exists`);
      this.gone(mapped);
    }
    return volumeSnapshotInfo(created);
  }

  async listVolumeSnapshots(key: string): Promise<VolumeSnapshotInfo[]> {
    await this.supported();
    const selector = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.installation}=${this.installation},${CLAIM_LABEL}=${KubeVolumes.claimName(key)}`;
    let list: { items?: VolumeSnapshotObject[] };
    try {
      list = (await withRetry('list volume snapshots', () =>
        this.custom.listNamespacedCustomObject({ ...this.ref(), labelSelector: selector }),
      )) as { items?: VolumeSnapshotObject[] };
    } catch (err) {
      this.gone(err);
    }
    return (list.items ?? [])
      .filter((o) => o.metadata?.annotations?.['hutch.dev/volume'] === key)
      .map(volumeSnapshotInfo)
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
  }

  async deleteVolumeSnapshot(key: string, snapshot: string): Promise<void> {
    await this.supported();
    try {
      await withRetry('delete volume snapshot', () =>
        this.custom.deleteNamespacedCustomObject({ ...this.ref(), name: KubeVolumeSnapshots.objectName(key, snapshot) }),
      );
    } catch (err) {
      if (err instanceof HutchError && err.kind === 'not_found' && !/could not find the requested resource/i.test(err.message))
        throw new HutchError('not_found', `volume snapshot "${snapshot}" not found`);
      this.gone(err);
    }
  }
}

/** The VolumeSnapshot of snapshot `snapshot` of the volume with key `key` (its claim as the source). */
export function buildVolumeSnapshot(input: {
  key: string;
  snapshot: string;
  namespace: string;
  installation: string;
  snapshotClass: string | null;
}): Record<string, unknown> {
  const claim = KubeVolumes.claimName(input.key);
  return {
    apiVersion: `${SNAPSHOT_GROUP}/${SNAPSHOT_VERSION}`,
    kind: 'VolumeSnapshot',
    metadata: {
      name: KubeVolumeSnapshots.objectName(input.key, input.snapshot),
      namespace: input.namespace,
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.installation]: input.installation, [CLAIM_LABEL]: claim },
      annotations: { 'hutch.dev/volume': input.key, 'hutch.dev/snapshot': input.snapshot },
    },
    spec: {
      ...(input.snapshotClass ? { volumeSnapshotClassName: input.snapshotClass } : {}),
      source: { persistentVolumeClaimName: claim },
    },
  };
}

/** What the API shows of a VolumeSnapshot: the Hutch name, the controller's status. */
export function volumeSnapshotInfo(o: VolumeSnapshotObject): VolumeSnapshotInfo {
  const created = o.status?.creationTime ?? o.metadata?.creationTimestamp;
  return {
    name: o.metadata?.annotations?.['hutch.dev/snapshot'] ?? o.metadata?.name ?? '',
    createdAt: created ? new Date(created) : new Date(),
    readyToUse: o.status?.readyToUse === true,
    restoreSizeMiB: o.status?.restoreSize ? Math.ceil(quantity(o.status.restoreSize) / 2 ** 20) : null,
    error: o.status?.error?.message ?? null,
  };
}
