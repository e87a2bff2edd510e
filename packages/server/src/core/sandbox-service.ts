import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import pLimit from 'p-limit';
import { setTimeout as delay } from 'node:timers/promises';
import { AgentClient } from '../runtime/agent/agent-client.js';
import { ActivityTracker, type Hold } from './activity.js';
import { egressMode, normalizeNetworkSettings, type NetworkSettings } from './network.js';
import { conflict, HutchError, invalidArgument, notFound } from './errors.js';
import { isSandboxId, newSandboxId } from './ids.js';
import { KeepAliveProcesses } from './keep-alive.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Logger } from './logger.js';
import {
  type DiskUsage,
  isClaimAware,
  isWarmPoolAware,
  type PeerGroup,
  type Provider,
  type SandboxNetworkInfo,
  type SandboxSpec,
} from './provider.js';
import type { VolumeService } from './volume-service.js';
import {
  type CreateSandboxInput,
  type Isolation,
  type Lifecycle,
  type PauseMode,
  SANDBOX_DEFAULTS,
  type SandboxRecord,
  type SandboxState,
} from './sandbox.js';
import type { SandboxStore } from './stores.js';
import type { TemplateCatalog } from './templates.js';
import type { Allocation, CapacityLedger, Owner } from './capacity.js';
import type { CreateQueue } from './create-queue.js';
import type { PoolService, PoolSpec } from './pool-service.js';
import type { Quotas } from './quotas.js';
import { type Caller, requireVisible, SYSTEM_CALLER } from './tenancy.js';
import { type CreateOutcome, NOOP_TELEMETRY, secondsSince, type SpanHandle, type Telemetry } from './telemetry.js';
import type { UsageMeter } from './usage-meter.js';
import { normalizeSecretRefs, requireInjectableHosts, type SecretInjection } from './secrets.js';
import type { EgressHeaders } from './egress-headers.js';
import type { SecretService } from './secret-service.js';
import type { SecretRedaction } from './secret-redaction.js';

/**
 * Sandbox lifecycle: create, get, list, delete, TTL, and reconciliation with the runtime after a
 * restart. Intent is recorded in the store before any side effect, so a crash at any point leaves
 * a record that reconciliation can finish or clean.
 */
const AGENT_READY_TIMEOUT_MS = 15_000;
const MAX_PARALLEL_TEARDOWNS = 4;
const REAPER_INTERVAL_MS = 1000;
/** How long a sandbox whose runtime still runs it gets for its agent to answer again. */
const AGENT_PATIENCE_MS = 20_000;
/** Time for the agent's connection closes to land before a checkpoint. */
const QUIESCE_SETTLE_MS = 30;
/** How long a template's start command gets to listen on its port. */
const TEMPLATE_READY_MS = 15_000;

/** A sandbox's starting point: a template's layer, or a snapshot's layers over it. */
export interface ResolvedSource {
  digest: string;
  /** Absolute layer paths, top first. */
  layers: string[];
  defaultUser: string;
  /** Snapshots must be used with the tier they were taken on (null: any). */
  isolation: Isolation | null;
  /** The template's start command (shipped templates only). */
  start?: { cmd: string; readyPort?: number };
  /** A memory snapshot: the saved image to restore, and the resources it was taken with. */
  memory?: { key: string; cpu: number; memoryMiB: number; pids: number; env: Record<string, string> };
}

export interface SnapshotSource {
  /** A snapshot of the tenant as layers; null when the tenant has no such snapshot. */
  resolve(id: string, tenant: string): Promise<ResolvedSource | null>;
}

/** Non-persistent sandboxes that are stopped or paused go after a day unless told otherwise. */
const DEFAULT_AUTO_DELETE_SECONDS = 86_400;

function normalizeLifecycle(input: CreateSandboxInput): Lifecycle {
  const persistent = input.persistent === true;
  return {
    persistent,
    onTimeout: input.onTimeout ?? 'delete',
    idleTimeoutSeconds: input.idleTimeoutSeconds ?? null,
    autoDeleteAfterSeconds: input.autoDeleteAfterSeconds ?? (persistent ? null : DEFAULT_AUTO_DELETE_SECONDS),
    autoResume: input.autoResume === true,
  };
}

const allocationOf = (r: { cpu: number; memoryMiB: number; pids: number; diskMiB: number }): Allocation => ({
  cpu: r.cpu,
  memoryMiB: r.memoryMiB,
  pids: r.pids,
  diskMiB: r.diskMiB,
});

const ownerOf = (r: SandboxRecord): Owner => ({ tenant: r.tenant, key: r.owner });

/** A create in progress, for its trace and its latency metric. */
interface CreateTrace {
  span: SpanHandle;
  warm: boolean;
}

/** Request errors (a bad template, an unavailable tier…) are not server failures. */
const REQUEST_ERRORS = new Set(['invalid_argument', 'not_found', 'conflict', 'tier_unavailable', 'permission_denied']);

function createOutcome(err: unknown): CreateOutcome {
  if (!(err instanceof HutchError)) return 'error';
  if (err.admissionReason) return 'rejected';
  return REQUEST_ERRORS.has(err.kind) ? 'invalid' : 'error';
}

function ttlFrom(now: number, seconds: number | null): Date | null {
  return seconds === null ? null : new Date(now + seconds * 1000);
}

export class SandboxService {
  private readonly locks = new KeyedMutex();
  private readonly agents = new Map<string, AgentClient>();
  private reaper: NodeJS.Timeout | null = null;
  private readonly defaultUsers = new Map<string, string>();

  /** The idle clock: last activity and current holds per running sandbox (in memory). */
  private readonly activity = new ActivityTracker();
  /** Processes started with keepAlive, followed to their end. */
  readonly keepAlive: KeepAliveProcesses;

  /** Teardowns of deleted sandboxes still running after their delete answered. */
  private readonly teardowns = new Map<string, Promise<void>>();
  /** Background teardowns run a few at a time (a burst of deletes must not start hundreds of runtimes at once). */
  private readonly teardownLimit = pLimit(MAX_PARALLEL_TEARDOWNS);
  /** Warm pools (wired after construction: they boot sandboxes through this service). */
  pools: PoolService | null = null;
  /** Metrics and traces (wired by the server; nothing by default). */
  telemetry: Telemetry = NOOP_TELEMETRY;
  /** Usage accounting: meters open when a sandbox runs, a final reading when it stops (wired by the server). */
  meter: Pick<UsageMeter, 'started' | 'final'> | null = null;
  /** The tenants' secrets, injected into the sandboxes that name them (none: `secrets` refused). */
  secrets: SecretService | null = null;
  /** Where injected values are recorded so the server's output can hide them. */
  redaction: SecretRedaction | null = null;
  /** Headers the egress proxy adds for sandboxes (their `injectHeader` secrets). */
  egressHeaders: EgressHeaders | null = null;

  constructor(
    private readonly store: SandboxStore,
    private readonly provider: Provider,
    private readonly templates: TemplateCatalog,
    private readonly log: Logger,
    private readonly volumes: VolumeService | null = null,
    private readonly snapshots: SnapshotSource | null = null,
    private readonly capacity: CapacityLedger | null = null,
    private readonly queue: CreateQueue | null = null,
    /** Tenant quotas and per-key limits (none: unlimited). */
    private readonly quotas: Quotas | null = null,
  ) {
    this.keepAlive = new KeepAliveProcesses(this, log);
  }

