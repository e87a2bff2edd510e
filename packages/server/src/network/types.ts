/**
 * Contracts between the network pieces of the local provider: the platform DNS resolver and the
 * egress proxy ask "which sandbox is this source address, and what may it reach?" through
 * {@link SandboxNetLookup}; the network manager answers from its table of live sandboxes.
 */

/** What one sandbox may reach, already compiled from its egress policy. */
export interface SandboxEgressView {
  sandboxId: string;
  /** `open`, or an allowlist. (`none` sandboxes have no interface, so they never ask.) */
  mode: 'open' | 'allowlist';
  /**
   * Whether a DNS name may be resolved / connected to by name. Names are lower-case, without the
   * trailing dot. `open` allows every name; an allowlist allows exact and `*.` suffix matches.
   */
  allowsName(name: string): boolean;
  /**
   * Whether a connection to this IP (v4 or v6 literal) is allowed *after* name resolution, for
   * connections the platform makes on the sandbox's behalf (the egress proxy): never the
   * always-blocked set (metadata, host, other sandboxes, link-local, multicast, loopback), and
   * private ranges only when a CIDR allows them.
   */
  allowsResolvedAddress(ip: string): boolean;
  /**
   * The addresses of a peer of the sandbox's group (an environment's other services) called
   * `name`, which the resolver answers itself; null when the name is not a peer's.
   */
  peer?(name: string): PeerAddresses | null;
}

/** Sandboxes of one peer group reach each other, by name and address; nothing else reaches them. */
export type { PeerGroup } from '../core/provider.js';

export interface PeerAddresses {
  ipv4: string;
  ipv6: string;
}

/** Maps a connection's or query's source address to the sandbox that owns it (null: not ours). */
export type SandboxNetLookup = (sourceIp: string) => SandboxEgressView | null;

/** One DNS query seen by the platform resolver, for the per-sandbox log. */
export interface DnsQueryRecord {
  sandboxId: string;
  name: string;
  type: string;
  /** `allowed` (forwarded upstream), `denied` (answered NXDOMAIN), `failed` (upstream error). */
  verdict: 'allowed' | 'denied' | 'failed';
  at: string;
}

/** Upstream DNS servers as `ip` or `ip:port` / `[ip6]:port` strings. */
export type DnsUpstreams = string[];
