/** How the server reaches a sandbox's agent: a unix socket (local tiers) or TCP (later tiers). */
export type AgentEndpoint = { socketPath: string } | { host: string; port: number };
