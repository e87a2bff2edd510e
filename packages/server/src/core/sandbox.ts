import type { NetworkSettings } from './network.js';
import type { SecretRef } from './secrets.js';

/** The sandbox model shared by services, store and API. */
export const ISOLATION_TIERS = ['container', 'gvisor'] as const;
export type Isolation = (typeof ISOLATION_TIERS)[number];

export const SANDBOX_STATES = ['creating', 'running', 'paused', 'stopped', 'error', 'deleted'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

export interface SandboxResources {
  /** Fractional cores. */
  cpu: number;
  memoryMiB: number;
  pids: number;
}

/**
 * How a pause keeps the sandbox: `memory` (gVisor checkpoint: processes and memory come back) or
 * `filesystem` (processes stop, files stay: the tier cannot keep memory on this host).
 */
export type PauseMode = 'memory' | 'filesystem';

export interface VolumeMount {
  name: string;
  /** Absolute path inside the sandbox. */
  path: string;
  readOnly: boolean;
}

/** What happens to a sandbox over time. */
export interface Lifecycle {
  /** No forced lifetime; stop/start keeps the filesystem; survives restarts and reboots. */
  persistent: boolean;
  /** What the TTL (and the idle timeout) does to a running sandbox. */
  onTimeout: 'delete' | 'pause';
  /** Seconds without API activity after which `onTimeout` applies; null: never. */
  idleTimeoutSeconds: number | null;
  /** A stopped or paused sandbox is deleted this long after it stopped; null: kept. */
  autoDeleteAfterSeconds: number | null;
  /** Calls that need a running sandbox resume a paused one instead of answering 409. */
  autoResume: boolean;
}

export interface SandboxRecord extends SandboxResources {
  id: string;
  state: SandboxState;
  template: string;
  /** Digest of the template layer the sandbox was created from. */
  templateDigest: string;
  isolation: Isolation;
  /** TTL of a running sandbox; null: none (persistent sandboxes only). */
  timeoutSeconds: number | null;
  env: Record<string, string>;
  metadata: Record<string, string>;
  idempotencyKey: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  deletedAt: Date | null;
  error: string | null;
  network: NetworkSettings;
  /** Secret for private ports (header `X-Hutch-Access-Token`, and the key of signed port URLs). */
  accessToken: string;
  /** Size of the sandbox's writable filesystem (its disk quota). */
  diskMiB: number;
  lifecycle: Lifecycle;
  volumes: VolumeMount[];
  /** Set while paused. */
  pauseMode: PauseMode | null;
  /** When the sandbox last entered its current state (stopped/paused: the auto-delete clock). */
  stateChangedAt: Date | null;
  /** Id of the API key that created it (per-key limits, streams ended on revocation); null when unknown. */
  owner: string | null;
  /** The tenant it belongs to (core/tenancy.ts). */
  tenant: string;
  /** Secrets it is given (names and targets; the values stay in the secret store). */
  secrets: SecretRef[];
}

export interface CreateSandboxInput extends Partial<SandboxResources> {
  template?: string;
  isolation?: Isolation;
  timeoutSeconds?: number;
  diskMiB?: number;
  persistent?: boolean;
  onTimeout?: 'delete' | 'pause';
  idleTimeoutSeconds?: number;
  autoDeleteAfterSeconds?: number;
  autoResume?: boolean;
  volumes?: Array<{ name: string; path: string; readOnly?: boolean }>;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  idempotencyKey?: string;
  /** Validated by normalizeNetworkSettings. */
  network?: unknown;
  /** Validated by normalizeSecretRefs. */
  secrets?: unknown;
}

export const SANDBOX_DEFAULTS = {
  template: 'base',
  isolation: 'container' as Isolation,
  cpu: 1,
  memoryMiB: 512,
  pids: 512,
  timeoutSeconds: 300,
  diskMiB: 2048,
};
