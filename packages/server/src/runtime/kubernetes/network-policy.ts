import type { V1NetworkPolicy, V1NetworkPolicyPeer } from '@kubernetes/client-node';
import { HutchError } from '../../core/errors.js';
import { type EgressPolicy, parseEgressEntry } from '../../core/network.js';
import {
  addressToBigInt,
  ALWAYS_BLOCKED_V4,
  ALWAYS_BLOCKED_V6,
  parseCidr,
  PRIVATE_V4,
  PRIVATE_V6,
  type Cidr,
} from '../../network/ranges.js';
import { AGENT_TCP_PORT } from '../../templates/oci-image.js';
import { LABELS, MANAGED_BY, podName } from './pod-spec.js';

/**
 * A sandbox's egress policy as a NetworkPolicy selecting its pod (named like the pod): ingress only
 * to the agent's port (requests there carry the sandbox's token), egress as the policy says —
 * `none`: nothing; `open`: everywhere but the always-blocked ranges (loopback, link-local with the
 * metadata address, multicast) and the private ranges (where a cluster's own pods, Services and
 * nodes usually are); an allowlist: its CIDRs, minus its deny entries and the always-blocked
 * ranges inside them (NetworkPolicy has no deny: they become `except` blocks). Domain names
 * cannot be expressed (they need an FQDN-capable CNI such as Cilium) and are refused.
 *
 * Enforcement is the CNI's: one without NetworkPolicy support accepts the object and ignores it.
 */
export interface PolicyInput {
  id: string;
  namespace: string;
  installation: string;
  egress: EgressPolicy;
}

export const policyName = podName;

const cidrOf = (text: string): Cidr => parseCidr(text);
const width = (c: Cidr): number => (c.family === 4 ? 32 : 128);

/** Whether `inner` lies inside `outer` (equal counts). */
function within(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family || inner.prefix < outer.prefix) return false;
  const shift = BigInt(width(outer) - outer.prefix);
  return addressToBigInt(inner.address) >> shift === addressToBigInt(outer.address) >> shift;
}

/** `cidr` with its host bits cleared (NetworkPolicy compares blocks, and `except` must lie inside). */
function canonical(c: Cidr): string {
  const bits = BigInt(width(c));
  const value = (addressToBigInt(c.address) >> (bits - BigInt(c.prefix))) << (bits - BigInt(c.prefix));
  if (c.family === 4) return `${[24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.')}/${c.prefix}`;
  const groups = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  return `${groups.join(':')}/${c.prefix}`;
}

/** An ipBlock allowing `allow` minus every `minus` range strictly inside it; null when `allow` is itself blocked. */
function block(allow: Cidr, minus: Cidr[]): V1NetworkPolicyPeer | null {
  if (minus.some((m) => within(allow, m))) return null;
  const except = minus.filter((m) => m.prefix > allow.prefix && within(m, allow)).map(canonical);
  return { ipBlock: { cidr: canonical(allow), ...(except.length > 0 ? { except: [...new Set(except)] } : {}) } };
}

function egressPeers(egress: EgressPolicy): V1NetworkPolicyPeer[] {
  // The IPv4-mapped block (::ffff:0:0/96) is left out: Kubernetes parses it as IPv4 and refuses it
  // inside an IPv6 block; its addresses are IPv4 traffic, covered by the IPv4 blocks.
  const always = [...ALWAYS_BLOCKED_V4, ...ALWAYS_BLOCKED_V6.filter((c) => !c.startsWith('::ffff:'))].map(cidrOf);
  if (egress === 'none') return [];
  if (egress === 'open') {
    const blocked = [...always, ...[...PRIVATE_V4, ...PRIVATE_V6].map(cidrOf)];
    return [block(cidrOf('0.0.0.0/0'), blocked), block(cidrOf('::/0'), blocked)].filter((p): p is V1NetworkPolicyPeer => p !== null);
  }
  const deny: Cidr[] = [];
  egress.deny.forEach((text, i) => {
    const entry = parseEgressEntry(text, `network.egress.deny[${i}]`);
    // A denied name has nothing to subtract from CIDR blocks; allowed names are refused below.
    if (entry.kind === 'cidr') deny.push(cidrOf(entry.text));
  });
  const peers: V1NetworkPolicyPeer[] = [];
  egress.allow.forEach((text, i) => {
    const entry = parseEgressEntry(text, `network.egress.allow[${i}]`);
    if (entry.kind === 'domain')
      throw new HutchError(
        'tier_unavailable',
        `network.egress.allow[${i}]: domain names ("${text}") are unsupported on the kubernetes provider: NetworkPolicy matches addresses only (an FQDN-capable CNI such as Cilium is needed); allow CIDRs`,
      );
    const peer = block(cidrOf(entry.text), [...always, ...deny]);
    if (peer) peers.push(peer);
  });
  return peers;
}

export function buildNetworkPolicy(input: PolicyInput): V1NetworkPolicy {
  const peers = egressPeers(input.egress);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: {
      name: policyName(input.id),
      namespace: input.namespace,
      labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.sandbox]: input.id, [LABELS.installation]: input.installation },
    },
    spec: {
      podSelector: { matchLabels: { [LABELS.sandbox]: input.id, [LABELS.installation]: input.installation } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: AGENT_TCP_PORT }] }],
      // An empty list denies all egress; a rule with no peers would allow all of it.
      egress: peers.length > 0 ? [{ to: peers }] : [],
    },
  };
}
