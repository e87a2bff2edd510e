/**
 * How the server reaches a sandbox's agent: a unix socket (local tiers) or TCP (Kubernetes pods),
 * where `token` is sent as X-Access-Token (a pod network is shared: the agent must not answer anyone).
 */
export type AgentEndpoint = { socketPath: string } | { host: string; port: number; token?: string };
