import { newSnapshotId, SNAPSHOT_ID_PATTERN as SNAPSHOT_ID } from './ids.js';
import { conflict, HutchError, invalidArgument, notFound } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Logger } from './logger.js';
import type { Provider } from './provider.js';
import type { CreateSandboxInput, SandboxRecord } from './sandbox.js';
import type { ResolvedSource, SandboxService, SnapshotSource } from './sandbox-service.js';
import { type Caller, requireVisible } from './tenancy.js';
import type { SandboxStore, SnapshotRecord, SnapshotStore } from './stores.js';
import type { TemplateCatalog } from './templates.js';

/** What snapshots need from the layer store (templates/layer-store.ts implements it). */
export interface LayerRepository {
  capture(sourceDir: string, parent: string | null): Promise<{ digest: string; rootfs: string; sizeBytes: number; reused: boolean }>;
  get(digest: string): Promise<{ digest: string; rootfs: string } | null>;
  gc(referenced: Set<string>, options: { dryRun: boolean }): Promise<{ layers: string[]; objects: number; bytes: number }>;
}

export interface SnapshotView extends SnapshotRecord {
  reused?: boolean;
  durationMs?: number;
}

/**
 * Snapshots: a sandbox's files captured as a read-only layer on top of the layers it came from,
 * usable as a template (`POST /v1/sandboxes {template: <snapshot id>}`). Layers are content-
 * addressed and file-deduplicated by the layer store; a snapshot in use cannot be deleted, and
 * layers no snapshot references are removed by `gc`.
 */
export class SnapshotService implements SnapshotSource {
  /** Captures and gc are serialized: a layer captured after gc listed the references would go. */
  private readonly layerLock = new KeyedMutex();

  constructor(
    private readonly store: SnapshotStore,
    private readonly sandboxStore: SandboxStore,
    private readonly provider: Provider,
    private readonly layers: LayerRepository,
    private readonly templates: TemplateCatalog,
    private readonly log: Logger,
    /** Set after construction: the sandbox service resolves snapshots through this one. */
    public sandboxes: SandboxService | null = null,
  ) {}

  async create(sandboxId: string, input: { memory?: boolean; metadata?: Record<string, string> } = {}): Promise<SnapshotView> {
    const sandboxes = this.requireSandboxes();
    const record = await sandboxes.get(sandboxId);
    if (!['running', 'paused', 'stopped'].includes(record.state))
      throw conflict(`sandbox ${sandboxId} is ${record.state}; only running, paused or stopped sandboxes can be snapshotted`);
    if (input.memory) return this.createWithMemory(record, input.metadata ?? {});
    const base = await this.baseOf(record);
    const started = performance.now();
    const capture = (): Promise<{ digest: string; sizeBytes: number; reused: boolean }> =>
      this.provider.withUpperDir(record.id, (upper) => this.layers.capture(upper, base.layers[0] ?? base.templateDigest));
    return this.layerLock.run('layers', async () => {
      // A running sandbox is frozen while its upper layer is read, so the snapshot is consistent.
      const layer = await sandboxes.whileLocked(record.id, async () => {
        const current = await sandboxes.get(record.id);
        return current.state === 'running' ? this.provider.frozen(record.id, capture) : capture();
      });
      return this.record(record, base, layer, input.metadata ?? {}, started, null);
    });
  }

