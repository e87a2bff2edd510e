import * as http from 'node:http';
import * as https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { CallOptions, ResolvedConfig } from './config.js';
import { HutchError, TimeoutError, connectionError, errorFromResponse } from './errors.js';

/**
 * The transport: one HTTP request per call, over `node:http`/`node:https` (not `fetch`: Node's
 * fetch gives up on a response after 300 s without bytes, which a quiet long-running process
 * stream or a long exec would hit).
 *
 * Every request has a deadline (`timeoutMs`, per call > client default) and honours an optional
 * `AbortSignal`. A non-2xx response becomes the typed error of `errors.ts`; a request that never
 * got a response becomes a `ConnectionError`.
 */

export type Query = Record<string, string | number | boolean | undefined>;

export interface HttpRequest extends CallOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path under the server URL, starting with `/` (segments already encoded). */
  path: string;
  query?: Query;
  /** A JSON body (sent with `Content-Type: application/json`). */
  json?: unknown;
  /** A raw body (sent with `Content-Type: application/octet-stream`). */
  body?: Uint8Array;
  accept?: string;
}

/** An open streaming response; `body` yields chunks until the server ends it or `close()` is called. */
export interface StreamResponse {
  status: number;
  body: AsyncIterable<Uint8Array>;
  /** Stops reading and closes the connection. Idempotent; iteration of `body` ends or throws. */
  close(): void;
}

const USER_AGENT = 'hutch-sdk/0.1.0';
const IDEMPOTENT = new Set(['GET', 'PUT', 'DELETE']);

export class Transport {
  constructor(readonly config: ResolvedConfig) {}

  /** Sends a request and parses the JSON response; a 204 (or empty body) gives `undefined`. */
  async json<T>(req: HttpRequest): Promise<T> {
    return (await this.jsonWithStatus<T>(req)).body;
  }

  /** `json`, with the response status (for calls where 200 and 201 say different things). */
  async jsonWithStatus<T>(req: HttpRequest): Promise<{ status: number; body: T }> {
    const { status, bytes } = await this.fetchAll({ accept: 'application/json', ...req });
    if (bytes.length === 0) return { status, body: undefined as T };
    try {
      return { status, body: JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T };
    } catch (err) {
      throw new HutchError('invalid_response', `${req.method} ${req.path}: the server sent invalid JSON`, undefined, {
        cause: err,
      });
    }
  }

  /** Sends a request and returns the whole response body. */
  async bytes(req: HttpRequest): Promise<Uint8Array> {
    return (await this.fetchAll(req)).bytes;
  }

