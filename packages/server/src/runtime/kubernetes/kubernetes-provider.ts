import { createHmac } from 'node:crypto';
import {
  ApiException,
  CoreV1Api,
  type KubeConfig,
  NetworkingV1Api,
  NodeV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1NetworkPolicy,
  type V1Pod,
  VersionApi,
} from '@kubernetes/client-node';
import type { AgentEndpoint } from '../../core/agent.js';
import type { Allocation } from '../../core/capacity.js';
import { HutchError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { EgressPolicy } from '../../core/network.js';
import type {
  ClaimAwareProvider,
  DiskUsage,
  SandboxStats,
  Provider,
  RuntimeSandbox,
  SandboxNetworkInfo,
  SandboxSpec,
  TierStatus,
  WarmPoolAwareProvider,
} from '../../core/provider.js';
import { type Isolation, ISOLATION_TIERS, type PauseMode } from '../../core/sandbox.js';
import { AGENT_TCP_PORT } from '../../templates/oci-image.js';
import { AgentClient } from '../agent/agent-client.js';
import type { AgentSandboxPools } from './agent-sandbox-pools.js';
import { AgentAccess, type AgentAccessMode } from './agent-access.js';
import { kubeError, withRetry } from './kube-errors.js';
import type { PodImages } from './pod-images.js';
import { buildPod, CONTAINER_NAME, installationSelector, LABELS, podName } from './pod-spec.js';
import { type PodCache, PodWatch } from './pod-watch.js';
import { buildNetworkPolicy, policyName } from './network-policy.js';
import { PVC_SOURCE_PREFIX } from './kube-volumes.js';
import { quantity } from './quantity.js';

/**
 * The Kubernetes provider: a sandbox is a Pod in one namespace (pod-spec.ts), its image the
 * template's layers plus the agent (pod-images.ts), its tier a RuntimeClass. The agent is reached
 * by pod IP over TCP, or through the API server's port-forward where pod IPs are not routable
 * (agent-access.ts), with a per-sandbox token (an HMAC of the sandbox id under the server's key,
 * so a restarted server knows every token without storing them). Its egress policy is a
 * NetworkPolicy of its own (network-policy.ts), made before the pod. Pod state comes from one watch
 * per namespace (pod-watch.ts). What has no mapping on Kubernetes yet (stop/start, pause,
 * snapshots, egress by domain name, usage figures) fails with a clear
 * `unsupported on the kubernetes provider` error and is reported in tiers().
 */

export interface KubernetesProviderOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Labels this installation's pods (the server id): another installation's pods are never touched. */
  installation: string;
  /** RuntimeClass per tier; null: the cluster's default runtime (runc). */
  runtimeClasses: Record<Isolation, string | null>;
  images: PodImages;
  /** Key of the per-sandbox agent tokens. */
  tokenKey: string;
  /** How agents are reached (agent-access.ts; default auto). */
  agentAccess?: AgentAccessMode;
  /** cpu request as a fraction of the sandbox's cpu limit (default 0.1, like the local overcommit). */
  cpuRequestRatio?: number;
  /** activeDeadlineSeconds = TTL + this (the backstop if the server is down when the TTL passes). */
  ttlBackstopSeconds?: number;
  /** How long a pod may take to run (image import, scheduling, runtime start). */
  createTimeoutMs?: number;
  /** How long a pod may stay unschedulable before the create fails with resource_exhausted. */
  unschedulableMs?: number;
  /**
   * Warm pools on kubernetes-sigs/agent-sandbox (`--kubernetes-warm-pools agent-sandbox`): a
   * member is filled by a SandboxClaim from the pool's SandboxWarmPool instead of a pod of its own,
   * and deleting it deletes the claim. Absent: members are Hutch's own pods.
   */
  agentSandbox?: AgentSandboxPools;
  /** How long a claimed pod may take to show in the pod watch (default 30 s). */
  claimVisibleMs?: number;
  /** The pod cache (default: one watch over the namespace); unit tests pass a stand-in. */
  podCache?: PodCache;
  log: Logger;
}

/** Waiting reasons of a container that will not start by itself. */
const FATAL_WAITING = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'ErrImageNeverPull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'CrashLoopBackOff',
]);