  /**
   * Creates a sandbox: from a matching warm pool when one has a member ready (`warm: true`),
   * else cold through the bounded create queue. Refused at once (429/503 with Retry-After) when a
   * tenant quota, a per-key limit, the queue or the node's capacity says no, naming which. The
   * sandbox belongs to the caller's tenant, and only that tenant's snapshots, volumes and pools
   * are used for it (another tenant's are unknown names here).
   */
  async create(
    input: CreateSandboxInput,
    caller: Caller = SYSTEM_CALLER,
    /**
     * For services of the server itself (environments): the sandbox's id, chosen beforehand (its
     * port URLs are known before it exists), and its peer group. Such creates never take a warm
     * pool member.
     */
    internal: { id?: string; peers?: PeerGroup } = {},
  ): Promise<SandboxRecord & { warm?: boolean }> {
    if (internal.id !== undefined && !isSandboxId(internal.id))
      throw new HutchError('internal', `bad preallocated sandbox id ${internal.id}`);
    if (input.idempotencyKey) {
      const existing = await this.store.getByIdempotencyKey(caller.tenant, input.idempotencyKey);
      if (existing) return existing;
    }
    const tier = input.isolation ?? SANDBOX_DEFAULTS.isolation;
    const started = performance.now();
    const trace: CreateTrace = {
      span: this.telemetry.tracer.startSpan('sandbox.create', {
        'hutch.tier': tier,
        'hutch.tenant': caller.tenant,
        'hutch.template': (input.template ?? SANDBOX_DEFAULTS.template).slice(0, 128),
      }),
      warm: false,
    };
    try {
      const record = await this.createTraced(input, caller, trace, internal);
      const warm = record.warm === true;
      trace.span.setAttributes({ 'hutch.sandbox_id': record.id, 'hutch.warm': warm });
      trace.span.end();
      this.telemetry.createFinished({ tier, warm, outcome: 'ok', seconds: secondsSince(started) });
      return record;
    } catch (err) {
      const outcome = createOutcome(err);
      if (outcome === 'rejected') this.telemetry.admissionRejected(caller.tenant, (err as HutchError).admissionReason!);
      trace.span.end(err);
      this.telemetry.createFinished({ tier, warm: trace.warm, outcome, seconds: secondsSince(started) });
      throw err;
    }
  }

  private async createTraced(
    input: CreateSandboxInput,
    caller: Caller,
    trace: CreateTrace,
    internal: { id?: string; peers?: PeerGroup },
  ): Promise<SandboxRecord & { warm?: boolean }> {
    const isolation = input.isolation ?? SANDBOX_DEFAULTS.isolation;
    const tier = this.provider.tiers()[isolation];
    if (!tier.available) {
      throw new HutchError(
        'tier_unavailable',
        `isolation "${isolation}" is not available on this host: ${tier.reason ?? 'unknown reason'}`,
      );
    }
    const templateName = input.template ?? SANDBOX_DEFAULTS.template;
    const source = await this.resolveSource(templateName, caller.tenant);
    if (source.isolation && source.isolation !== isolation)
      throw invalidArgument(
        `isolation: snapshot ${templateName} was taken from a "${source.isolation}" sandbox; create with that isolation`,
      );

    if (source.memory) {
      // Processes come back from the image: the sandbox must look like the one it was taken from.
      for (const field of ['cpu', 'memoryMiB', 'pids'] as const) {
        if (input[field] !== undefined && input[field] !== source.memory[field])
          throw invalidArgument(
            `${field}: snapshot ${templateName} holds memory taken with ${field} ${source.memory[field]}; omit it or use that value`,
          );
      }
      input = {
        ...input,
        cpu: source.memory.cpu,
        memoryMiB: source.memory.memoryMiB,
        pids: source.memory.pids,
        env: { ...source.memory.env, ...(input.env ?? {}) },
      };
    }
    const network = normalizeNetworkSettings(input.network);
    if (internal.peers && network.egress === 'none')
      throw new HutchError('internal', 'a peer-group member needs a network: give it an egress policy other than none');
    if (internal.peers && !this.peerGroups().available)
      throw new HutchError('tier_unavailable', `environments are not available here: ${this.peerGroups().reason ?? 'no peer groups'}`);
    if (source.memory && network.egress !== 'none')
      throw invalidArgument(`network.egress: snapshot ${templateName} holds memory; a gVisor sandbox restored from it has egress none`);
    if (network.egress !== 'none' && !tier.egress.available) {
      throw new HutchError(
        'tier_unavailable',
        `network.egress: not available for isolation "${isolation}": ${tier.egress.reason ?? 'unknown reason'}`,
      );
    }
    const lifecycle = normalizeLifecycle(input);
    const secretRefs = normalizeSecretRefs(input.secrets, input.env ?? {});
    requireInjectableHosts(secretRefs, network.egress);
    if (secretRefs.length > 0 && !this.secrets) throw invalidArgument('secrets: not available on this server');
    // Read now: a missing secret is a 400 naming it, before anything exists.
    const injection = this.secrets && secretRefs.length > 0 ? await this.secrets.resolve(caller.tenant, secretRefs, 'create') : null;
    if (input.volumes && input.volumes.length > 0 && !this.volumes) throw invalidArgument('volumes: not available on this server');
    const { mounts, sources } =
      this.volumes && input.volumes ? await this.volumes.resolveMounts(caller.tenant, input.volumes) : { mounts: [], sources: [] };
    const now = new Date();
    const timeoutSeconds = input.timeoutSeconds ?? (lifecycle.persistent ? null : SANDBOX_DEFAULTS.timeoutSeconds);
    const resources = {
      cpu: input.cpu ?? SANDBOX_DEFAULTS.cpu,
      memoryMiB: input.memoryMiB ?? SANDBOX_DEFAULTS.memoryMiB,
      pids: input.pids ?? SANDBOX_DEFAULTS.pids,
      diskMiB: input.diskMiB ?? SANDBOX_DEFAULTS.diskMiB,
    };
    const volumeMiB = (await this.quotas?.volumeUse(caller.tenant)) ?? 0;
    // From the quota check to the reservation (or the claim) there is no await: see core/quotas.ts.
    this.quotas?.checkCreate(caller, resources, volumeMiB);
    const owner = { tenant: caller.tenant, key: caller.keyId };
    const warm =
      this.pools && mounts.length === 0 && !source.memory && internal.id === undefined && !internal.peers
        ? this.pools.claim(caller.tenant, { template: templateName, digest: source.digest, isolation, ...resources })
        : null;
    if (warm) this.capacity?.setOwner(warm.id, owner);
    const record: SandboxRecord = {
      id: warm?.id ?? internal.id ?? newSandboxId(),
      state: 'creating',
      template: templateName,
      templateDigest: source.digest,
      isolation,
      cpu: input.cpu ?? SANDBOX_DEFAULTS.cpu,
      memoryMiB: input.memoryMiB ?? SANDBOX_DEFAULTS.memoryMiB,
      pids: input.pids ?? SANDBOX_DEFAULTS.pids,
      timeoutSeconds,
      env: input.env ?? {},
      metadata: input.metadata ?? {},
      idempotencyKey: input.idempotencyKey ?? null,
      createdAt: now,
      expiresAt: ttlFrom(now.getTime(), timeoutSeconds),
      deletedAt: null,
      error: null,
      network,
      accessToken: randomBytes(24).toString('base64url'),
      diskMiB: input.diskMiB ?? SANDBOX_DEFAULTS.diskMiB,
      lifecycle,
      volumes: mounts,
      pauseMode: null,
      stateChangedAt: now,
      owner: caller.keyId,
      tenant: caller.tenant,
      secrets: secretRefs,
    };
    this.quotas?.noteCreate(caller);
    if (warm) {
      trace.warm = true;
      const span = trace.span.child('sandbox.create.warm_claim', { 'hutch.pool': warm.pool });
      const claimed = await this.finishWarm(record, warm.pool, injection);
      span.end();
      if (claimed) return claimed;
      trace.warm = false;
      record.id = newSandboxId(); // the member was unusable: go cold
    }
    const peers = internal.peers ?? null;
    if (!this.queue) return this.createCold(record, source, sources, caller, injection, peers, trace);
    // Reserved while waiting, so the queue never holds more than fits.
    this.capacity?.admit(record.id, allocationOf(record), owner);
    const wait = trace.span.child('sandbox.create.queue_wait');
    try {
      return await this.queue.run({ tenant: caller.tenant, key: caller.keyId }, () => {
        wait.end();
        return this.createCold(record, source, sources, caller, injection, peers, trace);
      });
    } catch (err) {
      wait.end(err);
      this.capacity?.release(record.id);
      throw err;
    }
  }

