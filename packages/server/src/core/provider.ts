import type { Isolation, SandboxResources } from './sandbox.js';
import type { AgentEndpoint } from './agent.js';

/**
 * What core needs from a runtime. A provider knows one runtime family; services decide.
 * Every resource a provider creates is named by the sandbox id, so destroy() is deterministic
 * and idempotent: calling it for an id that has nothing left is a no-op.
 */
export interface SandboxSpec extends SandboxResources {
  id: string;
  isolation: Isolation;
  /** Absolute path of the read-only template layer (the overlay's lower dir). */
  templateLayer: string;
  env: Record<string, string>;
  /** Default user for processes (the agent's --default-user). */
  defaultUser: string;
}

export interface TierStatus {
  available: boolean;
  runtime: string;
  version: string | null;
  /** Why the tier is unavailable, or caveats when it is available. */
  reason?: string;
}

export interface RuntimeSandbox {
  id: string;
  isolation: Isolation;
  status: 'running' | 'stopped' | 'creating' | 'unknown';
}

export interface Provider {
  /** Tiers this host supports, with reasons for those it does not. */
  tiers(): Record<Isolation, TierStatus>;
  /** Creates and starts a sandbox; resolves once the runtime reports it started. */
  create(spec: SandboxSpec): Promise<void>;
  /** How to reach the sandbox's agent. */
  agentEndpoint(id: string): AgentEndpoint;
  /** Kills everything in the sandbox and removes every resource it used. Idempotent. */
  destroy(id: string): Promise<void>;
  /** Sandboxes the runtime knows about (for reconciliation at start). */
  list(): Promise<RuntimeSandbox[]>;
  /** Number of OOM kills recorded for the sandbox's cgroup so far (null when unknown). */
  oomKills(id: string): Promise<number | null>;
  /** Removes leftovers (mounts, dirs) of ids that are neither running nor known. */
  sweep(keep: Set<string>): Promise<string[]>;
}