const UNSUPPORTED = (what: string): HutchError => new HutchError('tier_unavailable', `${what} is unsupported on the kubernetes provider`);

type StartResult = { ok: true } | { ok: false; error: HutchError };

export class KubernetesProvider implements Provider, ClaimAwareProvider, WarmPoolAwareProvider {
  private readonly core: CoreV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly watch: PodCache;
  /** Warm pools on agent-sandbox (options.agentSandbox, or useAgentSandbox after discovery); null: Hutch pods. */
  private agentSandbox: AgentSandboxPools | null;
  /** agent-sandbox pools written by this process, with what they were written with (no rewrite per fill). */
  private readonly warmPoolsWritten = new Map<string, string>();
  private readonly tierStatus: Record<Isolation, TierStatus>;
  private serverVersion: string | null = null;
  /** One keep-alive client per sandbox for the usage samples (every few seconds). */
  private readonly statsClients = new Map<string, AgentClient>();
  private readonly access: AgentAccess;

  constructor(private readonly options: KubernetesProviderOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.networking = options.kubeConfig.makeApiClient(NetworkingV1Api);
    this.watch =
      options.podCache ??
      new PodWatch(options.kubeConfig, this.core, options.namespace, installationSelector(options.installation), options.log);
    this.agentSandbox = options.agentSandbox ?? null;
    this.access = new AgentAccess({
      mode: options.agentAccess ?? 'auto',
      kubeConfig: options.kubeConfig,
      namespace: options.namespace,
      log: options.log,
    });
    this.tierStatus = {
      container: this.tier('container', true),
      gvisor: this.tier('gvisor', false, 'not checked yet'),
    };
  }

  /** Fills warm pools from agent-sandbox from now on (`--kubernetes-warm-pools agent-sandbox`, after discovery found it). */
  useAgentSandbox(pools: AgentSandboxPools): void {
    this.agentSandbox = pools;
  }

  get namespace(): string {
    return this.options.namespace;
  }

  /** The agent-access mode and the path in use, for /v1/info. */
  agentAccess(): ReturnType<AgentAccess['posture']> {
    return this.access.posture();
  }

  private tier(isolation: Isolation, available: boolean, reason?: string): TierStatus {
    const runtimeClass = this.options.runtimeClasses[isolation];
    const notes = [
      'kubernetes provider',
      isolation === 'container'
        ? "no user namespace (Kubernetes 1.20 pods): sandbox root is host root holding only the agent's capabilities"
        : null,
      'egress policies are NetworkPolicy objects: enforced only where the CNI enforces NetworkPolicy',
      'pids and disk limits are per-node kubelet settings and ephemeral-storage eviction, not per-sandbox quotas',
    ].filter((n): n is string => n !== null);
    return {
      available,
      runtime: runtimeClass ? `RuntimeClass ${runtimeClass}` : 'the cluster default runtime',
      version: this.serverVersion,
      reason: reason ?? notes.join('; '),
      egress: {
        available: true,
        reason:
          'as NetworkPolicy (CIDRs only: domain names need an FQDN-capable CNI such as Cilium); enforced only by a CNI that enforces NetworkPolicy',
      },
      pause: { mode: 'filesystem', note: 'pause is unsupported on the kubernetes provider' },
    };
  }