  /** Runs one step of a create as a child span of its trace. */
  private async step<T>(trace: CreateTrace | undefined, name: string, work: () => Promise<T>): Promise<T> {
    const span = trace?.span.child(`sandbox.create.${name}`);
    try {
      const result = await work();
      span?.end();
      return result;
    } catch (err) {
      span?.end(err);
      throw err;
    }
  }

  private async createCold(
    record: SandboxRecord,
    source: ResolvedSource,
    sources: SandboxSpec['volumes'],
    caller: Caller,
    injection: SecretInjection | null,
    peers: PeerGroup | null,
    trace?: CreateTrace,
  ): Promise<SandboxRecord & { warm?: boolean }> {
    const { isolation, network, timeoutSeconds, template: templateName } = record;
    if (this.capacity && !this.capacity.has(record.id))
      this.capacity.admit(record.id, allocationOf(record), { tenant: caller.tenant, key: caller.keyId });
    try {
      await this.store.insert(record);
    } catch (err) {
      // Lost a race with a concurrent create carrying the same idempotency key.
      this.capacity?.release(record.id);
      const winner = record.idempotencyKey ? await this.store.getByIdempotencyKey(record.tenant, record.idempotencyKey) : null;
      if (winner) return winner;
      throw err;
    }
    this.defaultUsers.set(record.id, source.defaultUser);

    return this.locks.run(record.id, async () => {
      try {
        await this.step(trace, 'provider', () =>
          this.provider.create({
            id: record.id,
            isolation,
            layers: source.layers,
            env: record.env,
            defaultUser: source.defaultUser,
            cpu: record.cpu,
            memoryMiB: record.memoryMiB,
            pids: record.pids,
            egress: network.egress,
            diskMiB: record.diskMiB,
            volumes: sources,
            tenant: record.tenant,
            timeoutSeconds,
            ...(source.memory ? { restoreFrom: source.memory.key } : {}),
            ...(peers ? { peers } : {}),
          }),
        );
        await this.step(trace, 'agent_ready', () => this.waitForAgent(record.id));
        await this.step(trace, 'secrets', () => this.inject(record.id, injection));
        const expiresAt = ttlFrom(Date.now(), timeoutSeconds);
        const stateChangedAt = new Date();
        await this.store.update(record.id, { state: 'running', expiresAt, stateChangedAt });
        // A new cgroup: everything it used since the runtime made it is the tenant's.
        await this.meter?.started(record, 'zero');
        this.touch(record.id);
        if (source.start && !source.memory) {
          const start = source.start;
          await this.step(trace, 'template_start', () => this.runTemplateStart(record.id, start, source.defaultUser));
        }
        this.log.info({ sandbox: record.id, isolation, template: templateName, egress: egressMode(network.egress) }, 'sandbox created');
        return { ...record, state: 'running' as const, expiresAt, stateChangedAt, warm: false };
      } catch (err) {
        const message = (err as Error).message;
        this.log.error({ sandbox: record.id, err: message }, 'sandbox create failed');
        await this.provider
          .destroy(record.id)
          .catch((e: unknown) => this.log.error({ sandbox: record.id, err: (e as Error).message }, 'cleanup after failed create'));
        this.dropAgent(record.id);
        this.redaction?.forget(record.id);
        this.egressHeaders?.forget(record.id);
        this.capacity?.release(record.id);
        await this.store.update(record.id, { state: 'error', error: `create failed: ${message}`, expiresAt: null });
        if (err instanceof HutchError) throw err;
        throw new HutchError('internal', `sandbox create failed: ${message}`, { cause: err });
      }
    });
  }

  /**
   * Hands a claimed warm-pool member to its create: the record is written and the request's own
   * settings applied (env and secrets for later processes, secret files, egress policy; metadata
   * and TTL are the record's). Null when the member turned out unusable (it is destroyed; the
   * caller goes cold).
   */
  private async finishWarm(
    record: SandboxRecord,
    pool: string,
    injection: SecretInjection | null,
  ): Promise<(SandboxRecord & { warm?: boolean }) | null> {
    const id = record.id;
    return this.locks.run(id, async () => {
      try {
        if (!(await this.agent(id).health(AbortSignal.timeout(2000)))) throw new Error('its agent does not answer');
        await this.inject(id, injection, record.env);
        if (record.network.egress !== 'none') await this.provider.setEgress(id, record.isolation, 'none', record.network.egress);
        if (isClaimAware(this.provider)) await this.provider.claimed(id, { tenant: record.tenant, timeoutSeconds: record.timeoutSeconds });
      } catch (err) {
        this.log.warn({ sandbox: id, pool, err: (err as Error).message }, 'warm sandbox unusable: creating cold');
        this.redaction?.forget(id);
        this.egressHeaders?.forget(id);
        await this.destroyWarm(id).catch(() => undefined);
        this.capacity?.release(id);
        return null;
      }
      const now = new Date();
      const claimed = {
        ...record,
        state: 'running' as const,
        expiresAt: ttlFrom(now.getTime(), record.timeoutSeconds),
        stateChangedAt: now,
      };
      try {
        await this.store.insert(claimed);
      } catch (err) {
        // Lost a race with a concurrent create carrying the same idempotency key: that one stands,
        // and the claimed member goes (never handed out twice, never back to its pool).
        this.redaction?.forget(id);
        this.egressHeaders?.forget(id);
        await this.destroyWarm(id).catch(() => undefined);
        this.capacity?.release(id);
        const winner = record.idempotencyKey ? await this.store.getByIdempotencyKey(record.tenant, record.idempotencyKey) : null;
        if (winner) return winner;
        throw err;
      }
      // It booted before it was the tenant's: only what it uses from now on is.
      await this.meter?.started(claimed, 'current');
      this.touch(id);
      this.log.info({ sandbox: id, pool, isolation: record.isolation, template: record.template }, 'sandbox created (warm)');
      return { ...claimed, warm: true as const };
    });
  }

