import type { Duplex } from 'node:stream';

/**
 * How the server reaches a sandbox's agent: a unix socket (local tiers) or TCP (Kubernetes pods),
 * where `token` is sent as X-Access-Token (a pod network is shared: the agent must not answer anyone),
 * or a stream `open`ed per request (Kubernetes pods through the API server's port-forward, when
 * the server cannot route to pod IPs); the token travels in the same header over it.
 */
export type AgentEndpoint =
  { socketPath: string } | { host: string; port: number; token?: string } | { open: () => Promise<Duplex>; token?: string };
