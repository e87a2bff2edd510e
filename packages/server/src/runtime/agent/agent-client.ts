import { existsSync } from 'node:fs';
import http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { AgentEndpoint } from '../../core/agent.js';
import { HutchError, type ErrorKind } from '../../core/errors.js';
import { EnvelopeDecoder, END_STREAM_FLAG, encodeEnvelope } from './envelope.js';

/**
 * Client for hutch-agent's envd-compatible Connect API (JSON codec over HTTP/1.1).
 * Everything the agent sends is untrusted: unary replies and stream messages are size-bounded,
 * and errors are mapped to HutchError kinds here and nowhere else.
 */
const MAX_UNARY_REPLY_BYTES = 16 * 1024 * 1024;

export interface CallOptions {
  /** Run-as user (sent as `Authorization: Basic base64(user:)`, as envd expects). */
  user?: string;
  /** Connect-Timeout-Ms: for process Start this is the process's lifetime. */
  connectTimeoutMs?: number;
  signal?: AbortSignal;
}

const CONNECT_CODE_TO_KIND: Record<string, ErrorKind> = {
  invalid_argument: 'invalid_argument',
  not_found: 'not_found',
  already_exists: 'conflict',
  failed_precondition: 'conflict',
  permission_denied: 'permission_denied',
  unauthenticated: 'invalid_argument',
  resource_exhausted: 'resource_exhausted',
  unavailable: 'unavailable',
  payload_too_large: 'payload_too_large',
  deadline_exceeded: 'unavailable',
};

/** The Hutch error kind an agent (Connect) error code stands for; unknown codes are `internal`. */
export function kindOfAgentCode(code: unknown): ErrorKind {
  return (typeof code === 'string' && CONNECT_CODE_TO_KIND[code]) || 'internal';
}

export function agentError(code: unknown, message: unknown): HutchError {
  const kind = kindOfAgentCode(code);
  const text = typeof message === 'string' && message.length > 0 ? message.slice(0, 2000) : `agent error ${String(code)}`;
  return new HutchError(kind, text);
}

function unreachable(err: unknown): HutchError {
  const code = (err as NodeJS.ErrnoException).code;
  return new HutchError('unavailable', `sandbox agent is unreachable (${code ?? (err as Error).message})`, { cause: err });
}

