/**
 * The egress proxy: sandboxes whose egress policy allows DNS names have their outgoing TCP to
 * ports 80 and 443 redirected here by nftables (DNAT). The proxy enforces *names*, not IPs: it reads
 * the name the connection is for (HTTP Host / TLS SNI, see ./sniff.ts), checks it against the
 * sandbox's allowlist, resolves it itself through the platform's upstream DNS, keeps only addresses
 * the sandbox may reach, and only then connects. A raw-IP connect or a spoofed /etc/hosts entry
 * therefore reaches nothing the allowlist does not name: the sandbox's chosen destination IP is
 * never used.
 *
 * A sandbox with secrets bound to a host (`injectHeader`) has its plain-HTTP requests to that host
 * served by ./header-injection.ts, which adds the header; TLS to such a host is refused (the proxy
 * cannot add a header inside TLS, and a request without it would fail in a less obvious way).
 *
 * Known limit (inherent to not terminating TLS): one allowed name vouches for the whole connection.
 * Later requests on a kept-alive HTTP connection, or the HTTP Host inside TLS, can name other
 * virtual hosts on the *same* upstream addresses (domain fronting). They cannot reach other
 * addresses.
 */

import net, { type Server, type Socket } from 'node:net';
import { plainAddress } from './ranges.js';
import type { Logger } from '../core/logger.js';
import { MAX_SNIFF_BYTES, parseHttpHost, parseTlsClientHelloSni } from './sniff.js';
import { HeaderInjectingRelay } from './header-injection.js';
import type { InjectedHeader } from '../core/egress-headers.js';
import type { SandboxEgressView, SandboxNetLookup } from './types.js';

/** One listening socket, standing for one original destination port. */
export interface EgressListenerSpec {
  host: string;
  /** 0 picks a free port (tests); see {@link EgressProxy.boundPorts}. */
  port: number;
  /** The original destination port, used to connect upstream (80, 443). */
  targetPort: number;
  /** How to learn the name: HTTP/1.x Host header, or TLS ClientHello SNI. */
  kind: 'http' | 'tls';
}

export interface EgressDecision {
  sandboxId: string | null;
  name: string | null;
  port: number;
  verdict: 'allowed' | 'denied';
  reason?: string;
}

/** A live proxied connection of one sandbox. */
export interface ProxiedConnection {
  name: string;
  address: string;
  port: number;
}

export interface EgressProxyOptions {
  lookup: SandboxNetLookup;
  /** A and AAAA addresses of a name, via the platform's upstream DNS. */
  resolve: (name: string) => Promise<string[]>;
  /** Per upstream connect attempt, and for `resolve` (default 10 s). */
  connectTimeoutMs?: number;
  /** How long a client may take to send its Host / ClientHello (default 10 s). */
  sniffTimeoutMs?: number;
  /** Concurrent connections, all sandboxes together (default 1024). */
  maxConnections?: number;
  /** Concurrent connections of one sandbox (default 256). */
  maxConnectionsPerSandbox?: number;
  logger?: Logger;
  onDecision?: (d: EgressDecision) => void;
  /** Called once per connection when its sandbox side closes: bytes from and to the sandbox. */
  onTraffic?: (fromSandbox: number, toSandbox: number) => void;
  /** Headers to add to a sandbox's plain-HTTP requests to a host (its `injectHeader` secrets). */
  injectedHeaders?: (sandboxId: string, host: string) => InjectedHeader[];
}

interface Conn {
  sandboxId: string;
  source: string;
  client: Socket;
  upstream: Socket | null;
  name: string | null;
  /** Set while connecting to, and once connected to, an upstream address. */
  address: string | null;
  port: number;
  established: boolean;
  /** Torn down (or being): nothing new may start for it. */
  closed: boolean;
  /** Sockets of this connection not yet closed; the connection is untracked at zero. */
  open: number;
  timers: Set<NodeJS.Timeout>;
}

/** How long a side that finished cleanly waits for the other side to flush and close. */
const LINGER_MS = 30_000;
/** How long a refused HTTP client gets to read the answer before its socket is destroyed. */
const REFUSE_LINGER_MS = 2_000;