  /** The current digest of a template or the tenant's snapshot (warm pools compare their members with it). */
  async templateDigest(template: string, tenant: string): Promise<string> {
    return (await this.resolveSource(template, tenant)).digest;
  }

  /**
   * Boots a warm-pool member: a sandbox with no record (it gets one when claimed), egress none,
   * no env of its own; the template's start command runs now. Cleaned up if it fails.
   */
  async bootWarm(id: string, spec: PoolSpec, tenant: string, pool?: string): Promise<{ digest: string }> {
    const source = await this.resolveSource(spec.template, tenant);
    if (source.memory) throw invalidArgument(`template: ${spec.template} is a memory snapshot; pools boot templates and file snapshots`);
    this.defaultUsers.set(id, source.defaultUser);
    try {
      await this.provider.create({
        id,
        isolation: spec.isolation,
        layers: source.layers,
        env: {},
        defaultUser: source.defaultUser,
        cpu: spec.cpu,
        memoryMiB: spec.memoryMiB,
        pids: spec.pids,
        egress: 'none',
        diskMiB: spec.diskMiB,
        volumes: [],
        tenant,
        ...(pool !== undefined ? { warmPool: { name: pool, target: spec.target } } : {}),
      });
      await this.waitForAgent(id);
      if (source.start) await this.runTemplateStart(id, source.start, source.defaultUser);
      return { digest: source.digest };
    } catch (err) {
      await this.destroyWarm(id).catch(() => undefined);
      throw err;
    }
  }

  /** A pool was deleted: the provider's objects of that pool (if it keeps any) go too. */
  async poolRemoved(tenant: string, pool: string): Promise<void> {
    if (isWarmPoolAware(this.provider)) await this.provider.warmPoolRemoved(tenant, pool);
  }

  /** Destroys a warm-pool member that was never claimed. */
  async destroyWarm(id: string): Promise<void> {
    this.dropAgent(id);
    this.defaultUsers.delete(id);
    await this.provider.destroy(id);
    // Its template start command's output, if any, goes with it.
    void this.onDeleted?.(id).catch(() => undefined);
  }

  /** Whether sandboxes can be created in a peer group (an environment's network) here, and why not. */
  peerGroups(): { available: boolean; reason?: string } {
    return (
      this.provider.peerGroups?.() ?? { available: false, reason: 'this provider has no peer-group networks (the local provider has)' }
    );
  }

  /** Whether `name` is a shipped template or one of the tenant's snapshots (nothing is built). */
  async sourceExists(name: string, tenant: string): Promise<boolean> {
    if (this.templates.names().includes(name)) return true;
    return (await this.snapshots?.resolve(name, tenant)) != null;
  }

  /** A shipped template or one of the tenant's snapshots, as the layers to mount (top first). */
  private async resolveSource(name: string, tenant: string): Promise<ResolvedSource> {
    if (this.templates.names().includes(name)) {
      const template = await this.templates.resolve(name);
      if (template)
        return {
          digest: template.digest,
          layers: template.layers,
          defaultUser: template.defaultUser,
          isolation: null,
          ...(template.start ? { start: template.start } : {}),
        };
    }
    const snapshot = await this.snapshots?.resolve(name, tenant);
    if (snapshot) return snapshot;
    throw invalidArgument(
      `template: unknown template or snapshot "${name}" (templates: ${this.templates.names().join(', ')}; snapshots: GET /v1/snapshots)`,
    );
  }

  /** Runs `work` while no lifecycle change (stop, pause, delete…) can happen to the sandbox. */
  whileLocked<T>(id: string, work: () => Promise<T>): Promise<T> {
    return this.locks.run(id, work);
  }

  /** Told when a sandbox is deleted (wired to the sandbox logs, which go with it). */
  onDeleted: ((id: string) => Promise<void>) | null = null;

  /** Starts a process in a sandbox and returns once it started (wired to the process service). */
  startProcess: ((id: string, req: { cmd: string[]; user?: string; tag?: string }) => Promise<unknown>) | null = null;

  /**
   * A template's start command (e.g. httpbin's server): started in the background as the
   * template's user, then its port is awaited (bounded), so the sandbox is usable when it is
   * reported running. A start that fails is logged and the sandbox stays (it is still a sandbox).
   */
  private async runTemplateStart(id: string, start: { cmd: string; readyPort?: number }, user: string): Promise<void> {
    if (!this.startProcess) return;
    try {
      await this.startProcess(id, { cmd: ['/bin/sh', '-c', start.cmd], user, tag: 'template-start' });
      if (start.readyPort === undefined) return;
      const deadline = Date.now() + TEMPLATE_READY_MS;
      for (;;) {
        try {
          (await this.agent(id).openTunnel(start.readyPort, 1000)).destroy();
          return;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await delay(25);
        }
      }
    } catch (err) {
      this.log.warn({ sandbox: id, cmd: start.cmd, err: (err as Error).message }, 'template start command did not come up');
    }
  }

  /** Records API activity on a sandbox (the idle timeout's clock). */
  touch(id: string): void {
    this.activity.touch(id);
  }

  /**
   * Holds a running sandbox active (not idle) until the hold is released, which counts as
   * activity: for work that lasts (an exec, an attached stream, a PTY, a proxied connection, a
   * keepAlive process). A stop, pause or delete ends every hold.
   */
  hold(id: string, what: string): Hold {
    return this.activity.hold(id, what);
  }

  /** Runs `work` while holding the sandbox active. */
  async holding<T>(id: string, what: string, work: () => Promise<T>): Promise<T> {
    const hold = this.hold(id, what);
    try {
      return await work();
    } finally {
      hold.release();
    }
  }

  /**
   * A TCP stream to `port` on the sandbox's own loopback (the ingress's upstream); the sandbox is
   * held active until the stream closes.
   */
  async openTunnel(id: string, port: number): Promise<Duplex> {
    const hold = this.hold(id, `connection to port ${port}`);
    try {
      const tunnel = await this.agent(id).openTunnel(port);
      tunnel.once('close', () => hold.release());
      return tunnel;
    } catch (err) {
      hold.release();
      throw err;
    }
  }

  /**
   * Stops a sandbox: its processes end and its memory, cpu and network are freed; its files (upper
   * layer and volumes) stay, and `start` brings it back with the same id, files, env and metadata.
   */
  async stop(id: string): Promise<SandboxRecord> {
    await this.get(id);
    return this.locks.run(id, async () => {
      const record = await this.get(id);
      if (record.state === 'stopped') return record;
      if (record.state !== 'running' && record.state !== 'paused')
        throw conflict(`sandbox ${id} is ${record.state}; only running or paused sandboxes can be stopped`);
      this.dropAgent(id);
      // Its last reading, while its cgroup still exists (the stop removes it).
      if (record.state === 'running') await this.meter?.final(id);
      await this.provider.stop(id);
      return this.enterIdleState(record, 'stopped', null);
    });
  }

