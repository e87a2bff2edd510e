import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { loadComposeProject } from '../environments/load.js';
import type { DependencySpec, EnvironmentModel, HealthcheckSpec, ServiceSpec } from '../environments/model.js';
import { planService, type ServicePlan } from '../environments/service-plan.js';
import { checkEnvironmentVariables, extractArchive, fetchGit, insideProject, redactUrlCredentials } from '../environments/workspace.js';
import { environmentSlug, hasServiceHost, serviceLabel } from '../environments/preview-host.js';
import type { SandboxCopier } from './sandbox-copy.js';
import type { EnvironmentSeeds, SeedPlan } from './environment-seeds.js';
import type { ImageBuilder } from './image-builder.js';
import { loadDockerfile, type DockerfileImage } from '../environments/dockerfile.js';
import type { EnvironmentRecord, EnvironmentStore, EnvironmentVolume, ServiceRecord } from './environment.js';
import { HutchError, invalidArgument, isHutchError, notFound } from './errors.js';
import { newSandboxId } from './ids.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Logger } from './logger.js';
import type { EgressPolicy } from './network.js';
import type { ProcessService } from './process-service.js';
import type { SandboxService } from './sandbox-service.js';
import { type Caller, requireVisible, SYSTEM_CALLER } from './tenancy.js';
import type { VolumeService } from './volume-service.js';

/**
 * Environments: a Compose project brought up as sandboxes, one per service, on a private network
 * of their own (a peer group: services reach each other by name, nothing else reaches them), with
 * the named volumes it declares. Create validates everything it can synchronously (source,
 * Compose file, catalog, templates, volumes) and answers; the services then come up in the
 * background in dependency order — independent ones side by side — each waiting for its
 * `depends_on` conditions (started, healthy by its healthcheck run inside its sandbox, or a job
 * that exited 0). State is recorded as it changes, so a restart of the server finds it again.
 */
export const ENVIRONMENT_ID_PATTERN = /^env-[a-z0-9]{16}$/;
/** The template a service with `build:` shows until its image is built (then: the snapshot id). */
const BUILD_PLACEHOLDER = '(build)';
/** Where a service's main process writes its output inside its sandbox (`hutch env logs`). */
export const SERVICE_LOG = '/tmp/hutch-service.log';
const MAX_LOG_LINES = 5000;
/** How long a bring-up or wake waits for a service without a healthcheck to listen on its first route. */
const WAKE_LISTEN_MS = 30_000;
const DEFAULT_LOG_LINES = 200;

export interface EnvironmentServiceOptions {
  dataDir: string;
  /** The URL of a sandbox port as the ingress serves it. */
  portUrl: (sandboxId: string, port: number) => string;
  /** The URL of a per-service host from its first label (`hutch server --preview-domain`); null: none. */
  previewUrl: ((label: string) => string) | null;
  /** Allow git sources from file:// URLs (the server's own disk). */
  gitAllowFileUrls: boolean;
}

export interface CreateEnvironmentInput {
  name?: string;
  source: { archive: Buffer } | { git: { url: string; ref: string } };
  variables?: Record<string, string>;
  profiles?: string[];
  /** The pull request the environment is for (PREVIEW_PR_NUMBER). */
  prNumber?: number;
  /** The commit of an uploaded archive (PREVIEW_GIT_SHA); a git source knows its own. */
  gitSha?: string;
  /** Pinned from the start (no TTL, no janitor). */
  keep?: boolean;
  /** What it is a preview of (default: the git URL's repository name, else the Compose name). */
  project?: string;
  /** The base branch (default: the git ref when it is not a pull request's). */
  baseRef?: string;
}

export interface ServiceLogs {
  service: string;
  text: string;
}

function newEnvironmentId(): string {
  let id = 'env-';
  for (const b of randomBytes(16)) id += 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36];
  return id;
}

/** `PREVIEW_URL_<SERVICE>`: upper case, `-` as `_`. */
export function serviceUrlVariable(service: string): string {
  return `PREVIEW_URL_${service.toUpperCase().replace(/-/g, '_')}`;
}

/** A condition a dependent can wait for; settles once. */
class Signal {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (err: Error) => void;
  constructor() {
    this.promise = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.promise.catch(() => undefined);
  }
}

/** A service's healthcheck and the user it runs as. */
interface HealthGate {
  healthcheck: HealthcheckSpec | null;
  user: string | null;
}

/** One service in a bring-up or a wake: its record, its conditions, and how it starts. */
interface ServiceStep {
  state: ServiceRecord;
  job: boolean;
  dependsOn: DependencySpec[];
  check: HealthGate;
  /** Brings the main process up (`started`), or finds nothing to run (`completed`: a job that already ran). */
  start: () => Promise<'started' | 'completed'>;
  /** After a job exited 0, before its dependents start. */
  onCompleted?: () => Promise<void>;
}

interface Bringup {
  controller: AbortController;
  done: Promise<void>;
}

interface Prepared {
  record: EnvironmentRecord;
  model: EnvironmentModel;
  plans: Map<string, ServicePlan>;
  /** The Dockerfiles of services with a `build:` section (built at bring-up, or reused). */
  images: Map<string, DockerfileImage>;
  /** Golden seed snapshot: take one after the seed job, or restore one and skip it (environment-seeds.ts). */
  seed: SeedPlan | null;
}