  /** Checks the cluster (namespace, RuntimeClasses) and starts the pod watch. */
  async connect(): Promise<void> {
    const { kubeConfig, namespace, log } = this.options;
    try {
      this.serverVersion = (await kubeConfig.makeApiClient(VersionApi).getCode()).gitVersion;
    } catch (err) {
      throw kubeError(`cannot reach the API server at ${kubeConfig.getCurrentCluster()?.server ?? '?'}`, err);
    }
    try {
      await this.core.readNamespace({ name: namespace });
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 404) {
        if (!(err instanceof ApiException && err.code === 403)) throw kubeError(`namespace ${namespace}`, err);
        log.warn({ namespace }, 'cannot read the namespace (RBAC); assuming it exists');
      } else {
        await this.core
          .createNamespace({ body: { metadata: { name: namespace, labels: { [LABELS.managedBy]: 'hutch' } } } })
          .catch((e: unknown) => {
            if (!(e instanceof ApiException && e.code === 409)) throw kubeError(`creating namespace ${namespace}`, e);
          });
        log.info({ namespace }, 'created the sandbox namespace');
      }
    }
    const nodeApi = kubeConfig.makeApiClient(NodeV1Api);
    for (const isolation of ISOLATION_TIERS) {
      const runtimeClass = this.options.runtimeClasses[isolation];
      if (!runtimeClass) {
        this.tierStatus[isolation] = this.tier(isolation, true);
        continue;
      }
      try {
        await nodeApi.readRuntimeClass({ name: runtimeClass });
        this.tierStatus[isolation] = this.tier(isolation, true);
      } catch (err) {
        const missing = err instanceof ApiException && err.code === 404;
        this.tierStatus[isolation] = missing
          ? this.tier(
              isolation,
              false,
              `the cluster has no RuntimeClass "${runtimeClass}" (install it, or name another with --runtime-class-${isolation})`,
            )
          : this.tier(
              isolation,
              true,
              `RuntimeClass ${runtimeClass} could not be checked (${kubeError('', err).message}); assumed present`,
            );
      }
    }
    await this.watch.start();
    // auto: a running pod (after a restart) decides now; otherwise the first create does.
    const running = this.watch.pods().find((p) => p.status?.phase === 'Running' && p.status.podIP);
    if (running?.status?.podIP) await this.access.decide(running.status.podIP, AGENT_TCP_PORT);
  }

  /** Stops the pod watch (server shutdown; the pods keep running). */
  async close(): Promise<void> {
    await this.watch.stop();
  }

  /** The schedulable size of the cluster (sum of nodes' allocatable); null when nodes cannot be listed. */
  async clusterSize(): Promise<Allocation | null> {
    try {
      const nodes = await this.core.listNode();
      const size: Allocation = { cpu: 0, memoryMiB: 0, pids: 0, diskMiB: 0 };
      for (const node of nodes.items) {
        if (node.spec?.unschedulable) continue;
        const a = node.status?.allocatable ?? {};
        size.cpu += quantity(a.cpu ?? '0');
        size.memoryMiB += quantity(a.memory ?? '0') / 2 ** 20;
        size.pids += quantity(a.pods ?? '0') * 4096;
        size.diskMiB += quantity(a['ephemeral-storage'] ?? '0') / 2 ** 20;
      }
      return { cpu: size.cpu, memoryMiB: Math.floor(size.memoryMiB), pids: size.pids, diskMiB: Math.floor(size.diskMiB) };
    } catch {
      return null;
    }
  }

  tiers(): Record<Isolation, TierStatus> {
    return this.tierStatus;
  }

  private token(id: string): string {
    return createHmac('sha256', this.options.tokenKey).update(`agent:${id}`).digest('base64url');
  }

  async create(spec: SandboxSpec): Promise<void> {
    const tier = this.tierStatus[spec.isolation];
    if (!tier.available) throw new HutchError('tier_unavailable', `isolation "${spec.isolation}" is not available: ${tier.reason ?? ''}`);
    if (spec.restoreFrom) throw UNSUPPORTED('starting from a memory snapshot');
    const volumes = spec.volumes.map((v) => {
      if (!v.source.startsWith(PVC_SOURCE_PREFIX)) throw UNSUPPORTED('host-directory volumes');
      return { claim: v.source.slice(PVC_SOURCE_PREFIX.length), destination: v.destination, readOnly: v.readOnly };
    });
    const { namespace, installation } = this.options;
    const policy = buildNetworkPolicy({ id: spec.id, namespace, installation, egress: spec.egress });
    const image = await this.options.images.imageFor(spec.layers, spec.defaultUser);
    const ttl = spec.timeoutSeconds ?? null;
    const body = buildPod({
      id: spec.id,
      namespace: this.options.namespace,
      installation: this.options.installation,
      tenant: spec.tenant ?? 'default',
      isolation: spec.isolation,
      image,
      runtimeClassName: this.options.runtimeClasses[spec.isolation],
      defaultUser: spec.defaultUser,
      env: spec.env,
      agentToken: this.token(spec.id),
      cpu: spec.cpu,
      memoryMiB: spec.memoryMiB,
      diskMiB: spec.diskMiB,
      cpuRequestRatio: this.options.cpuRequestRatio ?? 0.1,
      volumes,
      deadlineSeconds: ttl === null ? null : ttl + (this.options.ttlBackstopSeconds ?? 3600),
    });
    if (this.agentSandbox && spec.warmPool && volumes.length === 0) {
      await this.fillFromWarmPool(this.agentSandbox, spec, spec.warmPool, body, policy);
      return this.decideAccess(spec.id);
    }
    // The policy first: the pod never runs without it.
    await this.applyPolicy(spec.id, spec.egress, policy);
    try {
      // Retried on throttling only: a create the API server may have carried out is not repeated
      // blindly; a 409 for our own pod (same sandbox label) means it was, and is waited for.
      await withRetry('create pod', async () => {
        try {
          return await this.core.createNamespacedPod({ namespace: this.options.namespace, body });
        } catch (err) {
          if (err instanceof ApiException && err.code >= 500)
            throw new HutchError('unavailable', `kubernetes: create pod: HTTP ${err.code}`);
          throw err;
        }
      });
    } catch (err) {
      const existing = err instanceof HutchError && err.kind === 'conflict' ? await this.readPod(spec.id) : null;
      if (existing?.metadata?.labels?.[LABELS.installation] !== this.options.installation) throw err;
    }
    const result = await this.waitStarted(spec.id, image);
    if (!result.ok) {
      await this.destroy(spec.id).catch(() => undefined);
      throw result.error;
    }
    await this.decideAccess(spec.id);
  }

  /** auto: the first running pod decides how agents are reached (bounded; once per server). */
  private async decideAccess(id: string): Promise<void> {
    const ip = this.watch.pod(id)?.status?.podIP;
    if (ip) await this.access.decide(ip, AGENT_TCP_PORT);
  }

  /**
   * A warm-pool member on agent-sandbox: the sandbox's own NetworkPolicy (egress none) first, the
   * pool's objects written when new or changed (SandboxTemplate of `pod`, SandboxWarmPool of the
   * pool's target), then a SandboxClaim `hutch-<id>` taken from the warm pool, bound, its pod
   * Ready and its agent token rotated to this sandbox's own (AgentSandboxPools.claim), and the
   * claimed pod seen in the watch by its sandbox label. Any failure deletes the claim.
   */
  private async fillFromWarmPool(
    agentSandbox: AgentSandboxPools,
    spec: SandboxSpec,
    pool: { name: string; target: number },
    pod: V1Pod,
    policy: V1NetworkPolicy,
  ): Promise<void> {
    const tenant = spec.tenant ?? 'default';
    const key = `${tenant}/${pool.name}`;
    await this.applyPolicy(spec.id, spec.egress, policy);
    try {
      const input = { tenant, name: pool.name, pod, replicas: pool.target };
      // What the pool's objects are written from, without what is the member's own (its id, name
      // and token are not in the template): rewritten only when that changes (a resize, a new image).
      const shape = JSON.stringify(input).split(this.token(spec.id)).join('').split(spec.id).join('');
      if (this.warmPoolsWritten.get(key) !== shape) {
        await agentSandbox.ensurePool(input);
        this.warmPoolsWritten.set(key, shape);
      }
      await agentSandbox.claim({
        id: spec.id,
        tenant,
        pool: { tenant, name: pool.name },
        sandboxToken: this.token(spec.id),
        shutdownTime: null,
      });
      const timeoutMs = this.options.claimVisibleMs ?? 30_000;
      const seen = await this.watch.until(() => (this.watch.pod(spec.id)?.status?.podIP ? true : undefined), timeoutMs);
      if (!seen)
        throw new HutchError(
          'internal',
          `the pod claimed by SandboxClaim hutch-${spec.id} did not show with its sandbox label within ${timeoutMs / 1000} s`,
        );
    } catch (err) {
      this.warmPoolsWritten.delete(key); // written again at the next fill, in case they went
      await this.destroy(spec.id).catch(() => undefined);
      throw err;
    }
  }

  /** Deletes what agent-sandbox keeps of a pool (warm pool, template, token Secret, fencing policy). */
  async warmPoolRemoved(tenant: string, name: string): Promise<void> {
    if (!this.agentSandbox) return;
    this.warmPoolsWritten.delete(`${tenant}/${name}`);
    await this.agentSandbox.removePool(tenant, name);
  }

  private async readPod(id: string): Promise<V1Pod | null> {
    try {
      return await this.core.readNamespacedPod({ name: podName(id), namespace: this.options.namespace });
    } catch {
      return null;
    }
  }

  /** Waits (on the watch) until the pod runs its agent with an IP, or will not. */
  private async waitStarted(id: string, image: string): Promise<StartResult> {
    const timeoutMs = this.options.createTimeoutMs ?? 120_000;
    const unschedulableMs = this.options.unschedulableMs ?? 20_000;
    let seen = false;
    const result = await this.watch.until<StartResult>(() => {
      const pod = this.watch.pod(id);
      if (!pod) return seen ? { ok: false, error: new HutchError('internal', `pod ${podName(id)} was deleted while starting`) } : undefined;
      seen = true;
      return startState(pod, image, unschedulableMs);
    }, timeoutMs);
    if (result) return result;
    const pod = this.watch.pod(id);
    return {
      ok: false,
      error: new HutchError(
        'internal',
        `pod ${podName(id)} did not start within ${timeoutMs / 1000} s (phase ${pod?.status?.phase ?? 'unknown'}${waitingReason(pod) ? `, ${waitingReason(pod)}` : ''})`,
      ),
    };
  }

  /**
   * A warm-pool pod handed to a create gets its tenant label and its TTL backstop (Kubernetes
   * counts activeDeadlineSeconds from the pod's start, and lets it be set on a running pod).
   */
  async claimed(id: string, owner: { tenant: string; timeoutSeconds: number | null }): Promise<void> {
    const pod = this.watch.pod(id);
    const started = pod?.status?.startTime;
    const age = started ? Math.ceil((Date.now() - new Date(started).getTime()) / 1000) : 0;
    const body = {
      metadata: { labels: { [LABELS.tenant]: owner.tenant } },
      ...(owner.timeoutSeconds !== null
        ? { spec: { activeDeadlineSeconds: Math.max(1, age) + owner.timeoutSeconds + (this.options.ttlBackstopSeconds ?? 3600) } }
        : {}),
    };
    await withRetry('label claimed pod', () =>
      this.core.patchNamespacedPod(
        // A pod claimed from an agent-sandbox warm pool keeps the name the controller gave it.
        { name: pod?.metadata?.name ?? podName(id), namespace: this.options.namespace, body },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  agentEndpoint(id: string): AgentEndpoint {
    const pod = this.watch.pod(id);
    const ip = pod?.status?.podIP;
    if (!ip) throw new HutchError('unavailable', `sandbox ${id} has no pod IP (its pod is not running)`);
    // A pod claimed from an agent-sandbox warm pool keeps the name the controller gave it.
    return this.access.endpoint(pod?.metadata?.name ?? podName(id), ip, AGENT_TCP_PORT, this.token(id));
  }

  /** Deletes the pod at once (grace 0: the kubelet kills its containers); idempotent. */
  private async deletePod(id: string): Promise<void> {
    try {
      await withRetry('delete pod', () =>
        this.core.deleteNamespacedPod({ name: podName(id), namespace: this.options.namespace, gracePeriodSeconds: 0 }),
      );
    } catch (err) {
      if (err instanceof HutchError && err.kind === 'not_found') return;
      throw err;
    }
  }

  /**
   * On agent-sandbox, a claimed sandbox goes by deleting its SandboxClaim (the controller deletes
   * its Sandbox and pod; deleting the pod alone would have it re-created). Nothing to delete is
   * not an error, so this runs for every id.
   */
  private async releaseClaim(id: string): Promise<void> {
    await this.agentSandbox?.release(id);
  }

  async kill(id: string): Promise<void> {
    await this.releaseClaim(id);
    await this.deletePod(id);
  }

  async destroy(id: string): Promise<void> {
    this.statsClients.get(id)?.close();
    this.statsClients.delete(id);
    await this.releaseClaim(id);
    await this.deletePod(id);
    await this.deletePolicy(id);
    // Gone from the API at once; the cache follows within the watch's latency.
    await this.watch.until(() => (this.watch.pod(id) ? undefined : true), 10_000);
  }

  async stop(): Promise<void> {
    throw UNSUPPORTED('stop');
  }

  async start(): Promise<void> {
    throw UNSUPPORTED('start');
  }

  pauseMode(): { mode: PauseMode; note: string | null } {
    return { mode: 'filesystem', note: 'pause is unsupported on the kubernetes provider' };
  }

  async pause(): Promise<void> {
    throw UNSUPPORTED('pause');
  }

  async resume(): Promise<void> {
    throw UNSUPPORTED('resume');
  }

  async exportCheckpoint(): Promise<void> {
    throw UNSUPPORTED('memory snapshots');
  }

  /** Nothing to remove: no checkpoint is ever made here. */
  async removeCheckpoint(): Promise<void> {}

  async frozen<T>(): Promise<T> {
    throw UNSUPPORTED('snapshots');
  }

  async withUpperDir<T>(): Promise<T> {
    throw UNSUPPORTED('snapshots');
  }

  /** The agent's figures (stats()); null when they cannot be read. */
  async usage(id: string): Promise<{ cpuNs: number; memBytes: number; memCacheBytes: number } | null> {
    const s = await this.stats(id);
    return s ? { cpuNs: s.cpuNs, memBytes: s.memoryBytes, memCacheBytes: s.memoryCacheBytes } : null;
  }

  async diskUsage(): Promise<DiskUsage | null> {
    return null;
  }

  /**
   * The pod's usage as its agent reads it from inside (GET /hutch/stats: the container's cgroup
   * under runc, procfs under gVisor), so that metrics and usage accounting work without a metrics
   * pipeline. These figures come from inside the sandbox (see docs/kubernetes.md, "Usage"). Disk
   * and network are not known here. null when the pod or its agent cannot be reached.
   */
  async stats(id: string): Promise<SandboxStats | null> {
    if (!this.watch.pod(id)?.status?.podIP) return null;
    let client = this.statsClients.get(id);
    if (!client) {
      client = new AgentClient(this.agentEndpoint(id));
      this.statsClients.set(id, client);
    }
    try {
      const s = await client.stats();
      return { cpuNs: s.cpuNs, memoryBytes: s.memoryBytes, memoryCacheBytes: s.memoryCacheBytes, pids: s.pids, disk: null, net: null };
    } catch {
      client.close();
      this.statsClients.delete(id);
      return null;
    }
  }

  async list(): Promise<RuntimeSandbox[]> {
    const out: RuntimeSandbox[] = [];
    for (const pod of this.watch.pods()) {
      const id = pod.metadata?.labels?.[LABELS.sandbox];
      const isolation = pod.metadata?.labels?.[LABELS.isolation] as Isolation | undefined;
      if (!id || !isolation || !ISOLATION_TIERS.includes(isolation)) continue;
      const phase = pod.status?.phase;
      const status =
        pod.metadata?.deletionTimestamp || phase === 'Succeeded' || phase === 'Failed'
          ? 'stopped'
          : phase === 'Running'
            ? 'running'
            : phase === 'Pending'
              ? 'creating'
              : 'unknown';
      out.push({ id, isolation, status });
    }
    return out;
  }

  async isRunning(id: string): Promise<boolean | null> {
    const pod = this.watch.pod(id);
    if (!pod) return false;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed' || pod.metadata?.deletionTimestamp) return false;
    const container = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME);
    if (phase === 'Running' && container) return container.state?.running !== undefined;
    return null;
  }

  async pidsRefused(): Promise<number | null> {
    return null;
  }

  async oomKills(id: string): Promise<number | null> {
    const pod = this.watch.pod(id);
    if (!pod) return null;
    const container = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME);
    const reasons = [container?.state?.terminated?.reason, container?.lastState?.terminated?.reason];
    return reasons.includes('OOMKilled') ? 1 : 0;
  }

  /**
   * Replaces the sandbox's NetworkPolicy. Whether established connections the new policy forbids
   * are cut is the CNI's business: `cut` is reported as 0.
   */
  async setEgress(id: string, _isolation: Isolation, _current: EgressPolicy, next: EgressPolicy): Promise<{ cut: number }> {
    await this.applyPolicy(id, next);
    return { cut: 0 };
  }

  /** Creates or replaces the sandbox's NetworkPolicy. */
  private async applyPolicy(id: string, egress: EgressPolicy, built?: V1NetworkPolicy): Promise<void> {
    const { namespace, installation } = this.options;
    const body = built ?? buildNetworkPolicy({ id, namespace, installation, egress });
    const name = policyName(id);
    await withRetry('network policy', async () => {
      try {
        const current = await this.networking.readNamespacedNetworkPolicy({ name, namespace });
        body.metadata = { ...body.metadata, resourceVersion: current.metadata?.resourceVersion };
        return await this.networking.replaceNamespacedNetworkPolicy({ name, namespace, body });
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return this.networking.createNamespacedNetworkPolicy({ namespace, body });
        throw err;
      }
    });
  }

  private async deletePolicy(id: string): Promise<void> {
    try {
      await withRetry('delete network policy', () =>
        this.networking.deleteNamespacedNetworkPolicy({ name: policyName(id), namespace: this.options.namespace }),
      );
    } catch (err) {
      if (err instanceof HutchError && err.kind === 'not_found') return;
      throw err;
    }
  }

  networkInfo(id: string): SandboxNetworkInfo {
    return { ipv4: this.watch.pod(id)?.status?.podIP ?? null, ipv6: null, dns: null, dnsLog: [] };
  }

  async sweep(keep: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const sandbox of await this.list()) {
      if (keep.has(sandbox.id)) continue;
      await this.destroy(sandbox.id);
      removed.push(sandbox.id);
    }
    // Policies whose pod is gone (a crash between the two deletes, or before the pod was made).
    const { namespace, installation } = this.options;
    const policies = await withRetry('list network policies', () =>
      this.networking.listNamespacedNetworkPolicy({ namespace, labelSelector: installationSelector(installation) }),
    );
    for (const policy of policies.items) {
      const id = policy.metadata?.labels?.[LABELS.sandbox];
      if (!id || keep.has(id) || removed.includes(id)) continue;
      await this.deletePolicy(id);
      removed.push(id);
    }
    return removed;
  }
}

