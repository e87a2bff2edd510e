import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { AGENT_TCP_PORT } from '../../templates/oci-image.js';
import type { Discovery } from './discovery.js';
import { LABELS, MANAGED_BY } from './pod-spec.js';

/**
 * kubernetes-sigs/agent-sandbox: whether the cluster has it (API discovery of its four CRDs), and
 * the objects a Hutch warm pool maps to there — a SandboxTemplate (the pool's pod), a
 * SandboxWarmPool of it (the pool's target), a SandboxClaim per pool member taken from it, the
 * Secret holding the pool's agent token and the NetworkPolicy fencing unclaimed pool pods.
 *
 * Pool pods start with their pool's agent token (a shared template cannot carry per-sandbox ones);
 * a claim rotates it to the sandbox's own token through the agent before the sandbox is handed out
 * (agent-sandbox-pools.ts, docs/security.md "Agent tokens"). Used only with
 * `--kubernetes-warm-pools agent-sandbox` (the provider's warm-pool hooks). The claim flow and
 * the wiring are unit-tested against stand-ins; no real agent-sandbox controller has run them
 * (k8s-local's API server crashes on custom-resource writes): docs/kubernetes.md, "agent-sandbox".
 */

export const AGENT_SANDBOX_CORE = { group: 'agents.x-k8s.io', versions: ['v1alpha1', 'v1beta1'], plural: 'sandboxes' } as const;
export const AGENT_SANDBOX_EXTENSIONS = {
  group: 'extensions.agents.x-k8s.io',
  version: 'v1alpha1',
  plurals: ['sandboxtemplates', 'sandboxclaims', 'sandboxwarmpools'],
} as const;

export interface AgentSandboxStatus {
  /** All four CRDs are served. */
  installed: boolean;
  /** The resources not served (`plural.group`). */
  missing: string[];
  /** The served version of agents.x-k8s.io (Sandboxes), null when not served. */
  coreVersion: string | null;
  /** What Hutch's warm pools use on this cluster (`hutch server --kubernetes-warm-pools`). */
  warmPools: WarmPoolMode;
  note: string;
}

/** How warm pools are kept on Kubernetes: Hutch's own pre-created pods, or agent-sandbox's objects. */
export type WarmPoolMode = 'pods' | 'agent-sandbox';

/**
 * The served version of agents.x-k8s.io to fill warm pools with (`--kubernetes-warm-pools
 * agent-sandbox`), or an error naming what discovery did not find: the server does not start then.
 */
export function requireAgentSandbox(status: AgentSandboxStatus): string {
  if (status.installed && status.coreVersion !== null) return status.coreVersion;
  throw new Error(
    `--kubernetes-warm-pools agent-sandbox: kubernetes-sigs/agent-sandbox is not installed on this cluster (API discovery does not find ${status.missing.join(', ')}); install it or use --kubernetes-warm-pools pods`,
  );
}

/** The status as reported when warm pools run on agent-sandbox (`--kubernetes-warm-pools agent-sandbox`). */
export function usingAgentSandbox(status: AgentSandboxStatus): AgentSandboxStatus {
  return {
    ...status,
    warmPools: 'agent-sandbox',
    note: "warm pools run on agent-sandbox: a pool is a SandboxTemplate and SandboxWarmPool, each member a SandboxClaim taken from it when the pool fills, its agent token rotated to the sandbox's own",
  };
}

/** Asks discovery for the four resources (a failure to ask counts as missing, with the reason). */
export async function detectAgentSandbox(discovery: Discovery): Promise<AgentSandboxStatus> {
  const missing: string[] = [];
  const serves = (group: string, version: string, plural: string): Promise<boolean> =>
    discovery.serves(group, version, plural).catch(() => false);
  let coreVersion: string | null = null;
  for (const version of AGENT_SANDBOX_CORE.versions)
    if (coreVersion === null && (await serves(AGENT_SANDBOX_CORE.group, version, AGENT_SANDBOX_CORE.plural))) coreVersion = version;
  if (coreVersion === null) missing.push(`${AGENT_SANDBOX_CORE.plural}.${AGENT_SANDBOX_CORE.group}`);
  for (const plural of AGENT_SANDBOX_EXTENSIONS.plurals)
    if (!(await serves(AGENT_SANDBOX_EXTENSIONS.group, AGENT_SANDBOX_EXTENSIONS.version, plural)))
      missing.push(`${plural}.${AGENT_SANDBOX_EXTENSIONS.group}`);
  const installed = missing.length === 0;
  return {
    installed,
    missing,
    coreVersion,
    warmPools: 'pods',
    note: installed
      ? 'agent-sandbox is installed; Hutch warm pools use their own pre-created pods (SandboxWarmPool/SandboxClaim are not used yet: hutch server --kubernetes-warm-pools agent-sandbox turns them on)'
      : 'agent-sandbox is not installed: warm pools are pre-created pods',
  };
}

const apiVersion = `${AGENT_SANDBOX_EXTENSIONS.group}/${AGENT_SANDBOX_EXTENSIONS.version}`;

