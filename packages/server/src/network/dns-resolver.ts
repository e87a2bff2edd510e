/**
 * The platform DNS resolver: the only name server a sandbox sees (its /etc/resolv.conf points
 * here). It forwards to the host's upstream servers, but with policy on both sides of the answer:
 *
 *  - only sources the network manager knows as a sandbox get recursion (never an open resolver);
 *  - names the sandbox's egress view does not allow are answered NXDOMAIN without going upstream;
 *  - A/AAAA records the view would not let the sandbox connect to are removed from answers, so an
 *    allowed name cannot be pointed at internal addresses (DNS rebinding).
 *
 * Everything a sandbox can send is bounded: message sizes, upstream concurrency, TCP connections,
 * pipelining and idle time. Handlers never throw; malformed input is dropped (UDP) or ends the
 * connection (TCP).
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { decode, encode, type Answer, type DecodedPacket, type OptAnswer } from 'dns-packet';
import { invalidArgument } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { DnsQueryRecord, DnsUpstreams, PeerAddresses, SandboxEgressView, SandboxNetLookup } from './types.js';

export type ResolverLogger = Pick<Logger, 'warn' | 'info' | 'debug'>;

export interface PlatformResolverOptions {
  lookup: SandboxNetLookup;
  upstreams: DnsUpstreams;
  onQuery?: (record: DnsQueryRecord) => void;
  logger?: ResolverLogger;
  /** How long to wait for one upstream server before trying the next (ms). */
  timeoutMs?: number;
  /** Upstream queries in flight at once, over all sandboxes; beyond it queries get SERVFAIL. */
  maxInFlight?: number;
  /** A client TCP connection with no traffic for this long is closed (ms). */
  tcpIdleTimeoutMs?: number;
}

export interface HostPort {
  host: string;
  port: number;
}

export interface ResolverEndpoint extends HostPort {
  protocol: 'udp' | 'tcp';
}

const DNS_PORT = 53;
const HEADER_BYTES = 12;
/** RFC 1035's limit; clients that send no EDNS payload size get at most this over UDP. */
const MIN_UDP_PAYLOAD = 512;
const MAX_UDP_MESSAGE = 4096;
/** The 2-byte length prefix caps TCP messages at this anyway; replies we build are checked too. */
const MAX_TCP_MESSAGE = 65535;
const MAX_NAME_BYTES = 255;
const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_MAX_IN_FLIGHT = 256;
const DEFAULT_TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS_PER_LISTENER = 256;
/** Queries one TCP connection may have outstanding before we stop reading from it. */
const MAX_PIPELINED_PER_CONNECTION = 16;
/** Replies queued for a TCP client that is not reading; beyond this the connection is dropped. */
const MAX_TCP_WRITE_BACKLOG = 1 << 20;
/** Attempts to find a port free for both UDP and TCP when asked to listen on port 0. */
const EPHEMERAL_PORT_ATTEMPTS = 5;

// Header flag bits (RFC 1035 4.1.1, RFC 4035 for AD/CD).
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_OPCODE = 0x7800;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const FLAG_CD = 0x0010;

const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;
const RCODE_REFUSED = 5;

/** A client query that passed parsing: one question, a query (not a response), sane sections. */
interface ParsedQuery {
  raw: Buffer;
  id: number;
  /** The question name lower-cased without the trailing dot, as views expect it. */
  name: string;
  /**
   * False when a label holds bytes outside letters, digits, `-` and `_`. Such a name has no
   * unambiguous text form (a label may even contain a dot), so policy cannot judge it: denied.
   */
  nameIsPlain: boolean;
  type: string;
  /** Offset just past the first question: header + question is what our own replies echo. */
  questionEnd: number;
  isStandardQuery: boolean;
  /** The largest UDP reply this client accepts (its EDNS payload size, clamped). */
  udpPayloadLimit: number;
}

interface Upstream extends HostPort {
  family: 4 | 6;
}