  async start(id: string): Promise<SandboxRecord> {
    await this.get(id);
    return this.locks.run(id, async () => {
      const record = await this.get(id);
      if (record.state === 'running') return record;
      if (record.state !== 'stopped')
        throw conflict(`sandbox ${id} is ${record.state}; only stopped sandboxes can be started (paused ones are resumed)`);
      return this.bringUp(record, () => this.provider.start(id, record.network.egress), 'start');
    });
  }

  /** Pauses a running sandbox, keeping its memory where the tier can (see `pauseModeOf`). */
  async pause(id: string): Promise<{ record: SandboxRecord; note: string | null }> {
    await this.get(id);
    return this.locks.run(id, async () => {
      const record = await this.get(id);
      const { mode, note } = this.provider.pauseMode(record.isolation, record.network.egress);
      if (record.state === 'paused') return { record, note };
      if (record.state !== 'running') throw conflict(`sandbox ${id} is ${record.state}; only running sandboxes can be paused`);
      // A checkpoint cannot hold a host-backed socket: the agent closes its listener and every
      // connection first, and listens again once restored (or if the checkpoint fails).
      if (mode === 'memory') await this.quiesceAgent(id);
      this.dropAgent(id);
      // Its last reading while its cgroup exists (the pause removes it; what the runtime spends
      // writing a checkpoint after this is not counted).
      await this.meter?.final(id);
      try {
        await this.provider.pause(id, mode);
      } catch (err) {
        // A checkpoint that fails while saving ends the sandbox (runsc): its files are intact, so
        // it is recorded stopped rather than left claiming to run.
        const running = await this.provider.isRunning(id);
        // Still running: metered again from now.
        if (running !== false) await this.meter?.started(record, 'current');
        if (running === false) {
          await this.provider.stop(id).catch(() => undefined);
          await this.enterIdleState(record, 'stopped', null);
          throw new HutchError(
            'internal',
            `pause failed and the sandbox stopped (its files are kept; start it again): ${(err as Error).message}`,
          );
        }
        throw err;
      }
      this.log.info({ sandbox: id, mode }, 'sandbox paused');
      return { record: await this.enterIdleState(record, 'paused', mode), note };
    });
  }

  /**
   * The agent has closed its listener when it answers, and closes every connection right after;
   * the short wait lets those closes reach gVisor's sentry before the checkpoint starts.
   */
  private async quiesceAgent(id: string): Promise<void> {
    await this.agent(id).quiesce();
    this.dropAgent(id);
    await delay(QUIESCE_SETTLE_MS);
  }

  async resume(id: string): Promise<SandboxRecord> {
    await this.get(id);
    return this.locks.run(id, () => this.resumeLocked(id));
  }

  private async resumeLocked(id: string): Promise<SandboxRecord> {
    const record = await this.get(id);
    if (record.state === 'running') return record;
    if (record.state !== 'paused') throw conflict(`sandbox ${id} is ${record.state}; only paused sandboxes can be resumed`);
    const mode = record.pauseMode ?? 'filesystem';
    return this.bringUp(record, () => this.provider.resume(id, mode, record.network.egress), 'resume');
  }

  /**
   * Starts or resumes a sandbox and gives it its secrets again, read from the store now (a secret
   * deleted since is a 409 naming it, before anything starts; a replaced one gives the new value).
   */
  private async bringUp(record: SandboxRecord, up: () => Promise<void>, verb: 'start' | 'resume'): Promise<SandboxRecord> {
    const id = record.id;
    const what = verb === 'start' ? 'sandbox started' : 'sandbox resumed';
    const injection = this.secrets && record.secrets.length > 0 ? await this.secrets.resolve(record.tenant, record.secrets, verb) : null;
    if (this.capacity && !this.capacity.has(id)) this.capacity.record(id, allocationOf(record), false, ownerOf(record));
    try {
      this.quotas?.checkWake(record.tenant, allocationOf(record)); // 429 naming the quota
      this.capacity?.wake(id); // 503 naming the resource when it no longer fits
    } catch (err) {
      if (err instanceof HutchError && err.admissionReason) this.telemetry.admissionRejected(record.tenant, err.admissionReason);
      throw err;
    }
    try {
      if (this.volumes) await this.volumes.attachAll(record.tenant, record.volumes);
      await up();
      await this.waitForAgent(id);
      await this.inject(id, injection);
    } catch (err) {
      this.capacity?.rest(id);
      this.dropAgent(id);
      await this.provider.stop(id).catch(() => undefined);
      throw err instanceof HutchError ? err : new HutchError('internal', `${verb} failed: ${(err as Error).message}`);
    }
    const now = new Date();
    const patch = {
      state: 'running' as const,
      pauseMode: null,
      expiresAt: ttlFrom(now.getTime(), record.timeoutSeconds),
      stateChangedAt: now,
      error: null,
    };
    await this.store.update(id, patch);
    // Its cgroup is new (stop and pause remove it).
    await this.meter?.started(record, 'zero');
    this.touch(id);
    // Fresh processes (start, or a files-only resume): the template's start command runs again.
    if (record.pauseMode !== 'memory' && this.templates.names().includes(record.template)) {
      const template = await this.templates.resolve(record.template);
      if (template?.start) await this.runTemplateStart(id, template.start, template.defaultUser);
    }
    this.log.info({ sandbox: id }, what);
    return { ...record, ...patch };
  }

  /** Records a stopped or paused sandbox; its auto-delete clock starts now. */
  private async enterIdleState(record: SandboxRecord, state: 'stopped' | 'paused', mode: PauseMode | null): Promise<SandboxRecord> {
    const now = new Date();
    const autoDelete = record.lifecycle.autoDeleteAfterSeconds;
    const patch = {
      state,
      pauseMode: mode,
      stateChangedAt: now,
      expiresAt: autoDelete === null ? null : new Date(now.getTime() + autoDelete * 1000),
    };
    await this.store.update(record.id, patch);
    this.forgetActivity(record.id);
    this.capacity?.rest(record.id);
    return { ...record, ...patch };
  }

  /** A sandbox stopped running: its idle clock, holds and followed keepAlive processes go. */
  private forgetActivity(id: string): void {
    this.keepAlive.forget(id);
    this.activity.forget(id);
  }

  private readonly cpuSamples = new Map<string, { at: number; cpuNs: number }>();

