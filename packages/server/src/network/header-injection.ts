/**
 * Header injection for the egress proxy: a plain-HTTP connection from a sandbox to a host that
 * one of its secrets is bound to is served as HTTP/1.1 (node:http's parser frames the requests,
 * including keep-alive, chunked and pipelined ones), and each request is sent upstream with the
 * secret's header set (any header of that name the sandbox sent is replaced), over a connection of
 * its own to the address the proxy chose. Every request on the connection must be for the host the
 * connection was allowed for (421 otherwise); upgrades (WebSocket) are refused (501). The value
 * never enters the sandbox — unless the upstream sends it back (an echo service would).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { InjectedHeader } from '../core/egress-headers.js';
import type { Logger } from '../core/logger.js';

/** What one injecting connection needs. */
export interface InjectingConnection {
  sandboxId: string;
  /** The host the connection was allowed for. */
  name: string;
  /** The headers to set, read per request. */
  headers(): InjectedHeader[];
  /** A connection to the upstream address (the first call may return the one already open). */
  upstream(): Socket;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1): never forwarded by a proxy. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Raw headers without hop-by-hop ones (and those the Connection header names) or `drop`. */
function forwardable(raw: string[], drop: Set<string>): string[] {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.toLowerCase() === 'connection') for (const n of raw[i + 1]!.split(',')) named.add(n.trim().toLowerCase());
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || named.has(name) || drop.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

/** The host a request is for: the absolute-form target's, else the Host header's; lower-case, no port, no trailing dot. */
function requestHost(req: IncomingMessage): string | null {
  let authority = req.headers.host ?? null;
  if (req.url && /^https?:\/\//i.test(req.url)) {
    try {
      authority = new URL(req.url).host;
    } catch {
      return null;
    }
  }
  if (!authority) return null;
  const host = authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.replace(/:\d*$/, '');
  return host.toLowerCase().replace(/\.$/, '');
}

function refuse(res: ServerResponse, status: number, text: string): void {
  const body = `Hutch egress proxy: ${text}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

export class HeaderInjectingRelay {
  private readonly server: http.Server;
  private readonly connections = new WeakMap<Socket, InjectingConnection>();

  constructor(private readonly logger?: Logger) {
    this.server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 }, (req, res) =>
      this.onRequest(req, res),
    );
    this.server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
      socket.end(
        'HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nHutch egress proxy: upgrades are not relayed to a host with header injection.\n',
      );
    });
    this.server.on('clientError', (_err: Error, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Serves a sandbox's connection whose first bytes (`head`, a complete request head) were already read. */
  serve(client: Socket, head: Buffer, connection: InjectingConnection): void {
    this.connections.set(client, connection);
    client.unshift(head);
    this.server.emit('connection', client);
    client.resume();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const connection = this.connections.get(req.socket as Socket);
    if (!connection) return refuse(res, 500, 'connection state lost');
    const host = requestHost(req);
    if (host !== connection.name)
      return refuse(res, 421, `this connection was opened for ${connection.name}; open a new one for ${host ?? 'another host'}`);
    const inject = connection.headers();
    const headers = forwardable(req.rawHeaders, new Set(inject.map((h) => h.header.toLowerCase())));
    for (const h of inject) headers.push(h.header, h.value);
    // One upstream connection per request: the request says so, and the upstream closes after it.
    headers.push('Connection', 'close');
    const upstream = connection.upstream();
    const out = http.request({ createConnection: () => upstream, method: req.method, path: req.url, headers, setHost: false });
    out.on('response', (up) => {
      const status = up.statusCode ?? 502;
      res.writeHead(status, up.statusMessage, forwardable(up.rawHeaders, new Set()));
      up.pipe(res);
    });
    out.on('error', (err) => {
      this.logger?.debug({ sandboxId: connection.sandboxId, name: connection.name, err: err.message }, 'egress injected request failed');
      if (!res.headersSent) refuse(res, 502, `could not reach ${connection.name}`);
      else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  }
}
