import type { Transport } from './http.js';

/** The address of one sandbox's API: the transport plus the sandbox's URL path. */
export interface SandboxScope {
  readonly transport: Transport;
  readonly sandboxId: string;
  /** `/v1/sandboxes/<id>`. */
  readonly path: string;
}

export function sandboxScope(transport: Transport, sandboxId: string): SandboxScope {
  return { transport, sandboxId, path: `/v1/sandboxes/${encodeURIComponent(sandboxId)}` };
}
