import type { SandboxRecord } from '../packages/server/src/core/sandbox.js';

/** Records for store tests: written through the repositories as the services would. */

/** A ms timestamp past 2^31 (and past 2^32). */
export const NOW = 1_764_000_000_123;
const at = (offsetMs: number): Date => new Date(NOW + offsetMs);

/** A running container sandbox of the default tenant, created at NOW. */
export function sandboxRecord(id: string, over: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    id,
    state: 'running',
    template: 'minimal',
    templateDigest: 'sha256:abc',
    isolation: 'container',
    cpu: 0.25,
    memoryMiB: 256,
    pids: 128,
    timeoutSeconds: 300,
    env: { A: 'b' },
    metadata: { team: 'x' },
    idempotencyKey: null,
    createdAt: at(0),
    expiresAt: at(300_000),
    deletedAt: null,
    error: null,
    network: { egress: 'none', public: false, publicPorts: [] },
    accessToken: 'tok',
    diskMiB: 2048,
    lifecycle: { persistent: false, onTimeout: 'delete', idleTimeoutSeconds: null, autoDeleteAfterSeconds: null, autoResume: false },
    volumes: [],
    pauseMode: null,
    stateChangedAt: at(0),
    owner: 'key1',
    tenant: 'default',
    secrets: [],
    ...over,
  };
}