export class EgressProxy {
  private readonly lookup: SandboxNetLookup;
  private readonly resolve: (name: string) => Promise<string[]>;
  private readonly connectTimeoutMs: number;
  private readonly sniffTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly maxPerSandbox: number;
  private readonly logger: Logger | undefined;
  private readonly onDecision: ((d: EgressDecision) => void) | undefined;
  private readonly onTraffic: ((fromSandbox: number, toSandbox: number) => void) | undefined;
  private readonly injectedHeaders: (sandboxId: string, host: string) => InjectedHeader[];
  private readonly injecting: HeaderInjectingRelay;

  private readonly servers: { server: Server; spec: EgressListenerSpec }[] = [];
  private readonly all = new Set<Conn>();
  private readonly bySandbox = new Map<string, Set<Conn>>();
  private closing = false;

  constructor(options: EgressProxyOptions) {
    this.lookup = options.lookup;
    this.resolve = options.resolve;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.sniffTimeoutMs = options.sniffTimeoutMs ?? 10_000;
    this.maxConnections = options.maxConnections ?? 1024;
    this.maxPerSandbox = options.maxConnectionsPerSandbox ?? 256;
    this.logger = options.logger;
    this.onDecision = options.onDecision;
    this.onTraffic = options.onTraffic;
    this.injectedHeaders = options.injectedHeaders ?? (() => []);
    this.injecting = new HeaderInjectingRelay(options.logger);
  }

