import http from 'node:http';
import type { Duplex } from 'node:stream';
import { HutchError, notFound } from '../core/errors.js';
import { canSee, requireRole } from '../core/tenancy.js';
import { callerFromKey } from './caller.js';
import { isPortPublic, verifyAccessToken, verifyPortToken } from '../core/port-access.js';
import type { SandboxRecord } from '../core/sandbox.js';
import { STATUS_BY_KIND, errorBody } from './errors.js';
import type { Services } from './services.js';
import { endToEndHeaders } from './proxy-headers.js';

/**
 * The ingress: HTTP (including streaming and WebSocket upgrades) to ports that processes listen
 * on inside a sandbox, by path (`/v1/sandboxes/{id}/ports/{port}/…`, always) or by host
 * (`<port>-<id>.<domain>`, with --domain; an environment service's `{service}--{slug}.<preview
 * domain>`, with --preview-domain, resolved to the service's current sandbox and route). Each request gets its own TCP stream through the
 * sandbox's agent, which dials the sandbox's own loopback: the proxy can reach nothing but the
 * one sandbox named in the request, so it can be neither a relay nor a bridge between sandboxes.
 * The sandbox service holds the sandbox active while such a stream is open.
 *
 * Access to a private port: the sandbox's access token, a signed token for that sandbox and port,
 * or an API key of the sandbox's tenant (member or admin; another tenant's key gets a 404, as for
 * an unknown sandbox). A connection opened with a key ends when the key is revoked.
 *
 * Hand-written on node:http rather than a proxy library because the upstream is not a host and
 * port but a stream the agent opens per request; what remains (header filtering, piping, the
 * upgrade hand-off) is small and is where the security decisions are.
 */
export interface IngressOptions {
  /** Hostname suffix for host routing (e.g. `sbx.example.com`); null disables it. */
  domain: string | null;
  /** Hostname suffix of environments' per-service hosts (`{service}--{slug}.<previewDomain>`); null: none. */
  previewDomain?: string | null;
}

export interface IngressTarget {
  id: string;
  port: number;
  /** The path (and query) to send upstream. */
  path: string;
  /** Where a browser's cookie for this port applies. */
  cookiePath: string;
  /** True when the client asked for `/ports/{port}` without the trailing slash. */
  needsSlash: boolean;
  /** A per-service host's first label: `id` and `port` are resolved from it before anything else. */
  previewLabel?: string;
}

