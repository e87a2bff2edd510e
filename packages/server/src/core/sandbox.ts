import type { NetworkSettings } from './network.js';

/** The sandbox model shared by services, store and API. */
export const ISOLATION_TIERS = ['container', 'gvisor'] as const;
export type Isolation = (typeof ISOLATION_TIERS)[number];

export const SANDBOX_STATES = ['creating', 'running', 'stopped', 'error', 'deleted'] as const;
export type SandboxState = (typeof SANDBOX_STATES)[number];

export interface SandboxResources {
  /** Fractional cores. */
  cpu: number;
  memoryMiB: number;
  pids: number;
}

export interface SandboxRecord extends SandboxResources {
  id: string;
  state: SandboxState;
  template: string;
  /** Digest of the template layer the sandbox was created from. */
  templateDigest: string;
  isolation: Isolation;
  timeoutSeconds: number;
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
}

export interface CreateSandboxInput extends Partial<SandboxResources> {
  template?: string;
  isolation?: Isolation;
  timeoutSeconds?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  idempotencyKey?: string;
  /** Validated by normalizeNetworkSettings. */
  network?: unknown;
}

export const SANDBOX_DEFAULTS = {
  template: 'base',
  isolation: 'container' as Isolation,
  cpu: 1,
  memoryMiB: 512,
  pids: 512,
  timeoutSeconds: 300,
};
