import { ALWAYS_BLOCKED_V4, ALWAYS_BLOCKED_V6 } from './ranges.js';
import { PEER_MARK, PROXY_MARK } from './policy.js';

/**
 * The shared base table of one Hutch server: what holds for every networked sandbox whatever its
 * policy. Sandbox links are the host interfaces matching `ifPatterns`.
 * - forward: packets a sandbox table marked as going to one of its peers (same peer group, e.g.
 *   one environment's services) pass from link to link; otherwise the always-blocked ranges
 *   (metadata, link-local, loopback, multicast, both sandbox pools) are rejected and nothing enters
 *   a sandbox link unless it answers the sandbox's own flow.
 * - input: from a sandbox, the host accepts only the platform resolver and the egress proxy on
 *   the gateway addresses (plus neighbour discovery); the API port and every other host service
 *   are unreachable.
 * - nat: DNS to the gateway goes to the resolver's port, packets the sandbox table marked go to
 *   the egress proxy, and traffic leaving for the outside is masqueraded.
 */
export interface BaseTableInput {
  name: string;
  /** Host-side sandbox link names, as nft wildcards (e.g. `hz*`, `hpab12*`). */
  ifPatterns: string[];
  pool4: string;
  pool6: string;
  gateway4: string;
  gateway6: string;
  dnsPort: number;
  httpProxyPort: number;
  tlsProxyPort: number;
  /** Set when Hutch turned on IP forwarding itself: then only sandbox traffic may be forwarded. */
  restrictForwarding: boolean;
}

export function baseTable(b: BaseTableInput): string {
  const sb = `{ ${b.ifPatterns.map((p) => `"${p}"`).join(', ')} }`;
  const ports = `{ ${b.dnsPort}, ${b.httpProxyPort}, ${b.tlsProxyPort} }`;
  const lines = [
    `table inet ${b.name} {`,
    `  set blocked4 { type ipv4_addr; flags interval; elements = { ${[...ALWAYS_BLOCKED_V4, b.pool4].join(', ')} } }`,
    `  set blocked6 { type ipv6_addr; flags interval; elements = { ${[...ALWAYS_BLOCKED_V6, b.pool6].join(', ')} } }`,
    '  chain forward {',
    '    type filter hook forward priority -10; policy accept;',
    `    iifname ${sb} oifname ${sb} meta mark ${PEER_MARK} accept`,
    `    iifname ${sb} ip daddr @blocked4 reject with icmpx admin-prohibited`,
    `    iifname ${sb} ip6 daddr @blocked6 reject with icmpx admin-prohibited`,
    `    oifname ${sb} ct state established,related accept`,
    `    oifname ${sb} drop`,
    ...(b.restrictForwarding ? [`    iifname != ${sb} drop`] : []),
    '  }',
    '  chain input {',
    '    type filter hook input priority -10; policy accept;',
    `    iifname != ${sb} accept`,
    // Only this server's sandboxes: another server on the host polices its own pool.
    `    meta nfproto ipv4 ip saddr != ${b.pool4} accept`,
    `    meta nfproto ipv6 ip6 saddr != ${b.pool6} accept`,
    '    ct state established,related accept',
    `    ip daddr ${b.gateway4} meta l4proto { tcp, udp } th dport ${ports} accept`,
    `    ip6 daddr ${b.gateway6} meta l4proto { tcp, udp } th dport ${ports} accept`,
    '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept',
    `    ip daddr ${b.gateway4} icmp type echo-request accept`,
    `    ip6 daddr ${b.gateway6} icmpv6 type echo-request accept`,
    '    meta l4proto tcp reject with tcp reset',
    '    drop',
    '  }',
    '  chain to_services {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    `    iifname != ${sb} accept`,
    `    ip daddr ${b.gateway4} meta l4proto { tcp, udp } th dport 53 dnat ip to ${b.gateway4}:${b.dnsPort}`,
    `    ip6 daddr ${b.gateway6} meta l4proto { tcp, udp } th dport 53 dnat ip6 to [${b.gateway6}]:${b.dnsPort}`,
    // The mark is the same on every server of the host: only this server's pool goes to its proxy
    // (unscoped, a sandbox of another server could be sent to this one, whose input chain refuses it).
    `    ip saddr ${b.pool4} meta mark ${PROXY_MARK} tcp dport 80 dnat ip to ${b.gateway4}:${b.httpProxyPort}`,
    `    ip saddr ${b.pool4} meta mark ${PROXY_MARK} tcp dport 443 dnat ip to ${b.gateway4}:${b.tlsProxyPort}`,
    `    ip6 saddr ${b.pool6} meta mark ${PROXY_MARK} tcp dport 80 dnat ip6 to [${b.gateway6}]:${b.httpProxyPort}`,
    `    ip6 saddr ${b.pool6} meta mark ${PROXY_MARK} tcp dport 443 dnat ip6 to [${b.gateway6}]:${b.tlsProxyPort}`,
    '  }',
    '  chain outbound_nat {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${b.pool4} oifname != ${sb} masquerade`,
    `    ip6 saddr ${b.pool6} oifname != ${sb} masquerade`,
    '  }',
    '}',
  ];
  return lines.join('\n');
}
