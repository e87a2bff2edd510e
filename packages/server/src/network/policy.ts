import type { EgressPolicy } from '../core/network.js';
import { parseEgressEntry } from '../core/network.js';
import type { PeerAddresses, SandboxEgressView } from './types.js';
import { ALWAYS_BLOCKED_V4, ALWAYS_BLOCKED_V6, PRIVATE_V4, PRIVATE_V6, blockListOf, checkIn, plainAddress } from './ranges.js';
import type { BlockList } from 'node:net';
import { isIP } from 'node:net';

/**
 * An egress policy compiled for enforcement. The same compiled form produces the nftables rules
 * (kernel enforcement of direct connections) and the in-process checks of the resolver and the
 * egress proxy, so the two can never disagree about what a policy means.
 *
 * The rule for names: a domain entry allows that name (and with `*.`, its subdomains) to be
 * resolved by the platform resolver and reached over HTTP (port 80) and TLS (port 443) through
 * the egress proxy, which checks the Host header / SNI. It does not allow the name's IP
 * addresses by themselves: a raw-IP connection to an allowed domain's address fails unless a
 * CIDR entry covers that address.
 */
export interface CompiledEgress {
  mode: 'open' | 'allowlist';
  allow4: string[];
  allow6: string[];
  deny4: string[];
  deny6: string[];
  allowDomains: { pattern: string; wildcard: boolean }[];
  denyDomains: { pattern: string; wildcard: boolean }[];
}

export function compileEgress(policy: Exclude<EgressPolicy, 'none'>): CompiledEgress {
  const out: CompiledEgress = {
    mode: policy === 'open' ? 'open' : 'allowlist',
    allow4: [],
    allow6: [],
    deny4: [],
    deny6: [],
    allowDomains: [],
    denyDomains: [],
  };
  if (policy === 'open') return out;
  for (const [list, raw] of [
    ['allow', policy.allow],
    ['deny', policy.deny],
  ] as const) {
    raw.forEach((text, i) => {
      const entry = parseEgressEntry(text, `network.egress.${list}[${i}]`);
      if (entry.kind === 'domain')
        (list === 'allow' ? out.allowDomains : out.denyDomains).push({ pattern: entry.pattern, wildcard: entry.wildcard });
      else if (entry.family === 4) (list === 'allow' ? out.allow4 : out.deny4).push(entry.text);
      else (list === 'allow' ? out.allow6 : out.deny6).push(entry.text);
    });
  }
  return out;
}

function nameMatches(name: string, rule: { pattern: string; wildcard: boolean }): boolean {
  if (rule.wildcard) return rule.pattern === '' || name.endsWith(`.${rule.pattern}`);
  return name === rule.pattern;
}

export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The ranges every policy blocks: the fixed set, the sandbox pools and this host's own addresses. */
export interface BlockedContext {
  pool4: string;
  pool6: string;
  hostAddresses: () => string[];
  /** The sandbox's peers (its peer group's other members), by name; none outside a group. */
  peers?: () => ReadonlyMap<string, PeerAddresses>;
}

export class EgressView implements SandboxEgressView {
  readonly mode: 'open' | 'allowlist';
  private readonly alwaysBlocked: BlockList;
  private readonly privateRanges: BlockList;
  private readonly allowed: BlockList;
  private readonly denied: BlockList;

  constructor(
    readonly sandboxId: string,
    readonly compiled: CompiledEgress,
    private readonly context: BlockedContext,
  ) {
    this.mode = compiled.mode;
    this.alwaysBlocked = blockListOf([...ALWAYS_BLOCKED_V4, ...ALWAYS_BLOCKED_V6, context.pool4, context.pool6]);
    this.privateRanges = blockListOf([...PRIVATE_V4, ...PRIVATE_V6]);
    this.allowed = blockListOf([...compiled.allow4, ...compiled.allow6]);
    this.denied = blockListOf([...compiled.deny4, ...compiled.deny6]);
  }

  peer(name: string): PeerAddresses | null {
    return this.context.peers?.().get(normalizeName(name)) ?? null;
  }

  /** Whether `ip` is a peer's address: peers reach each other whatever the policy says. */
  isPeerAddress(ip: string): boolean {
    const plain = plainAddress(ip);
    for (const p of this.context.peers?.().values() ?? []) if (p.ipv4 === plain || p.ipv6 === plain) return true;
    return false;
  }

  get hasDomains(): boolean {
    return this.compiled.allowDomains.length > 0;
  }

  allowsName(name: string): boolean {
    const n = normalizeName(name);
    if (n.length === 0 || isIP(n) !== 0) return false;
    if (this.compiled.denyDomains.some((r) => nameMatches(n, r))) return false;
    if (this.mode === 'open') return true;
    return this.compiled.allowDomains.some((r) => nameMatches(n, r));
  }

  private isBlocked(ip: string): boolean {
    const plain = plainAddress(ip);
    if (checkIn(this.alwaysBlocked, plain) || checkIn(this.denied, plain)) return true;
    if (this.context.hostAddresses().includes(plain)) return true;
    return false;
  }

  /** For connections the platform makes after resolving an allowed name (egress proxy). */
  allowsResolvedAddress(ip: string): boolean {
    if (isIP(plainAddress(ip)) === 0 || this.isBlocked(ip)) return false;
    return !checkIn(this.privateRanges, ip) || checkIn(this.allowed, ip);
  }

