import { createHash } from 'node:crypto';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { HutchError } from '../../core/errors.js';
import {
  buildPoolNetworkPolicy,
  buildPoolTokenSecret,
  buildSandboxClaim,
  buildSandboxTemplate,
  buildSandboxWarmPool,
  POOL_LABEL,
} from './agent-sandbox.js';
import { CONTAINER_NAME } from './pod-spec.js';

/**
 * Warm pools on kubernetes-sigs/agent-sandbox: a Hutch pool is a SandboxTemplate (the pool's pod,
 * its agent token from the pool's Secret), a SandboxWarmPool of the pool's size and a
 * NetworkPolicy fencing the unclaimed pods; a pool member is a SandboxClaim (made when the pool
 * fills, by the kubernetes provider's warm-pool hooks), waited for (bounded) until it is bound to
 * a Sandbox whose pod is Ready, after which the pod's agent token is rotated from the pool's to
 * the sandbox's own (POST /hutch/access-token, authenticated by the pool token) before the
 * sandbox is handed out. Any failure on the way deletes the claim
 * (and with it the Sandbox and its pod): a pod whose token was not rotated is never handed out.
 *
 * The cluster is reached through AgentSandboxClient (agent-sandbox-client.ts in the provider; a
 * stand-in in the unit tests), the agent through TokenRotation.
 */

export type AgentSandboxResource = 'sandboxtemplates' | 'sandboxwarmpools' | 'sandboxclaims' | 'sandboxes';

/** The provider's client for agent-sandbox's objects and the few core ones a pool needs. */
export interface AgentSandboxClient {
  /** Creates the object, or replaces it when one of that name exists. */
  apply(resource: AgentSandboxResource, body: Record<string, unknown>): Promise<void>;
  /** The object, or null when there is none. */
  get(resource: AgentSandboxResource, name: string): Promise<Record<string, unknown> | null>;
  /** Deletes the object; nothing to delete is not an error. */
  remove(resource: AgentSandboxResource, name: string): Promise<void>;
  applySecret(body: Record<string, unknown>): Promise<void>;
  removeSecret(name: string): Promise<void>;
  applyNetworkPolicy(body: V1NetworkPolicy): Promise<void>;
  removeNetworkPolicy(name: string): Promise<void>;
  readPod(name: string): Promise<V1Pod | null>;
}

/** Replaces an agent's token: authenticated by `current`, afterwards only `next` opens it. */
export interface TokenRotation {
  rotate(endpoint: { host: string; port: number }, current: string, next: string): Promise<void>;
}

export interface AgentSandboxPoolsOptions {
  client: AgentSandboxClient;
  rotation: TokenRotation;
  namespace: string;
  installation: string;
  agentPort: number;
  /** The pool's agent token (derived, so a restarted server knows it without storing it). */
  poolToken: (objectName: string) => string;
  /** How long a claim may take to be bound and its pod Ready (default 60 s). */
  claimTimeoutMs?: number;
  /** Between two looks at the claim, its Sandbox and pod (default 250 ms). */
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** A pool as Hutch defines it (tenant-scoped name) with the pod its members run. */
export interface AgentSandboxPoolInput {
  tenant: string;
  name: string;
  /** A member's pod (buildPod with any id): image, agent as PID 1, RuntimeClass, resources, labels. */
  pod: V1Pod;
  replicas: number;
}

export interface AgentSandboxClaimInput {
  /** The sandbox id (claim `hutch-<id>`, pod label hutch.dev/sandbox). */
  id: string;
  tenant: string;
  pool: { tenant: string; name: string };
  /** The sandbox's own agent token, installed by the rotation. */
  sandboxToken: string;
  /** The TTL as the claim's shutdown time; null: none. */
  shutdownTime: Date | null;
}

export interface ClaimedPod {
  claim: string;
  sandbox: string;
  pod: string;
  podIP: string;
}

/**
 * The name of a pool's objects (template, warm pool, Secret, NetworkPolicy): unique per
 * installation, tenant and pool, and short enough for a label value.
 */
export function poolObjectName(installation: string, tenant: string, pool: string): string {
  const digest = createHash('sha256').update(`${installation}/${tenant}/${pool}`).digest('hex').slice(0, 20);
  return `hutch-pool-${digest}`;
}

/** The bound Sandbox of a claim (status.sandbox.name; older controllers wrote `Name`), or null. */
export function boundSandbox(claim: Record<string, unknown>): string | null {
  const sandbox = (claim.status as { sandbox?: { name?: unknown; Name?: unknown } } | undefined)?.sandbox;
  const name = sandbox?.name ?? sandbox?.Name;
  return typeof name === 'string' && name.length > 0 ? name : null;
}

/** The pod of a Sandbox: adopted from a warm pool it keeps its own name (annotation), else the Sandbox's. */
export function sandboxPodName(sandbox: Record<string, unknown>): string {
  const meta = sandbox.metadata as { name?: string; annotations?: Record<string, string> } | undefined;
  return meta?.annotations?.['agents.x-k8s.io/pod-name'] ?? meta?.name ?? '';
}

/** A pod ready to be handed out: Running, Ready, an IP, its agent container running. */
export function podReady(pod: V1Pod): boolean {
  const container = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER_NAME);
  return (
    pod.status?.phase === 'Running' &&
    !!pod.status.podIP &&
    !pod.metadata?.deletionTimestamp &&
    container?.state?.running !== undefined &&
    pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true
  );
}