  private async fetchAll(req: HttpRequest): Promise<{ status: number; bytes: Uint8Array }> {
    const deadline = new Deadline(this.timeoutFor(req), req.signal, describe(req));
    try {
      const { res } = await this.send(req, deadline);
      return { status: res.statusCode ?? 0, bytes: await readAll(res, deadline, this.config.url) };
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Opens a streaming response. The deadline covers only the wait for the response headers; the
   * signal stays linked for the life of the stream (aborting it closes the stream).
   */
  async stream(req: HttpRequest): Promise<StreamResponse> {
    const deadline = new Deadline(this.timeoutFor(req), req.signal, describe(req));
    let res: IncomingMessage;
    try {
      ({ res } = await this.send(req, deadline));
    } catch (err) {
      deadline.dispose();
      throw err;
    }
    deadline.clearTimer();
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      deadline.dispose();
      res.destroy();
    };
    const url = this.config.url;
    const body = (async function* () {
      try {
        for await (const chunk of res) yield chunk as Uint8Array;
      } catch (err) {
        if (closed) return;
        if (deadline.signal.aborted) throw deadline.signal.reason;
        throw err instanceof HutchError ? err : connectionError(url, err);
      } finally {
        close();
      }
    })();
    return { status: res.statusCode ?? 0, body, close };
  }

  /** The absolute URL of a path with its query string. */
  url(path: string, query?: Query): URL {
    const url = new URL(this.config.url + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  /** Headers every request carries (also used for the WebSocket upgrade). */
  authHeaders(): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT };
    if (this.config.apiKey) headers.authorization = `Bearer ${this.config.apiKey}`;
    return headers;
  }

  private timeoutFor(req: HttpRequest): number {
    return req.timeoutMs ?? this.config.timeoutMs;
  }

  /** Sends the request; resolves with a 2xx response, or rejects with the mapped error. */
  private async send(req: HttpRequest, deadline: Deadline): Promise<{ res: IncomingMessage }> {
    const url = this.url(req.path, req.query);
    const headers = this.authHeaders();
    headers.accept = req.accept ?? 'application/json';
    let payload: Uint8Array | undefined;
    if (req.json !== undefined) {
      payload = Buffer.from(JSON.stringify(req.json), 'utf8');
      headers['content-type'] = 'application/json';
    } else if (req.body !== undefined) {
      payload = req.body;
      headers['content-type'] = 'application/octet-stream';
    }
    if (payload !== undefined || req.method !== 'GET') headers['content-length'] = String(payload?.byteLength ?? 0);

    for (let attempt = 0; ; attempt++) {
      try {
        const res = await requestOnce(url, req.method, headers, payload, deadline);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return { res };
        const text = Buffer.from(await readAll(res, deadline, this.config.url)).toString('utf8');
        const retryAfter = res.headers['retry-after'];
        throw errorFromResponse(status, text, Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
      } catch (err) {
        if (err instanceof StaleSocketError && attempt === 0 && IDEMPOTENT.has(req.method)) continue;
        if (err instanceof StaleSocketError) throw connectionError(this.config.url, err.cause);
        throw err;
      }
    }
  }
}

/** A keep-alive socket the server had already closed; safe to retry for idempotent methods. */
class StaleSocketError extends Error {}

function requestOnce(
  url: URL,
  method: string,
  headers: Record<string, string>,
  payload: Uint8Array | undefined,
  deadline: Deadline,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (deadline.signal.aborted) return reject(deadline.signal.reason);
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method, headers });
    const onAbort = (): void => {
      req.destroy(deadline.signal.reason);
    };
    deadline.signal.addEventListener('abort', onAbort, { once: true });
    req.on('response', (res) => {
      deadline.signal.removeEventListener('abort', onAbort);
      // From here on an abort must end the body read too.
      deadline.onAbort(() => res.destroy(deadline.signal.reason));
      resolve(res);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      deadline.signal.removeEventListener('abort', onAbort);
      if (deadline.signal.aborted) return reject(deadline.signal.reason);
      if (req.reusedSocket && err.code === 'ECONNRESET') return reject(new StaleSocketError('stale socket', { cause: err }));
      reject(connectionError(`${url.protocol}//${url.host}`, err));
    });
    req.end(payload);
  });
}

async function readAll(res: IncomingMessage, deadline: Deadline, baseUrl: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res) chunks.push(chunk as Buffer);
  } catch (err) {
    if (deadline.signal.aborted) throw deadline.signal.reason;
    throw connectionError(baseUrl, err);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function describe(req: HttpRequest): string {
  return `${req.method} ${req.path}`;
}

/**
 * A deadline plus an optional caller signal, merged into one signal. The timer aborts with a
 * `TimeoutError`; the caller's signal aborts with its own reason.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly unlink: () => void;

  constructor(timeoutMs: number, external: AbortSignal | undefined, what: string) {
    if (Number.isFinite(timeoutMs)) {
      this.timer = setTimeout(() => {
        this.controller.abort(new TimeoutError('timeout', `${what} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    if (external?.aborted) this.controller.abort(external.reason);
    const onExternal = (): void => this.controller.abort(external?.reason);
    external?.addEventListener('abort', onExternal, { once: true });
    this.unlink = () => external?.removeEventListener('abort', onExternal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Runs `fn` once when the merged signal aborts (at once if it already has). */
  onAbort(fn: () => void): void {
    if (this.signal.aborted) fn();
    else this.signal.addEventListener('abort', fn, { once: true });
  }

  /** Stops the timer but keeps the caller's signal linked. */
  clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Stops the timer and unlinks the caller's signal. */
  dispose(): void {
    this.clearTimer();
    this.unlink();
  }
}
