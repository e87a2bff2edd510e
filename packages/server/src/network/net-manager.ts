import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import type { EgressPolicy } from '../core/network.js';
import { HutchError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { NOOP_TELEMETRY, type Telemetry } from '../core/telemetry.js';
import { readLinkBytes } from '../runtime/local/cgroup-stats.js';
import { runTool, ToolError } from '../runtime/local/exec-tool.js';
import { AddressPool, type SlotAddresses } from './address-pool.js';
import { baseTable } from './base-table.js';
import { compileEgress, EgressView, PEER_SETS, sandboxTable, sandboxTableName, type SandboxLink } from './policy.js';
import { PlatformResolver, parseHostPort, parseUpstreams } from './dns-resolver.js';
import { EgressProxy } from './egress-proxy.js';
import type { DnsQueryRecord, PeerAddresses, PeerGroup } from './types.js';
import { KeyedMutex } from '../core/keyed-mutex.js';
import type { InjectedHeader } from '../core/egress-headers.js';
import { plainAddress } from './ranges.js';
import { isIP } from 'node:net';

/**
 * The network layer of the local provider. A sandbox with egress other than `none` gets:
 * - a network namespace `hutch-<key>-<slot>` (/run/netns), used as the runtime's namespace;
 * - a routed veth link: `hz<key…>s<slot>` on the host, `eth0` inside, addresses from the slot;
 * - an nftables table `hutch_<id>` with its policy, under this server's shared base table.
 * Sandboxes with egress `none` get nothing here (the runtime's own empty namespace), so they pay
 * no set-up cost. Namespaces and links are named by their address slot, so they can be built
 * before the sandbox exists: after the first networked create, a few spares (namespace, link,
 * addresses, routes) are kept ready and a create only installs its table (see `claimSpare`).
 * A record per sandbox under /run (written before the first side effect) says which slot and
 * names are its; records of older versions name their resources by sandbox id (`hutch-<id>`,
 * `hz<id…>`), which is still understood.
 *
 * Peer groups (an environment's services): a sandbox attached with a `PeerGroup` reaches the other
 * members of its group on any port, whatever its egress policy, and the resolver answers their
 * names (`db`, `api`) with their addresses. Its table holds its peers' addresses (sets kept current
 * as members come and go, under a per-group lock) and marks packets to them; the base table passes
 * only marked packets between sandbox links. Non-members and other groups stay unreachable.
 */
export interface NetworkOptions {
  /** Per-server key (as for the runtime state dirs): names the base table and the gateway link. */
  key: string;
  /** Spare namespaces + links kept ready once a networked sandbox was created (default 4; 0: none). */
  spares?: number;
  stateDir: string;
  pool4: string;
  pool6: string;
  /** Upstream DNS servers (`ip` or `ip:port`); default: the host's /etc/resolv.conf. */
  dnsUpstreams?: string[];
  log: Logger;
  /** Egress denials (resolver and proxy) and proxied bytes are reported here. */
  telemetry?: Telemetry;
  /** Headers the egress proxy adds to a sandbox's plain-HTTP requests to a host (its `injectHeader` secrets). */
  injectedHeaders?: (sandboxId: string, host: string) => InjectedHeader[];
}

export interface SandboxNetwork {
  netnsPath: string;
  addresses: SlotAddresses;
  gateway4: string;
  gateway6: string;
}

const IF_PREFIX = 'hz';
/**
 * Host links of peer-group members are named `hp<key>s<slot>` instead: nothing but this server's
 * own base table matches them, so the `hz*` rules of another Hutch server's base table on the same
 * host (which drop new connections into any `hz*` link) cannot cut traffic between peers.
 */
const PEER_IF_PREFIX = 'hp';
/** The slot owner of a prepared spare (no sandbox yet). */
const SPARE = '(spare)';
const NETNS_DIR = '/run/netns';
const DNS_LOG_SIZE = 200;

export function hostIfName(id: string): string {
  // Interface names are at most 15 characters; 13 id characters keep collisions out of reach.
  return `${IF_PREFIX}${id.slice(0, 13)}`;
}

export function netnsName(id: string): string {
  return `hutch-${id}`;
}

/** Where a sandbox's (or a spare's) network lives on the host. */
interface LinkNames {
  netns: string;
  hostIf: string;
}

interface NetRecord {
  slot: number;
  netns?: string;
  hostIf?: string;
  peers?: PeerGroup;
}

async function ignoreMissing(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ToolError && pattern.test(err.stderr)) return;
    throw err;
  }
}