/** Where a claim stands (for errors and logs). */
export type ClaimPhase = 'claiming' | 'binding' | 'pod-starting' | 'rotating' | 'ready';

export class AgentSandboxPools {
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;

  constructor(private readonly options: AgentSandboxPoolsOptions) {
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.now = options.now ?? Date.now;
  }

  /**
   * Creates or updates a pool's objects: the token Secret and the fencing NetworkPolicy first (the
   * template's pods need the one and must never run without the other), then the template, then
   * the warm pool of `replicas`.
   */
  async ensurePool(input: AgentSandboxPoolInput): Promise<string> {
    const { client, namespace, installation } = this.options;
    const name = poolObjectName(installation, input.tenant, input.name);
    const common = { name, namespace, installation, pool: name };
    await client.applySecret(buildPoolTokenSecret({ ...common, token: this.options.poolToken(name) }));
    await client.applyNetworkPolicy(buildPoolNetworkPolicy(common));
    await client.apply('sandboxtemplates', buildSandboxTemplate({ ...common, pod: input.pod, tokenSecret: name }));
    await client.apply('sandboxwarmpools', buildSandboxWarmPool({ ...common, template: name, replicas: input.replicas }));
    return name;
  }

  /** Deletes a pool's objects (the warm pool first, so its pods go before their template and token). */
  async removePool(tenant: string, pool: string): Promise<void> {
    const { client, installation } = this.options;
    const name = poolObjectName(installation, tenant, pool);
    await client.remove('sandboxwarmpools', name);
    await client.remove('sandboxtemplates', name);
    await client.removeSecret(name);
    await client.removeNetworkPolicy(name);
  }

  /**
   * Claims a member for sandbox `id`: creates the SandboxClaim, waits (bounded) until it is bound
   * and its pod Ready, checks the pod is one of this pool's, rotates the agent token to the
   * sandbox's own and returns where the agent is. On failure the claim is deleted and the error
   * says which step did not finish.
   */
  async claim(input: AgentSandboxClaimInput): Promise<ClaimedPod> {
    const { client, namespace, installation } = this.options;
    const poolName = poolObjectName(installation, input.pool.tenant, input.pool.name);
    const body = buildSandboxClaim({
      id: input.id,
      namespace,
      installation,
      pool: poolName,
      template: poolName,
      warmPool: poolName,
      tenant: input.tenant,
      shutdownTime: input.shutdownTime,
    });
    const claimName = (body.metadata as { name: string }).name;
    const timeoutMs = this.options.claimTimeoutMs ?? 60_000;
    const deadline = this.now() + timeoutMs;
    let phase: ClaimPhase = 'claiming';
    try {
      await client.apply('sandboxclaims', body);
      phase = 'binding';
      let sandbox: string | null = null;
      let pod: V1Pod | null = null;
      while (this.now() < deadline) {
        const claim = await client.get('sandboxclaims', claimName);
        if (!claim) throw new HutchError('internal', `SandboxClaim ${claimName} was deleted while being bound`);
        sandbox = boundSandbox(claim);
        if (sandbox) {
          phase = 'pod-starting';
          const object = await client.get('sandboxes', sandbox);
          const podName = object ? sandboxPodName(object) : '';
          pod = podName ? await client.readPod(podName) : null;
          if (pod && podReady(pod)) break;
        }
        pod = null;
        await this.sleep(this.options.pollMs ?? 250);
      }
      if (!sandbox || !pod)
        throw new HutchError(
          'unavailable',
          `SandboxClaim ${claimName} was not ${phase === 'binding' ? 'bound to a Sandbox' : 'bound with its pod Ready'} within ${timeoutMs / 1000} s`,
          { retryAfterSeconds: 5 },
        );
      const podName = pod.metadata?.name ?? '';
      // Only a pod of this pool's template holds this pool's token; anything else is not handed out.
      if (pod.metadata?.labels?.[POOL_LABEL] !== poolName)
        throw new HutchError('internal', `SandboxClaim ${claimName} was bound to pod ${podName}, which is not of pool ${input.pool.name}`);
      phase = 'rotating';
      const podIP = pod.status!.podIP!;
      await this.options.rotation.rotate(
        { host: podIP, port: this.options.agentPort },
        this.options.poolToken(poolName),
        input.sandboxToken,
      );
      phase = 'ready';
      return { claim: claimName, sandbox, pod: podName, podIP };
    } catch (err) {
      await client.remove('sandboxclaims', claimName).catch(() => undefined);
      if (err instanceof HutchError) throw err;
      throw new HutchError('internal', `agent-sandbox claim ${claimName} failed while ${phase}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Gives a claimed sandbox back to nobody: deleting its claim deletes its Sandbox and pod. */
  async release(id: string): Promise<void> {
    await this.options.client.remove('sandboxclaims', `hutch-${id}`);
  }
}
