import { addressToBigInt, bigIntToAddress, parseCidr, type Cidr } from './ranges.js';

/**
 * Addresses for networked sandboxes, one slot per sandbox. Routed point-to-point links, no
 * shared L2 segment: slot s gets <pool4 base + s>/32 and <pool6 prefix>:<s>::2/64; the host side
 * of every link answers as the gateway (<pool4 base + 1>, fe80::1), and the platform's resolver
 * and egress proxy listen on the gateway addresses.
 */
export interface SlotAddresses {
  slot: number;
  ipv4: string;
  ipv6: string;
  /** The sandbox's IPv6 /64, routed to its link on the host. */
  ipv6Net: string;
}

export const FIRST_SLOT = 2;

export class AddressPool {
  readonly v4: Cidr;
  readonly v6: Cidr;
  readonly gateway4: string;
  readonly gateway6: string;
  readonly maxSlot: number;

  constructor(pool4: string, pool6: string) {
    this.v4 = parseCidr(pool4);
    this.v6 = parseCidr(pool6);
    if (this.v4.family !== 4) throw new Error(`network pool ${pool4} is not an IPv4 CIDR`);
    if (this.v6.family !== 6) throw new Error(`network pool ${pool6} is not an IPv6 CIDR`);
    if (this.v4.prefix > 28) throw new Error(`IPv4 network pool ${pool4} is too small (at most /28)`);
    if (this.v6.prefix > 56) throw new Error(`IPv6 network pool ${pool6} is too small (at most /56: each sandbox gets a /64)`);
    const base4 = this.base(this.v4);
    this.gateway4 = bigIntToAddress(base4 + 1n, 4);
    this.gateway6 = bigIntToAddress(this.base(this.v6) + 1n, 6);
    const v4Slots = 2 ** (32 - this.v4.prefix) - 2;
    const v6Slots = 2 ** Math.min(30, 64 - this.v6.prefix) - 1;
    this.maxSlot = Math.min(v4Slots, v6Slots, 65535);
  }

  private base(c: Cidr): bigint {
    const bits = c.family === 4 ? 32 : 128;
    const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - c.prefix)) - 1n);
    return addressToBigInt(c.address) & mask;
  }

  get cidr4(): string {
    return `${bigIntToAddress(this.base(this.v4), 4)}/${this.v4.prefix}`;
  }

  get cidr6(): string {
    return `${bigIntToAddress(this.base(this.v6), 6)}/${this.v6.prefix}`;
  }

  addresses(slot: number): SlotAddresses {
    if (!Number.isInteger(slot) || slot < FIRST_SLOT || slot > this.maxSlot) throw new Error(`address slot ${slot} is outside the pool`);
    const net6 = this.base(this.v6) + (BigInt(slot) << 64n);
    return {
      slot,
      ipv4: bigIntToAddress(this.base(this.v4) + BigInt(slot), 4),
      ipv6: bigIntToAddress(net6 + 2n, 6),
      ipv6Net: `${bigIntToAddress(net6, 6)}/64`,
    };
  }

  /** The slot an IPv4 address of this pool belongs to (null when it is not a sandbox address). */
  slotOf4(ip: string): number | null {
    const offset = addressToBigInt(ip) - this.base(this.v4);
    if (offset < BigInt(FIRST_SLOT) || offset > BigInt(this.maxSlot)) return null;
    return Number(offset);
  }

  /** The slot an IPv6 address of this pool belongs to (its /64 index). */
  slotOf6(ip: string): number | null {
    const value = addressToBigInt(ip);
    const poolBits = 128n - BigInt(this.v6.prefix);
    if (value >> poolBits !== this.base(this.v6) >> poolBits) return null;
    const slot = Number((value >> 64n) & ((1n << (64n - BigInt(this.v6.prefix))) - 1n));
    return slot >= FIRST_SLOT && slot <= this.maxSlot ? slot : null;
  }

  /** The lowest slot not in `used`; throws when the pool is exhausted. */
  /** A free slot, searching from `from` (wrapping around), so freed slots are not reused at once. */
  allocate(used: ReadonlySet<number>, from = FIRST_SLOT): number {
    const start = from >= FIRST_SLOT && from <= this.maxSlot ? from : FIRST_SLOT;
    for (let s = start; s <= this.maxSlot; s++) if (!used.has(s)) return s;
    for (let s = FIRST_SLOT; s < start; s++) if (!used.has(s)) return s;
    throw new Error('the sandbox address pool is exhausted');
  }
}
