import type { Isolation, PauseMode, SandboxResources } from './sandbox.js';
import type { AgentEndpoint } from './agent.js';
import type { EgressPolicy } from './network.js';

/**
 * What core needs from a runtime. A provider knows one runtime family; services decide.
 * Every resource a provider creates is named by the sandbox id, so destroy() is deterministic
 * and idempotent: calling it for an id that has nothing left is a no-op.
 */
export interface SandboxSpec extends SandboxResources {
  id: string;
  isolation: Isolation;
  /** Absolute paths of the read-only layers, top first (a snapshot's layers, then the template's). */
  layers: string[];
  env: Record<string, string>;
  /** Default user for processes (the agent's --default-user). */
  defaultUser: string;
  egress: EgressPolicy;
  /** Size of the sandbox's own filesystem (upper layer, /tmp, …): writes past it fail with ENOSPC. */
  diskMiB: number;
  /** Host directories of mounted volumes and where they go inside. */
  volumes: Array<{ source: string; destination: string; readOnly: boolean }>;
  /** Start from a saved memory image (`exportCheckpoint`) instead of booting fresh (gVisor). */
  restoreFrom?: string;
  /** The owning tenant (providers that label what they create; the kubernetes provider). */
  tenant?: string;
  /** The sandbox's TTL, for providers with a runtime-side backstop (pod activeDeadlineSeconds); null: none. */
  timeoutSeconds?: number | null;
  /**
   * Membership of a peer group (an environment): members reach each other by name and address
   * whatever their egress policy, which must not be `none`; non-members never reach them.
   */
  peers?: PeerGroup | null;
  /**
   * Set when the sandbox is a warm-pool member being filled: its pool (tenant-scoped name) and
   * the pool's target size. Providers with a runtime-side pool (agent-sandbox) fill from it;
   * others ignore it.
   */
  warmPool?: { name: string; target: number };
}

/** A sandbox's membership of a peer group: the group (an environment's id) and its name there (a DNS label). */
export interface PeerGroup {
  group: string;
  name: string;
}

/**
 * One reading of a running sandbox's counters, as the sampler takes it every few seconds (cheap:
 * cgroup and sysfs files). Cumulative counters (cpu, network) restart from zero when the sandbox
 * is stopped and started again (a new cgroup, a new link).
 */
export interface SandboxStats {
  /** Cpu time the sandbox's cgroup consumed since it started (gVisor: the sentry's and gofer's too). */
  cpuNs: number;
  /** Memory charged to its cgroup (what its limit counts), page cache and tmpfs included. */
  memoryBytes: number;
  /** Of which page cache and shared memory (gVisor keeps the workload's memory there). */
  memoryCacheBytes: number;
  /** Tasks in its cgroup (gVisor: the sentry's threads, not the workload's processes); null: unknown. */
  pids: number | null;
  /** Its own filesystem; null when not mounted. */
  disk: { usedBytes: number; sizeBytes: number } | null;
  /** Bytes received and sent by the sandbox on its network link; null: no link (egress none). */
  net: { rxBytes: number; txBytes: number } | null;
}

