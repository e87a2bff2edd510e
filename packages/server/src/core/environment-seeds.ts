import { createHash } from 'node:crypto';
import { fingerprint, type DockerfileImage } from '../environments/dockerfile.js';
import type { EnvironmentModel } from '../environments/model.js';
import type { ServicePlan } from '../environments/service-plan.js';
import { invalidArgument, isHutchError } from './errors.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Logger } from './logger.js';
import type { SandboxService } from './sandbox-service.js';
import type { VolumeService } from './volume-service.js';

/**
 * Golden seed snapshots (`x-hutch.seed: {strategy: snapshot, volume, job}`): the first environment
 * of a project and base branch runs its seed job, then its seeded volume is cloned into a golden
 * volume of the tenant; later environments of that project and base branch create that volume as
 * a clone of the golden one and skip the seed job. A golden volume is used only while the seed's
 * inputs hash the same: the seed job's and the volume's writers' templates (their current digest,
 * or a built image's content hash), commands, environment (PREVIEW_* aside) and copied files.
 * Anything else re-seeds and replaces it. `refresh` forgets the golden volumes of a project (a
 * push to its base branch, or by hand): the next environment seeds again.
 *
 * Clones are the volume layer's (VolumeService.clone): on the local provider a frozen ext4 image
 * copied with `cp --reflink=auto` — copy-on-write where the data dir's filesystem has reflinks
 * (btrfs, XFS), else a sparse copy of the blocks in use.
 */
export interface SeedKey {
  tenant: string;
  project: string;
  baseRef: string;
  /** The Compose volume the seed fills. */
  volume: string;
}

export interface SeedRecord extends SeedKey {
  inputsHash: string;
  /** The tenant's volume holding the golden copy. */
  snapshotVolume: string;
  /** The environment it was taken from. */
  environment: string | null;
  createdAt: Date;
}

export interface SeedStore {
  get(key: SeedKey): Promise<SeedRecord | null>;
  /** Inserts or replaces the key's record. */
  put(record: SeedRecord): Promise<void>;
  remove(key: SeedKey): Promise<void>;
  list(tenant: string | null, filter?: { project?: string; baseRef?: string }): Promise<SeedRecord[]>;
}

/** What an environment does about its seed. */
export type SeedPlan =
  /** Run the seed job, then keep its volume as the golden one. */
  | { kind: 'capture'; key: SeedKey; job: string; inputsHash: string }
  /** Create the volume from the golden one and skip the seed job. */
  | { kind: 'restore'; key: SeedKey; job: string; inputsHash: string; golden: SeedRecord };

/** The volume label naming what a golden seed volume is. */
export const SEED_LABEL = 'hutch.seed';

