import type { V1Pod } from '@kubernetes/client-node';
import type { Discovery } from './discovery.js';
import { LABELS, MANAGED_BY } from './pod-spec.js';

/**
 * kubernetes-sigs/agent-sandbox: whether the cluster has it (API discovery of its four CRDs), and
 * the objects a Hutch warm pool maps to there — a SandboxTemplate (the pool's pod), a
 * SandboxWarmPool of it (the pool's size) and a SandboxClaim per create taken from the pool.
 *
 * Only detection and the object shapes exist so far: warm pools still run as Hutch's own
 * pre-created pods wherever agent-sandbox is installed (docs/kubernetes.md, "agent-sandbox").
 * Claiming through SandboxClaim needs a per-claim agent token that a shared template cannot carry,
 * and none of it could be run here (no controller; k8s-local's API server crashes on
 * custom-resource writes).
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
  /** What Hutch's warm pools use on this cluster. */
  warmPools: 'pods';
  note: string;
}

/** Asks discovery for the four resources (a failure to ask counts as missing, with the reason). */
export async function detectAgentSandbox(discovery: Discovery): Promise<AgentSandboxStatus> {
  const missing: string[] = [];
  const serves = (group: string, version: string, plural: string): Promise<boolean> =>
    discovery.serves(group, version, plural).catch(() => false);
  let core = false;
  for (const version of AGENT_SANDBOX_CORE.versions) core ||= await serves(AGENT_SANDBOX_CORE.group, version, AGENT_SANDBOX_CORE.plural);
  if (!core) missing.push(`${AGENT_SANDBOX_CORE.plural}.${AGENT_SANDBOX_CORE.group}`);
  for (const plural of AGENT_SANDBOX_EXTENSIONS.plurals)
    if (!(await serves(AGENT_SANDBOX_EXTENSIONS.group, AGENT_SANDBOX_EXTENSIONS.version, plural)))
      missing.push(`${plural}.${AGENT_SANDBOX_EXTENSIONS.group}`);
  const installed = missing.length === 0;
  return {
    installed,
    missing,
    warmPools: 'pods',
    note: installed
      ? 'agent-sandbox is installed; Hutch warm pools still use their own pre-created pods (SandboxWarmPool/SandboxClaim are not used yet)'
      : 'agent-sandbox is not installed: warm pools are pre-created pods',
  };
}

const apiVersion = `${AGENT_SANDBOX_EXTENSIONS.group}/${AGENT_SANDBOX_EXTENSIONS.version}`;

const labels = (installation: string, pool: string): Record<string, string> => ({
  [LABELS.managedBy]: MANAGED_BY,
  [LABELS.installation]: installation,
  'hutch.dev/pool': pool,
});

/**
 * The SandboxTemplate of a pool: the pool's pod (buildPod of a member, without its per-sandbox
 * name and id label), egress left to Hutch's own NetworkPolicies (Unmanaged), no env injection
 * by claims (Hutch gives a claimed sandbox its env through the agent).
 */
export function buildSandboxTemplate(input: {
  name: string;
  namespace: string;
  installation: string;
  pool: string;
  pod: V1Pod;
}): Record<string, unknown> {
  const podLabels = { ...(input.pod.metadata?.labels ?? {}) };
  delete podLabels[LABELS.sandbox];
  return {
    apiVersion,
    kind: 'SandboxTemplate',
    metadata: { name: input.name, namespace: input.namespace, labels: labels(input.installation, input.pool) },
    spec: {
      podTemplate: { metadata: { labels: { ...podLabels, 'hutch.dev/pool': input.pool } }, spec: input.pod.spec },
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
