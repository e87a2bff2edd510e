import type { SandboxRecord } from '../core/sandbox.js';

/** The API's view of a sandbox record (no internal fields such as the idempotency key). */
export function sandboxJson(r: SandboxRecord & { warm?: boolean }) {
  return {
    id: r.id,
    tenant: r.tenant,
    state: r.state,
    template: r.template,
    isolation: r.isolation,
    cpu: r.cpu,
    memoryMiB: r.memoryMiB,
    pids: r.pids,
    timeoutSeconds: r.timeoutSeconds,
    env: r.env,
    metadata: r.metadata,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt?.toISOString() ?? null,
    error: r.error,
    network: r.network,
    diskMiB: r.diskMiB,
    volumes: r.volumes,
    lifecycle: r.lifecycle,
    pauseMode: r.pauseMode,
    stateChangedAt: r.stateChangedAt?.toISOString() ?? null,
    secrets: r.secrets,
    ...(r.warm === undefined ? {} : { warm: r.warm }),
  };
}