/** The label naming a pool's objects and its unclaimed pods (the object name, unique per installation). */
export const POOL_LABEL = 'hutch.dev/pool';

const labels = (installation: string, pool: string): Record<string, string> => ({
  [LABELS.managedBy]: MANAGED_BY,
  [LABELS.installation]: installation,
  [POOL_LABEL]: pool,
});

/** The environment variable the agent reads its token from (pod-spec.ts). */
const TOKEN_ENV = 'HUTCH_AGENT_ACCESS_TOKEN';
/** The key of the pool token in its Secret. */
export const POOL_TOKEN_KEY = 'token';

/**
 * The SandboxTemplate of a pool: the pool's pod (buildPod of a member, without its per-sandbox
 * name and id label), its agent token read from the pool's Secret (`tokenSecret`) instead of a
 * literal, egress left to Hutch's own NetworkPolicies (Unmanaged), no env injection by claims
 * (Hutch gives a claimed sandbox its env through the agent).
 */
export function buildSandboxTemplate(input: {
  name: string;
  namespace: string;
  installation: string;
  pool: string;
  pod: V1Pod;
  tokenSecret: string;
}): Record<string, unknown> {
  const podLabels = { ...(input.pod.metadata?.labels ?? {}) };
  delete podLabels[LABELS.sandbox];
  const podSpec = input.pod.spec!;
  const spec = {
    ...podSpec,
    containers: podSpec.containers.map((c) => ({
      ...c,
      env: (c.env ?? []).map((e) =>
        e.name === TOKEN_ENV ? { name: TOKEN_ENV, valueFrom: { secretKeyRef: { name: input.tokenSecret, key: POOL_TOKEN_KEY } } } : e,
      ),
    })),
  };
  return {
    apiVersion,
    kind: 'SandboxTemplate',
    metadata: { name: input.name, namespace: input.namespace, labels: labels(input.installation, input.pool) },
    spec: {
      podTemplate: { metadata: { labels: { ...podLabels, [POOL_LABEL]: input.pool } }, spec },
      networkPolicyManagement: 'Unmanaged',
      envVarsInjectionPolicy: 'Disallowed',
    },
  };
}

/** The SandboxWarmPool keeping `replicas` sandboxes of the template ready. */
export function buildSandboxWarmPool(input: {
  name: string;
  namespace: string;
  installation: string;
  pool: string;
  template: string;
  replicas: number;
}): Record<string, unknown> {
  return {
    apiVersion,
    kind: 'SandboxWarmPool',
    metadata: { name: input.name, namespace: input.namespace, labels: labels(input.installation, input.pool) },
    spec: { replicas: input.replicas, sandboxTemplateRef: { name: input.template } },
  };
}

/**
 * The SandboxClaim of a create served by a pool: adopted from that warm pool only, the pod
 * labelled with the sandbox and tenant, deleted with everything at the TTL (the backstop of a TTL,
 * as activeDeadlineSeconds is for Hutch's own pods).
 */
export function buildSandboxClaim(input: {
  id: string;
  namespace: string;
  installation: string;
  pool: string;
  template: string;
  warmPool: string;
  tenant: string;
  shutdownTime: Date | null;
}): Record<string, unknown> {
  return {
    apiVersion,
    kind: 'SandboxClaim',
    metadata: {
      name: `hutch-${input.id}`,
      namespace: input.namespace,
      labels: { ...labels(input.installation, input.pool), [LABELS.sandbox]: input.id, [LABELS.tenant]: input.tenant },
    },
    spec: {
      sandboxTemplateRef: { name: input.template },
      warmpool: input.warmPool,
      additionalPodMetadata: { labels: { [LABELS.sandbox]: input.id, [LABELS.tenant]: input.tenant } },
      ...(input.shutdownTime ? { lifecycle: { shutdownTime: input.shutdownTime.toISOString(), shutdownPolicy: 'Delete' } } : {}),
    },
  };
}

/** The Secret the template's pods read their (pool) agent token from. */
export function buildPoolTokenSecret(input: {
  name: string;
  namespace: string;
  installation: string;
  pool: string;
  token: string;
}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: input.name, namespace: input.namespace, labels: labels(input.installation, input.pool) },
    stringData: { [POOL_TOKEN_KEY]: input.token },
  };
}

/**
 * The NetworkPolicy of a pool's pods before any claim: no egress at all, ingress to the agent's
 * port only (as a sandbox with egress `none`). A claimed pod gets its sandbox's own policy too
 * (selected by the sandbox label the claim adds); policies add up, so the claim's egress applies.
 */
export function buildPoolNetworkPolicy(input: { name: string; namespace: string; installation: string; pool: string }): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: input.name, namespace: input.namespace, labels: labels(input.installation, input.pool) },
    spec: {
      podSelector: { matchLabels: { [POOL_LABEL]: input.pool, [LABELS.installation]: input.installation } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: AGENT_TCP_PORT }] }],
      egress: [],
    },
  };
}