  /**
   * A usage sample: cpu use since the previous sample (or since the sandbox started), as a
   * percentage of its cpu allowance; memory and disk now.
   */
  async metrics(id: string): Promise<{
    timestamp: Date;
    cpuUsedPct: number;
    cpuCount: number;
    memUsed: number;
    memTotal: number;
    memCache: number;
    diskUsed: number;
    diskTotal: number;
  } | null> {
    const record = await this.get(id);
    const usage = await this.provider.usage(id);
    if (!usage) return null;
    const now = Date.now();
    const previous = this.cpuSamples.get(id) ?? { at: (record.stateChangedAt ?? record.createdAt).getTime(), cpuNs: 0 };
    this.cpuSamples.set(id, { at: now, cpuNs: usage.cpuNs });
    const elapsedNs = Math.max(1, (now - previous.at) * 1e6);
    const cpuUsedPct = Math.max(0, Math.min(100, ((usage.cpuNs - previous.cpuNs) / elapsedNs / record.cpu) * 100));
    const disk = await this.provider.diskUsage(id);
    return {
      timestamp: new Date(now),
      cpuUsedPct: Math.round(cpuUsedPct * 100) / 100,
      cpuCount: Math.max(1, Math.ceil(record.cpu)),
      memUsed: usage.memBytes,
      memTotal: record.memoryMiB * 1024 * 1024,
      memCache: usage.memCacheBytes,
      diskUsed: disk?.usedBytes ?? 0,
      diskTotal: disk?.sizeBytes ?? record.diskMiB * 1024 * 1024,
    };
  }

  async diskUsage(id: string): Promise<DiskUsage | null> {
    await this.get(id);
    return this.provider.diskUsage(id);
  }

  /**
   * Gives a started sandbox its secrets through its agent: variables every later process inherits
   * (merged with `env`, a warm claim's own), files on its secrets tmpfs. The values are recorded
   * for redaction first; they never go into the bundle (config.json) or the store.
   */
  private async inject(id: string, injection: SecretInjection | null, env: Record<string, string> = {}): Promise<void> {
    if (injection) {
      this.redaction?.set(id, injection.redact);
      this.egressHeaders?.set(id, injection.headers);
    }
    const vars = { ...env, ...(injection?.env ?? {}) };
    if (Object.keys(vars).length > 0) await this.agent(id).setBaseEnv(vars);
    if (injection && injection.files.length > 0) await this.agent(id).writeSecretFiles(injection.files);
  }

  private async waitForAgent(id: string): Promise<void> {
    const agent = this.agent(id);
    const deadline = Date.now() + AGENT_READY_TIMEOUT_MS;
    const started = Date.now();
    while (Date.now() < deadline) {
      if (await agent.health()) return;
      // The socket usually appears within a few ms: poll tightly at first, then back off.
      await new Promise((r) => setTimeout(r, Date.now() - started < 500 ? 1 : 20));
    }
    throw new HutchError('internal', `the sandbox agent did not become ready within ${AGENT_READY_TIMEOUT_MS / 1000} s`);
  }

  /** The agent client for a sandbox (one keep-alive pool per sandbox). */
  agent(id: string): AgentClient {
    let client = this.agents.get(id);
    if (!client) {
      client = new AgentClient(this.provider.agentEndpoint(id), () => this.noticeUnreachable(id));
      this.agents.set(id, client);
    }
    return client;
  }

  private readonly checking = new Set<string>();

  /**
   * A connection to a running sandbox's agent failed: find out in the background whether the
   * sandbox is gone (then it is marked `error` with the reason), so the API stops calling it running.
   */
  private noticeUnreachable(id: string): void {
    if (this.checking.has(id)) return;
    this.checking.add(id);
    void this.locks
      .run(id, async () => {
        const record = await this.store.get(id);
        if (record?.state === 'running') await this.checkAlive(id, 0);
      })
      .catch((err: unknown) => this.log.error({ sandbox: id, err: (err as Error).message }, 'liveness check failed'))
      .finally(() => this.checking.delete(id));
  }

  private dropAgent(id: string): void {
    this.agents.get(id)?.close();
    this.agents.delete(id);
  }

  /** A sandbox the caller may see: another tenant's is a 404, exactly as an unknown one. */
  async getFor(caller: Caller, id: string): Promise<SandboxRecord> {
    const record = await this.get(id);
    requireVisible(caller, record.tenant, `sandbox ${id}`);
    return record;
  }

  /** A sandbox that exists (not deleted); 400 for a malformed id, 404 for an unknown one. */
  async get(id: string): Promise<SandboxRecord> {
    if (!isSandboxId(id)) throw invalidArgument(`id: "${id.slice(0, 40)}" is not a sandbox id (20 characters a-z, 0-9)`);
    const record = await this.store.get(id);
    if (!record || record.state === 'deleted') throw notFound(`sandbox ${id} not found`);
    return record;
  }

  /**
   * A sandbox that can run processes right now; counts as activity. A paused sandbox created with
   * `autoResume` is resumed first; otherwise a paused or stopped one is a 409 saying what to do.
   */
  async requireRunning(id: string): Promise<SandboxRecord> {
    let record = await this.get(id);
    if (record.state === 'paused' && record.lifecycle.autoResume) {
      record = await this.locks.run(id, () => this.resumeLocked(id));
    }
    if (record.state !== 'running') {
      const hint =
        record.state === 'paused'
          ? ` (POST /v1/sandboxes/${id}/resume, or create it with autoResume: true)`
          : record.state === 'stopped'
            ? ` (POST /v1/sandboxes/${id}/start)`
            : record.error
              ? ` (${record.error})`
              : '';
      throw conflict(`sandbox ${id} is ${record.state}${hint}; it must be running`);
    }
    this.touch(id);
    return record;
  }

  /** Sandboxes that are not deleted (or in the given states), of one tenant or (tenant null) all. */
  async list(
    filter: { states?: SandboxState[]; metadata?: Record<string, string>; tenant?: string | null } = {},
  ): Promise<SandboxRecord[]> {
    const states =
      filter.states && filter.states.length > 0 ? filter.states : (['creating', 'running', 'paused', 'stopped', 'error'] as SandboxState[]);
    return this.store.list({
      states,
      ...(filter.metadata ? { metadata: filter.metadata } : {}),
      ...(typeof filter.tenant === 'string' ? { tenant: filter.tenant } : {}),
    });
  }

  /** Sets the TTL to `timeoutSeconds` from now unless the sandbox already lives longer. */
  async extendTimeout(id: string, timeoutSeconds: number): Promise<SandboxRecord> {
    const record = await this.requireRunning(id);
    if (record.expiresAt === null || record.expiresAt.getTime() >= Date.now() + timeoutSeconds * 1000) return record;
    return this.setTimeout(id, timeoutSeconds);
  }

  async setTimeout(id: string, timeoutSeconds: number): Promise<SandboxRecord> {
    const record = await this.requireRunning(id);
    const expiresAt = new Date(Date.now() + timeoutSeconds * 1000);
    await this.store.update(id, { expiresAt, timeoutSeconds });
    return { ...record, expiresAt, timeoutSeconds };
  }