interface UpstreamReply {
  raw: Buffer;
  packet: DecodedPacket;
}

interface QuestionName {
  labels: Buffer[];
  end: number;
}

/** Parses `1.2.3.4`, `1.2.3.4:5353`, `::1` and `[::1]:5353`; the host must be an IP literal. */
export function parseHostPort(s: string, defaultPort = DNS_PORT): HostPort {
  const text = s.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host: string;
  let portText: string | undefined;
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (net.isIP(host) !== 6) throw invalidArgument(`not an IPv6 address in brackets: ${s}`);
  } else if (net.isIP(text) === 6) {
    host = text; // a bare IPv6 literal: its colons are not a port separator
  } else {
    const hostAndPort = /^([^:]+)(?::(\d+))?$/.exec(text);
    if (!hostAndPort) throw invalidArgument(`not an address or address:port: ${s}`);
    host = hostAndPort[1]!;
    portText = hostAndPort[2];
  }
  if (net.isIP(host) === 0) throw invalidArgument(`not an IP address: ${s}`);
  return { host, port: portText === undefined ? defaultPort : parsePort(portText, s) };
}

function parsePort(text: string, original: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port > 65535) throw invalidArgument(`bad port in ${original}`);
  return port;
}

/**
 * The `nameserver` entries of resolv.conf content, in order. Loopback stubs (127.0.0.53) are kept:
 * the resolver runs on the host, where they answer. Entries that are not IP literals are skipped.
 */