  /**
   * A memory snapshot (gVisor, egress none): the sandbox is paused with its memory, its files are
   * captured while it is paused, the memory image is kept with the snapshot, and the sandbox is
   * resumed if it was running. Sandboxes created from it restore the image: their processes
   * continue from where the source's were.
   */
  private async createWithMemory(record: SandboxRecord, metadata: Record<string, string>): Promise<SnapshotView> {
    const sandboxes = this.requireSandboxes();
    const { mode, note } = this.provider.pauseMode(record.isolation, record.network.egress);
    if (mode !== 'memory')
      throw new HutchError('tier_unavailable', `memory: this sandbox cannot keep its memory (${note ?? 'its tier cannot checkpoint'})`);
    if (record.state === 'stopped') throw conflict(`memory: sandbox ${record.id} is stopped: it has no memory to keep`);
    // The image would hold the injected values (process environments, the secrets tmpfs) and hand
    // them to every sandbox made from it, which never asked for them.
    if (record.secrets.length > 0)
      throw invalidArgument(
        `memory: sandbox ${record.id} was given secrets, which its memory image would carry into every sandbox made from it; take a snapshot without memory (files only: the secrets tmpfs is not captured)`,
      );
    const wasRunning = record.state === 'running';
    const started = performance.now();
    if (wasRunning) await sandboxes.pause(record.id);
    try {
      const base = await this.baseOf(record);
      return await this.layerLock.run('layers', () =>
        sandboxes.whileLocked(record.id, async () => {
          const current = await sandboxes.get(record.id);
          if (current.state !== 'paused' || current.pauseMode !== 'memory')
            throw conflict(`sandbox ${record.id} changed state during the snapshot (${current.state})`);
          const layer = await this.provider.withUpperDir(record.id, (upper) =>
            this.layers.capture(upper, base.layers[0] ?? base.templateDigest),
          );
          const id = newSnapshotId();
          await this.provider.exportCheckpoint(record.id, id);
          const spec = { cpu: current.cpu, memoryMiB: current.memoryMiB, pids: current.pids, env: current.env };
          return this.record(current, base, layer, metadata, started, spec, id);
        }),
      );
    } finally {
      if (wasRunning)
        await sandboxes
          .resume(record.id)
          .catch((err: unknown) =>
            this.log.error({ sandbox: record.id, err: (err as Error).message }, 'resume after a memory snapshot failed'),
          );
    }
  }

  private async record(
    record: SandboxRecord,
    base: { template: string; templateDigest: string; layers: string[]; defaultUser: string },
    layer: { digest: string; sizeBytes: number; reused: boolean },
    metadata: Record<string, string>,
    started: number,
    spec: SnapshotRecord['spec'],
    id = newSnapshotId(),
  ): Promise<SnapshotView> {
    const snapshot: SnapshotRecord = {
      id,
      tenant: record.tenant,
      sourceSandbox: record.id,
      template: base.template,
      templateDigest: base.templateDigest,
      layers: [layer.digest, ...base.layers],
      isolation: record.isolation,
      defaultUser: base.defaultUser,
      memory: spec !== null,
      spec,
      sizeBytes: layer.sizeBytes,
      metadata,
      createdAt: new Date(),
    };
    await this.store.insert(snapshot);
    const durationMs = Math.round(performance.now() - started);
    this.log.info(
      { snapshot: snapshot.id, sandbox: record.id, layer: layer.digest.slice(0, 12), reused: layer.reused, durationMs },
      'snapshot taken',
    );
    return { ...snapshot, reused: layer.reused, durationMs };
  }

  /** The shipped template and snapshot layers a sandbox was made from. */
  private async baseOf(
    record: SandboxRecord,
  ): Promise<{ template: string; templateDigest: string; layers: string[]; defaultUser: string }> {
    const parent = await this.store.get(record.template);
    if (parent)
      return { template: parent.template, templateDigest: parent.templateDigest, layers: parent.layers, defaultUser: parent.defaultUser };
    const template = await this.templates.resolve(record.template);
    if (!template) throw new HutchError('internal', `sandbox ${record.id}: its template ${record.template} is gone`);
    return { template: template.name, templateDigest: template.digest, layers: [], defaultUser: template.defaultUser };
  }

  async resolve(id: string, tenant: string): Promise<ResolvedSource | null> {
    if (!SNAPSHOT_ID.test(id)) return null;
    const snapshot = await this.store.get(id);
    if (!snapshot || snapshot.tenant !== tenant) return null;
    const template = await this.templates.resolve(snapshot.template);
    if (!template || template.digest !== snapshot.templateDigest)
      throw conflict(`snapshot ${id}: its template ${snapshot.template} is no longer the one it was taken on`);
    const paths: string[] = [];
    for (const digest of snapshot.layers) {
      const layer = await this.layers.get(digest);
      if (!layer) throw new HutchError('internal', `snapshot ${id}: layer ${digest.slice(0, 12)} is missing`);
      paths.push(layer.rootfs);
    }
    return {
      digest: snapshot.layers[0]!,
      layers: [...paths, ...template.layers],
      defaultUser: snapshot.defaultUser,
      // A file snapshot suits either tier; a memory image only the tier that wrote it.
      isolation: snapshot.memory ? snapshot.isolation : null,
      ...(snapshot.memory && snapshot.spec ? { memory: { key: snapshot.id, ...snapshot.spec } } : {}),
    };
  }