  /**
   * Changes a running sandbox's network settings; egress takes effect at once and connections
   * the new policy forbids are cut. Fields not given keep their value.
   */
  async setNetwork(id: string, input: unknown): Promise<{ record: SandboxRecord; cut: number }> {
    await this.requireRunning(id);
    return this.locks.run(id, async () => {
      // Under the lock: no auto-resume here (it takes the lock too); it happened just above.
      const record = await this.get(id);
      if (record.state !== 'running') throw conflict(`sandbox ${id} is ${record.state}; it must be running`);
      const next: NetworkSettings = normalizeNetworkSettings(input, record.network);
      let cut = 0;
      if (JSON.stringify(next.egress) !== JSON.stringify(record.network.egress)) {
        ({ cut } = await this.provider.setEgress(id, record.isolation, record.network.egress, next.egress));
      }
      await this.store.update(id, { network: next });
      this.log.info({ sandbox: id, egress: egressMode(next.egress), public: next.public, cut }, 'sandbox network changed');
      return { record: { ...record, network: next }, cut };
    });
  }

  /** The sandbox's network as set up; names its processes looked up are redacted of its secret values. */
  networkInfo(id: string): SandboxNetworkInfo {
    const info = this.provider.networkInfo(id);
    if (!this.redaction) return info;
    const redact = this.redaction.redactor(id);
    return { ...info, dnsLog: info.dnsLog.map((q) => ({ ...q, name: redact(q.name) })) };
  }

  async delete(id: string): Promise<void> {
    await this.get(id);
    await this.locks.run(id, async () => {
      const record = await this.store.get(id);
      if (!record || record.state === 'deleted') return;
      // Everything in the sandbox ends now; the answer does not wait for unmounting and removal,
      // which finish in the background (a crash meanwhile: reconcile reaps what is left). A
      // sandbox with volumes waits, so its volumes are free when the answer says so.
      await this.provider.kill(id);
      // Nothing of it runs any more and its cgroup is still there: its cpu counter is final.
      if (record.state === 'running') await this.meter?.final(id, { forget: true });
      else void this.meter?.final(id, { forget: true });
      this.dropAgent(id);
      this.redaction?.forget(id);
      this.egressHeaders?.forget(id);
      this.defaultUsers.delete(id);
      this.forgetActivity(id);
      this.cpuSamples.delete(id);
      await this.store.update(id, { state: 'deleted', deletedAt: new Date(), expiresAt: null });
      // Its log goes too (in the background: the answer does not wait for the store).
      void this.onDeleted?.(id).catch((err: unknown) =>
        this.log.error({ sandbox: id, err: (err as Error).message }, 'cleanup after delete failed'),
      );
      // Gone for its tenant's quotas now; its resources count for the node until the teardown ends.
      this.capacity?.setOwner(id, null);
      const teardown = this.teardownLimit(() => this.provider.destroy(id))
        .catch((err: unknown) => this.log.error({ sandbox: id, err: (err as Error).message }, 'teardown after delete failed'))
        .finally(() => {
          this.capacity?.release(id);
          this.teardowns.delete(id);
        });
      this.teardowns.set(id, teardown);
      if (record.volumes.length > 0) await teardown;
      this.log.info({ sandbox: id }, 'sandbox deleted');
    });
  }

  /**
   * Called when talking to a sandbox's agent failed mid-call: if the agent is gone, the sandbox
   * is marked `error` with the reason (an OOM kill of the whole sandbox, as happens to gVisor's
   * sentry, or an unexplained death), instead of claiming to be running. A busy agent is not a
   * dead one: under a fork bomb gVisor's agent can take seconds to answer, so while the runtime
   * still reports the sandbox running the agent gets several chances before it is given up on.
   */
  async checkAlive(id: string, oomBefore: number | null): Promise<{ alive: boolean; oomKilled: boolean }> {
    const oomAfter = await this.provider.oomKills(id);
    const oomKilled = oomBefore !== null && oomAfter !== null && oomAfter > oomBefore;
    const deadline = Date.now() + AGENT_PATIENCE_MS;
    let alive = await this.agent(id).health(AbortSignal.timeout(2000));
    while (!alive && Date.now() < deadline) {
      const running = await this.provider.isRunning(id);
      if (running === false) break;
      await delay(500);
      alive = await this.agent(id).health(AbortSignal.timeout(5000));
    }
    if (!alive) {
      // gVisor under ptrace keeps host threads per process (and leaks some while forks fail), so a
      // sustained fork bomb can reach the host pids backstop, which ends the sentry as a whole.
      const pidsHit = !oomKilled && ((await this.provider.pidsRefused(id)) ?? 0) > 0;
      const reason = oomKilled
        ? 'the sandbox was killed as a whole by the out-of-memory killer (its memory limit was reached)'
        : pidsHit
          ? "the sandbox was ended when its runtime hit the host's process backstop (a fork bomb?)"
          : 'the sandbox stopped unexpectedly (its agent no longer answers)';
      await this.store.update(id, { state: 'error', error: reason, expiresAt: null });
      await this.meter?.final(id);
      this.capacity?.release(id);
      this.log.warn({ sandbox: id, oomKilled }, reason);
    }
    return { alive, oomKilled };
  }

  async oomKills(id: string): Promise<number | null> {
    return this.provider.oomKills(id);
  }

  /** Deletes running sandboxes whose TTL has passed; runs every second. */
  startReaper(): void {
    if (this.reaper) return;
    this.reaper = setInterval(() => {
      void this.reapExpired();
    }, REAPER_INTERVAL_MS);
    this.reaper.unref();
  }

  private reaping = false;
  /**
   * TTLs and idle timeouts of running sandboxes (then `onTimeout`: delete or pause), and the
   * auto-delete of stopped and paused ones.
   */
  private async reapExpired(): Promise<void> {
    if (this.reaping) return;
    this.reaping = true;
    try {
      const now = Date.now();
      const expired = await this.store.list({ states: ['running', 'paused', 'stopped'], expiredBefore: new Date(now) });
      for (const record of expired) {
        if (record.state === 'running' && record.lifecycle.onTimeout === 'pause') {
          this.log.info({ sandbox: record.id }, 'sandbox timed out: pausing');
          await this.pause(record.id).catch((err: unknown) => this.timeoutFailed(record.id, err));
        } else {
          this.log.info({ sandbox: record.id, state: record.state }, record.state === 'running' ? 'sandbox timed out' : 'auto-delete');
          await this.delete(record.id).catch((err: unknown) => this.timeoutFailed(record.id, err));
        }
      }
      for (const record of await this.store.list({ states: ['running'] })) {
        const idle = record.lifecycle.idleTimeoutSeconds;
        if (idle === null) continue;
        const idleMs = this.activity.idleFor(record.id, now);
        if (idleMs === null) {
          this.touch(record.id); // first seen (e.g. after a restart): the clock starts now
          continue;
        }
        if (idleMs < idle * 1000) continue;
        if (await this.keepAliveRunning(record.id)) continue;
        this.log.info(
          { sandbox: record.id, idleSeconds: idle },
          `sandbox idle: ${record.lifecycle.onTimeout === 'pause' ? 'pausing' : 'deleting'}`,
        );
        const work = record.lifecycle.onTimeout === 'pause' ? this.pause(record.id) : this.delete(record.id);
        await work.catch((err: unknown) => this.timeoutFailed(record.id, err));
      }
    } finally {
      this.reaping = false;
    }
  }