export interface DiskUsage {
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/** Named, quota'd persistent directories that sandboxes mount. */
export interface VolumeBackend {
  create(name: string, sizeMiB: number): Promise<void>;
  /** The host directory to bind-mount, mounting the volume's filesystem first if needed. */
  attach(name: string): Promise<string>;
  usage(name: string): Promise<DiskUsage | null>;
  /** Unmounts and removes everything of the volume. Idempotent. */
  remove(name: string): Promise<void>;
}

/** A point-in-time copy of a volume, as the volume backend reports it. */
export interface VolumeSnapshotInfo {
  name: string;
  createdAt: Date;
  /** Whether the copy is complete and usable (a CSI snapshot may take a while). */
  readyToUse: boolean;
  /** The size a volume restored from it needs, when the backend knows it. */
  restoreSizeMiB: number | null;
  /** Why the snapshot failed, as the backend says. */
  error: string | null;
}

/**
 * Optional ability of a volume backend: point-in-time copies of a volume (Kubernetes
 * VolumeSnapshots). The backend is the record of its snapshots: they are listed from it.
 */
export interface VolumeSnapshotter {
  /** Takes a snapshot named `snapshot` of volume `name`; conflict when one of that name exists. */
  snapshotVolume(name: string, snapshot: string): Promise<VolumeSnapshotInfo>;
  listVolumeSnapshots(name: string): Promise<VolumeSnapshotInfo[]>;
  /** Deletes one snapshot; not_found when there is none of that name. */
  deleteVolumeSnapshot(name: string, snapshot: string): Promise<void>;
}

/**
 * Optional ability of a volume backend: a new volume as a point-in-time copy of another, cheap
 * where the host allows (copy-on-write). The source may be in use: the copy is crash-consistent
 * (what a database recovers from after a power cut).
 */
export interface VolumeCloner {
  /** Creates volume `target` with the contents of `source` (same size); `target` must not exist. */
  cloneVolume(source: string, target: string): Promise<void>;
}

export const canCloneVolumes = (backend: VolumeBackend): backend is VolumeBackend & VolumeCloner =>
  typeof (backend as Partial<VolumeCloner>).cloneVolume === 'function';

export const canSnapshotVolumes = (backend: VolumeBackend): backend is VolumeBackend & VolumeSnapshotter =>
  typeof (backend as Partial<VolumeSnapshotter>).snapshotVolume === 'function';

/** A sandbox's network as the provider set it up (null fields: no interface, egress none). */
export interface SandboxNetworkInfo {
  ipv4: string | null;
  ipv6: string | null;
  /** The platform resolver's address as the sandbox sees it. */
  dns: string | null;
  /** Recent DNS queries, oldest first. */
  dnsLog: { name: string; type: string; verdict: string; at: string }[];
}

export interface TierStatus {
  available: boolean;
  runtime: string;
  version: string | null;
  /** Why the tier is unavailable, or caveats when it is available. */
  reason?: string;
  /** Whether sandboxes of this tier can have egress other than `none` (and why not). */
  egress: { available: boolean; reason?: string };
  /** What `pause` keeps on this tier here: memory (checkpoint) or files only, and why. */
  pause?: { mode: PauseMode; note: string | null };
}

export interface RuntimeSandbox {
  id: string;
  isolation: Isolation;
  status: 'running' | 'stopped' | 'creating' | 'unknown';
}

/**
 * Optional ability of a provider that writes ownership and lifetime onto its runtime objects
 * (Kubernetes: the tenant label, activeDeadlineSeconds): told when a warm-pool member, booted
 * without either, is handed to a create.
 */
export interface ClaimAwareProvider {
  claimed(id: string, owner: { tenant: string; timeoutSeconds: number | null }): Promise<void>;
}

export function isClaimAware(provider: Provider): provider is Provider & ClaimAwareProvider {
  return typeof (provider as Partial<ClaimAwareProvider>).claimed === 'function';
}

/**
 * Optional ability of a provider that keeps runtime objects per warm pool (Kubernetes with
 * agent-sandbox: a SandboxTemplate and SandboxWarmPool): told when a pool is deleted.
 */
export interface WarmPoolAwareProvider {
  warmPoolRemoved(tenant: string, name: string): Promise<void>;
}

export function isWarmPoolAware(provider: Provider): provider is Provider & WarmPoolAwareProvider {
  return typeof (provider as Partial<WarmPoolAwareProvider>).warmPoolRemoved === 'function';
}

export interface Provider {
  /** Tiers this host supports, with reasons for those it does not. */
  tiers(): Record<Isolation, TierStatus>;
  /**
   * Whether `SandboxSpec.peers` is honoured (environments need it), and why not; providers
   * without it leave it out (then: not supported).
   */
  peerGroups?(): { available: boolean; reason?: string };
  /** Creates and starts a sandbox; resolves once the runtime reports it started. */
  create(spec: SandboxSpec): Promise<void>;
  /** How to reach the sandbox's agent. */
  agentEndpoint(id: string): AgentEndpoint;
  /** Kills everything in the sandbox and removes every resource it used. Idempotent. */
  destroy(id: string): Promise<void>;
  /**
   * SIGKILLs every process of the sandbox right away (no cleanup: `destroy` follows). Lets delete
   * answer as soon as nothing of the sandbox runs any more, with the teardown after the answer.
   */
  kill(id: string): Promise<void>;
  /** Ends the sandbox's processes and frees memory, cpu and network; its files stay. Idempotent. */
  stop(id: string): Promise<void>;
  /** Starts a stopped sandbox again (same id, files, env, network policy). */
  start(id: string, egress: EgressPolicy): Promise<void>;
  /** How `pause` keeps a sandbox of this tier on this host, and why. */
  pauseMode(isolation: Isolation, egress: EgressPolicy): { mode: PauseMode; note: string | null };
  /** Pauses: `memory` writes a checkpoint and stops the sandbox; `filesystem` is a stop. */
  pause(id: string, mode: PauseMode): Promise<void>;
  /** Resumes a paused sandbox (restoring its checkpoint in `memory` mode). */
  resume(id: string, mode: PauseMode, egress: EgressPolicy): Promise<void>;
  /**
   * Keeps the memory image of a sandbox paused in `memory` mode under `key` (it stays paused),
   * so new sandboxes can start from it (`SandboxSpec.restoreFrom`).
   */
  exportCheckpoint(id: string, key: string): Promise<void>;
  removeCheckpoint(key: string): Promise<void>;
  /** Freezes the sandbox's processes while `work` runs (consistent snapshots). */
  frozen<T>(id: string, work: () => Promise<T>): Promise<T>;
  /** The sandbox's upper layer, readable (mounted) for as long as `work` runs. */
  withUpperDir<T>(id: string, work: (upper: string) => Promise<T>): Promise<T>;
  /** Cumulative cpu time and current memory of the sandbox's cgroup; null when it has none. */
  usage(id: string): Promise<{ cpuNs: number; memBytes: number; memCacheBytes: number } | null>;
  /** Usage of the sandbox's own filesystem; null when it is not mounted. */
  diskUsage(id: string): Promise<DiskUsage | null>;
  /** Counters of a running sandbox for the sampler; null when it has no cgroup (not running). */
  stats(id: string): Promise<SandboxStats | null>;
  /** Sandboxes the runtime knows about (for reconciliation at start). */
  list(): Promise<RuntimeSandbox[]>;
  /**
   * Whether the runtime still reports the sandbox running (its init, the agent, is alive);
   * null when the runtime cannot tell. Used to tell a slow agent from a dead one.
   */
  isRunning(id: string): Promise<boolean | null>;
  /** Times the sandbox's host pids cgroup refused a fork so far (null when unknown). */
  pidsRefused(id: string): Promise<number | null>;
  /** Number of OOM kills recorded for the sandbox's cgroup so far (null when unknown). */
  oomKills(id: string): Promise<number | null>;
  /**
   * Replaces a running sandbox's egress policy; connections the new policy forbids are cut.
   * `current` is the policy in force (the store's record). Also used after a restart to
   * re-install a reattached sandbox's rules (`current` equal to `next`).
   */
  setEgress(id: string, isolation: Isolation, current: EgressPolicy, next: EgressPolicy): Promise<{ cut: number }>;
  networkInfo(id: string): SandboxNetworkInfo;
  /** Removes leftovers (mounts, dirs) of ids that are not in `keep` (running, stopped or paused). */
  sweep(keep: Set<string>): Promise<string[]>;
}