  /**
   * Starts one listener per spec. Resolves with the ports actually bound, in spec order (port 0
   * picks a free one). If one fails to bind, the ones started by this call are closed again and the
   * error is thrown. May be called again to add listeners (e.g. the IPv6 twins on the same ports).
   */
  async listen(listeners: EgressListenerSpec[]): Promise<number[]> {
    if (this.closing) throw new Error('egress proxy is closed');
    const started: { server: Server; spec: EgressListenerSpec }[] = [];
    try {
      for (const requested of listeners) {
        const server = net.createServer({ allowHalfOpen: true });
        const spec = { ...requested };
        server.on('connection', (socket: Socket) => this.onConnection(socket, spec));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: requested.host, port: requested.port }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', (err) => this.logger?.warn({ err: err.message, listener: spec }, 'egress proxy listener error'));
        const address = server.address();
        if (address && typeof address === 'object') spec.port = address.port;
        started.push({ server, spec });
      }
    } catch (err) {
      await Promise.all(started.map(({ server }) => closeServer(server)));
      throw err;
    }
    this.servers.push(...started);
    return started.map(({ spec }) => spec.port);
  }

  /** Ports actually bound by every listen() so far, in order. */
  boundPorts(): number[] {
    return this.servers.map(({ spec }) => spec.port);
  }

  /** Live proxied (upstream-connected) connections of a sandbox. */
  connections(sandboxId: string): ProxiedConnection[] {
    const out: ProxiedConnection[] = [];
    for (const conn of this.bySandbox.get(sandboxId) ?? []) {
      if (conn.established && !conn.closed && conn.name !== null && conn.address !== null) {
        out.push({ name: conn.name, address: conn.address, port: conn.port });
      }
    }
    return out;
  }

  /** How many client connections are being handled (sniffing, connecting or proxied). */
  get activeConnections(): number {
    return this.all.size;
  }

  /**
   * Destroys a sandbox's connections that `stillAllowed` rejects (all of them without a predicate)
   * and returns how many. With a predicate, connections still sniffing or resolving are left alone:
   * they check the (by then updated) policy again just before they start relaying.
   */
  cut(sandboxId: string, stillAllowed?: (c: ProxiedConnection) => boolean): number {
    let count = 0;
    for (const conn of [...(this.bySandbox.get(sandboxId) ?? [])]) {
      if (conn.closed) continue;
      if (stillAllowed) {
        if (conn.name === null || conn.address === null) continue;
        if (stillAllowed({ name: conn.name, address: conn.address, port: conn.port })) continue;
      }
      this.abort(conn);
      count++;
    }
    if (count > 0) this.logger?.info({ sandboxId, cut: count }, 'egress connections cut');
    return count;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    this.closing = true;
    for (const conn of [...this.all]) this.abort(conn);
    const servers = this.servers.splice(0);
    await Promise.all(servers.map(({ server }) => closeServer(server)));
  }

  // --- per connection ----------------------------------------------------------------------------

  private onConnection(client: Socket, spec: EgressListenerSpec): void {
    client.on('error', () => {}); // every failure surfaces as 'close', handled below
    if (this.closing) {
      client.destroy();
      return;
    }
    const source = normalizeSourceAddress(client.remoteAddress);
    const view = source === null ? null : this.safeLookup(source);
    if (source === null || view === null) {
      // Not one of our sandboxes: never relay for it (no open relay).
      this.decide({ sandboxId: null, name: null, port: spec.targetPort, verdict: 'denied', reason: 'unknown source' }, source);
      client.destroy();
      return;
    }
    const mine = this.bySandbox.get(view.sandboxId);
    if (this.all.size >= this.maxConnections || (mine?.size ?? 0) >= this.maxPerSandbox) {
      this.decide({ sandboxId: view.sandboxId, name: null, port: spec.targetPort, verdict: 'denied', reason: 'too many connections' });
      client.destroy();
      return;
    }
    const conn: Conn = {
      sandboxId: view.sandboxId,
      source,
      client,
      upstream: null,
      name: null,
      address: null,
      port: spec.targetPort,
      established: false,
      closed: false,
      open: 0,
      timers: new Set(),
    };
    this.track(conn);
    this.watch(conn, client);
    if (this.onTraffic) {
      const report = this.onTraffic;
      client.once('close', () => {
        try {
          report(client.bytesRead, client.bytesWritten);
        } catch (err) {
          this.logger?.warn({ err: (err as Error).message }, 'egress onTraffic callback threw');
        }
      });
    }
    client.setNoDelay(true);
    client.once('close', () => {
      if (!conn.established) this.abort(conn); // an upstream being connected is dropped with it
    });
    this.sniff(conn, spec);
  }

  /** Reads until the sniffer decides, then hands over to {@link route}. */
  private sniff(conn: Conn, spec: EgressListenerSpec): void {
    const { client } = conn;
    const parse = spec.kind === 'http' ? parseHttpHost : parseTlsClientHelloSni;
    let head: Buffer = Buffer.alloc(0);
    const finish = (): void => {
      client.off('data', onData);
      client.off('end', onEnd);
      this.clearTimer(conn, timer);
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const result = parse(head.length > MAX_SNIFF_BYTES ? head.subarray(0, MAX_SNIFF_BYTES) : head);
      if (result.status === 'need-more') return;
      finish();
      client.pause(); // anything further stays buffered until relayed
      const name = result.status === 'invalid' ? undefined : 'host' in result ? result.host : result.serverName;
      void this.route(conn, spec, name, head).catch((err: unknown) => {
        this.logger?.warn({ sandboxId: conn.sandboxId, err: (err as Error).message }, 'egress proxy connection failed');
        this.abort(conn);
      });
    };
    const onEnd = (): void => {
      finish();
      this.deny(conn, spec, null, 'incomplete request');
    };
    const timer = this.setTimer(conn, this.sniffTimeoutMs, () => {
      finish();
      this.deny(conn, spec, null, 'sniff timeout');
    });
    client.on('data', onData);
    client.on('end', onEnd);
  }

  /**
   * Decides on the sniffed name (undefined: unparseable, null: none), resolves it, connects, and
   * relays. Every path ends in a relayed connection, a refusal, or {@link abort}.
   */
  private async route(conn: Conn, spec: EgressListenerSpec, rawName: string | null | undefined, head: Buffer): Promise<void> {
    if (conn.closed) return;
    if (rawName === undefined) return this.deny(conn, spec, null, 'unparseable');
    if (rawName === null) return this.deny(conn, spec, null, 'no name');
    const classified = classifyName(rawName);
    if (classified.kind === 'ip') return this.deny(conn, spec, classified.name, 'ip literal');
    if (classified.kind === 'invalid') return this.deny(conn, spec, null, 'invalid name');
    const name = classified.name;

    // The freshest policy: the sandbox's may have changed while the client was sending its head.
    const view = this.currentView(conn);
    if (!view) return this.deny(conn, spec, name, 'unknown source');
    if (!view.allowsName(name)) return this.deny(conn, spec, name, 'not allowed');
    const injects = this.injectedHeaders(conn.sandboxId, name).length > 0;
    if (injects && spec.kind === 'tls')
      return this.deny(conn, spec, name, 'a secret header is injected for this host over plain HTTP only');
    conn.name = name;

    let resolved: string[];
    try {
      resolved = await withTimeout(this.resolve(name), this.connectTimeoutMs, 'resolve timed out');
    } catch (err) {
      this.logger?.debug({ sandboxId: conn.sandboxId, name, err: (err as Error).message }, 'egress resolve failed');
      return this.fail(conn, spec, name, 'resolution failed', true);
    }
    if (conn.closed) return;
    const addresses = orderAddresses(resolved);
    if (addresses.length === 0) return this.fail(conn, spec, name, 'resolution failed', true);
    const reachable = addresses.filter((ip) => view.allowsResolvedAddress(ip));
    if (reachable.length === 0) return this.deny(conn, spec, name, 'resolved address blocked');
    this.decide({ sandboxId: conn.sandboxId, name, port: conn.port, verdict: 'allowed' });

    let upstream: Socket | null = null;
    for (const address of reachable) {
      if (conn.closed) return;
      conn.address = address;
      try {
        upstream = await this.connectUpstream(conn, address);
        break;
      } catch (err) {
        this.logger?.debug({ sandboxId: conn.sandboxId, name, address, err: (err as Error).message }, 'egress connect failed');
      }
    }
    if (conn.closed) {
      upstream?.destroy();
      return;
    }
    if (!upstream) return this.fail(conn, spec, name, 'connect failed');

    // Last check before any byte goes out, against the policy as it is now: cut() only sees
    // connections once they have an address, so a change made while resolving is caught here.
    const now = this.currentView(conn);
    if (!now || !now.allowsName(name) || !now.allowsResolvedAddress(conn.address!)) {
      upstream.destroy();
      return this.deny(conn, spec, name, 'policy changed');
    }
    if (injects) this.relayInjecting(conn, upstream, head);
    else this.relay(conn, upstream, head);
  }

  /**
   * Serves the connection request by request, each sent upstream with the sandbox's headers for
   * the name (./header-injection.ts) over a connection of its own to the chosen address; the first
   * is the one already open.
   */
  private relayInjecting(conn: Conn, first: Socket, head: Buffer): void {
    conn.established = true;
    let next: Socket | null = first;
    first.on('error', () => {});
    conn.client.once('close', () => conn.upstream?.destroy());
    this.injecting.serve(conn.client, head, {
      sandboxId: conn.sandboxId,
      name: conn.name!,
      headers: () => this.injectedHeaders(conn.sandboxId, conn.name!),
      upstream: () => {
        if (next) {
          const socket = next;
          next = null;
          return socket;
        }
        const socket = net.connect({ host: conn.address!, port: conn.port });
        socket.on('error', () => {}); // the request reports it
        conn.upstream = socket;
        this.watch(conn, socket);
        return socket;
      },
    });
    this.logger?.debug({ sandboxId: conn.sandboxId, name: conn.name, address: conn.address }, 'egress relaying with injected headers');
  }

  /** One connect attempt; the socket is registered on the connection so abort() can drop it. */
  private connectUpstream(conn: Conn, address: string): Promise<Socket> {
    return new Promise<Socket>((resolve, reject) => {
      const upstream = net.connect({ host: address, port: conn.port, allowHalfOpen: true });
      conn.upstream = upstream;
      this.watch(conn, upstream);
      const timer = this.setTimer(conn, this.connectTimeoutMs, () => upstream.destroy(new Error('connect timed out')));
      const settle = (err?: Error): void => {
        this.clearTimer(conn, timer);
        upstream.off('connect', onConnect);
        upstream.off('error', onError);
        upstream.off('close', onClose);
        if (err) {
          upstream.on('error', () => {});
          upstream.destroy();
          if (conn.upstream === upstream) conn.upstream = null;
          reject(err);
        } else {
          resolve(upstream);
        }
      };
      const onConnect = (): void => settle();
      const onError = (err: Error): void => settle(err);
      const onClose = (): void => settle(new Error('closed while connecting'));
      upstream.once('connect', onConnect);
      upstream.once('error', onError);
      upstream.once('close', onClose);
    });
  }

  /** Writes the sniffed bytes upstream, then pipes both ways until both sides are done. */
  private relay(conn: Conn, upstream: Socket, head: Buffer): void {
    const { client } = conn;
    conn.established = true;
    upstream.on('error', () => {}); // surfaces as 'close'
    upstream.setNoDelay(true);
    // A side that closed abnormally (error, reset, destroyed) takes the other with it at once. A side
    // that finished cleanly (both directions ended) already passed its end on through the pipe; the
    // other side gets time to flush, then goes too.
    const onClose = (other: Socket) => (hadError: boolean) => {
      const self = other === upstream ? client : upstream;
      if (hadError || !self.readableEnded || !self.writableFinished) {
        other.destroy();
      } else if (!other.destroyed) {
        this.setTimer(conn, LINGER_MS, () => other.destroy());
      }
    };
    client.on('close', onClose(upstream));
    upstream.on('close', onClose(client));
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
    if (client.readableEnded) upstream.end(); // the client's FIN came before the pipe existed
    this.logger?.debug({ sandboxId: conn.sandboxId, name: conn.name, address: conn.address, port: conn.port }, 'egress relaying');
  }

  /** A policy refusal: HTTP gets a 403 with a reason, TLS is just closed. */
  private deny(conn: Conn, spec: EgressListenerSpec, name: string | null, reason: string): void {
    this.decide({ sandboxId: conn.sandboxId, name, port: conn.port, verdict: 'denied', reason });
    if (spec.kind !== 'http' || reason === 'unparseable' || reason === 'sniff timeout' || reason === 'incomplete request') {
      this.abort(conn);
      return;
    }
    const body =
      reason === 'no name'
        ? 'Hutch egress proxy: the request has no Host header, so it cannot be checked against the sandbox egress allowlist.\n'
        : reason === 'resolved address blocked'
          ? `Hutch egress proxy: ${name} resolves only to addresses this sandbox may not reach.\n`
          : name !== null && reason !== 'unknown source'
            ? `Hutch egress proxy: host ${name} is not in this sandbox's egress allowlist.\n`
            : "Hutch egress proxy: this host is not in this sandbox's egress allowlist.\n";
    this.refuseHttp(conn, '403 Forbidden', body);
  }

  /**
   * A failure to reach a name the policy allows: HTTP gets a 502, TLS is closed. Before the allow
   * decision was reported (resolution failed), it is reported as a denial with that reason.
   */
  private fail(conn: Conn, spec: EgressListenerSpec, name: string, reason: string, report = false): void {
    if (report) this.decide({ sandboxId: conn.sandboxId, name, port: conn.port, verdict: 'denied', reason });
    else this.logger?.debug({ sandboxId: conn.sandboxId, name, port: conn.port, reason }, 'egress upstream failure');
    if (spec.kind !== 'http') {
      this.abort(conn);
      return;
    }
    this.refuseHttp(conn, '502 Bad Gateway', `Hutch egress proxy: could not reach ${name} (${reason}).\n`);
  }

  private refuseHttp(conn: Conn, status: string, body: string): void {
    const { client } = conn;
    if (conn.closed || client.destroyed) return;
    conn.closed = true; // no relay will start; the socket only lingers to deliver the answer
    const payload = Buffer.from(body, 'utf8');
    client.resume(); // drain (and discard) whatever else the client sends
    client.end(
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    this.setTimer(conn, REFUSE_LINGER_MS, () => client.destroy());
  }

  private abort(conn: Conn): void {
    conn.closed = true;
    for (const timer of conn.timers) clearTimeout(timer);
    conn.timers.clear();
    conn.client.destroy();
    conn.upstream?.destroy();
  }

  // --- bookkeeping -------------------------------------------------------------------------------

  private track(conn: Conn): void {
    this.all.add(conn);
    let set = this.bySandbox.get(conn.sandboxId);
    if (!set) this.bySandbox.set(conn.sandboxId, (set = new Set()));
    set.add(conn);
  }

  private untrack(conn: Conn): void {
    conn.closed = true;
    for (const timer of conn.timers) clearTimeout(timer);
    conn.timers.clear();
    this.all.delete(conn);
    const set = this.bySandbox.get(conn.sandboxId);
    if (set) {
      set.delete(conn);
      if (set.size === 0) this.bySandbox.delete(conn.sandboxId);
    }
  }

  /** Counts a socket as part of the connection until it closes; the last one closing untracks it. */
  private watch(conn: Conn, socket: Socket): void {
    conn.open++;
    socket.once('close', () => {
      conn.open--;
      if (conn.open === 0 && (conn.client.destroyed || conn.closed)) this.untrack(conn);
    });
  }

  private setTimer(conn: Conn, ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      conn.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    conn.timers.add(timer);
    return timer;
  }

  private clearTimer(conn: Conn, timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    conn.timers.delete(timer);
  }

  private safeLookup(source: string): SandboxEgressView | null {
    try {
      return this.lookup(source);
    } catch (err) {
      this.logger?.warn({ source, err: (err as Error).message }, 'egress lookup failed');
      return null;
    }
  }

  /** The sandbox's view now, or null when the source no longer belongs to the same sandbox. */
  private currentView(conn: Conn): SandboxEgressView | null {
    const view = this.safeLookup(conn.source);
    return view && view.sandboxId === conn.sandboxId ? view : null;
  }

  private decide(d: EgressDecision, source?: string | null): void {
    this.logger?.debug({ ...d, ...(source !== undefined ? { source } : {}) }, 'egress decision');
    if (!this.onDecision) return;
    try {
      this.onDecision(d);
    } catch (err) {
      this.logger?.warn({ err: (err as Error).message }, 'egress onDecision callback threw');
    }
  }
}