export class NetworkManager {
  readonly pool: AddressPool;
  private readonly baseName: string;
  private readonly gatewayIf: string;
  private readonly recordsDir: string;
  /** slot → sandbox id, or SPARE for a prepared spare. */
  private readonly slots = new Map<number, string>();
  private readonly slotOf = new Map<string, number>();
  private readonly namesOfId = new Map<string, LinkNames>();
  /** Ready spares (namespace, link, addresses and routes in place), oldest first. */
  private readonly spares: number[] = [];
  private sparesWanted = false;
  private refilling: Promise<void> | null = null;
  /** Slots are handed out round-robin, so a freed slot's names and addresses rest before reuse. */
  private nextSlot = 0;
  private readonly views = new Map<string, EgressView>();
  /** Sandbox id → its peer group; group → member name → sandbox id. */
  private readonly peerOf = new Map<string, PeerGroup>();
  private readonly groups = new Map<string, Map<string, string>>();
  private readonly groupLocks = new KeyedMutex();
  private readonly dnsLogs = new Map<string, DnsQueryRecord[]>();
  private resolver: PlatformResolver | null = null;
  private proxy: EgressProxy | null = null;
  private upstreams: string[] = [];
  private hostAddrCache: { at: number; list: string[] } = { at: 0, list: [] };
  private ready: Promise<void> | null = null;

  constructor(private readonly options: NetworkOptions) {
    this.pool = new AddressPool(options.pool4, options.pool6);
    this.baseName = `hutch_base_${options.key.slice(0, 8)}`;
    this.gatewayIf = `hg${options.key.slice(0, 8)}`;
    this.recordsDir = join(options.stateDir, 'net');
  }