  /**
   * Whether a keepAlive process still runs in a sandbox that looks idle. The agent is asked (not
   * the server's memory): after a restart, a memory resume or a lost stream the server no longer
   * follows such processes, and this finds them again (they hold the sandbox from now on).
   */
  private async keepAliveRunning(id: string): Promise<boolean> {
    try {
      if ((await this.keepAlive.running(id)) === 0) return false;
      this.touch(id);
      return true;
    } catch (err) {
      this.log.warn(
        { sandbox: id, err: (err as Error).message },
        'idle check: the process list is unavailable; treating the sandbox as idle',
      );
      return false;
    }
  }

  private timeoutFailed(id: string, err: unknown): void {
    this.log.error({ sandbox: id, err: (err as Error).message }, 'timeout action failed');
  }

  /**
   * Waits for the background teardown of a deleted sandbox (its network, names in its peer group,
   * mounts) to end; at once when there is none. A redeployed environment waits before reusing names.
   */
  async tornDown(id: string): Promise<void> {
    await this.teardowns.get(id);
  }

  /** Waits for the teardowns of deleted sandboxes still in progress (server shutdown). */
  async settle(): Promise<void> {
    await Promise.all(this.teardowns.values());
  }

  /** Stops the TTL reaper (leadership lost); startReaper() resumes it. */
  stopReaper(): void {
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = null;
  }

  /** Stops the reaper and closes agent connections (server shutdown; sandboxes keep running). */
  shutdown(): void {
    this.stopReaper();
    for (const id of [...this.agents.keys()]) {
      this.keepAlive.forget(id);
      this.dropAgent(id);
    }
  }

  /**
   * Several replicas on one store (core/leadership.ts): a replica that stops mid-create leaves its
   * record `creating`, and does not reconcile when it comes back as a follower. The leader ends
   * such creates once they began before `startedBefore` (longer ago than any create runs): the
   * runtime's object, if there is one, is destroyed and the record says why, as reconcile() does.
   */
  async endAbandonedCreates(startedBefore: Date): Promise<string[]> {
    const ended: string[] = [];
    for (const record of await this.store.list({ states: ['creating'] })) {
      if (record.createdAt >= startedBefore) continue;
      await this.provider.destroy(record.id).catch(() => undefined);
      await this.store.update(record.id, {
        state: 'error',
        error: 'create abandoned: the server replica creating it stopped before it finished',
        expiresAt: null,
      });
      ended.push(record.id);
    }
    if (ended.length > 0) this.log.warn({ sandboxes: ended }, 'ended creates abandoned by a stopped replica');
    return ended;
  }

  /**
   * Reconciles the store with the runtime after a (re)start: reattach what both know, reap what
   * only the runtime knows, mark lost what only the store knows, clean half-created ones.
   */
  async reconcile(): Promise<{ reattached: string[]; reaped: string[]; lost: string[]; cleaned: string[]; stopped: string[] }> {
    const runtime = await this.provider.list();
    const active = await this.store.list({ states: ['creating', 'running'] });
    const result = {
      reattached: [] as string[],
      reaped: [] as string[],
      lost: [] as string[],
      cleaned: [] as string[],
      stopped: [] as string[],
    };
    const runtimeIds = new Map(runtime.map((r) => [r.id, r]));
    const known = new Set((await this.store.list({ states: ['creating', 'running', 'paused', 'stopped', 'error'] })).map((r) => r.id));
    // Stopped and paused sandboxes keep their files (and checkpoint) across restarts and reboots.
    const resting = (await this.store.list({ states: ['paused', 'stopped'] })).map((r) => r.id);

    if ((await this.store.count()) === 0 && runtime.length > 0) {
      this.log.warn(
        { count: runtime.length },
        'the store is empty but the runtime has sandboxes: not reaping them (was the database replaced?)',
      );
      return result;
    }
    for (const record of active) {
      const live = runtimeIds.get(record.id);
      if (record.state === 'creating') {
        await this.provider.destroy(record.id).catch(() => undefined);
        await this.store.update(record.id, { state: 'error', error: 'create interrupted by a server restart', expiresAt: null });
        result.cleaned.push(record.id);
      } else if (live && live.status === 'running' && (await this.agentAnswers(record.id))) {
        result.reattached.push(record.id);
        await this.recallSecrets(record);
        if (record.network.egress !== 'none') {
          // Rules and the resolver's view of the sandbox are rebuilt from the store's policy.
          await this.provider
            .setEgress(record.id, record.isolation, record.network.egress, record.network.egress)
            .catch((err: unknown) => this.log.error({ sandbox: record.id, err: (err as Error).message }, 'network restore failed'));
        }
      } else if (record.lifecycle.persistent) {
        // A persistent sandbox whose processes are gone (a host reboot) keeps its files: stopped.
        this.dropAgent(record.id);
        await this.provider
          .stop(record.id)
          .catch((err: unknown) => this.log.error({ sandbox: record.id, err: (err as Error).message }, 'stop after restart failed'));
        await this.enterIdleState(record, 'stopped', null);
        resting.push(record.id);
        result.stopped.push(record.id);
      } else {
        await this.provider.destroy(record.id).catch(() => undefined);
        this.dropAgent(record.id);
        const why = live
          ? `agent unreachable after restart (runtime status ${live.status})`
          : 'lost: the runtime no longer has this sandbox (host reboot?)';
        await this.store.update(record.id, { state: 'error', error: why, expiresAt: null });
        result.lost.push(record.id);
      }
    }
    const keep = new Set([...result.reattached, ...resting]);
    for (const r of runtime) {
      // A stopped or paused sandbox has no container: one left by a crash mid-stop goes too.
      if (!result.reattached.includes(r.id) && (!known.has(r.id) || resting.includes(r.id))) {
        if (resting.includes(r.id)) {
          await this.provider.stop(r.id).catch(() => undefined);
          continue;
        }
        await this.provider
          .destroy(r.id)
          .catch((err: unknown) => this.log.error({ sandbox: r.id, err: (err as Error).message }, 'orphan reap failed'));
        result.reaped.push(r.id);
      }
    }
    // Errored sandboxes keep their record but no resources.
    result.cleaned.push(...(await this.provider.sweep(keep)));
    if (this.capacity) {
      for (const record of await this.store.list({ states: ['running', 'paused', 'stopped'] }))
        this.capacity.record(record.id, allocationOf(record), record.state === 'running', ownerOf(record));
    }
    this.log.info(result, 'reconciled with the runtime');
    return result;
  }

  /**
   * A sandbox still running from before a restart: its injected values are recorded for redaction
   * again and its headers for the egress proxy (read from the store: a secret replaced meanwhile
   * is known by its new value only).
   */
  private async recallSecrets(record: SandboxRecord): Promise<void> {
    if (!this.secrets || record.secrets.length === 0) return;
    try {
      const injection = await this.secrets.resolve(record.tenant, record.secrets, 'reattach');
      this.redaction?.set(record.id, injection.redact);
      this.egressHeaders?.set(record.id, injection.headers);
    } catch (err) {
      this.log.warn(
        { sandbox: record.id, err: (err as Error).message },
        'secrets of a reattached sandbox are not redacted and its headers not injected',
      );
    }
  }

  private async agentAnswers(id: string): Promise<boolean> {
    const signal = AbortSignal.timeout(3000);
    return this.agent(id).health(signal);
  }
}