export class AgentClient {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 4 });

  /**
   * `onUnreachable` is told when a connection to the agent cannot be made (refused, socket gone):
   * the owner can then find out whether the sandbox itself is gone.
   */
  constructor(
    readonly endpoint: AgentEndpoint,
    private readonly onUnreachable?: (err: NodeJS.ErrnoException) => void,
  ) {}

  private unreachable(err: unknown): HutchError {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT') this.onUnreachable?.(err as NodeJS.ErrnoException);
    return unreachable(err);
  }

  close(): void {
    this.httpAgent.destroy();
  }

  /** The TCP agent's access token (a unix socket is protected by its mode instead). */
  private tokenHeader(): Record<string, string> {
    return 'token' in this.endpoint && this.endpoint.token ? { 'x-access-token': this.endpoint.token } : {};
  }

  /**
   * Where node:http connects, and through which agent. A stream endpoint gets a new stream per
   * request (no pool: the http.Agent would create plain sockets) and asks the agent to close it
   * after the response (`connection: close`), so no stream outlives its request.
   */
  private target(pooled: boolean): http.RequestOptions {
    const endpoint = this.endpoint;
    if ('open' in endpoint) {
      return {
        agent: undefined,
        // Asynchronous: node:http waits for `done` when nothing is returned.
        createConnection: (_options, done) => {
          endpoint.open().then(
            (stream) => done(null, stream),
            (err: Error) => done(err, null as unknown as Duplex),
          );
          return undefined;
        },
      };
    }
    const agent = pooled ? this.httpAgent : false;
    return 'socketPath' in endpoint ? { socketPath: endpoint.socketPath, agent } : { host: endpoint.host, port: endpoint.port, agent };
  }

  /** Opens a raw HTTP request to the agent; the caller writes the body and reads the response. */
  request(
    method: string,
    path: string,
    headers: Record<string, string>,
    options: CallOptions = {},
  ): { req: http.ClientRequest; response: Promise<http.IncomingMessage> } {
    const allHeaders: Record<string, string> = { ...headers, ...this.tokenHeader() };
    if (options.user !== undefined) allHeaders.authorization = `Basic ${Buffer.from(`${options.user}:`).toString('base64')}`;
    if (options.connectTimeoutMs !== undefined) allHeaders['connect-timeout-ms'] = String(options.connectTimeoutMs);
    if ('open' in this.endpoint) allHeaders.connection = 'close';
    const req = http.request({ ...this.target(true), method, path, headers: allHeaders, signal: options.signal });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (err) => reject(err.name === 'AbortError' ? err : this.unreachable(err)));
    });
    return { req, response };
  }

  /**
   * A raw TCP stream to `port` on the sandbox's own loopback, through the agent's /tunnel
   * upgrade (the agent dials from inside the sandbox, so nothing else is reachable this way).
   * Rejects with `unavailable` when nothing listens there.
   */
  openTunnel(port: number, timeoutMs = 10_000): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const req = http.request({
        ...this.target(false),
        method: 'GET',
        path: `/tunnel?port=${port}`,
        headers: { connection: 'Upgrade', upgrade: 'hutch-tcp', ...this.tokenHeader() },
        timeout: timeoutMs,
      });
      req.once('upgrade', (res, socket, head) => {
        res.resume();
        socket.setTimeout(0);
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.once('response', (res) => {
        readBounded(res, 64 * 1024)
          .then((text) => {
            let e: { code?: unknown; message?: unknown } = {};
            try {
              e = JSON.parse(text) as typeof e;
            } catch {
              /* not JSON: use the status */
            }
            reject(agentError(e.code ?? 'unavailable', e.message ?? `agent answered ${res.statusCode} to a tunnel request`));
          })
          .catch(reject);
      });
      req.once('timeout', () => req.destroy(new Error('tunnel request timed out')));
      req.once('error', (err) => reject(this.unreachable(err)));
      req.end();
    });
  }

  /**
   * Asks the agent to close its sockets and every connection (before a gVisor checkpoint, which
   * cannot hold host-backed sockets); it listens again on SIGUSR1.
   */
  async quiesce(): Promise<void> {
    const { req, response } = this.request('POST', '/hutch/quiesce', { 'content-length': '0' }, { signal: AbortSignal.timeout(10_000) });
    req.end();
    const res = await response;
    res.resume();
    if (res.statusCode !== 204) throw new HutchError('internal', `the agent answered ${res.statusCode} to quiesce`);
    // The agent closes this connection after all the others: its end means they are closed too.
    const socket = req.socket;
    if (socket && !socket.destroyed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sets variables every later process inherits (a warm-pool sandbox gets its create's env). */
  async setBaseEnv(env: Record<string, string>): Promise<void> {
    await this.postJson('/hutch/env', { env }, 'the environment');
  }

  /**
   * Replaces the agent's access token (POST /hutch/access-token, authenticated by this client's
   * token): afterwards only `next` opens the agent, and this client's token no longer does.
   */
  async rotateToken(next: string): Promise<void> {
    await this.postJson('/hutch/access-token', { token: next }, 'the token rotation');
  }

  /**
   * Writes injected secret files on the sandbox's secrets tmpfs: mode 0400, owned by its default
   * user, each replaced atomically. The agent refuses paths off that tmpfs.
   */
  async writeSecretFiles(files: Array<{ path: string; data: Buffer }>): Promise<void> {
    await this.postJson('/hutch/secret-files', { files: files.map((f) => ({ path: f.path, data: f.data.toString('base64') })) }, 'the secret files');
  }

  /**
   * The sandbox's usage as the agent reads it from inside (GET /hutch/stats: its cgroup, or procfs
   * under gVisor). Untrusted like every answer: non-numbers are refused, figures are as reported.
   */
  async stats(): Promise<{ source: string; cpuNs: number; memoryBytes: number; memoryCacheBytes: number; pids: number }> {
    const { req, response } = this.request('GET', '/hutch/stats', {}, { signal: AbortSignal.timeout(5_000) });
    req.end();
    const res = await response;
    const text = await readBounded(res, 4 * 1024);
    if (res.statusCode !== 200) throw new HutchError('internal', `the agent answered ${res.statusCode} to stats: ${text.trim().slice(0, 500)}`);
    const body = JSON.parse(text) as Record<string, unknown>;
    const figure = (key: string): number => {
      const value = body[key];
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new HutchError('internal', `the agent's stats: ${key} is not a figure`);
      return value;
    };
    return {
      source: typeof body.source === 'string' ? body.source.slice(0, 16) : 'unknown',
      cpuNs: figure('cpuNs'),
      memoryBytes: figure('memoryBytes'),
      memoryCacheBytes: figure('memoryCacheBytes'),
      pids: figure('pids'),
    };
  }

  /** A POST of a JSON body to one of the agent's /hutch/ endpoints, which answer 204 (else their text, bounded). */
  private async postJson(path: string, payload: unknown, what: string): Promise<void> {
    const body = Buffer.from(JSON.stringify(payload));
    const { req, response } = this.request(
      'POST',
      path,
      { 'content-type': 'application/json', 'content-length': String(body.length) },
      { signal: AbortSignal.timeout(10_000) },
    );
    req.end(body);
    const res = await response;
    const text = await readBounded(res, 64 * 1024);
    if (res.statusCode !== 204) throw new HutchError('internal', `the agent refused ${what} (${res.statusCode}): ${text.trim().slice(0, 2000)}`);
  }

  async health(signal?: AbortSignal): Promise<boolean> {
    // No socket yet (an agent still starting): no request can succeed, and a stat is far cheaper
    // than one (the create path polls this every millisecond).
    if ('socketPath' in this.endpoint && !existsSync(this.endpoint.socketPath)) return false;
    try {
      const { req, response } = this.request('GET', '/health', {}, { signal });
      req.end();
      const res = await response;
      res.resume();
      return res.statusCode === 204 || res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /** A unary Connect call: JSON in, JSON out. */
  async unary<T>(procedure: string, body: unknown, options: CallOptions = {}): Promise<T> {
    const payload = Buffer.from(JSON.stringify(body));
    const { req, response } = this.request(
      'POST',
      `/${procedure}`,
      { 'content-type': 'application/json', 'connect-protocol-version': '1', 'content-length': String(payload.length) },
      options,
    );
    req.end(payload);
    const res = await response;
    const text = await readBounded(res, MAX_UNARY_REPLY_BYTES);
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : {};
    } catch {
      throw new HutchError('internal', `agent sent invalid JSON for ${procedure} (status ${res.statusCode})`);
    }
    if (res.statusCode !== 200) {
      const e = parsed as { code?: unknown; message?: unknown };
      throw agentError(e.code, e.message);
    }
    return parsed as T;
  }

  /**
   * A server-streaming Connect call. Yields each message; throws the end-of-stream error if any.
   * Breaking out of the loop closes the HTTP stream (it does not kill an agent process).
   */
  async *stream<T>(procedure: string, body: unknown, options: CallOptions = {}): AsyncGenerator<T> {
    const payload = encodeEnvelope(body);
    const { req, response } = this.request(
      'POST',
      `/${procedure}`,
      { 'content-type': 'application/connect+json', 'connect-protocol-version': '1', 'content-length': String(payload.length) },
      options,
    );
    req.end(payload);
    const res = await response;
    if (res.statusCode !== 200) {
      const text = await readBounded(res, MAX_UNARY_REPLY_BYTES).catch(() => '');
      let e: { code?: unknown; message?: unknown } = {};
      try {
        e = JSON.parse(text) as typeof e;
      } catch {
        /* fall through with an empty error */
      }
      throw agentError(e.code ?? 'internal', e.message ?? `agent answered ${res.statusCode} for ${procedure}`);
    }
    const decoder = new EnvelopeDecoder();
    let ended = false;
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        for (const env of decoder.push(chunk)) {
          const message = JSON.parse(env.data.toString('utf8')) as Record<string, unknown>;
          if (env.flags & END_STREAM_FLAG) {
            ended = true;
            const err = message.error as { code?: unknown; message?: unknown } | undefined;
            if (err) throw agentError(err.code, err.message);
            return;
          }
          yield message as T;
        }
      }
      if (!ended) throw new HutchError('unavailable', `the agent closed the ${procedure} stream without ending it`);
    } finally {
      if (!ended) res.destroy();
    }
  }
}

export async function readBounded(stream: Readable, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      stream.destroy();
      throw new HutchError('internal', `agent reply exceeds ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