  /** Starts the resolver and proxy and installs the base table, once, on first use or at start. */
  init(): Promise<void> {
    this.ready ??= this.doInit().catch((err: unknown) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  private recordsLoaded: Promise<void> | null = null;

  /** Loads the per-sandbox records (slots) left by an earlier run of this server. */
  private loadRecords(): Promise<void> {
    this.recordsLoaded ??= (async () => {
      await mkdir(this.recordsDir, { recursive: true });
      for (const file of await readdir(this.recordsDir)) {
        const id = file.replace(/\.json$/, '');
        try {
          const rec = JSON.parse(await readFile(join(this.recordsDir, file), 'utf8')) as Partial<NetRecord>;
          if (typeof rec.slot === 'number' && !this.slots.has(rec.slot)) {
            this.claim(id, rec.slot);
            if (rec.netns && rec.hostIf) this.namesOfId.set(id, { netns: rec.netns, hostIf: rec.hostIf });
            if (rec.peers) this.join(id, rec.peers);
          }
        } catch {
          /* a torn record: sweep() removes its resources */
        }
      }
    })();
    return this.recordsLoaded;
  }

  private async doInit(): Promise<void> {
    await this.loadRecords();
    await this.removeStraySpares();
    await this.ensureGatewayLink();
    const restrictForwarding = await this.enableForwarding();
    this.upstreams = this.options.dnsUpstreams ?? parseUpstreams(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    if (this.upstreams.length === 0) this.options.log.warn('no upstream DNS servers (/etc/resolv.conf has none): sandbox DNS will fail');
    const lookup = (ip: string): EgressView | null => this.viewFor(ip);
    this.resolver = new PlatformResolver({
      lookup,
      upstreams: this.upstreams,
      onQuery: (r) => this.recordQuery(r),
      logger: this.options.log,
    });
    // One port for both families: the base table DNATs :53 of either gateway to it.
    await this.resolver.listen([{ host: this.pool.gateway4, port: 0 }]);
    const dnsPort = this.resolver.addresses()[0]?.port;
    if (dnsPort === undefined) throw new Error('the resolver did not bind');
    await this.resolver.listen([{ host: this.pool.gateway6, port: dnsPort }]);
    const dnsResolver = new Resolver({ timeout: 3000, tries: 2 });
    dnsResolver.setServers(this.upstreams.map((u) => formatServer(u)));
    this.proxy = new EgressProxy({
      lookup,
      resolve: async (name) => {
        const [a, aaaa] = await Promise.allSettled([dnsResolver.resolve4(name), dnsResolver.resolve6(name)]);
        return [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
      },
      logger: this.options.log,
      ...(this.options.injectedHeaders ? { injectedHeaders: this.options.injectedHeaders } : {}),
      onDecision: (d) => {
        if (d.verdict !== 'denied') return;
        this.options.log.info({ sandbox: d.sandboxId, name: d.name, port: d.port, reason: d.reason }, 'egress proxy denied');
        this.telemetry.egressDenied(d.port === 443 ? 'tls' : 'http', d.reason ?? 'denied');
      },
      onTraffic: (fromSandbox, toSandbox) => {
        this.telemetry.proxyBytes('egress', 'out', fromSandbox);
        this.telemetry.proxyBytes('egress', 'in', toSandbox);
      },
    });
    // Both families share one port number per role (bound v4 first, then v6 on the same port).
    const listeners = await this.proxy.listen([
      { host: this.pool.gateway4, port: 0, targetPort: 80, kind: 'http' },
      { host: this.pool.gateway4, port: 0, targetPort: 443, kind: 'tls' },
    ]);
    const [httpPort, tlsPort] = listeners;
    await this.proxy.listen([
      { host: this.pool.gateway6, port: httpPort!, targetPort: 80, kind: 'http' },
      { host: this.pool.gateway6, port: tlsPort!, targetPort: 443, kind: 'tls' },
    ]);
    if (dnsPort === undefined || httpPort === undefined || tlsPort === undefined) throw new Error('network services did not bind');
    await this.nft(
      `table inet ${this.baseName} {}\ndelete table inet ${this.baseName}\n` +
        baseTable({
          name: this.baseName,
          ifPatterns: [`${IF_PREFIX}*`, `${PEER_IF_PREFIX}${this.options.key.slice(0, 4)}*`],
          pool4: this.pool.cidr4,
          pool6: this.pool.cidr6,
          gateway4: this.pool.gateway4,
          gateway6: this.pool.gateway6,
          dnsPort,
          httpProxyPort: httpPort,
          tlsProxyPort: tlsPort,
          restrictForwarding,
        }),
    );
    this.options.log.info(
      { pool4: this.pool.cidr4, pool6: this.pool.cidr6, dnsPort, httpPort, tlsPort, upstreams: this.upstreams },
      'sandbox network ready',
    );
  }

  /** A port-less bridge holds the gateway addresses, so the resolver and proxy can bind them. */
  private async ensureGatewayLink(): Promise<void> {
    // Two servers (two data dirs) with the same pool would answer each other's sandboxes: refuse.
    const holders = JSON.parse(await runTool('ip', ['-j', 'addr', 'show', 'to', `${this.pool.gateway4}/32`])) as Array<{ ifname: string }>;
    // This server's own sandbox links (`hz…`, `hp…`, host side) carry the gateway address too.
    const other = holders.find(
      (h) => h.ifname !== this.gatewayIf && !h.ifname.startsWith(IF_PREFIX) && !h.ifname.startsWith(PEER_IF_PREFIX),
    );
    if (other)
      throw new Error(
        `the network pool's gateway ${this.pool.gateway4} is already on interface ${other.ifname} (another Hutch server on this host?); give this server its own --network-pool and --network-pool6`,
      );
    if (!existsSync(`/sys/class/net/${this.gatewayIf}`)) {
      await ignoreMissing(runTool('ip', ['link', 'add', this.gatewayIf, 'type', 'bridge']), /exists/);
    }
    const batch = [
      `addr replace ${this.pool.gateway4}/32 dev ${this.gatewayIf}`,
      `addr replace ${this.pool.gateway6}/128 dev ${this.gatewayIf} nodad`,
      `link set ${this.gatewayIf} up`,
    ];
    await runTool('ip', ['-batch', '-'], { input: batch.join('\n') + '\n' });
  }

  /**
   * Sandboxes reach the outside through the host, so IPv4 and IPv6 forwarding must be on. When
   * Hutch turns it on (a marker under /run remembers across restarts), the base table lets only
   * sandbox traffic be forwarded, so the host does not become a router for anything else; and
   * interfaces that took IPv6 router advertisements keep taking them (accept_ra=2).
   */
  private async enableForwarding(): Promise<boolean> {
    const marker = join(this.recordsDir, '..', 'forwarding-enabled-by-hutch');
    let enabledByUs = existsSync(marker);
    const v4 = '/proc/sys/net/ipv4/ip_forward';
    const v6 = '/proc/sys/net/ipv6/conf/all/forwarding';
    if ((await readFile(v4, 'utf8')).trim() !== '1') {
      await writeFile(v4, '1');
      enabledByUs = true;
    }
    if (existsSync(v6) && (await readFile(v6, 'utf8')).trim() !== '1') {
      for (const dev of await readdir('/proc/sys/net/ipv6/conf')) {
        if (dev === 'all' || dev === 'default') continue;
        const ra = `/proc/sys/net/ipv6/conf/${dev}/accept_ra`;
        if ((await readFile(ra, 'utf8').catch(() => '')).trim() === '1') await writeFile(ra, '2').catch(() => undefined);
      }
      await writeFile(v6, '1');
      enabledByUs = true;
    }
    if (enabledByUs) await writeFile(marker, 'forwarding was enabled by hutch\n');
    return enabledByUs;
  }

  private async nft(script: string): Promise<void> {
    await runTool('nft', ['-f', '-'], { input: script + '\n', timeoutMs: 15_000 });
  }

  private claim(id: string, slot: number): void {
    this.slots.set(slot, id);
    this.slotOf.set(id, slot);
  }

  /** Registers a peer-group member (in memory; the record on disk says it too). */
  private join(id: string, peers: PeerGroup): void {
    let members = this.groups.get(peers.group);
    if (!members) this.groups.set(peers.group, (members = new Map()));
    const holder = members.get(peers.name);
    if (holder !== undefined && holder !== id)
      throw new HutchError('conflict', `peer group ${peers.group} already has a member named ${peers.name}`);
    members.set(peers.name, id);
    this.peerOf.set(id, peers);
  }

  private leave(id: string): void {
    const peers = this.peerOf.get(id);
    if (!peers) return;
    this.peerOf.delete(id);
    const members = this.groups.get(peers.group);
    if (members?.get(peers.name) === id) members.delete(peers.name);
    if (members?.size === 0) this.groups.delete(peers.group);
  }

  /** The other members of the sandbox's peer group that have an address, by name. */
  private peersOf(id: string): Map<string, PeerAddresses> {
    const out = new Map<string, PeerAddresses>();
    const peers = this.peerOf.get(id);
    if (!peers) return out;
    for (const [name, member] of this.groups.get(peers.group) ?? []) {
      if (member === id) continue;
      const addresses = this.addressesOf(member);
      if (addresses) out.set(name, { ipv4: addresses.ipv4, ipv6: addresses.ipv6 });
    }
    return out;
  }

  /**
   * Adds (or deletes) the sandbox's addresses in the peer sets of the other members whose tables
   * are installed, in one transaction. A member whose table is installed later reads the group then.
   */
  private async updatePeerSets(id: string, op: 'add' | 'delete'): Promise<void> {
    const peers = this.peerOf.get(id);
    const addresses = this.addressesOf(id);
    if (!peers || !addresses) return;
    const lines: string[] = [];
    for (const member of this.groups.get(peers.group)?.values() ?? []) {
      if (member === id || !this.views.has(member)) continue;
      const table = sandboxTableName(member);
      lines.push(`${op} element inet ${table} ${PEER_SETS.ipv4} { ${addresses.ipv4} }`);
      lines.push(`${op} element inet ${table} ${PEER_SETS.ipv6} { ${addresses.ipv6} }`);
    }
    if (lines.length > 0) await this.nft(lines.join('\n'));
  }

  /** Runs `work` under the sandbox's peer-group lock (no lock outside a group). */
  private withGroup<T>(id: string, work: () => Promise<T>): Promise<T> {
    const peers = this.peerOf.get(id);
    return peers ? this.groupLocks.run(peers.group, work) : work();
  }

  private release(id: string): void {
    this.leave(id);
    const slot = this.slotOf.get(id);
    if (slot !== undefined) this.slots.delete(slot);
    this.slotOf.delete(id);
    this.namesOfId.delete(id);
    this.views.delete(id);
    this.dnsLogs.delete(id);
  }

  private allocateSlot(): number {
    const slot = this.pool.allocate(new Set(this.slots.keys()), this.nextSlot);
    this.nextSlot = slot + 1;
    return slot;
  }

  /** Names by slot (unique while the slot is held; the key keeps two servers' apart). */
  private slotNames(slot: number, peer = false): LinkNames {
    // Interface names are at most 15 characters: hz + 4 + s + base36 slot (≤ 4 for a /16).
    return {
      netns: `hutch-${this.options.key.slice(0, 8)}-${slot}`,
      hostIf: `${peer ? PEER_IF_PREFIX : IF_PREFIX}${this.options.key.slice(0, 4)}s${slot.toString(36)}`,
    };
  }

  /** The names of a sandbox's namespace and link (by its record; id-based for older records). */
  private names(id: string): LinkNames {
    return this.namesOfId.get(id) ?? { netns: netnsName(id), hostIf: hostIfName(id) };
  }

  /** Builds a namespace and link for `slot` (addresses and routes included); with `attachPid`, that process's namespace. */
  private async buildLink(slot: number, names: LinkNames, attachPid?: number): Promise<void> {
    const { netns: ns, hostIf } = names;
    const addresses = this.pool.addresses(slot);
    await runTool('ip', ['-batch', '-'], {
      input:
        [
          attachPid !== undefined ? `netns attach ${ns} ${attachPid}` : `netns add ${ns}`,
          `link add ${hostIf} type veth peer name eth0 netns ${ns}`,
          `addr add ${this.pool.gateway4}/32 dev ${hostIf}`,
          `addr add fe80::1/64 dev ${hostIf} nodad`,
          `link set ${hostIf} up`,
          `route replace ${addresses.ipv4}/32 dev ${hostIf}`,
          `route replace ${addresses.ipv6Net} dev ${hostIf}`,
        ].join('\n') + '\n',
    });
    await runTool('ip', ['-n', ns, '-batch', '-'], {
      input:
        [
          'link set lo up',
          `addr add ${addresses.ipv4}/32 dev eth0`,
          `addr add ${addresses.ipv6}/64 dev eth0 nodad`,
          'link set eth0 up',
          `route add ${this.pool.gateway4}/32 dev eth0 scope link`,
          `route add default via ${this.pool.gateway4} dev eth0`,
          'route add default via fe80::1 dev eth0',
        ].join('\n') + '\n',
    });
  }

  private async removeNames(names: LinkNames): Promise<void> {
    const links: string[] = [];
    if (names.hostIf && existsSync(`/sys/class/net/${names.hostIf}`)) links.push(`link del ${names.hostIf}`);
    if (names.netns && existsSync(join(NETNS_DIR, names.netns))) links.push(`netns del ${names.netns}`);
    if (links.length === 0) return;
    await ignoreMissing(runTool('ip', ['-batch', '-'], { input: links.join('\n') + '\n' }), /Cannot find|does not exist|No such file/i);
  }

  /** Takes a ready spare's slot for `id`, or null when none is ready. */
  private claimSpare(id: string): number | null {
    const slot = this.spares.shift();
    if (slot === undefined) return null;
    this.claim(id, slot);
    this.namesOfId.set(id, this.slotNames(slot));
    return slot;
  }

  /** Brings the spares back to their target in the background, one at a time. */
  private refillSpares(): void {
    const target = this.options.spares ?? 4;
    if (!this.sparesWanted || this.refilling || target <= 0 || !this.ready) return;
    this.refilling = (async () => {
      while (this.sparesWanted && this.spares.length < target) {
        const slot = this.allocateSlot();
        this.slots.set(slot, SPARE);
        try {
          await this.buildLink(slot, this.slotNames(slot));
          if (this.sparesWanted) this.spares.push(slot);
          else {
            await this.removeNames(this.slotNames(slot));
            this.slots.delete(slot);
          }
        } catch (err) {
          await this.removeNames(this.slotNames(slot)).catch(() => undefined);
          this.slots.delete(slot);
          this.options.log.warn({ err: (err as Error).message }, 'could not prepare a spare sandbox network');
          break;
        }
      }
    })().finally(() => {
      this.refilling = null;
    });
  }

  /** Spares of an earlier run of this server (no record names them): removed at start. */
  private async removeStraySpares(): Promise<void> {
    const owned = new Set([...this.namesOfId.values()].flatMap((n) => [n.netns, n.hostIf]));
    const nsPrefix = `hutch-${this.options.key.slice(0, 8)}-`;
    const ifPrefix = `${IF_PREFIX}${this.options.key.slice(0, 4)}s`;
    const stray: LinkNames[] = [];
    for (const ns of await readdir(NETNS_DIR).catch(() => [] as string[])) {
      if (ns.startsWith(nsPrefix) && !owned.has(ns)) stray.push({ netns: ns, hostIf: '' });
    }
    for (const dev of await readdir('/sys/class/net').catch(() => [] as string[])) {
      if (dev.startsWith(ifPrefix) && !owned.has(dev)) stray.push({ netns: '', hostIf: dev });
    }
    for (const names of stray) await this.removeNames(names).catch(() => undefined);
  }

  private viewFor(sourceIp: string): EgressView | null {
    const ip = plainAddress(sourceIp);
    const slot = isIP(ip) === 4 ? this.pool.slotOf4(ip) : isIP(ip) === 6 ? this.pool.slotOf6(ip) : null;
    if (slot === null) return null;
    const id = this.slots.get(slot);
    if (!id) return null;
    const view = this.views.get(id) ?? null;
    // The /64 belongs to the sandbox, but only its one address is accepted (anti-spoofing in nft too).
    if (view && isIP(ip) === 6 && ip !== this.pool.addresses(slot).ipv6) return null;
    return view;
  }

  private hostAddresses(): string[] {
    const now = Date.now();
    if (now - this.hostAddrCache.at > 5000) {
      const list = Object.values(networkInterfaces())
        .flatMap((l) => l ?? [])
        .map((i) => i.address.replace(/%.*$/, ''));
      this.hostAddrCache = { at: now, list };
    }
    return this.hostAddrCache.list;
  }

  private view(id: string, policy: Exclude<EgressPolicy, 'none'>): EgressView {
    return new EgressView(id, compileEgress(policy), {
      pool4: this.pool.cidr4,
      pool6: this.pool.cidr6,
      hostAddresses: () => this.hostAddresses(),
      peers: () => this.peersOf(id),
    });
  }

  private get telemetry(): Telemetry {
    return this.options.telemetry ?? NOOP_TELEMETRY;
  }

  private recordQuery(r: DnsQueryRecord): void {
    if (r.verdict === 'denied') this.telemetry.egressDenied('dns', 'not allowed');
    let log = this.dnsLogs.get(r.sandboxId);
    if (!log) this.dnsLogs.set(r.sandboxId, (log = []));
    log.push(r);
    if (log.length > DNS_LOG_SIZE) log.splice(0, log.length - DNS_LOG_SIZE);
    this.options.log.info({ sandbox: r.sandboxId, name: r.name, type: r.type, verdict: r.verdict }, 'dns query');
  }

  /** The last DNS queries of a sandbox, oldest first. */
  dnsLog(id: string): DnsQueryRecord[] {
    return [...(this.dnsLogs.get(id) ?? [])];
  }

  /**
   * Bytes the sandbox received and sent on its link, from the host side's counters (host tx is
   * the sandbox's rx). Null without a link. They restart when the link is rebuilt (a restart, a
   * switch from egress none).
   */
  linkBytes(id: string): { rxBytes: number; txBytes: number } | null {
    if (!this.slotOf.has(id)) return null;
    const host = readLinkBytes(this.names(id).hostIf);
    return host ? { rxBytes: host.txBytes, txBytes: host.rxBytes } : null;
  }

  addressesOf(id: string): SlotAddresses | null {
    const slot = this.slotOf.get(id);
    return slot === undefined ? null : this.pool.addresses(slot);
  }

  /**
   * Creates the sandbox's namespace and link and installs its policy. With `attachPid`, the
   * namespace is the one that process already lives in (a running container getting a network
   * later); otherwise a fresh one the runtime is then told to use. With `peers`, the sandbox joins
   * that peer group (see the class comment).
   */
  async attach(id: string, policy: Exclude<EgressPolicy, 'none'>, attachPid?: number, peers?: PeerGroup | null): Promise<SandboxNetwork> {
    await this.init();
    if (peers) this.join(id, peers);
    let slot = this.slotOf.get(id);
    // A ready spare serves a fresh sandbox; a restart of one (its record is kept), a running
    // container's own namespace (attachPid) or a peer-group member (its own link name) is built here.
    const spare = slot === undefined && attachPid === undefined && !peers ? this.claimSpare(id) : null;
    if (slot === undefined) {
      slot = spare ?? this.allocateSlot();
      this.claim(id, slot);
      if (!this.namesOfId.has(id)) this.namesOfId.set(id, this.slotNames(slot, !!peers));
    }
    this.sparesWanted = true;
    this.refillSpares();
    const addresses = this.pool.addresses(slot);
    const names = this.names(id);
    try {
      // Intent first: a crash from here on leaves a record that sweep() cleans up.
      const record: NetRecord = { slot, netns: names.netns, hostIf: names.hostIf, ...(peers ? { peers } : {}) };
      await writeFile(join(this.recordsDir, `${id}.json`), JSON.stringify(record));
      if (spare !== null) {
        await this.installPolicy(id, policy);
      } else {
        await this.removeLink(id);
        // The nftables table names the link by interface name only, so it goes in alongside.
        const policyInstalled = this.installPolicy(id, policy);
        // Awaited below; this only keeps a failure while the links are built from going unhandled.
        policyInstalled.catch(() => undefined);
        await this.buildLink(slot, names, attachPid);
        await policyInstalled;
      }
    } catch (err) {
      await this.detach(id).catch(() => undefined);
      throw new HutchError('internal', `network set-up failed: ${(err as Error).message}`, { cause: err });
    }
    return { netnsPath: join(NETNS_DIR, names.netns), addresses, gateway4: this.pool.gateway4, gateway6: this.pool.gateway6 };
  }

  private link(id: string): SandboxLink {
    const a = this.addressesOf(id);
    if (!a) throw new HutchError('conflict', `sandbox ${id} has no network link`);
    return { id, hostIf: this.names(id).hostIf, ipv4: a.ipv4, ipv6: a.ipv6 };
  }

  private installPolicy(id: string, policy: Exclude<EgressPolicy, 'none'>): Promise<EgressView> {
    return this.withGroup(id, async () => {
      const view = this.view(id, policy);
      const table = sandboxTableName(id);
      const firstInstall = !this.views.has(id);
      // One transaction: the old table disappears and the new one appears atomically.
      const peers = [...this.peersOf(id).values()];
      await this.nft(`table inet ${table} {}\ndelete table inet ${table}\n${sandboxTable(this.link(id), view.compiled, peers)}`);
      this.views.set(id, view);
      // The other members learn this one's addresses once it can answer them.
      if (firstInstall) await this.updatePeerSets(id, 'add');
      return view;
    });
  }

  /** Whether this server manages a link for the sandbox. */
  async has(id: string): Promise<boolean> {
    await this.loadRecords();
    return this.slotOf.has(id) && existsSync(join(NETNS_DIR, this.names(id).netns));
  }

  /**
   * Replaces the policy of a networked sandbox live and cuts the connections the new policy
   * forbids: kernel sockets in the sandbox's namespace (ss -K), their conntrack entries, and the
   * egress proxy's connections whose name or address is no longer allowed.
   */
  async setPolicy(id: string, policy: Exclude<EgressPolicy, 'none'>): Promise<{ cut: number }> {
    await this.init();
    const view = await this.installPolicy(id, policy);
    let cut = this.proxy?.cut(id, (c) => view.allowsName(c.name) && view.allowsResolvedAddress(c.address)) ?? 0;
    const seen = new Set<string>();
    cut += await this.cutForbiddenSockets(id, view, seen);
    cut += await this.cutForbiddenFlows(id, view, seen);
    return { cut };
  }

  /** Re-registers a sandbox after a server restart and re-installs its table (idempotent). */
  async restore(id: string, policy: Exclude<EgressPolicy, 'none'>): Promise<void> {
    await this.init();
    if (!this.slotOf.has(id)) throw new HutchError('conflict', `sandbox ${id} has no network record`);
    await this.installPolicy(id, policy);
  }

  private async cutForbiddenSockets(id: string, view: EgressView, seen: Set<string>): Promise<number> {
    const nsPath = join(NETNS_DIR, this.names(id).netns);
    let listing = '';
    try {
      listing = await runTool('nsenter', [`--net=${nsPath}`, 'ss', '-Htun', 'state', 'established']);
    } catch {
      return 0;
    }
    const addresses = this.addressesOf(id);
    let cut = 0;
    for (const line of listing.split('\n')) {
      const cols = line.trim().split(/\s+/);
      const peer = cols[cols.length - 1];
      if (!peer) continue;
      const sep = peer.lastIndexOf(':');
      const ip = peer
        .slice(0, sep)
        .replace(/^\[|\]$/g, '')
        .replace(/%.*$/, '');
      const port = peer.slice(sep + 1);
      if (isIP(ip) === 0 || ip === this.pool.gateway4 || ip === this.pool.gateway6 || view.allowsDirect(ip)) continue;
      await runTool('nsenter', [`--net=${nsPath}`, 'ss', '-K', 'dst', ip, 'dport', '=', port]).catch(() => undefined);
      if (addresses) await this.flushConntrack(isIP(ip) === 4 ? addresses.ipv4 : addresses.ipv6, ip);
      seen.add(`${ip} ${port}`);
      cut++;
    }
    return cut;
  }

  /**
   * The same from the host's side, for sockets `ss` cannot see (gVisor's netstack keeps its own):
   * established TCP flows from the sandbox's addresses in the host's conntrack table. Deleting a
   * flow's entry makes its next packet a new connection, which the sandbox table now refuses with
   * a TCP reset: the sandbox's socket is reset as soon as it sends.
   */
  private async cutForbiddenFlows(id: string, view: EgressView, seen: Set<string>): Promise<number> {
    const addresses = this.addressesOf(id);
    if (!addresses) return 0;
    let cut = 0;
    for (const [family, source] of [
      ['ipv4', addresses.ipv4],
      ['ipv6', addresses.ipv6],
    ] as const) {
      let listing = '';
      try {
        listing = await runTool('conntrack', ['-L', '-f', family, '-p', 'tcp', '-s', source]);
      } catch {
        continue;
      }
      for (const line of listing.split('\n')) {
        if (!/\bESTABLISHED\b/.test(line)) continue;
        // The first dst=/dport= pair is the original direction: what the sandbox connected to.
        const ip = /\bdst=(\S+)/.exec(line)?.[1];
        const port = /\bdport=(\d+)/.exec(line)?.[1];
        if (!ip || !port || isIP(ip) === 0) continue;
        if (ip === this.pool.gateway4 || ip === this.pool.gateway6 || view.allowsDirect(ip) || seen.has(`${ip} ${port}`)) continue;
        seen.add(`${ip} ${port}`);
        await runTool('conntrack', ['-D', '-f', family, '-p', 'tcp', '-s', source, '-d', ip, '--dport', port]).catch(() => undefined);
        cut++;
      }
    }
    return cut;
  }

  private async flushConntrack(source: string, destination?: string): Promise<void> {
    const family = isIP(source) === 6 ? ['-f', 'ipv6'] : [];
    const args = ['-D', ...family, '-s', source, ...(destination ? ['-d', destination] : [])];
    // conntrack exits 1 when nothing matched; that is fine.
    await runTool('conntrack', args).catch(() => undefined);
  }

  /** Removes everything the sandbox's network used. Idempotent. */
  async detach(id: string): Promise<void> {
    await this.loadRecords();
    // The record is written before any resource exists, so without one there is nothing to do.
    if (!this.slotOf.has(id) && !existsSync(join(NETNS_DIR, this.names(id).netns))) return;
    const addresses = this.addressesOf(id);
    this.proxy?.cut(id);
    await this.withGroup(id, async () => {
      await this.updatePeerSets(id, 'delete').catch((err: unknown) =>
        this.options.log.warn({ sandbox: id, err: (err as Error).message }, 'could not remove a sandbox from its peers'),
      );
      this.views.delete(id);
    });
    await this.removeLink(id);
    if (addresses) {
      // Stale entries would otherwise apply to the next sandbox given this address.
      await Promise.all([this.flushConntrack(addresses.ipv4), this.flushConntrack(addresses.ipv6)]);
    }
    await rm(join(this.recordsDir, `${id}.json`), { force: true });
    this.release(id);
  }

  private async removeLink(id: string): Promise<void> {
    await Promise.all([
      ignoreMissing(runTool('nft', ['delete', 'table', 'inet', sandboxTableName(id)]), /No such file|does not exist/i),
      this.removeNames(this.names(id)),
    ]);
  }

  /** Removes the network of every sandbox this server recorded that is not in `keep`. */
  async sweep(keep: ReadonlySet<string>): Promise<string[]> {
    await this.loadRecords();
    const removed: string[] = [];
    for (const file of await readdir(this.recordsDir).catch(() => [] as string[])) {
      const id = file.replace(/\.json$/, '');
      if (keep.has(id) || !/^[a-z0-9]{20}$/.test(id)) continue;
      await this.detach(id);
      removed.push(id);
    }
    return removed;
  }

  /**
   * Stops the resolver and the proxy. The host plumbing (base table, gateway link) stays while
   * networked sandboxes exist, since they outlive the server; without any, it is removed.
   */
  async close(): Promise<void> {
    this.sparesWanted = false;
    await this.refilling;
    for (const slot of this.spares.splice(0)) {
      await this.removeNames(this.slotNames(slot)).catch(() => undefined);
      this.slots.delete(slot);
    }
    await this.resolver?.close();
    await this.proxy?.close();
    this.resolver = null;
    this.proxy = null;
    this.ready = null;
    const remaining = await readdir(this.recordsDir).catch(() => [] as string[]);
    if (remaining.length === 0) {
      await runTool('nft', ['delete', 'table', 'inet', this.baseName]).catch(() => undefined);
      if (existsSync(`/sys/class/net/${this.gatewayIf}`)) await runTool('ip', ['link', 'del', this.gatewayIf]).catch(() => undefined);
    }
  }
}

/** node's Resolver wants `ip` or `[ip6]:port` / `ip:port`. */
function formatServer(upstream: string): string {
  const { host, port } = parseHostPort(upstream);
  if (port === 53) return host;
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