export function parseUpstreams(text: string): DnsUpstreams {
  const upstreams: DnsUpstreams = [];
  for (const line of text.split('\n')) {
    const match = /^\s*nameserver\s+([^\s#;]+)/.exec(line);
    if (!match) continue;
    try {
      parseHostPort(match[1]!);
      upstreams.push(match[1]!);
    } catch {
      // not an IP literal: resolv.conf allows none, so it is a typo we cannot use
    }
  }
  return upstreams;
}

export class PlatformResolver {
  private readonly lookup: SandboxNetLookup;
  private readonly upstreams: Upstream[];
  private readonly onQuery: ((record: DnsQueryRecord) => void) | undefined;
  private readonly logger: ResolverLogger | undefined;
  private readonly timeoutMs: number;
  private readonly maxInFlight: number;
  private readonly tcpIdleTimeoutMs: number;

  private readonly udpSockets: dgram.Socket[] = [];
  private readonly tcpServers: net.Server[] = [];
  private readonly tcpConnections = new Set<net.Socket>();
  private readonly endpoints: ResolverEndpoint[] = [];
  /** Aborted by close(): ends upstream exchanges still waiting. */
  private readonly shutdown = new AbortController();
  private closing: Promise<void> | undefined;
  private inFlight = 0;

  constructor(options: PlatformResolverOptions) {
    if (options.upstreams.length === 0) throw invalidArgument('the DNS resolver needs at least one upstream server');
    this.lookup = options.lookup;
    this.upstreams = options.upstreams.map(toUpstream);
    this.onQuery = options.onQuery;
    this.logger = options.logger;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.tcpIdleTimeoutMs = options.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_MS;
  }

  /**
   * Serves UDP and TCP on each address, on the same port for both (resolv.conf names one port).
   * Port 0 picks a free one; see addresses(). If any address fails, the resolver is closed.
   */
  async listen(addresses: HostPort[]): Promise<void> {
    if (this.closing) throw new Error('the DNS resolver is closed');
    try {
      for (const address of addresses) await this.listenOn(address);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** The bound endpoints, with the real ports. */
  addresses(): ResolverEndpoint[] {
    return this.endpoints.map((e) => ({ ...e }));
  }

  /** Stops serving and ends every connection and upstream exchange. Safe to call repeatedly. */
  close(): Promise<void> {
    this.closing ??= this.closeAll();
    return this.closing;
  }

  private async closeAll(): Promise<void> {
    this.shutdown.abort();
    for (const connection of this.tcpConnections) connection.destroy();
    await Promise.all([...this.udpSockets.map(closeUdpSocket), ...this.tcpServers.map(closeTcpServer)]);
  }

  private async listenOn(address: HostPort): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = await this.bindUdp(address);
      const port = udp.address().port;
      try {
        const tcp = await this.listenTcp({ host: address.host, port });
        this.udpSockets.push(udp);
        this.tcpServers.push(tcp);
        this.endpoints.push({ host: address.host, port, protocol: 'udp' }, { host: address.host, port, protocol: 'tcp' });
        return;
      } catch (err) {
        await closeUdpSocket(udp);
        // With port 0 the kernel chose a UDP port whose TCP twin may be taken: pick again.
        const retryable = address.port === 0 && errorCode(err) === 'EADDRINUSE' && attempt < EPHEMERAL_PORT_ATTEMPTS;
        if (!retryable) throw err;
      }
    }
  }

  private bindUdp({ host, port }: HostPort): Promise<dgram.Socket> {
    const ipv6 = net.isIPv6(host);
    // ipv6Only: a `::` listener must not also take the IPv4 port a `0.0.0.0` listener may want.
    const socket = dgram.createSocket({ type: ipv6 ? 'udp6' : 'udp4', ipv6Only: ipv6 });
    socket.on('message', (message, remote) => {
      this.handleUdpMessage(socket, message, remote).catch((err: unknown) => this.logger?.warn({ err }, 'dns resolver: udp query failed'));
    });
    return new Promise((resolve, reject) => {
      socket.once('error', (err) => {
        void closeUdpSocket(socket);
        reject(err);
      });
      socket.bind({ address: host, port, exclusive: true }, () => {
        socket.removeAllListeners('error');
        socket.on('error', (err) => this.logger?.warn({ err }, 'dns resolver: udp socket error'));
        resolve(socket);
      });
    });
  }

  private listenTcp({ host, port }: HostPort): Promise<net.Server> {
    const server = net.createServer((connection) => this.acceptTcp(connection));
    server.maxConnections = MAX_TCP_CONNECTIONS_PER_LISTENER;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, ipv6Only: net.isIPv6(host) }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.logger?.warn({ err }, 'dns resolver: tcp listener error'));
        resolve(server);
      });
    });
  }

  private async handleUdpMessage(socket: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): Promise<void> {
    if (message.length > MAX_UDP_MESSAGE) return;
    const query = parseQuery(message);
    if (!query) return;
    const reply = await this.answer(query, normaliseIp(remote.address));
    const fitted = reply.length <= query.udpPayloadLimit ? reply : truncatedReply(query, reply);
    try {
      socket.send(fitted, remote.port, remote.address, (err) => {
        if (err) this.logger?.debug({ err }, 'dns resolver: udp reply not sent');
      });
    } catch (err) {
      // the socket was closed while the query was upstream
      this.logger?.debug({ err }, 'dns resolver: udp reply not sent');
    }
  }

  private acceptTcp(connection: net.Socket): void {
    if (this.closing) {
      connection.destroy();
      return;
    }
    this.tcpConnections.add(connection);
    connection.on('close', () => this.tcpConnections.delete(connection));
    connection.on('error', (err) => this.logger?.debug({ err }, 'dns resolver: tcp connection error'));
    connection.setTimeout(this.tcpIdleTimeoutMs, () => connection.destroy());

    const sourceIp = normaliseIp(connection.remoteAddress ?? '');
    const reader = new LengthPrefixedReader();
    let outstanding = 0;
    // Start queries up to the pipelining cap; past it, stop reading so the client's excess waits
    // in its own buffers, not ours.
    const startQueries = (): void => {
      while (outstanding < MAX_PIPELINED_PER_CONNECTION) {
        const frame = reader.next();
        if (!frame) break;
        const query = parseQuery(frame);
        if (!query) {
          connection.destroy();
          return;
        }
        outstanding++;
        this.answer(query, sourceIp)
          .then((reply) => {
            outstanding--;
            if (connection.destroyed) return;
            connection.write(withLengthPrefix(reply));
            if (connection.writableLength > MAX_TCP_WRITE_BACKLOG) connection.destroy();
            else startQueries();
          })
          .catch((err: unknown) => {
            this.logger?.warn({ err }, 'dns resolver: tcp query failed');
            connection.destroy();
          });
      }
      if (outstanding >= MAX_PIPELINED_PER_CONNECTION) connection.pause();
      else connection.resume();
    };
    connection.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      startQueries();
    });
  }

  /** The reply for one parsed query. Never rejects: anything unexpected becomes SERVFAIL. */
  private async answer(query: ParsedQuery, sourceIp: string): Promise<Buffer> {
    const view = this.viewFor(sourceIp);
    if (!view) return replyWithRcode(query, RCODE_REFUSED, { recursionAvailable: false });
    // Zone transfers, NOTIFY, UPDATE: not a lookup, and nothing a sandbox needs.
    if (!query.isStandardQuery) return replyWithRcode(query, RCODE_NOTIMP);
    try {
      return await this.resolveFor(view, query);
    } catch (err) {
      this.logger?.warn({ err, sandboxId: view.sandboxId, name: query.name }, 'dns resolver: query failed');
      this.record(view, query, 'failed');
      return replyWithRcode(query, RCODE_SERVFAIL);
    }
  }

  private async resolveFor(view: SandboxEgressView, query: ParsedQuery): Promise<Buffer> {
    const peer = query.nameIsPlain ? (view.peer?.(query.name) ?? null) : null;
    if (peer) {
      // A peer's name (another service of the environment) is answered here, never upstream.
      this.record(view, query, 'allowed');
      return peerReply(query, peer);
    }
    if (!query.nameIsPlain || !view.allowsName(query.name)) {
      this.record(view, query, 'denied');
      return replyWithRcode(query, RCODE_NXDOMAIN);
    }
    if (this.inFlight >= this.maxInFlight) {
      this.logger?.warn({ sandboxId: view.sandboxId, inFlight: this.inFlight }, 'dns resolver: too many upstream queries');
      this.record(view, query, 'failed');
      return replyWithRcode(query, RCODE_SERVFAIL);
    }
    this.inFlight++;
    let upstreamReply: UpstreamReply | null;
    try {
      upstreamReply = await this.forward(query);
    } finally {
      this.inFlight--;
    }
    const filtered = upstreamReply && this.withoutForbiddenAddresses(upstreamReply, view, query);
    if (!filtered || filtered.length > MAX_TCP_MESSAGE) {
      this.record(view, query, 'failed');
      return replyWithRcode(query, RCODE_SERVFAIL);
    }
    this.record(view, query, 'allowed');
    return withId(filtered, query.id);
  }

  private viewFor(sourceIp: string): SandboxEgressView | null {
    try {
      return this.lookup(sourceIp);
    } catch (err) {
      // fail closed: a source we cannot place is a stranger
      this.logger?.warn({ err, sourceIp }, 'dns resolver: sandbox lookup failed');
      return null;
    }
  }

  private record(view: SandboxEgressView, query: ParsedQuery, verdict: DnsQueryRecord['verdict']): void {
    if (!this.onQuery) return;
    const record: DnsQueryRecord = { sandboxId: view.sandboxId, name: query.name, type: query.type, verdict, at: new Date().toISOString() };
    try {
      this.onQuery(record);
    } catch (err) {
      this.logger?.warn({ err }, 'dns resolver: onQuery callback threw');
    }
  }

  /** Asks each upstream in turn over UDP, retrying over TCP when a UDP reply is truncated. */
  private async forward(query: ParsedQuery): Promise<UpstreamReply | null> {
    for (const upstream of this.upstreams) {
      const reply = await this.exchangeUdp(upstream, query);
      if (!reply) continue;
      if (!reply.packet.flag_tc) return reply;
      // Falling back to the truncated reply still lets the client retry over TCP itself.
      return (await this.exchangeTcp(upstream, query)) ?? reply;
    }
    return null;
  }

  /**
   * One UDP exchange on a fresh socket: a random source port plus a random transaction id, and
   * a connected socket so the kernel drops datagrams from anyone but the upstream.
   */
  private exchangeUdp(upstream: Upstream, query: ParsedQuery): Promise<UpstreamReply | null> {
    const upstreamId = randomInt(0, 0x10000);
    const socket = dgram.createSocket(upstream.family === 6 ? 'udp6' : 'udp4');
    return this.exchange(
      () => closeUdpSocket(socket),
      (settle) => {
        socket.on('error', (err) => {
          this.logger?.debug({ err, upstream }, 'dns resolver: upstream udp error');
          settle(null);
        });
        socket.on('message', (message, remote) => {
          if (!isFrom(remote, upstream)) return;
          const reply = matchReply(message, upstreamId, query);
          if (reply) settle(reply);
        });
        socket.connect(upstream.port, upstream.host, () => {
          try {
            socket.send(withId(query.raw, upstreamId), (err) => {
              if (err) settle(null);
            });
          } catch {
            settle(null); // closed by a timeout or close() before the connect completed
          }
        });
      },
    );
  }

  /** One TCP exchange, for answers too large for UDP. */
  private exchangeTcp(upstream: Upstream, query: ParsedQuery): Promise<UpstreamReply | null> {
    const upstreamId = randomInt(0, 0x10000);
    const socket = net.connect({ host: upstream.host, port: upstream.port });
    return this.exchange(
      () => void socket.destroy(),
      (settle) => {
        const reader = new LengthPrefixedReader();
        socket.on('connect', () => socket.write(withLengthPrefix(withId(query.raw, upstreamId))));
        socket.on('data', (chunk: Buffer) => {
          // the connection is ours alone: its first message is the answer or nothing is
          reader.push(chunk);
          const frame = reader.next();
          if (frame) settle(matchReply(frame, upstreamId, query));
        });
        socket.on('error', (err) => {
          this.logger?.debug({ err, upstream }, 'dns resolver: upstream tcp error');
          settle(null);
        });
        socket.on('close', () => settle(null));
      },
    );
  }

  /** Runs one upstream exchange bounded by the timeout and by close(), releasing it once settled. */
  private exchange(release: () => unknown, start: (settle: (reply: UpstreamReply | null) => void) => void): Promise<UpstreamReply | null> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (reply: UpstreamReply | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.shutdown.signal.removeEventListener('abort', onShutdown);
        release();
        resolve(reply);
      };
      const onShutdown = (): void => settle(null);
      const timer = setTimeout(onShutdown, this.timeoutMs);
      if (this.shutdown.signal.aborted) return settle(null);
      this.shutdown.signal.addEventListener('abort', onShutdown, { once: true });
      try {
        start(settle);
      } catch (err) {
        this.logger?.debug({ err }, 'dns resolver: upstream exchange could not start');
        settle(null);
      }
    });
  }

  /**
   * The upstream reply without A/AAAA records whose address the view rejects (rebinding an allowed
   * name onto metadata, the host or a private range). Unchanged bytes when nothing is removed;
   * null when the pruned packet cannot be encoded.
   */
  private withoutForbiddenAddresses(reply: UpstreamReply, view: SandboxEgressView, query: ParsedQuery): Buffer | null {
    const { packet } = reply;
    const removed: string[] = [];
    const keepAllowed = (records: Answer[] | undefined): Answer[] | undefined =>
      records?.filter((record) => {
        if (record.type !== 'A' && record.type !== 'AAAA') return true;
        if (view.allowsResolvedAddress(record.data)) return true;
        removed.push(record.data);
        return false;
      });
    const pruned = {
      ...packet,
      answers: keepAllowed(packet.answers),
      authorities: keepAllowed(packet.authorities),
      additionals: keepAllowed(packet.additionals),
    };
    if (removed.length === 0) return reply.raw;
    this.logger?.info({ sandboxId: view.sandboxId, name: query.name, removed }, 'dns resolver: removed forbidden addresses from an answer');
    try {
      return encode(pruned);
    } catch (err) {
      this.logger?.warn({ err, name: query.name }, 'dns resolver: could not re-encode a filtered answer');
      return null;
    }
  }
}