const PATH_ROUTE = /^\/v1\/sandboxes\/([a-z0-9]{20})\/ports\/(\d{1,5})(\/[^?#]*)?(\?.*)?$/;
const TOKEN_PARAM = 'hutch_token';
const TOKEN_COOKIE = 'hutch_port_token';
const ACCESS_HEADER = 'x-hutch-access-token';

export class Ingress {
  constructor(
    private readonly services: Services,
    private readonly options: IngressOptions,
  ) {}

  /** The ingress target of a request, or null when it is an API request. */
  match(req: http.IncomingMessage): IngressTarget | null {
    const url = req.url ?? '/';
    // A per-service host is the service's whole site, /v1/… paths included.
    const previewDomain = this.options.previewDomain;
    if (previewDomain) {
      const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
      const suffix = `.${previewDomain}`;
      // Per-service labels hold `--`; sandbox-port labels (`<port>-<id>`) never do.
      if (host.endsWith(suffix) && host.slice(0, -suffix.length).includes('--') && !host.slice(0, -suffix.length).includes('.'))
        return { id: '', port: 0, path: url, cookiePath: '/', needsSlash: false, previewLabel: host.slice(0, -suffix.length) };
    }
    const byPath = PATH_ROUTE.exec(url);
    if (byPath) {
      const [, id, portText, rest, query] = byPath;
      const prefix = `/v1/sandboxes/${id!}/ports/${portText!}`;
      return {
        id: id!,
        port: Number(portText),
        path: `${rest ?? '/'}${query ?? ''}`,
        cookiePath: `${prefix}/`,
        needsSlash: rest === undefined,
      };
    }
    if (this.options.domain) {
      const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
      const suffix = `.${this.options.domain}`;
      if (host.endsWith(suffix)) {
        const label = /^(\d{1,5})-([a-z0-9]{20})$/.exec(host.slice(0, -suffix.length));
        if (label) return { id: label[2]!, port: Number(label[1]), path: url, cookiePath: '/', needsSlash: false };
      }
    }
    return null;
  }

  /**
   * Resolves the sandbox and checks access; on success strips the credentials it consumed.
   * `keyId`: the API key that granted access (its connection is tracked for revocation).
   */
  private async authorize(
    req: http.IncomingMessage,
    target: IngressTarget,
  ): Promise<{ record: SandboxRecord; setCookie?: string; keyId?: string }> {
    if (target.previewLabel !== undefined) {
      const resolved = await this.services.previewRoutes.resolve(target.previewLabel);
      target.id = resolved.sandboxId;
      target.port = resolved.port;
    }
    const granted = await this.checkAccess(req, target);
    // An environment's service: the request renews its TTLs and wakes it when it sleeps.
    await this.services.environmentLifecycle.beforeProxy(granted.record);
    return { ...granted, record: await this.services.sandboxes.requireRunning(target.id) };
  }

  private async checkAccess(
    req: http.IncomingMessage,
    target: IngressTarget,
  ): Promise<{ record: SandboxRecord; setCookie?: string; keyId?: string }> {
    if (target.port < 1 || target.port > 65535)
      throw new HutchError('invalid_argument', `port: ${target.port} is not a port number (1-65535)`);
    // Checked on the record whatever its state: a sleeping environment's stopped sandbox is woken
    // only for a caller who may use the port.
    const record = await this.services.sandboxes.get(target.id);
    const url = new URL(target.path, 'http://sandbox');
    const signed = url.searchParams.get(TOKEN_PARAM);
    if (signed !== null) {
      url.searchParams.delete(TOKEN_PARAM);
      target.path = `${url.pathname}${url.search}`;
    }
    const cookies = parseCookies(req.headers.cookie);
    const cookieToken = cookies.get(TOKEN_COOKIE);
    if (cookieToken !== undefined) {
      cookies.delete(TOKEN_COOKIE);
      if (cookies.size > 0) req.headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      else delete req.headers.cookie;
    }
    const accessHeader = req.headers[ACCESS_HEADER];
    delete req.headers[ACCESS_HEADER];
    const bearer = req.headers.authorization?.startsWith('Bearer ') ? req.headers.authorization.slice(7).trim() : '';
    // The platform's key never reaches the sandbox, whatever else grants access.
    const bearerKey = bearer.length > 0 && bearer.length <= 256 ? await this.services.keys.verify(bearer) : null;
    if (bearerKey) delete req.headers.authorization;

    if (isPortPublic(record.network, target.port)) return { record };
    if (typeof accessHeader === 'string' && verifyAccessToken(record, accessHeader)) return { record };
    if (signed !== null && verifyPortToken(record, target.port, signed)) {
      const expires = Number(signed.split('.')[0]);
      const maxAge = Math.max(0, expires - Math.floor(Date.now() / 1000));
      return {
        record,
        setCookie: `${TOKEN_COOKIE}=${signed}; Path=${target.cookiePath}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax`,
      };
    }
    if (cookieToken !== undefined && verifyPortToken(record, target.port, cookieToken)) return { record };
    if (bearerKey) {
      const caller = callerFromKey(bearerKey);
      if (!canSee(caller, record.tenant)) throw notFound(`sandbox ${target.id} not found`);
      requireRole(caller, 'member', `opening port ${target.port} of a sandbox`);
      return { record, keyId: bearerKey.id };
    }
    throw new HutchError(
      'unauthenticated',
      `port ${target.port} of sandbox ${target.id} is private: send the API key, the X-Hutch-Access-Token header, or use a signed URL (hutch url)`,
    );
  }

  private upstreamHeaders(req: http.IncomingMessage, keepUpgrade: boolean): http.OutgoingHttpHeaders {
    const headers = endToEndHeaders(req.headers, { keepUpgrade });
    const remote = req.socket.remoteAddress ?? '';
    const prior = req.headers['x-forwarded-for'];
    headers['x-forwarded-for'] = prior ? `${String(prior)}, ${remote}` : remote;
    headers['x-forwarded-host'] = req.headers.host ?? '';
    headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
    headers.connection = keepUpgrade ? 'Upgrade' : 'close';
    return headers;
  }

  /** Proxies one plain HTTP request (bodies and responses stream through). */
  async handleRequest(req: http.IncomingMessage, res: http.ServerResponse, target: IngressTarget): Promise<void> {
    try {
      if (target.needsSlash) {
        const query = (req.url ?? '').includes('?') ? (req.url ?? '').slice((req.url ?? '').indexOf('?')) : '';
        res.writeHead(308, { location: `${target.cookiePath}${query}` }).end();
        return;
      }
      const { record, setCookie, keyId } = await this.authorize(req, target);
      if (keyId) {
        const stream = this.services.keys.track(keyId, () => res.destroy());
        res.once('close', () => stream.done());
      }
      const tunnel = await this.services.sandboxes.openTunnel(record.id, target.port);
      const telemetry = this.services.sandboxes.telemetry;
      const upstream = http.request({
        createConnection: () => tunnel as unknown as import('node:net').Socket,
        method: req.method,
        path: target.path,
        headers: this.upstreamHeaders(req, false),
      });
      upstream.once('response', (up) => {
        const headers = endToEndHeaders(up.headers);
        if (setCookie) headers['set-cookie'] = [...toArray(headers['set-cookie']).map(String), setCookie];
        res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
        // Flush headers at once so streamed responses (SSE, chunked progress) start immediately.
        res.flushHeaders();
        up.pipe(res);
        up.on('data', (chunk: Buffer) => telemetry.proxyBytes('ingress', 'out', chunk.length));
        up.once('error', () => res.destroy());
      });
      upstream.once('error', (err) => {
        if (!res.headersSent) sendError(res, new HutchError('unavailable', `sandbox port ${target.port}: ${err.message}`), 502);
        else res.destroy();
      });
      res.once('close', () => {
        if (!res.writableFinished) upstream.destroy();
      });
      req.pipe(upstream);
      req.on('data', (chunk: Buffer) => telemetry.proxyBytes('ingress', 'in', chunk.length));
    } catch (err) {
      sendError(res, err);
    }
  }

  /** Proxies an upgrade (WebSocket): after the check, bytes flow raw in both directions. */
  async handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, target: IngressTarget): Promise<void> {
    socket.on('error', () => socket.destroy());
    try {
      const { record, keyId } = await this.authorize(req, target);
      if (keyId) {
        const stream = this.services.keys.track(keyId, () => socket.destroy());
        socket.once('close', () => stream.done());
      }
      const tunnel = await this.services.sandboxes.openTunnel(record.id, target.port);
      const headers = this.upstreamHeaders(req, true);
      let headText = `${req.method ?? 'GET'} ${target.path} HTTP/1.1\r\n`;
      for (const [name, value] of Object.entries(headers)) {
        for (const v of toArray(value)) headText += `${name}: ${String(v).replace(/[\r\n]/g, '')}\r\n`;
      }
      tunnel.write(headText + '\r\n');
      if (head.length > 0) tunnel.write(head);
      tunnel.on('error', () => socket.destroy());
      socket.on('close', () => tunnel.destroy());
      tunnel.on('close', () => socket.destroy());
      tunnel.pipe(socket);
      socket.pipe(tunnel);
      const telemetry = this.services.sandboxes.telemetry;
      telemetry.proxyBytes('ingress', 'in', head.length);
      tunnel.on('data', (chunk: Buffer) => telemetry.proxyBytes('ingress', 'out', chunk.length));
      socket.on('data', (chunk: Buffer) => telemetry.proxyBytes('ingress', 'in', chunk.length));
    } catch (err) {
      const e = toError(err);
      const status = e.kind === 'unavailable' ? 502 : STATUS_BY_KIND[e.kind];
      const body = JSON.stringify(errorBody(e.kind, e.message));
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
  }
}

function toArray(value: http.OutgoingHttpHeader | undefined): (string | number)[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function toError(err: unknown): HutchError {
  return err instanceof HutchError ? err : new HutchError('internal', (err as Error).message);
}

function sendError(res: http.ServerResponse, err: unknown, statusOverride?: number): void {
  const e = toError(err);
  // A sandbox port with nothing behind it is a bad gateway, not an unavailable Hutch.
  const status = statusOverride ?? (e.kind === 'unavailable' ? 502 : STATUS_BY_KIND[e.kind]);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  res.writeHead(status, headers).end(JSON.stringify(errorBody(e.kind, e.message)));
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}