export class EnvironmentService {
  private readonly bringups = new Map<string, Bringup>();
  /** Wakes in progress: concurrent requests share one. */
  private readonly wakes = new Map<string, Promise<EnvironmentRecord>>();
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly store: EnvironmentStore,
    private readonly sandboxes: SandboxService,
    private readonly processes: ProcessService,
    private readonly volumes: VolumeService,
    private readonly copier: SandboxCopier,
    private readonly builder: ImageBuilder,
    private readonly log: Logger,
    private readonly options: EnvironmentServiceOptions,
    private readonly seeds: EnvironmentSeeds | null = null,
  ) {}

  private workDir(id: string): string {
    return join(this.options.dataDir, 'environments', id);
  }

  async create(input: CreateEnvironmentInput, caller: Caller = SYSTEM_CALLER): Promise<EnvironmentRecord> {
    checkEnvironmentVariables(input.variables);
    const peers = this.sandboxes.peerGroups();
    if (!peers.available)
      throw new HutchError(
        'tier_unavailable',
        `environments are not available on this server: ${peers.reason ?? 'no peer-group networks'}`,
      );
    const id = newEnvironmentId();
    const src = join(this.workDir(id), 'src');
    try {
      // Uploaded sources may hold secrets (.env): only root reads them.
      await mkdir(join(this.options.dataDir, 'environments'), { recursive: true, mode: 0o700 });
      await chmod(join(this.options.dataDir, 'environments'), 0o700);
      const prepared = await this.prepare(id, src, input, caller);
      await this.store.insert(prepared.record);
      // The answer is the record as created; the bring-up goes on changing its own copy.
      const answer = structuredClone(prepared.record);
      this.startBringup(prepared, caller);
      this.log.info({ environment: id, tenant: caller.tenant, services: answer.services.length }, 'environment created');
      return answer;
    } catch (err) {
      await rm(this.workDir(id), { recursive: true, force: true });
      throw err;
    }
  }

  /** Source, Compose project, plans and checks: everything that can fail with a 400 before anything runs. */
  /** `slug`: the environment's own when it has one (a redeploy: its per-service hosts stay). */
  private async prepare(id: string, src: string, input: CreateEnvironmentInput, caller: Caller, slug?: string): Promise<Prepared> {
    let gitSha = input.gitSha ?? null;
    const warnings: string[] = [];
    if ('archive' in input.source) {
      const { skipped } = await extractArchive(input.source.archive, src);
      if (skipped > 0) warnings.push(`source.archive: ${skipped} symlinks, links or special files were skipped`);
    } else {
      gitSha = (await fetchGit(input.source.git.url, input.source.git.ref, src, { allowFileUrls: this.options.gitAllowFileUrls })).sha;
    }
    const sandboxIds = new Map<string, string>();
    const idOf = (service: string): string => {
      let sandboxId = sandboxIds.get(service);
      if (!sandboxId) sandboxIds.set(service, (sandboxId = newSandboxId()));
      return sandboxId;
    };
    const base: Record<string, string> = {
      ...(input.variables ?? {}),
      PREVIEW_ID: id,
      PREVIEW_GIT_SHA: gitSha ?? '',
      PREVIEW_PR_NUMBER: input.prNumber === undefined ? '' : String(input.prNumber),
    };
    const load = (urls: Map<string, string>): Promise<EnvironmentModel> =>
      loadComposeProject({
        dir: src,
        profiles: input.profiles ?? [],
        variables: (services) => {
          const vars: Record<string, string> = { ...base, PREVIEW_URL: firstUrl(urls) ?? '' };
          for (const s of services) vars[serviceUrlVariable(s)] = urls.get(s) ?? '';
          return vars;
        },
      });
    // Routes decide the URLs and URLs are variables: a first pass finds the routes, the second
    // interpolates with the URLs (ports must not depend on them).
    const routesOf = (m: EnvironmentModel): Map<string, number[]> => new Map(m.services.map((s) => [s.name, s.routes]));
    const first = await load(new Map());
    const project = input.project ?? ('git' in input.source ? repositoryName(input.source.git.url) : first.name);
    const name = input.name ?? first.name;
    slug ??= await this.freeSlug(
      environmentSlug({ id, name, prNumber: input.prNumber ?? null, project, services: first.services.map((s) => s.name) }),
      id,
    );
    if (this.options.previewUrl)
      for (const s of first.services)
        if (s.routes.length > 0 && !hasServiceHost(s.name, slug))
          warnings.push(
            `services.${s.name}: no per-service host (a name with "--" or too long for a DNS label): its routes use sandbox-port URLs`,
          );
    // A service's route: its per-service host with a preview domain (first route: no port in
    // the label), else the sandbox port's ingress URL.
    const routeUrl = (service: string, port: number, index: number): string =>
      this.options.previewUrl && hasServiceHost(service, slug)
        ? this.options.previewUrl(serviceLabel(service, slug, index === 0 ? null : port))
        : this.options.portUrl(idOf(service), port);
    const urls = new Map<string, string>();
    // In the Compose file's order: PREVIEW_URL is the first service's that has a route.
    for (const name of first.order) {
      const port = routesOf(first).get(name)?.[0];
      if (port !== undefined) urls.set(name, routeUrl(name, port, 0));
    }
    const model = await load(urls);
    if (JSON.stringify([...routesOf(model)]) !== JSON.stringify([...routesOf(first)]))
      throw invalidArgument('ports: the ports of a service must not depend on PREVIEW_URL variables');

    const injected: Record<string, string> = { PREVIEW_ID: id, PREVIEW_URL: firstUrl(urls) ?? '' };
    for (const [name, url] of urls) injected[serviceUrlVariable(name)] = url;
    if (gitSha) injected.PREVIEW_GIT_SHA = gitSha;
    if (input.prNumber !== undefined) injected.PREVIEW_PR_NUMBER = String(input.prNumber);
    const images = new Map<string, DockerfileImage>();
    for (const s of model.services) {
      if (s.source.kind !== 'build' || s.settings.template !== null) continue;
      const image = await loadDockerfile({
        root: src,
        context: s.source.context,
        dockerfile: s.source.dockerfile,
        args: s.source.args,
        templates: model.settings.templates,
        field: `services.${s.name}.build`,
      });
      images.set(s.name, image);
      warnings.push(...image.warnings);
    }
    const plans = new Map(
      model.services.map((s) => {
        const image = images.get(s.name);
        return [s.name, planService(s, model, injected, image ? { placeholder: BUILD_PLACEHOLDER, contract: image.contract } : undefined)];
      }),
    );
    await this.check(model, plans, images, src, caller);

    const volumes: EnvironmentVolume[] = model.volumes.map((v) =>
      v.external
        ? { name: v.name, volume: v.external, owned: false }
        : { name: v.name, volume: `${id}-${v.name.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`.slice(0, 63), owned: true },
    );
    const services: ServiceRecord[] = model.services.map((s) => ({
      name: s.name,
      sandboxId: idOf(s.name),
      template: plans.get(s.name)!.template,
      job: s.job,
      state: 'pending',
      pid: null,
      exitCode: null,
      error: null,
      routes: s.routes.map((port, i) => ({ port, url: routeUrl(s.name, port, i) })),
      run: {
        cmd: mainCommand(plans.get(s.name)!.argv),
        user: plans.get(s.name)!.user,
        cwd: plans.get(s.name)!.workingDir,
        healthcheck: plans.get(s.name)!.healthcheck,
        dependsOn: s.dependsOn,
      },
    }));
    const now = new Date();
    const record: EnvironmentRecord = {
      id,
      tenant: caller.tenant,
      owner: caller.keyId,
      name,
      state: 'creating',
      error: null,
      source:
        'archive' in input.source
          ? { kind: 'archive' }
          : { kind: 'git', url: redactUrlCredentials(input.source.git.url), ref: input.source.git.ref },
      gitSha,
      prNumber: input.prNumber ?? null,
      profiles: input.profiles ?? [],
      variables: input.variables ?? {},
      url: firstUrl(urls),
      services,
      volumes,
      warnings: [...warnings, ...model.warnings],
      createdAt: now,
      updatedAt: now,
      // Lifecycle (environment-lifecycle.ts): the TTLs count from activeAt.
      keep: input.keep === true,
      ttl: model.settings.ttl,
      activeAt: now,
      sleptAt: null,
      slug,
      project,
      baseRef: input.baseRef ?? ('git' in input.source && input.prNumber === undefined ? input.source.git.ref : null),
    };
    const seed = this.seeds
      ? await this.seeds.plan({
          tenant: caller.tenant,
          project: record.project,
          baseRef: record.baseRef,
          model,
          plans,
          images,
          src,
          warnings: record.warnings,
        })
      : null;
    return { record, model, plans, images, seed };
  }

  /** The slug, unless another live environment has it already (then: the id, which is unique). */
  private async freeSlug(slug: string, id: string): Promise<string> {
    const holder = slug === id ? null : await this.store.bySlug(slug);
    return !holder || holder.id === id ? slug : id;
  }

  /** What the project needs must exist and fit: templates, external volumes, copied paths, healthchecks. */
  private async check(
    model: EnvironmentModel,
    plans: Map<string, ServicePlan>,
    images: Map<string, DockerfileImage>,
    src: string,
    caller: Caller,
  ): Promise<void> {
    for (const service of model.services) {
      const plan = plans.get(service.name)!;
      const field = `services.${service.name}`;
      const template = images.get(service.name)?.fromTemplate ?? plan.template;
      if (!(await this.sandboxes.sourceExists(template, caller.tenant)))
        throw invalidArgument(`${field}: template "${template}" does not exist (GET /v1/templates, or one of your snapshots)`);
      for (const [i, mount] of service.mounts.entries())
        if (mount.kind === 'copy') await insideProject(src, mount.source, `${field}.volumes[${i}]`);
      for (const dep of service.dependsOn) {
        if (dep.condition === 'service_healthy' && !plans.get(dep.service)?.healthcheck)
          throw invalidArgument(
            `${field}.depends_on.${dep.service}: service_healthy needs a healthcheck, and ${dep.service} has none (add one to it)`,
          );
      }
    }
    for (const v of model.volumes) {
      if (!v.external) continue;
      try {
        await this.volumes.get(caller.tenant, v.external);
      } catch {
        throw invalidArgument(`volumes.${v.name}: external volume "${v.external}" does not exist (POST /v1/volumes first)`);
      }
    }
  }

  /**
   * Replaces the services of a git-sourced environment with those of another commit (a push to its
   * pull request): the same id, the volumes it owns kept with their data (those the new Compose
   * file no longer declares are removed), new sandboxes — so new sandbox ids, and the URLs in the
   * record and in the PREVIEW_* variables follow. A bring-up in flight (an older commit's) is
   * cancelled. The new source is fetched and validated first: if that fails (400), the
   * environment is left as it was.
   */
  async redeploy(
    id: string,
    input: Pick<CreateEnvironmentInput, 'variables' | 'prNumber' | 'profiles'> & { source: { git: { url: string; ref: string } } },
    caller: Caller,
  ): Promise<EnvironmentRecord> {
    if (!ENVIRONMENT_ID_PATTERN.test(id)) throw invalidArgument(`id: "${id.slice(0, 40)}" is not an environment id`);
    checkEnvironmentVariables(input.variables);
    return this.locks.run(id, async () => {
      const old = await this.store.get(id);
      if (!old || old.state === 'deleted' || old.state === 'deleting') throw notFound(`environment ${id} not found`);
      const next = join(this.workDir(id), 'next');
      await rm(next, { recursive: true, force: true });
      let prepared: Prepared;
      try {
        prepared = await this.prepare(id, next, { ...input, ...(old.name !== null ? { name: old.name } : {}) }, caller, old.slug);
      } catch (err) {
        await rm(next, { recursive: true, force: true });
        throw err;
      }
      const kept = new Set(prepared.record.volumes.map((v) => v.volume));
      await this.teardown(old, (v) => !kept.has(v.volume));
      // The new services take the same names in the environment's peer group: the old ones must have left it.
      for (const service of old.services) await this.sandboxes.tornDown(service.sandboxId);
      const src = join(this.workDir(id), 'src');
      await rm(src, { recursive: true, force: true });
      await rename(next, src);
      const record = prepared.record;
      // Who made it, its host slug (per-service URLs stay), keep and TTLs are the environment's own;
      // a redeploy is activity (the TTLs count again) and wakes it.
      Object.assign(record, {
        createdAt: old.createdAt,
        owner: old.owner,
        slug: old.slug,
        project: old.project,
        baseRef: old.baseRef,
        keep: old.keep,
        ttl: old.ttl,
        sleptAt: null,
      });
      await this.store.update(id, {
        state: 'creating',
        error: null,
        services: record.services,
        volumes: record.volumes,
        url: record.url,
        gitSha: record.gitSha,
        warnings: record.warnings,
        activeAt: record.activeAt,
        sleptAt: null,
      });
      const answer = structuredClone(record);
      this.startBringup(prepared, caller);
      this.log.info({ environment: id, gitSha: record.gitSha }, 'environment redeployed');
      return answer;
    });
  }

  // ---- bring-up ----

  private startBringup(prepared: Prepared, caller: Caller): void {
    const controller = new AbortController();
    const done = this.bringUp(prepared, caller, controller.signal)
      .catch((err: unknown) =>
        this.log.error({ environment: prepared.record.id, err: (err as Error).message }, 'environment bring-up failed'),
      )
      .finally(() => this.bringups.delete(prepared.record.id));
    this.bringups.set(prepared.record.id, { controller, done });
  }

  private async bringUp(prepared: Prepared, caller: Caller, signal: AbortSignal): Promise<void> {
    const { record, model, plans } = prepared;
    let seed = prepared.seed;
    const save = (): Promise<void> => this.store.update(record.id, { services: record.services });
    try {
      for (const v of record.volumes.filter((v) => v.owned)) {
        const spec = model.volumes.find((m) => m.name === v.name);
        // A redeploy keeps the volumes it already has (and their data): no seed snapshot then.
        if (
          await this.volumes.get(caller.tenant, v.volume).then(
            () => true,
            () => false,
          )
        ) {
          if (seed?.key.volume === v.name) seed = null;
          continue;
        }
        const labels = { 'hutch.environment': record.id, 'hutch.volume': v.name };
        if (seed?.kind === 'restore' && seed.key.volume === v.name) {
          const restored = await this.seeds!.restore(seed, v.volume, labels).then(
            () => true,
            (err: unknown) => {
              this.log.warn({ environment: record.id, err: (err as Error).message }, 'restoring the seed snapshot failed: seeding');
              return false;
            },
          );
          if (restored) continue;
          seed = { kind: 'capture', key: seed.key, job: seed.job, inputsHash: seed.inputsHash };
        }
        await this.volumes.create(caller.tenant, { name: v.volume, ...(spec?.sizeMiB ? { sizeMiB: spec.sizeMiB } : {}), labels });
      }
    } catch (err) {
      // A quota, or the disk: nothing can start without its volumes.
      if (!signal.aborted) await this.store.update(record.id, { state: 'error', error: `volumes: ${(err as Error).message}` });
      return;
    }
    const steps: ServiceStep[] = model.services.map((service) => {
      const plan = plans.get(service.name)!;
      const state = record.services.find((s) => s.name === service.name)!;
      return {
        state,
        job: service.job,
        dependsOn: service.dependsOn,
        check: { healthcheck: plan.healthcheck, user: plan.user },
        ...(seed?.kind === 'capture' && seed.job === service.name ? { onCompleted: this.captureSeed(record, seed) } : {}),
        start: async () => {
          if (seed?.kind === 'restore' && seed.job === service.name) {
            // Its volume is a clone of a seeded one: nothing to run (and no sandbox).
            state.state = 'completed';
            state.exitCode = 0;
            state.note = 'from seed snapshot';
            await save();
            return 'completed';
          }
          await this.startService(record, service, plan, prepared.images.get(service.name), state, caller, signal, save);
          // Without a healthcheck, "running" waits for its first route to listen (bounded).
          if (!service.job && !plan.healthcheck && state.routes[0])
            await this.untilListening(state.sandboxId, state.routes[0].port, signal);
          return 'started';
        },
      };
    });
    const failures = await this.runInOrder(record, steps, signal, save);
    if (signal.aborted) return;
    await this.store.update(record.id, {
      services: record.services,
      state: failures.length > 0 ? 'error' : 'running',
      error: failures.length > 0 ? failures.join('; ') : null,
      // The TTLs count from the end of the deploy: a slow bring-up does not eat the idle time.
      activeAt: new Date(),
    });
    this.log.info({ environment: record.id, failures }, failures.length > 0 ? 'environment failed' : 'environment running');
  }

  /**
   * Runs each step once its `depends_on` conditions hold (started, healthy by its healthcheck run
   * inside its sandbox, or a job that exited 0), independent ones side by side; answers the
   * failures. The bring-up and a wake share it: only how a service starts differs.
   */
  private async runInOrder(
    record: EnvironmentRecord,
    steps: ServiceStep[],
    signal: AbortSignal,
    save: () => Promise<void>,
  ): Promise<string[]> {
    const started = new Map(steps.map((s) => [s.state.name, new Signal()]));
    const healthy = new Map(steps.map((s) => [s.state.name, new Signal()]));
    const completed = new Map(steps.map((s) => [s.state.name, new Signal()]));
    const failures: string[] = [];
    const tasks = steps.map(async (step) => {
      const { state } = step;
      const name = state.name;
      const fail = async (message: string): Promise<void> => {
        state.state = 'failed';
        state.error = message;
        failures.push(`${name}: ${message}`);
        const err = new Error(message);
        started.get(name)!.reject(err);
        healthy.get(name)!.reject(err);
        completed.get(name)!.reject(err);
        await save();
      };
      try {
        for (const dep of step.dependsOn) {
          const wait =
            dep.condition === 'service_healthy' ? healthy : dep.condition === 'service_completed_successfully' ? completed : started;
          try {
            await untilAborted(wait.get(dep.service)!.promise, signal);
          } catch {
            if (signal.aborted) return;
            await fail(`dependency ${dep.service} did not reach ${dep.condition}`);
            return;
          }
        }
        if (signal.aborted) return;
        const how = await step.start();
        if (signal.aborted) return;
        started.get(name)!.resolve();
        if (how === 'completed') {
          healthy.get(name)!.resolve();
          completed.get(name)!.resolve();
          return;
        }
        if (step.job) {
          const exit = await this.processes.wait(state.sandboxId, { pid: state.pid! }, signal);
          state.exitCode = exit.exitCode;
          if (exit.exitCode !== 0) {
            const tail = await this.tail(state.sandboxId, 20).catch(() => '');
            await fail(
              `the job exited with ${exit.exitCode}${exit.signal ? ` (${exit.signal})` : ''}${tail ? `: ${tail.trim().slice(-500)}` : ''}`,
            );
            return;
          }
          state.state = 'completed';
          await save();
          await step.onCompleted?.();
          healthy.get(name)!.resolve();
          completed.get(name)!.resolve();
          return;
        }
        // A long-running service "completes" for its dependents only by exiting 0.
        this.followExit(record, state, save, (exitCode) => {
          if (exitCode === 0) completed.get(name)!.resolve();
          else completed.get(name)!.reject(new Error(`exited with ${exitCode}`));
        });
        if (step.check.healthcheck) {
          const ok = await this.waitHealthy(state, step.check, signal);
          if (signal.aborted) return;
          if (!ok) {
            await fail(
              state.state === 'exited'
                ? `its process exited (${state.exitCode}) before it was healthy`
                : `unhealthy: the healthcheck (${step.check.healthcheck.test.join(' ')}) kept failing`,
            );
            return;
          }
          if (state.state === 'starting') state.state = 'healthy';
          await save();
        }
        healthy.get(name)!.resolve();
      } catch (err) {
        if (signal.aborted) return;
        await fail(isHutchError(err) ? err.message : `${(err as Error).message}`);
      }
    });
    await Promise.all(tasks);
    return failures;
  }

  /** Takes the golden seed snapshot after the seed job (a failure is logged: the environment goes on). */
  private captureSeed(record: EnvironmentRecord, seed: Extract<SeedPlan, { kind: 'capture' }>): () => Promise<void> {
    return async () => {
      const volume = record.volumes.find((v) => v.name === seed.key.volume)!.volume;
      await this.seeds!.capture(seed, volume, record.id).catch((err: unknown) =>
        this.log.error({ environment: record.id, err: (err as Error).message }, 'taking the seed snapshot failed'),
      );
    };
  }

  /** Creates the service's sandbox, copies its repository paths in, and starts its main process. */
  private async startService(
    record: EnvironmentRecord,
    service: ServiceSpec,
    plan: ServicePlan,
    image: DockerfileImage | undefined,
    state: ServiceRecord,
    caller: Caller,
    signal: AbortSignal,
    save: () => Promise<void>,
  ): Promise<void> {
    let template = plan.template;
    if (image) {
      state.state = 'building';
      await save();
      const built = await this.builder.ensure(image, join(this.workDir(record.id), 'src'), caller, signal);
      template = built.template;
      state.template = template;
      this.log.info({ environment: record.id, service: service.name, snapshot: template, cached: built.cached }, 'service image ready');
      if (signal.aborted) return;
    }
    state.state = 'creating';
    await save();
    const egress: EgressPolicy = service.settings.egress === 'none' ? { allow: [], deny: [] } : service.settings.egress;
    const volumeMounts = service.mounts.flatMap((m) => {
      if (m.kind !== 'volume') return [];
      const v = record.volumes.find((x) => x.name === m.volume)!;
      return [{ name: v.volume, path: m.target, readOnly: m.readOnly }];
    });
    await this.sandboxes.create(
      {
        template,
        env: plan.env,
        persistent: true,
        network: { egress, public: service.settings.public },
        volumes: volumeMounts,
        metadata: { 'hutch.environment': record.id, 'hutch.service': service.name },
        ...(service.settings.cpu !== null ? { cpu: service.settings.cpu } : {}),
        ...(service.settings.memoryMiB !== null ? { memoryMiB: service.settings.memoryMiB } : {}),
        ...(service.settings.diskMiB !== null ? { diskMiB: service.settings.diskMiB } : {}),
      },
      caller,
      { id: state.sandboxId, peers: { group: record.id, name: service.name } },
    );
    if (signal.aborted) return;
    const src = join(this.workDir(record.id), 'src');
    for (const [i, mount] of service.mounts.entries()) {
      if (mount.kind !== 'copy') continue;
      await this.copier.copy(
        state.sandboxId,
        await insideProject(src, mount.source, `services.${service.name}.volumes[${i}]`),
        mount.target,
      );
    }
    if (plan.workingDir) await this.copier.run(state.sandboxId, ['mkdir', '-p', plan.workingDir]);
    const { pid } = await this.processes.startDetached(state.sandboxId, {
      cmd: mainCommand(plan.argv),
      tag: `service:${service.name}`,
      ...(plan.user ? { user: plan.user } : {}),
      ...(plan.workingDir ? { cwd: plan.workingDir } : {}),
    });
    state.pid = pid;
    state.state = plan.healthcheck && !service.job ? 'starting' : 'running';
    await save();
  }

  /**
   * Runs the healthcheck until it passes (true) or fails `retries` times in a row after the start
   * period (false). Checks start at once; during the start period they repeat every
   * `start_interval` and failures do not count. A service whose process exited fails at once.
   */
  private async waitHealthy(state: ServiceRecord, plan: HealthGate, signal: AbortSignal): Promise<boolean> {
    const h = plan.healthcheck!;
    const began = Date.now();
    let failures = 0;
    while (!signal.aborted && state.state !== 'exited') {
      const ok = await this.processes
        .exec(state.sandboxId, { cmd: h.test, timeoutMs: h.timeoutMs, captureOutput: false, ...(plan.user ? { user: plan.user } : {}) })
        .then((r) => r.exitCode === 0 && !r.timedOut)
        .catch(() => false);
      if (ok) return true;
      const inStartPeriod = Date.now() - began < h.startPeriodMs;
      if (!inStartPeriod && ++failures >= Math.max(1, h.retries)) return false;
      await delay(inStartPeriod ? h.startIntervalMs : h.intervalMs, undefined, { signal }).catch(() => undefined);
    }
    return false;
  }

  /** Records the end of a long-running service's main process (it keeps its sandbox). */
  private followExit(
    record: EnvironmentRecord,
    state: ServiceRecord,
    save: () => Promise<void>,
    onExit: (exitCode: number) => void = () => undefined,
  ): void {
    if (state.pid === null) return;
    const pid = state.pid;
    void this.processes
      .wait(state.sandboxId, { pid })
      .then(async (exit) => {
        onExit(exit.exitCode);
        const current = await this.store.get(record.id);
        if (!current || current.state === 'deleting' || current.state === 'deleted') return;
        // Stopped by a sleep, or a process of before a wake: not this service's end.
        if (current.state === 'sleeping' || current.state === 'waking') return;
        if (current.services.find((s) => s.name === state.name)?.pid !== pid) return;
        state.state = 'exited';
        state.exitCode = exit.exitCode;
        await save();
        this.log.warn({ environment: record.id, service: state.name, exitCode: exit.exitCode }, 'environment service exited');
      })
      .catch(() => undefined);
  }

  private async tail(sandboxId: string, lines: number): Promise<string> {
    const r = await this.processes.exec(sandboxId, {
      cmd: ['tail', '-n', String(lines), SERVICE_LOG],
      user: 'root',
      timeoutMs: 10_000,
      captureOutput: false,
    });
    return r.stdout;
  }

  // ---- sleep and wake (environment-lifecycle.ts decides when) ----

  /**
   * Puts a running environment to sleep: every service sandbox is stopped (processes end, memory
   * and cpu are freed; files and volumes stay). Does nothing unless it is running with no bring-up
   * in progress, or when a service cannot be run again (records made before sleeping existed).
   * Answers whether it went to sleep.
   */
  async sleep(id: string): Promise<boolean> {
    return this.locks.run(id, async () => {
      const record = await this.store.get(id);
      if (!record || record.state !== 'running' || this.bringups.has(id) || record.services.some((s) => !s.run)) return false;
      // Intent first: a restart half-way finishes it (reconcile).
      await this.store.update(id, { state: 'sleeping', sleptAt: new Date(), services: asleep(record.services) });
      await this.stopAll(record);
      this.log.info({ environment: id }, 'environment sleeping');
      return true;
    });
  }

  /**
   * Wakes a sleeping environment: its sandboxes start again and its services' main processes run
   * again in dependency order, gated by their healthchecks as at create (jobs that completed are
   * not run again: what they did is in the volumes). Concurrent callers share one wake. Resolves
   * with the environment once awake (or as it is, when it was not asleep); rejects when a service
   * does not come back (the environment is then `error`).
   */
  wake(id: string): Promise<EnvironmentRecord> {
    let waking = this.wakes.get(id);
    if (!waking) {
      waking = this.wakeOnce(id).finally(() => this.wakes.delete(id));
      this.wakes.set(id, waking);
    }
    return waking;
  }

  private async wakeOnce(id: string): Promise<EnvironmentRecord> {
    const record = await this.locks.run(id, async () => {
      const current = await this.get(id);
      if (current.state !== 'sleeping') return current;
      await this.store.update(id, { state: 'waking', activeAt: new Date() });
      return { ...current, state: 'waking' as const };
    });
    if (record.state !== 'waking') return record;
    const controller = new AbortController();
    const signal = controller.signal;
    const save = (): Promise<void> => this.store.update(id, { services: record.services });
    const steps: ServiceStep[] = record.services.map((state) => {
      const run = state.run!;
      return {
        state,
        job: state.job,
        dependsOn: run.dependsOn,
        check: { healthcheck: run.healthcheck, user: run.user },
        start: async () => {
          // A job ran to completion before the sleep (its sandbox is only there for its logs).
          if (state.job) {
            await this.sandboxes.start(state.sandboxId).catch((err: unknown) => {
              // Skipped for a seed snapshot: it never had one.
              if (!(isHutchError(err) && err.kind === 'not_found')) throw err;
            });
            return 'completed';
          }
          // Its main process runs again in a fresh sandbox start: one a failed stop left running is stopped first.
          if ((await this.sandboxes.get(state.sandboxId)).state === 'running') await this.sandboxes.stop(state.sandboxId);
          await this.sandboxes.start(state.sandboxId);
          const { pid } = await this.processes.startDetached(state.sandboxId, {
            cmd: run.cmd,
            tag: `service:${state.name}`,
            ...(run.user ? { user: run.user } : {}),
            ...(run.cwd ? { cwd: run.cwd } : {}),
          });
          state.pid = pid;
          state.exitCode = null;
          state.state = run.healthcheck ? 'starting' : 'running';
          await save();
          // As at create: the request that woke it waits for the first route to listen.
          if (!run.healthcheck && state.routes[0]) await this.untilListening(state.sandboxId, state.routes[0].port, signal);
          return 'started';
        },
      };
    });
    const done = this.runInOrder(record, steps, signal, save);
    this.bringups.set(id, { controller, done: done.then(() => undefined) });
    let failures: string[];
    try {
      failures = await done;
    } finally {
      this.bringups.delete(id);
    }
    if (signal.aborted) throw new HutchError('unavailable', `environment ${id} was deleted while it woke up`);
    const awake = { state: failures.length > 0 ? ('error' as const) : ('running' as const), activeAt: new Date(), sleptAt: null };
    await this.store.update(id, {
      ...awake,
      services: record.services,
      error: failures.length > 0 ? `waking: ${failures.join('; ')}` : null,
    });
    this.log.info({ environment: id, failures }, failures.length > 0 ? 'environment failed to wake' : 'environment awake');
    if (failures.length > 0) throw new HutchError('unavailable', `environment ${id} did not wake: ${failures.join('; ')}`);
    return { ...record, ...awake, error: null };
  }

  // ---- reads, delete, logs, reconcile ----

  async get(id: string): Promise<EnvironmentRecord> {
    if (!ENVIRONMENT_ID_PATTERN.test(id)) throw invalidArgument(`id: "${id.slice(0, 40)}" is not an environment id`);
    const record = await this.store.get(id);
    if (!record || record.state === 'deleted') throw notFound(`environment ${id} not found`);
    return record;
  }

  /**
   * Access check: the environment exists (deleted ones too: deleting again is a success) and the
   * caller may see it; another tenant's is a 404, as an unknown one.
   */
  async visible(caller: Caller, id: string): Promise<void> {
    if (!ENVIRONMENT_ID_PATTERN.test(id))
      throw invalidArgument(`id: "${id.slice(0, 40)}" is not an environment id (env- and 16 characters a-z, 0-9)`);
    const record = await this.store.get(id);
    if (!record) throw notFound(`environment ${id} not found`);
    requireVisible(caller, record.tenant, `environment ${id}`);
  }

  list(tenant: string | null): Promise<EnvironmentRecord[]> {
    return this.store.list(tenant);
  }

  /**
   * Destroys an environment: its bring-up is stopped, its sandboxes deleted, the volumes it
   * created removed, its source tree removed. Idempotent: whatever is already gone counts as done,
   * and deleting a deleted environment succeeds.
   */
  async delete(id: string): Promise<void> {
    if (!ENVIRONMENT_ID_PATTERN.test(id)) throw invalidArgument(`id: "${id.slice(0, 40)}" is not an environment id`);
    await this.locks.run(id, async () => {
      const record = await this.store.get(id);
      if (!record) throw notFound(`environment ${id} not found`);
      if (record.state === 'deleted') return;
      await this.store.update(id, { state: 'deleting' });
      await this.teardown(record, () => true);
      await rm(this.workDir(id), { recursive: true, force: true });
      await this.store.update(id, { state: 'deleted' });
      this.log.info({ environment: id }, 'environment deleted');
    });
  }

  /**
   * Stops the bring-up, deletes the sandboxes and the owned volumes `removeVolume` picks; what is
   * already gone counts as done.
   */
  private async teardown(record: EnvironmentRecord, removeVolume: (v: EnvironmentVolume) => boolean): Promise<void> {
    const bringup = this.bringups.get(record.id);
    if (bringup) {
      bringup.controller.abort();
      await bringup.done;
    }
    const gone = (err: unknown): void => {
      if (!(isHutchError(err) && err.kind === 'not_found')) throw err;
    };
    for (const service of record.services) await this.sandboxes.delete(service.sandboxId).catch(gone);
    for (const v of record.volumes.filter((v) => v.owned && removeVolume(v)))
      await this.volumes.delete(record.tenant, v.volume).catch(gone);
  }

  /** The last lines of each service's output (or one service's). */
  async logs(id: string, service?: string, lines = DEFAULT_LOG_LINES): Promise<ServiceLogs[]> {
    const record = await this.get(id);
    const services = service === undefined ? record.services : record.services.filter((s) => s.name === service);
    if (services.length === 0) throw notFound(`environment ${id} has no service "${service}"`);
    const n = Math.max(1, Math.min(MAX_LOG_LINES, lines));
    const out: ServiceLogs[] = [];
    for (const s of services) {
      if (s.state === 'pending' || s.state === 'building' || s.state === 'creating') {
        out.push({ service: s.name, text: '' });
        continue;
      }
      out.push({
        service: s.name,
        text: await this.tail(s.sandboxId, n).catch((err: unknown) => `(no logs: ${(err as Error).message})\n`),
      });
    }
    return out;
  }

  /**
   * After a restart (sandboxes reconciled first): a bring-up that was interrupted is an error,
   * a delete that was interrupted is finished, and services whose sandbox is gone are `lost`.
   */
  async reconcile(): Promise<void> {
    for (const record of await this.store.list(null, ['creating', 'running', 'error', 'deleting', 'sleeping', 'waking'])) {
      if (record.state === 'sleeping' || record.state === 'waking') {
        await this.reconcileSleep(record);
        continue;
      }
      if (record.state === 'deleting') {
        await this.delete(record.id).catch((err: unknown) =>
          this.log.error({ environment: record.id, err: (err as Error).message }, 'finishing an environment delete failed'),
        );
        continue;
      }
      const lost: string[] = [];
      for (const s of record.services) {
        if (s.state === 'pending' || s.state === 'building') continue;
        const sandbox = await this.sandboxes.get(s.sandboxId).catch(() => null);
        if (!sandbox || sandbox.state !== 'running') {
          if (s.state !== 'completed' && s.state !== 'failed') {
            s.state = 'lost';
            lost.push(s.name);
          }
        } else if (!s.job && s.pid !== null && (s.state === 'running' || s.state === 'healthy' || s.state === 'starting')) {
          this.followExit(record, s, () => this.store.update(record.id, { services: record.services }));
        }
      }
      const interrupted = record.state === 'creating';
      if (interrupted || lost.length > 0) {
        const why = [
          ...(interrupted ? ['the bring-up was interrupted by a server restart (delete the environment and create it again)'] : []),
          ...(lost.length > 0 ? [`sandboxes lost: ${lost.join(', ')}`] : []),
        ].join('; ');
        await this.store.update(record.id, { state: 'error', error: why, services: record.services });
        this.log.warn({ environment: record.id, why }, 'environment reconciled with errors');
      }
    }
  }

  /** Until something accepts connections on the port (bounded: a service may never listen there). */
  private async untilListening(sandboxId: string, port: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + WAKE_LISTEN_MS;
    while (!signal.aborted && Date.now() < deadline) {
      const tunnel = await this.sandboxes.openTunnel(sandboxId, port).catch(() => null);
      if (tunnel) {
        tunnel.destroy();
        return;
      }
      await delay(100, undefined, { signal }).catch(() => undefined);
    }
  }

  /** Stops every service sandbox of the environment (gone ones count as stopped). */
  private async stopAll(record: EnvironmentRecord): Promise<void> {
    for (const s of record.services) {
      await this.sandboxes.stop(s.sandboxId).catch((err: unknown) => {
        if (!(isHutchError(err) && err.kind === 'not_found')) throw err;
      });
    }
  }

  /**
   * A sleep or a wake interrupted by a restart: (back) to sleep with every sandbox stopped; the
   * next request wakes it.
   */
  private async reconcileSleep(record: EnvironmentRecord): Promise<void> {
    await this.store.update(record.id, { state: 'sleeping', services: asleep(record.services) });
    await this.stopAll(record).catch((err: unknown) =>
      this.log.error({ environment: record.id, err: (err as Error).message }, 'stopping a sleeping environment failed'),
    );
    if (record.state === 'waking') this.log.warn({ environment: record.id }, 'an interrupted wake was put back to sleep');
  }

  /** Stops bring-ups (server shutdown); their environments are marked at the next start. */
  async shutdown(): Promise<void> {
    for (const b of this.bringups.values()) b.controller.abort();
    await Promise.all([...this.bringups.values()].map((b) => b.done));
  }
}

/** The promise, or a rejection as soon as `signal` aborts (a delete stops waiting dependents). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function firstUrl(urls: Map<string, string>): string | null {
  return urls.values().next().value ?? null;
}

/** The services of a sleeping environment: long-running ones stopped (jobs keep their outcome). */
function asleep(services: ServiceRecord[]): ServiceRecord[] {
  return services.map((s) => (s.job ? s : { ...s, state: 'stopped', pid: null }));
}

/** A service's main process: output to a file in the sandbox (for `hutch env logs`), whoever reads it and whenever. */
function mainCommand(argv: string[]): string[] {
  return ['/bin/sh', '-c', `exec "$@" >>${SERVICE_LOG} 2>&1`, 'hutch-service', ...argv];
}

/** `https://host/acme/shop.git` → `shop`. */
function repositoryName(url: string): string | null {
  const last =
    url
      .replace(/[?#].*$/, '')
      .replace(/\/+$/, '')
      .split(/[/:]/)
      .pop() ?? '';
  return last.replace(/\.git$/, '') || null;
}
