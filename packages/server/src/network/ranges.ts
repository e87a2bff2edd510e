import { BlockList, isIP } from 'node:net';

/**
 * Address ranges the egress policy is built from. ALWAYS_BLOCKED wins over every allow entry;
 * PRIVATE is blocked unless a CIDR in the allowlist covers it. Everything is expressed once here
 * and used both for nftables sets and for the checks the resolver and the egress proxy make in
 * this process (node's BlockList does the matching).
 */
export const ALWAYS_BLOCKED_V4 = [
  '0.0.0.0/8',
  '127.0.0.0/8',
  // Link-local, which includes the cloud metadata address 169.254.169.254.
  '169.254.0.0/16',
  // Multicast (224/4) and reserved + broadcast (240/4).
  '224.0.0.0/3',
];
export const ALWAYS_BLOCKED_V6 = [
  '::/127',
  // IPv4-mapped and IPv4-translated forms could otherwise smuggle a blocked IPv4 address.
  '::ffff:0:0/96',
  '64:ff9b::a9fe:a9fe/128',
  'fe80::/10',
  'ff00::/8',
  // AWS's IPv6 metadata endpoint.
  'fd00:ec2::254/128',
];
export const PRIVATE_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
export const PRIVATE_V6 = ['fc00::/7'];

export interface Cidr {
  family: 4 | 6;
  address: string;
  prefix: number;
}

export function parseCidr(text: string): Cidr {
  const [address = '', prefixText] = text.split('/');
  const family = isIP(address);
  if (family !== 4 && family !== 6) throw new Error(`not a CIDR: ${text}`);
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`bad prefix in ${text}`);
  return { family, address, prefix };
}

export function blockListOf(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of cidrs) {
    const c = parseCidr(text);
    // node's BlockList matches every IPv4 address against an IPv4-mapped IPv6 subnet; mapped
    // addresses are turned into plain IPv4 before any check here, so the subnet is left to nft.
    if (c.family === 6 && c.address.toLowerCase().startsWith('::ffff:')) continue;
    list.addSubnet(c.address, c.prefix, c.family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** Strips the `::ffff:` prefix node puts on IPv4 peers of dual-stack sockets. */
export function plainAddress(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function checkIn(list: BlockList, ip: string): boolean {
  const plain = plainAddress(ip);
  const family = isIP(plain);
  if (family === 0) return false;
  return list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

// ---- IPv4/IPv6 arithmetic for the address pool (bigint keeps both families in one code path) ----

export function addressToBigInt(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const [head = '', tail = ''] = ip.split('::');
  const expand = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const h = expand(head);
  const t = expand(tail);
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n);
}

export function bigIntToAddress(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as ip(8) prints it.
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { start: i, len: j - i };
    i = j;
  }
  if (best.start === -1) return groups.join(':');
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.len).join(':')}`;
}