function toUpstream(text: string): Upstream {
  const { host, port } = parseHostPort(text);
  if (port === 0) throw invalidArgument(`upstream DNS server needs a port: ${text}`);
  return { host, port, family: net.isIPv6(host) ? 6 : 4 };
}

/** Parses what a client sent; null for anything that is not a single plain question. */
function parseQuery(raw: Buffer): ParsedQuery | null {
  if (raw.length < HEADER_BYTES) return null;
  // Exactly one question and no answer/authority records: a policy check of the first question
  // must cover everything forwarded upstream.
  const [questionCount, answerCount, authorityCount] = [raw.readUInt16BE(4), raw.readUInt16BE(6), raw.readUInt16BE(8)];
  if (questionCount !== 1 || answerCount !== 0 || authorityCount !== 0) return null;
  const questionName = readQuestionName(raw);
  if (!questionName || questionName.end + 4 > raw.length) return null;
  let packet: DecodedPacket;
  try {
    packet = decode(raw);
  } catch {
    return null;
  }
  const question = packet.questions?.[0];
  if (packet.flag_qr || !question) return null; // never answer a response: no reflection loops
  return {
    raw,
    id: raw.readUInt16BE(0),
    name: normaliseName(question.name),
    nameIsPlain: questionName.labels.every(isPlainLabel),
    type: question.type,
    questionEnd: questionName.end + 4,
    isStandardQuery: (raw.readUInt16BE(2) & FLAG_OPCODE) === 0,
    udpPayloadLimit: udpPayloadLimitOf(packet),
  };
}