  /** Mirrors the nftables verdict for a direct connection from the sandbox to `ip`. */
  allowsDirect(ip: string): boolean {
    if (isIP(plainAddress(ip)) === 0) return false;
    if (this.isPeerAddress(ip)) return true;
    if (this.isBlocked(ip)) return false;
    if (this.mode === 'open') return !checkIn(this.privateRanges, ip) || checkIn(this.allowed, ip);
    return checkIn(this.allowed, ip);
  }
}

// ---- nftables ----

/** nft's table name for a sandbox (hyphens are not allowed in unquoted nft identifiers). */
export function sandboxTableName(id: string): string {
  return `hutch_${id}`;
}

/** Marks packets the sandbox's table wants sent to the egress proxy; the base table DNATs them. */
export const PROXY_MARK = 0x48550001;
/**
 * Marks packets from a sandbox to one of its peers (same peer group): the base table lets them
 * through to the peer's link, which it otherwise never does. Only a sandbox table sets it, for
 * its own link (after anti-spoofing) and its own peers' addresses.
 */
export const PEER_MARK = 0x48550002;

/** A set of single addresses (elements are added and deleted one by one as peers change). */
function addressSet(name: string, type: 'ipv4_addr' | 'ipv6_addr', elements: string[]): string {
  const body = elements.length > 0 ? ` elements = { ${elements.join(', ')} }` : '';
  return `  set ${name} { type ${type};${body} }`;
}

function set(name: string, type: 'ipv4_addr' | 'ipv6_addr', elements: string[]): string {
  const body = elements.length > 0 ? ` elements = { ${elements.join(', ')} }` : '';
  return `  set ${name} { type ${type}; flags interval;${body} }`;
}

export interface SandboxLink {
  id: string;
  hostIf: string;
  ipv4: string;
  ipv6: string;
}

/** nft set names of a sandbox's peers' addresses (kept current as peers come and go). */
export const PEER_SETS = { ipv4: 'peers4', ipv6: 'peers6' } as const;

/**
 * The per-sandbox table: anti-spoofing, the peer mark for its peer group, the proxy mark for
 * name-checked HTTP/TLS, and the egress verdict for forwarded traffic. The shared base table (see
 * base-table.ts) blocks the always-blocked ranges for every sandbox before this table is consulted,
 * except for packets carrying the peer mark.
 */
export function sandboxTable(link: SandboxLink, compiled: CompiledEgress, peers: PeerAddresses[] = []): string {
  const t = sandboxTableName(link.id);
  const iif = `iifname != "${link.hostIf}" accept`;
  const lines: string[] = [];
  lines.push(`table inet ${t} {`);
  lines.push(set('allow4', 'ipv4_addr', compiled.allow4), set('allow6', 'ipv6_addr', compiled.allow6));
  lines.push(set('deny4', 'ipv4_addr', compiled.deny4), set('deny6', 'ipv6_addr', compiled.deny6));
  lines.push(set('private4', 'ipv4_addr', PRIVATE_V4), set('private6', 'ipv6_addr', PRIVATE_V6));
  lines.push(
    addressSet(
      PEER_SETS.ipv4,
      'ipv4_addr',
      peers.map((p) => p.ipv4),
    ),
  );
  lines.push(
    addressSet(
      PEER_SETS.ipv6,
      'ipv6_addr',
      peers.map((p) => p.ipv6),
    ),
  );
  lines.push('  chain guard {', '    type filter hook prerouting priority -160; policy accept;', `    ${iif}`);
  lines.push(`    meta nfproto ipv4 ip saddr != ${link.ipv4} drop`);
  lines.push(`    meta nfproto ipv6 ip6 saddr != { ${link.ipv6}, fe80::/10 } drop`);
  lines.push(`    ip daddr @${PEER_SETS.ipv4} meta mark set ${PEER_MARK} accept`);
  lines.push(`    ip6 daddr @${PEER_SETS.ipv6} meta mark set ${PEER_MARK} accept`);
  if (compiled.mode === 'allowlist' && compiled.allowDomains.length > 0) {
    lines.push(`    ip daddr != @allow4 tcp dport { 80, 443 } meta mark set ${PROXY_MARK}`);
    lines.push(`    ip6 daddr != @allow6 tcp dport { 80, 443 } meta mark set ${PROXY_MARK}`);
  }
  lines.push('  }');
  lines.push('  chain sandbox_out {', '    type filter hook forward priority 0; policy accept;', `    ${iif}`);
  lines.push('    ct state established,related accept');
  lines.push(`    meta mark ${PEER_MARK} accept`);
  // Only the platform resolver answers DNS: no direct DNS or DNS-over-TLS to other servers.
  lines.push('    meta l4proto { tcp, udp } th dport { 53, 853 } reject with icmpx admin-prohibited');
  lines.push('    ip daddr @deny4 reject with icmpx admin-prohibited', '    ip6 daddr @deny6 reject with icmpx admin-prohibited');
  if (compiled.mode === 'open') {
    lines.push('    ip daddr @allow4 accept', '    ip6 daddr @allow6 accept');
    lines.push('    ip daddr @private4 reject with icmpx admin-prohibited', '    ip6 daddr @private6 reject with icmpx admin-prohibited');
    lines.push('    accept');
  } else {
    lines.push('    ip daddr @allow4 accept', '    ip6 daddr @allow6 accept');
    lines.push('    meta l4proto tcp reject with tcp reset', '    reject with icmpx admin-prohibited');
  }
  lines.push('  }', '}');
  return lines.join('\n');
}
