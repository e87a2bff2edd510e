import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Allocation, CapacityOptions } from '../../core/capacity.js';
import type { Logger } from '../../core/logger.js';
import type { Isolation } from '../../core/sandbox.js';
import type { MetaStore } from '../../core/stores.js';
import type { VolumeBackend } from '../../core/provider.js';
import { AGENT_TCP_PORT } from '../../templates/oci-image.js';
import { AGENT_ACCESS_MODES, type AgentAccessMode } from './agent-access.js';
import { detectAgentSandbox, requireAgentSandbox, usingAgentSandbox, type WarmPoolMode } from './agent-sandbox.js';
import { agentTokenRotation, KubeAgentSandboxClient } from './agent-sandbox-client.js';
import { AgentSandboxPools } from './agent-sandbox-pools.js';
import { Discovery } from './discovery.js';
import { KubeVolumeSnapshots } from './kube-volume-snapshots.js';
import { KubeVolumes } from './kube-volumes.js';
import { KubernetesProvider } from './kubernetes-provider.js';
import { PodImages } from './pod-images.js';

/** `hutch server --provider kubernetes` settings. */
export interface KubernetesSettings {
  /** Kubeconfig file; default: in-cluster config inside a pod, else $KUBECONFIG or ~/.kube/config. */
  kubeconfig?: string;
  /** Namespace of the sandbox pods (created if missing); default: the server pod's own, else "hutch". */
  namespace?: string;
  /** RuntimeClass of the gvisor tier (default "gvisor"); the container tier uses the cluster default. */
  gvisorRuntimeClass?: string;
  /** Image repository of sandbox images (default localhost/hutch/sandbox). */
  imageRepository?: string;
  /** Command run as `<cmd> <oci-tar> <ref>` to import an image on first use (e.g. k8s-local's import-image). */
  imageImport?: string[];
  /** cpu request as a fraction of the limit (default 0.1). */
  cpuRequestRatio?: number;
  /** StorageClass of volume claims (default: the cluster's default StorageClass). */
  volumeStorageClass?: string;
  /** VolumeSnapshotClass of volume snapshots (default: the cluster's default class for the driver). */
  volumeSnapshotClass?: string;
  /** activeDeadlineSeconds = TTL + this (default 3600): ends pods whose TTL passed while the server was down. */
  ttlBackstopSeconds?: number;
  /**
   * What warm pools are made of (default "pods": Hutch's own pre-created pods); "agent-sandbox":
   * kubernetes-sigs/agent-sandbox's SandboxWarmPool/SandboxClaim (the server refuses to start
   * when discovery does not find its CRDs).
   */
  warmPools?: WarmPoolMode;
  /** How agents are reached: pod-ip, api-server (port-forward) or auto (default; agent-access.ts). */
  agentAccess?: AgentAccessMode;
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function loadKubeConfig(file: string | undefined): { config: KubeConfig; inCluster: boolean } {
  const config = new KubeConfig();
  if (file) {
    config.loadFromFile(file);
    return { config, inCluster: false };
  }
  if (process.env.KUBERNETES_SERVICE_HOST && existsSync(join(SERVICE_ACCOUNT_DIR, 'token'))) {
    config.loadFromCluster();
    return { config, inCluster: true };
  }
  config.loadFromDefault();
  if (!config.getCurrentCluster())
    throw new Error('--provider kubernetes: no kubeconfig found (give --kubeconfig, set KUBECONFIG, or run in a pod)');
  return { config, inCluster: false };
}

/**
 * Connects to the cluster and starts the provider. The agent-token key is kept in the store, so
 * a restarted server can still talk to the sandboxes it finds.
 */
export async function setupKubernetes(options: {
  settings: KubernetesSettings;
  dataDir: string;
  agentBinary: string;
  installation: string;
  meta: MetaStore;
  log: Logger;
}): Promise<{
  provider: KubernetesProvider;
  volumes: VolumeBackend;
  capacity: Omit<CapacityOptions, 'retryAfterSeconds'>;
  posture: Record<string, unknown>;
}> {
  const { settings, log } = options;
  if (settings.agentAccess !== undefined && !AGENT_ACCESS_MODES.includes(settings.agentAccess))
    throw new Error(
      `kubernetes.agentAccess: expected one of ${AGENT_ACCESS_MODES.join(', ')}, got ${JSON.stringify(settings.agentAccess)}`,
    );
  const { config, inCluster } = loadKubeConfig(settings.kubeconfig);
  const ownNamespace = inCluster ? readFileSync(join(SERVICE_ACCOUNT_DIR, 'namespace'), 'utf8').trim() : null;
  const namespace = settings.namespace ?? ownNamespace ?? 'hutch';
  let tokenKey = await options.meta.get('k8s_agent_token_key');
  if (!tokenKey) {
    tokenKey = randomBytes(32).toString('base64url');
    await options.meta.set('k8s_agent_token_key', tokenKey);
  }
  const runtimeClasses: Record<Isolation, string | null> = { container: null, gvisor: settings.gvisorRuntimeClass ?? 'gvisor' };
  const cpuRequestRatio = settings.cpuRequestRatio ?? 0.1;
  const images = new PodImages({
    agentBinary: options.agentBinary,
    ...(settings.imageRepository ? { repository: settings.imageRepository } : {}),
    importCommand: settings.imageImport && settings.imageImport.length > 0 ? settings.imageImport : null,
    cacheDir: join(options.dataDir, 'oci'),
    log,
  });
  const provider = new KubernetesProvider({
    kubeConfig: config,
    namespace,
    installation: options.installation,
    runtimeClasses,
    images,
    tokenKey,
    cpuRequestRatio,
    ...(settings.ttlBackstopSeconds !== undefined ? { ttlBackstopSeconds: settings.ttlBackstopSeconds } : {}),
    ...(settings.agentAccess ? { agentAccess: settings.agentAccess } : {}),
    log,
  });
  await provider.connect();
  // agent-sandbox (kubernetes-sigs): detected at start and reported; warm pools use it only when
  // asked to (--kubernetes-warm-pools agent-sandbox), and then it must be there.
  const discovery = new Discovery(config);
  let agentSandbox = await detectAgentSandbox(discovery);
  if (settings.warmPools === 'agent-sandbox') {
    let coreVersion: string;
    try {
      coreVersion = requireAgentSandbox(agentSandbox);
    } catch (err) {
      await provider.close();
      throw err;
    }
    const key = tokenKey;
    provider.useAgentSandbox(
      new AgentSandboxPools({
        client: new KubeAgentSandboxClient(config, namespace, coreVersion),
        rotation: agentTokenRotation,
        namespace,
        installation: options.installation,
        agentPort: AGENT_TCP_PORT,
        poolToken: (objectName) => createHmac('sha256', key).update(`agent-pool:${objectName}`).digest('base64url'),
      }),
    );
    agentSandbox = usingAgentSandbox(agentSandbox);
  }
  log.info({ agentSandbox }, 'agent-sandbox detection');
  // Admission: the cluster's allocatable resources (the scheduler has the last word: a pod that
  // fits no node fails its create with resource_exhausted). cpu is requested at `cpuRequestRatio`
  // of the limit, so limits may add up to 1/ratio of the cluster; memory and disk are requested in full.
  const size: Allocation = (await provider.clusterSize()) ?? { cpu: 1024, memoryMiB: 4 * 2 ** 20, pids: 2 ** 22, diskMiB: 2 ** 30 };
  const capacity = {
    node: size,
    overcommit: { cpu: 1 / cpuRequestRatio, memoryMiB: 1, pids: 8, diskMiB: 1 },
    reserve: { memoryMiB: 0, diskMiB: 0, pids: 0 },
    live: () => ({ memAvailableMiB: null, diskFreeMiB: null, pidsInUse: null, pidsMax: null }),
  };
  const posture = {
    kubernetes: {
      server: config.getCurrentCluster()?.server ?? null,
      inCluster,
      namespace,
      installation: options.installation,
      runtimeClasses,
      imageRepository: images.repository,
      imageImport: images.importing,
      cpuRequestRatio,
      volumeStorageClass: settings.volumeStorageClass ?? null,
      volumeSnapshotClass: settings.volumeSnapshotClass ?? null,
      agentSandbox,
      ttlBackstopSeconds: settings.ttlBackstopSeconds ?? 3600,
      // A getter: under auto, `using` is known after the first pod (read at each /v1/info).
      get agentAccess() {
        return provider.agentAccess();
      },
    },
  };
  const snapshots = new KubeVolumeSnapshots(config, discovery, namespace, options.installation, settings.volumeSnapshotClass ?? null);
  const volumes = new KubeVolumes(
    config.makeApiClient(CoreV1Api),
    namespace,
    options.installation,
    settings.volumeStorageClass ?? null,
    snapshots,
  );
  return { provider, volumes, capacity, posture };
}