  async get(id: string): Promise<SnapshotRecord> {
    const snapshot = SNAPSHOT_ID.test(id) ? await this.store.get(id) : null;
    if (!snapshot) throw notFound(`snapshot ${id.slice(0, 40)} not found`);
    return snapshot;
  }

  /** A snapshot the caller may see: another tenant's is a 404, exactly as an unknown one. */
  async getFor(caller: Caller, id: string): Promise<SnapshotRecord> {
    const snapshot = await this.get(id);
    requireVisible(caller, snapshot.tenant, `snapshot ${id.slice(0, 40)}`);
    return snapshot;
  }

  /** One tenant's snapshots, or (null) every tenant's. */
  list(tenant: string | null): Promise<SnapshotRecord[]> {
    return this.store.list(tenant);
  }

  /** Deletes a snapshot record; its layers go at the next `gc` unless another snapshot shares them. */
  async delete(id: string): Promise<void> {
    await this.get(id);
    const users = await this.sandboxStore.usingTemplate(id);
    if (users.length > 0)
      throw conflict(`snapshot ${id} is the template of sandbox${users.length > 1 ? 'es' : ''} ${users.join(', ')}; delete them first`);
    await this.store.remove(id);
    await this.provider.removeCheckpoint(id);
    this.log.info({ snapshot: id }, 'snapshot deleted');
  }

  /**
   * A fresh snapshot of a sandbox and `count` sandboxes created from it, with the source's
   * settings. The copies belong to the source's tenant (and count against its quotas), also when
   * an admin of another tenant forks it.
   */
  async fork(
    id: string,
    input: { count?: number; metadata?: Record<string, string>; memory?: boolean },
    caller: Caller,
  ): Promise<{ snapshot: SnapshotView; sandboxes: SandboxRecord[] }> {
    const sandboxes = this.requireSandboxes();
    const count = input.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 64) throw invalidArgument('count: must be an integer from 1 to 64');
    const source = await sandboxes.get(id);
    const snapshot = await this.create(id, { metadata: { forkOf: id }, ...(input.memory ? { memory: true } : {}) });
    const body: CreateSandboxInput = {
      template: snapshot.id,
      isolation: source.isolation,
      cpu: source.cpu,
      memoryMiB: source.memoryMiB,
      pids: source.pids,
      diskMiB: source.diskMiB,
      env: source.env,
      metadata: { ...source.metadata, ...(input.metadata ?? {}), 'hutch.forkOf': id },
      network: source.network,
      // The copies name the same secrets (values read from the store again, in the source's tenant).
      secrets: source.secrets,
      persistent: source.lifecycle.persistent,
      onTimeout: source.lifecycle.onTimeout,
      autoResume: source.lifecycle.autoResume,
      ...(source.timeoutSeconds !== null ? { timeoutSeconds: source.timeoutSeconds } : {}),
      ...(source.lifecycle.idleTimeoutSeconds !== null ? { idleTimeoutSeconds: source.lifecycle.idleTimeoutSeconds } : {}),
      ...(source.lifecycle.autoDeleteAfterSeconds !== null ? { autoDeleteAfterSeconds: source.lifecycle.autoDeleteAfterSeconds } : {}),
      volumes: source.volumes,
    };
    const created: SandboxRecord[] = [];
    const as: Caller = { ...caller, tenant: source.tenant };
    for (let i = 0; i < count; i++) created.push(await sandboxes.create(body, as));
    return { snapshot, sandboxes: created };
  }

  /** Removes layers no snapshot references (and their unshared files); `dryRun` only lists them. */
  async gc(dryRun: boolean): Promise<{ layers: string[]; objects: number; bytes: number; dryRun: boolean }> {
    // Every snapshot lists its whole chain, and a snapshot cannot be deleted while a sandbox was
    // made from it, so the snapshots' layers are all a live sandbox can be mounted on.
    const referenced = new Set<string>();
    const result = await this.layerLock.run('layers', async () => {
      for (const s of await this.store.list(null)) for (const d of s.layers) referenced.add(d);
      return this.layers.gc(referenced, { dryRun });
    });
    this.log.info({ ...result, layers: result.layers.length, dryRun }, 'layer gc');
    return { ...result, dryRun };
  }

  private requireSandboxes(): SandboxService {
    if (!this.sandboxes) throw new HutchError('internal', 'snapshot service not wired');
    return this.sandboxes;
  }
}