/**
 * The first question's labels as raw bytes (dns-packet's text form joins labels with dots, which
 * hides a dot inside a label). Compression is refused: a first question has nothing to point to.
 */
function readQuestionName(raw: Buffer): QuestionName | null {
  const labels: Buffer[] = [];
  let offset = HEADER_BYTES;
  let nameBytes = 1; // the terminating zero
  for (;;) {
    const length = raw[offset];
    if (length === undefined || length > 63) return null;
    if (length === 0) return { labels, end: offset + 1 };
    nameBytes += length + 1;
    if (nameBytes > MAX_NAME_BYTES || offset + 1 + length > raw.length) return null;
    labels.push(raw.subarray(offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
}

function isPlainLabel(label: Buffer): boolean {
  return /^[A-Za-z0-9_-]+$/.test(label.toString('latin1'));
}

/** Lower-case without the trailing dot; the root name becomes the empty string. */
function normaliseName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function udpPayloadLimitOf(packet: DecodedPacket): number {
  const opt = packet.additionals?.find((record): record is OptAnswer => record.type === 'OPT');
  const advertised = opt?.udpPayloadSize ?? MIN_UDP_PAYLOAD;
  return Math.min(Math.max(advertised, MIN_UDP_PAYLOAD), MAX_UDP_MESSAGE);
}

/** A reply to our upstream query: the right id, a response, and the question we asked. */
function matchReply(message: Buffer, upstreamId: number, query: ParsedQuery): UpstreamReply | null {
  if (message.length < HEADER_BYTES || message.readUInt16BE(0) !== upstreamId) return null;
  let packet: DecodedPacket;
  try {
    packet = decode(message);
  } catch {
    return null;
  }
  const question = packet.questions?.[0];
  if (!packet.flag_qr || !question) return null;
  if (normaliseName(question.name) !== query.name || question.type !== query.type) return null;
  return { raw: message, packet };
}

/**
 * A reply with no records: the client's header and question (so its id, opcode, RD/CD and the
 * question's exact case come back), the given rcode, and RA unless recursion is refused.
 */
function replyWithRcode(query: ParsedQuery, rcode: number, { recursionAvailable = true } = {}): Buffer {
  const queryFlags = query.raw.readUInt16BE(2);
  const flags = FLAG_QR | (queryFlags & (FLAG_OPCODE | FLAG_RD | FLAG_CD)) | (recursionAvailable ? FLAG_RA : 0) | rcode;
  return headerAndQuestion(query, flags);
}

const PEER_TTL_SECONDS = 5;

/** An authoritative answer with the peer's A or AAAA record (no records for other types: NODATA). */
function peerReply(query: ParsedQuery, peer: PeerAddresses): Buffer {
  const queryFlags = query.raw.readUInt16BE(2);
  const flags = FLAG_QR | FLAG_AA | (queryFlags & (FLAG_OPCODE | FLAG_RD | FLAG_CD)) | FLAG_RA;
  const data = query.type === 'A' ? peer.ipv4 : query.type === 'AAAA' ? peer.ipv6 : null;
  if (data === null) return headerAndQuestion(query, flags);
  // The name as asked (case included: some clients randomize it and check the echo).
  const name = decode(query.raw).questions?.[0]?.name ?? query.name;
  const type = query.type as 'A' | 'AAAA';
  return encode({
    type: 'response',
    id: query.id,
    flags,
    questions: [{ name, type, class: 'IN' }],
    answers: [{ name, type, class: 'IN', ttl: PEER_TTL_SECONDS, data }],
  });
}

/** The UDP stand-in for a reply too large for the client: same header, TC set, no records. */
function truncatedReply(query: ParsedQuery, fullReply: Buffer): Buffer {
  return headerAndQuestion(query, fullReply.readUInt16BE(2) | FLAG_TC);
}

function headerAndQuestion(query: ParsedQuery, flags: number): Buffer {
  const reply = Buffer.from(query.raw.subarray(0, query.questionEnd));
  reply.writeUInt16BE(flags, 2);
  reply.writeUInt16BE(1, 4);
  reply.writeUInt16BE(0, 6);
  reply.writeUInt16BE(0, 8);
  reply.writeUInt16BE(0, 10);
  return reply;
}

/** A copy of the message carrying a different transaction id. */
function withId(message: Buffer, id: number): Buffer {
  const copy = Buffer.from(message);
  copy.writeUInt16BE(id, 0);
  return copy;
}

function withLengthPrefix(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

/** IPv4 clients of a dual-stack socket appear as ::ffff:a.b.c.d; the lookup knows a.b.c.d. */
function normaliseIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return mapped ? mapped[1]! : ip;
}

function isFrom(remote: dgram.RemoteInfo, upstream: Upstream): boolean {
  const withoutZone = (ip: string): string => ip.replace(/%.*$/, '').toLowerCase();
  return remote.port === upstream.port && withoutZone(remote.address) === withoutZone(upstream.host);
}

function errorCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function closeUdpSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

function closeTcpServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Splits a TCP byte stream into 2-byte length-prefixed DNS messages. Chunks are joined once per
 * complete message, so a message trickled in byte by byte costs linear, not quadratic, copying.
 */
class LengthPrefixedReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next complete message, or null until more bytes arrive. */
  next(): Buffer | null {
    if (this.buffered < 2) return null;
    const end = 2 + this.nextLength();
    if (this.buffered < end) return null;
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    const rest = joined.subarray(end);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return joined.subarray(2, end);
  }

  private nextLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= 2) return first.readUInt16BE(0);
    return (first[0]! << 8) | this.chunks[1]![0]!; // the prefix straddles two chunks
  }
}