/** Where a starting pod is: running (agent up, IP known), failed for good, or still on its way. */
function startState(pod: V1Pod, image: string, unschedulableMs: number): StartResult | undefined {
  const phase = pod.status?.phase;
  const container = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME);
  if (phase === 'Running' && pod.status?.podIP && container?.state?.running) return { ok: true };
  if (phase === 'Failed' || phase === 'Succeeded' || container?.state?.terminated) {
    const t = container?.state?.terminated;
    const why = t
      ? `${t.reason ?? 'terminated'} (exit ${t.exitCode}${t.message ? `: ${t.message.slice(0, 300)}` : ''})`
      : (pod.status?.reason ?? phase);
    return { ok: false, error: new HutchError('internal', `pod ${pod.metadata?.name} ended while starting: ${why}`) };
  }
  const waiting = container?.state?.waiting;
  if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
    const imageProblem = /Image/.test(waiting.reason);
    const hint = imageProblem
      ? `; the image ${image} is not on the node and could not be pulled: export it (hutch template export <name> --oci out.tar) and import it on the nodes or push it to the registry, or start the server with --image-import`
      : '';
    return {
      ok: false,
      error: new HutchError(
        'internal',
        `pod ${pod.metadata?.name} cannot start: ${waiting.reason}: ${(waiting.message ?? '').slice(0, 300)}${hint}`,
      ),
    };
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const since = scheduled.lastTransitionTime ? new Date(scheduled.lastTransitionTime).getTime() : Date.now();
    if (Date.now() - since > unschedulableMs) {
      const why = (scheduled.message ?? 'unschedulable').slice(0, 300);
      return {
        ok: false,
        error: /Insufficient|Too many pods/i.test(why)
          ? new HutchError('resource_exhausted', `no node has room for the sandbox: ${why}`, { retryAfterSeconds: 10 })
          : new HutchError('internal', `pod ${pod.metadata?.name} cannot be scheduled: ${why}`),
      };
    }
  }
  return undefined;
}

function waitingReason(pod: V1Pod | undefined): string | null {
  const waiting = pod?.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME)?.state?.waiting;
  return waiting?.reason ?? null;
}
