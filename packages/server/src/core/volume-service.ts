import { posix } from 'node:path';
import { conflict, HutchError, invalidArgument, isDuplicateKey, notFound } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Logger } from './logger.js';
import { canCloneVolumes, canSnapshotVolumes, type DiskUsage, type VolumeBackend } from './provider.js';
import type { VolumeMount } from './sandbox.js';
import type { Quotas } from './quotas.js';
import type { SandboxStore, VolumeRecord, VolumeStore } from './stores.js';
import { DEFAULT_TENANT } from './tenancy.js';

const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const VOLUME_DEFAULT_MIB = 1024;

export interface VolumeView extends VolumeRecord {
  usedBytes: number | null;
  usedBy: string[];
}

/**
 * The name a volume has in the backend (its directory on this host). Names are unique per
 * tenant; the default tenant's keep their plain name (volumes made before tenants), others'
 * are `<name>@<tenant>` — `@` is in neither a volume nor a tenant name, so no two collide.
 */
export function volumeKey(tenant: string, name: string): string {
  return tenant === DEFAULT_TENANT ? name : `${name}@${tenant}`;
}

/**
 * Named, quota'd, persistent volumes. A volume outlives every sandbox that mounts it; several
 * sandboxes of its tenant may mount it at once (read-only or read-write), and deleting one in use
 * is refused. Names are per tenant: every method takes the tenant whose namespace is meant.
 */
export class VolumeService {
  /** One create or clone at a time per volume name (a leftover is cleared under it). */
  private readonly making = new KeyedMutex();

  constructor(
    private readonly store: VolumeStore,
    private readonly sandboxes: SandboxStore,
    private readonly backend: VolumeBackend,
    private readonly log: Logger,
    /** Paths a volume may not cover: the runtime's own mounts and the kernel's virtual filesystems. */
    private readonly reserved: readonly string[],
    /** Tenant storage quotas (none: unlimited). */
    private readonly quotas: Quotas | null = null,
  ) {}

  async create(tenant: string, input: { name: string; sizeMiB?: number; labels?: Record<string, string> }): Promise<VolumeView> {
    if (!VOLUME_NAME.test(input.name))
      throw invalidArgument(`name: "${input.name.slice(0, 70)}" is not a volume name (1-63 of a-z, 0-9, ".", "_", "-")`);
    return this.making.run(volumeKey(tenant, input.name), () => this.createOne(tenant, input));
  }

  private async createOne(tenant: string, input: { name: string; sizeMiB?: number; labels?: Record<string, string> }): Promise<VolumeView> {
    if (await this.store.get(tenant, input.name)) throw conflict(`volume "${input.name}" already exists`);
    const sizeMiB = input.sizeMiB ?? VOLUME_DEFAULT_MIB;
    if (this.quotas) this.quotas.checkVolume(tenant, sizeMiB, await this.quotas.volumeUse(tenant));
    const record: VolumeRecord = {
      tenant,
      name: input.name,
      sizeMiB,
      labels: input.labels ?? {},
      createdAt: new Date(),
    };
    const key = volumeKey(tenant, record.name);
    await this.withoutLeftover(key, () => this.backend.create(key, record.sizeMiB));
    try {
      await this.store.insert(record);
    } catch (err) {
      await this.backend.remove(key).catch(() => undefined);
      if (isDuplicateKey(err)) throw conflict(`volume "${input.name}" already exists`);
      throw err;
    }
    this.log.info({ volume: record.name, tenant, sizeMiB: record.sizeMiB }, 'volume created');
    return { ...record, usedBytes: 0, usedBy: [] };
  }

  /** Whether volumes can be cloned here (the local provider: yes; Kubernetes: not yet). */
  canClone(): boolean {
    return canCloneVolumes(this.backend);
  }

  /**
   * A new volume of the tenant with the contents of `source` (its size; a crash-consistent copy
   * even while the source is in use; copy-on-write where the host's filesystem allows).
   */
  async clone(tenant: string, source: string, input: { name: string; labels?: Record<string, string> }): Promise<VolumeView> {
    const backend = this.backend;
    if (!canCloneVolumes(backend)) throw new HutchError('tier_unavailable', 'volumes cannot be cloned on this provider');
    if (!VOLUME_NAME.test(input.name))
      throw invalidArgument(`name: "${input.name.slice(0, 70)}" is not a volume name (1-63 of a-z, 0-9, ".", "_", "-")`);
    const from = await this.store.get(tenant, source);
    if (!from) throw notFound(`volume "${source.slice(0, 70)}" not found`);
    return this.making.run(volumeKey(tenant, input.name), async () => {
      if (await this.store.get(tenant, input.name)) throw conflict(`volume "${input.name}" already exists`);
      if (this.quotas) this.quotas.checkVolume(tenant, from.sizeMiB, await this.quotas.volumeUse(tenant));
      const record: VolumeRecord = { tenant, name: input.name, sizeMiB: from.sizeMiB, labels: input.labels ?? {}, createdAt: new Date() };
      const key = volumeKey(tenant, input.name);
      await this.withoutLeftover(key, () => backend.cloneVolume(volumeKey(tenant, source), key));
      try {
        await this.store.insert(record);
      } catch (err) {
        await this.backend.remove(key).catch(() => undefined);
        throw err;
      }
      this.log.info({ volume: input.name, source, tenant }, 'volume cloned');
      return { ...record, usedBytes: null, usedBy: [] };
    });
  }