// --- helpers (exported for tests) ----------------------------------------------------------------

/** A socket's remote address as the lookup wants it: `::ffff:a.b.c.d` becomes `a.b.c.d`. */
export function normalizeSourceAddress(address: string | undefined): string | null {
  if (!address) return null;
  const plain = plainAddress(address);
  return net.isIP(plain) ? plain : null;
}

const LABEL = /^[a-z0-9_-]{1,63}$/;

/**
 * Lower-cases a sniffed name and drops one trailing dot, then sorts it: an IP literal (including
 * forms like `127.1` or `0x7f.1` that some resolvers read as addresses: a name's last label is never
 * all-numeric), a valid DNS name, or something else.
 */
export function classifyName(raw: string): { kind: 'name' | 'ip'; name: string } | { kind: 'invalid' } {
  let name = raw.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (net.isIP(name)) return { kind: 'ip', name };
  if (name.length === 0 || name.length > 253) return { kind: 'invalid' };
  const labels = name.split('.');
  if (!labels.every((label) => LABEL.test(label))) return { kind: 'invalid' };
  if (/^(\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]!)) return { kind: 'ip', name };
  return { kind: 'name', name };
}

/** Valid, distinct IP literals, IPv4 first (a host without working IPv6 then pays no timeout). */
function orderAddresses(addresses: string[]): string[] {
  const unique = [...new Set(addresses.filter((ip) => net.isIP(ip) !== 0))];
  return [...unique.filter((ip) => net.isIP(ip) === 4), ...unique.filter((ip) => net.isIP(ip) === 6)];
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