export class EnvironmentSeeds {
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly store: SeedStore,
    private readonly volumes: VolumeService,
    private readonly sandboxes: SandboxService,
    private readonly log: Logger,
  ) {}

  /**
   * Checks `x-hutch.seed` against the project (400s name the field) and decides: null when there
   * is no snapshot seeding (none asked, or volumes cannot be cloned here: `warnings` says so).
   */
  async plan(input: {
    tenant: string;
    project: string | null;
    baseRef: string | null;
    model: EnvironmentModel;
    plans: Map<string, ServicePlan>;
    images: Map<string, DockerfileImage>;
    src: string;
    warnings: string[];
  }): Promise<SeedPlan | null> {
    const seed = input.model.settings.seed;
    if (!seed || seed.strategy !== 'snapshot') return null;
    const volume = input.model.volumes.find((v) => v.name === seed.volume);
    if (!volume) throw invalidArgument(`x-hutch.seed.volume: "${seed.volume}" is not one of the project's volumes`);
    if (volume.external)
      throw invalidArgument(`x-hutch.seed.volume: "${seed.volume}" is external (only volumes the environment creates are seeded)`);
    const job = input.model.services.find((s) => s.name === seed.job);
    if (!job) throw invalidArgument(`x-hutch.seed.job: "${seed.job}" is not an active service of the project`);
    if (!job.job) throw invalidArgument(`x-hutch.seed.job: "${seed.job}" must be a job (restart: "no")`);
    if (!this.volumes.canClone()) {
      input.warnings.push('x-hutch.seed: seed snapshots need volume clones, which this provider has not: the seed job runs');
      return null;
    }
    const key: SeedKey = {
      tenant: input.tenant,
      project: input.project ?? '(none)',
      baseRef: input.baseRef ?? '(none)',
      volume: seed.volume,
    };
    const inputsHash = await this.inputsHash(input, seed.job, seed.volume);
    const golden = await this.store.get(key);
    if (golden && golden.inputsHash === inputsHash && (await this.exists(input.tenant, golden.snapshotVolume)))
      return { kind: 'restore', key, job: seed.job, inputsHash, golden };
    return { kind: 'capture', key, job: seed.job, inputsHash };
  }

  /** What decides the seeded data: the seed job and every service that mounts the volume. */
  private async inputsHash(
    input: { tenant: string; model: EnvironmentModel; plans: Map<string, ServicePlan>; images: Map<string, DockerfileImage>; src: string },
    job: string,
    volume: string,
  ): Promise<string> {
    const parts: unknown[] = [];
    const involved = input.model.services.filter((s) => s.name === job || s.mounts.some((m) => m.kind === 'volume' && m.volume === volume));
    for (const s of involved) {
      const plan = input.plans.get(s.name)!;
      const image = input.images.get(s.name);
      const template = image
        ? `build:${image.hash}:${await this.sandboxes.templateDigest(image.fromTemplate, input.tenant)}`
        : `${plan.template}:${await this.sandboxes.templateDigest(plan.template, input.tenant)}`;
      const files: string[] = [];
      for (const m of s.mounts) if (m.kind === 'copy') await fingerprint(input.src, m.source === '.' ? '' : m.source, files);
      const env = Object.entries(plan.env)
        .filter(([k]) => !k.startsWith('PREVIEW_'))
        .sort(([a], [b]) => a.localeCompare(b));
      parts.push({ name: s.name, template, argv: plan.argv, env, user: plan.user, cwd: plan.workingDir, mounts: s.mounts, files });
    }
    return createHash('sha256')
      .update(JSON.stringify({ revision: 1, job, volume, parts }))
      .digest('hex');
  }

  private exists(tenant: string, volume: string): Promise<boolean> {
    return this.volumes.get(tenant, volume).then(
      () => true,
      () => false,
    );
  }

  /** Creates an environment's volume from the golden one. */
  async restore(plan: Extract<SeedPlan, { kind: 'restore' }>, name: string, labels: Record<string, string>): Promise<void> {
    await this.volumes.clone(plan.key.tenant, plan.golden.snapshotVolume, { name, labels });
  }

  /**
   * After the seed job of a `capture` environment exited 0: its volume (`volume`, the tenant's)
   * becomes the key's golden one, replacing an older one. Runs before the job's dependents
   * start, so the copy holds the seed and nothing the application wrote.
   */
  async capture(plan: Extract<SeedPlan, { kind: 'capture' }>, volume: string, environment: string): Promise<void> {
    const { key } = plan;
    await this.locks.run(keyText(key), async () => {
      const current = await this.store.get(key);
      if (current && current.inputsHash === plan.inputsHash && (await this.exists(key.tenant, current.snapshotVolume))) return;
      const name = goldenName(key, plan.inputsHash);
      if (await this.exists(key.tenant, name)) await this.volumes.delete(key.tenant, name);
      await this.volumes.clone(key.tenant, volume, {
        name,
        labels: { [SEED_LABEL]: `${key.project}@${key.baseRef}/${key.volume}`, 'hutch.seed.environment': environment },
      });
      await this.store.put({ ...key, inputsHash: plan.inputsHash, snapshotVolume: name, environment, createdAt: new Date() });
      if (current && current.snapshotVolume !== name) await this.drop(current);
      this.log.info({ seed: keyText(key), volume: name, environment }, 'seed snapshot taken');
    });
  }

  /** Forgets the golden volumes of a project (one base branch, or all): the next environment seeds again. */
  async refresh(tenant: string, project: string, baseRef?: string): Promise<SeedRecord[]> {
    const seeds = await this.store.list(tenant, { project, ...(baseRef !== undefined ? { baseRef } : {}) });
    for (const seed of seeds)
      await this.locks.run(keyText(seed), async () => {
        await this.store.remove(seed);
        await this.drop(seed);
      });
    if (seeds.length > 0) this.log.info({ tenant, project, baseRef, seeds: seeds.length }, 'seed snapshots refreshed');
    return seeds;
  }

  list(tenant: string | null): Promise<SeedRecord[]> {
    return this.store.list(tenant);
  }

  /** Removes a golden volume (one being cloned right now is left: a refresh retries nothing). */
  private async drop(seed: SeedRecord): Promise<void> {
    await this.volumes.delete(seed.tenant, seed.snapshotVolume).catch((err: unknown) => {
      if (!(isHutchError(err) && err.kind === 'not_found'))
        this.log.warn({ volume: seed.snapshotVolume, err: (err as Error).message }, 'removing an old seed snapshot failed');
    });
  }
}

function keyText(key: SeedKey): string {
  return `${key.tenant}/${key.project}@${key.baseRef}/${key.volume}`;
}

/** `seed-<key hash>-<inputs hash>`: a volume name (≤ 63). */
function goldenName(key: SeedKey, inputsHash: string): string {
  return `seed-${createHash('sha256').update(keyText(key)).digest('hex').slice(0, 12)}-${inputsHash.slice(0, 12)}`;
}