  /**
   * Makes a volume's files; if that fails, clears what is there under its name and tries once
   * more. The name has no record (checked under the name's lock), so files there are a leftover:
   * a crash between writing a volume and recording it (written first) leaves them, and nothing
   * uses them.
   */
  private async withoutLeftover(key: string, make: () => Promise<void>): Promise<void> {
    try {
      await make();
    } catch (err) {
      this.log.warn({ volume: key, err: (err as Error).message }, 'volume files left without a record: cleared, trying again');
      await this.backend.remove(key);
      await make();
    }
  }

  async get(tenant: string, name: string): Promise<VolumeView> {
    const record = await this.store.get(tenant, name);
    if (!record) throw notFound(`volume "${name.slice(0, 70)}" not found`);
    return this.view(record);
  }

  /** One tenant's volumes, or (null) every tenant's. */
  async list(tenant: string | null): Promise<VolumeView[]> {
    return Promise.all((await this.store.list(tenant)).map((r) => this.view(r)));
  }

  /** The tenant's volume records, without their usage (which mounts them). */
  records(tenant: string): Promise<VolumeRecord[]> {
    return this.store.list(tenant);
  }

  /** MiB of volumes the tenant has (its storage quota counts them). */
  async totalMiB(tenant: string): Promise<number> {
    return (await this.store.list(tenant)).reduce((sum, v) => sum + v.sizeMiB, 0);
  }

  private async view(record: VolumeRecord): Promise<VolumeView> {
    const usage = await this.backend.usage(volumeKey(record.tenant, record.name)).catch(() => null);
    return { ...record, usedBytes: usage?.usedBytes ?? null, usedBy: await this.sandboxes.usingVolume(record.tenant, record.name) };
  }

  async usage(tenant: string, name: string): Promise<DiskUsage | null> {
    return this.backend.usage(volumeKey(tenant, name)).catch(() => null);
  }

  async delete(tenant: string, name: string): Promise<void> {
    const record = await this.store.get(tenant, name);
    if (!record) throw notFound(`volume "${name.slice(0, 70)}" not found`);
    const users = await this.sandboxes.usingVolume(tenant, name);
    if (users.length > 0)
      throw conflict(`volume "${name}" is in use by sandbox${users.length > 1 ? 'es' : ''} ${users.join(', ')}; delete them first`);
    // Snapshots outlive nothing they cannot be listed by: the volume goes after them.
    if (canSnapshotVolumes(this.backend)) {
      const snapshots = await this.backend.listVolumeSnapshots(volumeKey(tenant, name)).catch((err: unknown) => {
        // A cluster without snapshots has none of this volume. One whose snapshots cannot be
        // listed (e.g. RBAC from before volume snapshots) does not keep its volumes: the
        // snapshots, if any, stay in the cluster, labelled with their claim.
        if (!(err instanceof HutchError && err.kind === 'tier_unavailable'))
          this.log.warn(
            { volume: name, tenant, err: (err as Error).message },
            'volume snapshots could not be listed; deleting the volume anyway',
          );
        return [];
      });
      if (snapshots.length > 0)
        throw conflict(`volume "${name}" has snapshots (${snapshots.map((s) => s.name).join(', ')}); delete them first`);
    }
    await this.backend.remove(volumeKey(tenant, name));
    await this.store.remove(tenant, name);
    this.log.info({ volume: name, tenant }, 'volume deleted');
  }

  /** Validates a create request's `volumes` (the tenant's) and returns the mounts with their host sources. */
  async resolveMounts(
    tenant: string,
    input: Array<{ name: string; path: string; readOnly?: boolean }>,
  ): Promise<{ mounts: VolumeMount[]; sources: Array<{ source: string; destination: string; readOnly: boolean }> }> {
    const mounts: VolumeMount[] = [];
    const seen = new Set<string>();
    for (const [i, v] of input.entries()) {
      const field = `volumes[${i}]`;
      if (!(await this.store.get(tenant, v.name)))
        throw invalidArgument(`${field}.name: volume "${v.name}" does not exist (POST /v1/volumes first)`);
      if (!v.path.startsWith('/')) throw invalidArgument(`${field}.path: must be absolute`);
      const path = posix.normalize(v.path).replace(/\/+$/, '');
      if (path === '' || path !== v.path.replace(/\/+$/, '') || v.path.includes('\0'))
        throw invalidArgument(`${field}.path: "${v.path.slice(0, 100)}" must be a normalized absolute path other than /`);
      const reserved = this.reserved.find((r) => path === r || path.startsWith(`${r}/`) || r.startsWith(`${path}/`));
      if (reserved) throw invalidArgument(`${field}.path: "${path}" overlaps ${reserved}, which the platform mounts`);
      if (seen.has(path)) throw invalidArgument(`${field}.path: "${path}" is mounted twice`);
      seen.add(path);
      mounts.push({ name: v.name, path, readOnly: v.readOnly === true });
    }
    const sources = [];
    for (const m of mounts)
      sources.push({ source: await this.backend.attach(volumeKey(tenant, m.name)), destination: m.path, readOnly: m.readOnly });
    return { mounts, sources };
  }

  /** Host sources for a sandbox's recorded mounts (on start, after a reboot unmounted them). */
  async attachAll(tenant: string, mounts: VolumeMount[]): Promise<void> {
    for (const m of mounts) await this.backend.attach(volumeKey(tenant, m.name));
  }
}
