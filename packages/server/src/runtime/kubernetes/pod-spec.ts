import type { V1Pod } from '@kubernetes/client-node';
import type { Isolation } from '../../core/sandbox.js';
import { AGENT_CAPABILITIES } from '../profiles/capabilities.js';
import { AGENT_TCP_PORT, agentCommand } from '../../templates/oci-image.js';
import { SECRETS_DIR } from '../../core/secrets.js';

/**
 * A sandbox as a Pod: one container running the template image, whose entrypoint is hutch-agent
 * (PID 1, serving on the pod IP with a per-sandbox token). Everything is named and labelled by the
 * sandbox id, so a restarted server finds its pods from labels alone.
 */

export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  sandbox: 'hutch.dev/sandbox',
  tenant: 'hutch.dev/tenant',
  isolation: 'hutch.dev/isolation',
  /** The Hutch installation (its server id): several installations may share a namespace. */
  installation: 'hutch.dev/installation',
} as const;

export const MANAGED_BY = 'hutch';
export const CONTAINER_NAME = 'sandbox';

export const podName = (id: string): string => `hutch-${id}`;

/** The label selector of one installation's sandbox pods (the informer's and the sweep's). */
export const installationSelector = (installation: string): string =>
  `${LABELS.managedBy}=${MANAGED_BY},${LABELS.installation}=${installation}`;

export interface PodInput {
  id: string;
  namespace: string;
  installation: string;
  tenant: string;
  isolation: Isolation;
  image: string;
  /** RuntimeClass for the tier; null: the cluster's default runtime. */
  runtimeClassName: string | null;
  defaultUser: string;
  env: Record<string, string>;
  /** The agent's access token (X-Access-Token), derived from the sandbox id. */
  agentToken: string;
  cpu: number;
  memoryMiB: number;
  diskMiB: number;
  /** cpu requested as this fraction of the limit (cpu is compressible; memory is requested in full). */
  cpuRequestRatio: number;
  /** activeDeadlineSeconds (the TTL backstop); null: none (persistent sandboxes). */
  deadlineSeconds: number | null;
  /** Volumes: PersistentVolumeClaims mounted at `destination`. */
  volumes: Array<{ claim: string; destination: string; readOnly: boolean }>;
}

/** Kubernetes quantities: cpu in millicores, memory and disk in Mi. */
const millicores = (cores: number): string => `${Math.max(1, Math.round(cores * 1000))}m`;

export function buildPod(input: PodInput): V1Pod {
  const labels = {
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.sandbox]: input.id,
    [LABELS.tenant]: input.tenant,
    [LABELS.isolation]: input.isolation,
    [LABELS.installation]: input.installation,
  };
  const gvisor = input.isolation === 'gvisor';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: podName(input.id), namespace: input.namespace, labels },
    spec: {
      // The agent is PID 1 of the sandbox; when it ends, the sandbox has ended.
      restartPolicy: 'Never',
      ...(input.runtimeClassName ? { runtimeClassName: input.runtimeClassName } : {}),
      ...(input.deadlineSeconds !== null ? { activeDeadlineSeconds: input.deadlineSeconds } : {}),
      // Sandboxes get nothing of the cluster: no API token, no service links, no cluster DNS
      // (egress "none"), and no grace on delete.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      // No resolver: the API requires one nameserver with dnsPolicy None, and loopback (where
      // nothing listens) makes lookups fail at once instead of reaching the node's or the cluster's.
      dnsPolicy: 'None',
      dnsConfig: { nameservers: ['127.0.0.1'] },
      hostname: 'hutch',
      terminationGracePeriodSeconds: 0,
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      volumes: [
        ...input.volumes.map((v, i) => ({ name: `volume-${i}`, persistentVolumeClaim: { claimName: v.claim, readOnly: v.readOnly } })),
        // Injected secret files (written by the agent, mode 0400): in memory, never on the node's disk.
        { name: 'hutch-secrets', emptyDir: { medium: 'Memory', sizeLimit: '4Mi' } },
      ],
      containers: [
        {
          name: CONTAINER_NAME,
          image: input.image,
          // Never pulls from a registry when the image is on the node (imported); pulls when not.
          imagePullPolicy: 'IfNotPresent',
          command: agentCommand(input.defaultUser, gvisor ? ['--null-stdio'] : []),
          env: [
            { name: 'PATH', value: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
            { name: 'LANG', value: 'C.UTF-8' },
            ...Object.entries(input.env).map(([name, value]) => ({ name, value })),
            // Read by the agent and hidden from the processes it starts (HUTCH_AGENT_*).
            { name: 'HUTCH_AGENT_ACCESS_TOKEN', value: input.agentToken },
          ],
          ports: [{ name: 'agent', containerPort: AGENT_TCP_PORT, protocol: 'TCP' }],
          volumeMounts: [
            ...input.volumes.map((v, i) => ({ name: `volume-${i}`, mountPath: v.destination, readOnly: v.readOnly })),
            { name: 'hutch-secrets', mountPath: SECRETS_DIR },
          ],
          resources: {
            limits: { cpu: millicores(input.cpu), memory: `${input.memoryMiB}Mi`, 'ephemeral-storage': `${input.diskMiB}Mi` },
            requests: {
              cpu: millicores(input.cpu * input.cpuRequestRatio),
              memory: `${input.memoryMiB}Mi`,
              'ephemeral-storage': `${input.diskMiB}Mi`,
            },
          },
          securityContext: {
            runAsUser: 0,
            runAsGroup: 0,
            allowPrivilegeEscalation: false,
            privileged: false,
            // The agent's few capabilities (switching users, writing files for the API, signals);
            // it drops them for every process it starts.
            capabilities: { drop: ['ALL'], add: AGENT_CAPABILITIES.map((c) => c.replace(/^CAP_/, '')) },
          },
        },
      ],
    },
  };
}
