import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { HutchError } from '../../core/errors.js';
import { signedBy, signedFileUrlProblem, type SignedFileRequest } from '../../core/file-url-signature.js';
import { endToEndHeaders } from '../proxy-headers.js';
import type { Services } from '../services.js';
import { type EnvdCall, envdAction, recordEnvd, requestIdOf, statusOfAgentCode } from '../audit.js';
import { EnvelopeDecoder, END_STREAM_FLAG } from '../../runtime/agent/envelope.js';
import type { AgentProcessMessage } from '../../core/process-events.js';
import type { ProcessOutput } from '../../core/sandbox-logs.js';

/**
 * The E2B data plane ("envd", port 49983 in E2B): the unmodified `e2b` SDK sends its Connect RPC
 * (process.Process, filesystem.Filesystem), `/files` and `/health` requests to one sandbox URL and
 * names the sandbox in the `E2b-Sandbox-Id` header, or reaches `49983-<id>.<domain>`. Hutch's agent
 * already speaks that protocol on its unix socket, so this is a pass-through: find the sandbox,
 * check its envd access token, and stream the request to the agent and the answer back unchanged.
 * The token is the sandbox's own (it opens that sandbox only); streams opened with it are ended
 * when the API key that created the sandbox is revoked.
 *
 * Process starts, input, signals, file transfers and filesystem changes are recorded in the audit
 * log (api/audit.ts: the first bytes of a Connect request are looked at to tell a PTY from a
 * process and to name the pid or path, never kept), and the output of processes started here
 * (not PTYs) goes to the sandbox's log, until they exit even when the SDK disconnects.
 */
export const ENVD_PORT = 49983;
/** How much of a Connect request body is looked at for the audit entry (a start, a path). */
const PEEK_BYTES = 64 * 1024;
/** The envd token is checked here; neither it nor the client's Host goes to the agent. */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['x-access-token', 'host']);
const SANDBOX_ID = /^[a-z0-9]{20}$/;
const ENVD_PATH = /^\/(process\.Process\/|filesystem\.Filesystem\/|files(\?|$)|health(\?|$))/;

export interface E2bTarget {
  /** Null for a signed `/files` URL: the sandbox is the one whose token made the signature. */
  id: string | null;
}

export class E2bDataPlane {
  constructor(
    private readonly services: Services,
    private readonly options: { domain: string | null },
  ) {}

  /** The sandbox an envd request is for, or null when the request is not one. */
  match(req: http.IncomingMessage): E2bTarget | null {
    const header = req.headers['e2b-sandbox-id'];
    // By header only for envd's own paths: the header must not turn an API call into a proxy.
    if (typeof header === 'string' && ENVD_PATH.test(req.url ?? '')) {
      const port = req.headers['e2b-sandbox-port'];
      if (port === undefined || port === String(ENVD_PORT)) return { id: header };
    }
    // Signed upload/download URLs (`files.uploadUrl()` / `downloadUrl()`) carry no sandbox id in
    // single-URL mode: only the signature, made with one sandbox's envd token.
    if (/^\/files\?/.test(req.url ?? '') && new URL(req.url ?? '/', 'http://x').searchParams.has('signature')) return { id: null };
    if (this.options.domain) {
      const host = (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
      const suffix = `.${this.options.domain}`;
      if (host.endsWith(suffix)) {
        const label = new RegExp(`^${ENVD_PORT}-([a-z0-9]{20})$`).exec(host.slice(0, -suffix.length));
        if (label) return { id: label[1]! };
      }
    }
    return null;
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse, target: E2bTarget): Promise<void> {
    const url = req.url ?? '/';
    const signed = new URL(url, 'http://x').searchParams.has('signature') && url.startsWith('/files');
    const call: EnvdCall = {
      time: new Date(),
      started: performance.now(),
      requestId: requestIdOf(req),
      client: req.socket.remoteAddress ?? null,
      route: `${req.method ?? 'GET'} ${url.split('?')[0]}`,
      action: '',
      target: null,
      tenant: null,
      auth: null,
      sandboxId: target.id !== null && SANDBOX_ID.test(target.id) ? target.id : null,
    };
    // Answers before the request reached the agent are recorded here (the body was not read: a
    // PTY start cannot be told from a process start, so it is recorded as process.start).
    const refuse = (status: number, body: Record<string, unknown>): void => {
      this.record(call, req, null, status, null);
      sendJson(res, status, body);
    };
    let id = target.id;
    if (signed) {
      const found = await this.signedSandbox(req);
      if (typeof found !== 'string') return refuse(found.status, { code: found.status, message: found.message });
      if (id !== null && id !== found) return refuse(401, { code: 401, message: 'the signature is not for this sandbox' });
      id = found;
      call.sandboxId = found;
    }
    if (id === null) return refuse(400, { code: 400, message: 'no sandbox named (E2b-Sandbox-Id)' });
    let accessToken: string;
    let owner: string | null;
    try {
      if (!SANDBOX_ID.test(id)) throw new HutchError('not_found', 'not a sandbox id');
      // Paused sandboxes with autoResume come back here; others (paused, stopped, gone) are a 502,
      // which the SDK reads as "not running".
      let tenant: string;
      ({ accessToken, owner, tenant } = await this.services.sandboxes.requireRunning(id));
      // The sandbox's tenant: the token (or signature) is checked next, and a refused call is
      // still an attempt on this tenant's sandbox.
      call.tenant = tenant;
    } catch (err) {
      if (err instanceof HutchError && (err.kind === 'not_found' || err.kind === 'conflict' || err.kind === 'invalid_argument')) {
        this.record(call, req, null, 502, 'not_found');
        return notFound(res, id);
      }
      return refuse(502, { message: (err as Error).message, sandboxId: id, code: 502 });
    }
    if (!signed && !tokenMatches(req.headers['x-access-token'], accessToken)) {
      return refuse(401, { code: 401, message: 'invalid or missing X-Access-Token (the envdAccessToken of the sandbox)' });
    }
    call.auth = signed ? 'signed-url' : 'sandbox-token';
    if (url === '/health' || url.startsWith('/health?')) {
      res.writeHead(204).end();
      return;
    }
    if (owner) {
      const stream = this.services.keys.track(owner, () => res.destroy());
      res.once('close', () => stream.done());
    }
    this.forward(req, res, id, call);
  }

  /** Records the call in the audit log, when it is one that is recorded (envdAction). */
  private record(call: EnvdCall, req: http.IncomingMessage, body: Buffer | null, status: number, errorCode: string | null): void {
    const what = envdAction(req.method ?? 'GET', req.url ?? '/', body);
    if (what) recordEnvd(this.services.audit, { ...call, action: what.action, target: what.target }, status, errorCode);
  }

  /**
   * The sandbox whose envd token made a signed `/files` URL's signature (core/file-url-signature),
   * checked against each running or paused one: a single node holds few enough for this to be cheap.
   */
  private async signedSandbox(req: http.IncomingMessage): Promise<string | { status: number; message: string }> {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const signed: SignedFileRequest = {
      path: q.get('path') ?? '',
      operation: req.method === 'GET' ? 'read' : 'write',
      user: q.get('username') ?? '',
      signature: q.get('signature') ?? '',
      expiration: q.get('signature_expiration'),
    };
    const problem = signedFileUrlProblem(signed);
    if (problem) return { status: problem.startsWith('signature_expiration') ? 400 : 401, message: problem };
    for (const record of await this.services.sandboxes.list({ states: ['running', 'paused'] })) {
      if (signedBy(signed, record.accessToken)) return record.id;
    }
    return { status: 401, message: 'the signature matches no running sandbox' };
  }

  /** Streams the request to the agent and its answer back (Connect streams included). */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, id: string, call: EnvdCall): void {
    const headers = endToEndHeaders(req.headers, { drop: NOT_FORWARDED });
    const agent = this.services.sandboxes.agent(id);
    const url = req.url ?? '/';
    const upstream = agent.request(req.method ?? 'GET', url, headers as Record<string, string>, {});
    const state: TeeState = { onClientGone: null };
    // The first bytes of an RPC's request (never of a file upload), for the audit entry.
    const peek: Buffer[] = [];
    let peeked = 0;
    if (/^\/(process\.Process|filesystem\.Filesystem)\//.test(url)) {
      req.on('data', (chunk: Buffer) => {
        if (peeked >= PEEK_BYTES) return;
        peek.push(chunk);
        peeked += chunk.length;
      });
    }
    const body = (): Buffer => Buffer.concat(peek);
    let recorded = false;
    const record = (status: number, errorCode: string | null): void => {
      if (recorded) return;
      recorded = true;
      this.record(call, req, body(), status, errorCode);
    };
    upstream.response.then(
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
        // Streams must reach the client as they come (Connect server streams, downloads).
        res.flushHeaders();
        const what = envdAction(req.method ?? 'GET', url, body());
        // A process or PTY start: recorded when it started (not when it ends), a process's output kept.
        if ((what?.action === 'process.start' || what?.action === 'pty.open') && answer.statusCode === 200) {
          const capture = what.action === 'process.start' && this.services.logs.enabled;
          return this.teeProcess(res, answer, upstream.req, id, (status, code) => record(status, code), state, capture);
        }
        // A refused call: its error code comes from the answer's JSON ({code, message}).
        let errorText = '';
        if ((answer.statusCode ?? 502) >= 400) {
          answer.on('data', (chunk: Buffer) => {
            if (errorText.length < 4096) errorText += chunk.toString('utf8');
          });
        }
        answer.once('end', () => {
          const status = answer.statusCode ?? 502;
          let code: string | null = null;
          if (status >= 400) {
            try {
              const parsed = JSON.parse(errorText) as { code?: unknown };
              code = typeof parsed.code === 'string' ? statusOfAgentCode(parsed.code).kind : null;
            } catch {
              /* not JSON */
            }
          }
          record(status, code);
        });
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      },
      (err: unknown) => {
        record(502, 'unavailable');
        if (!res.headersSent) sendJson(res, 502, { message: (err as Error).message, sandboxId: id, code: 502 });
        else res.destroy();
      },
    );
    // The client going away detaches; the agent decides what that means for the process (a
    // process start's stream may be kept for the sandbox's log: teeProcess).
    res.once('close', () => {
      if (!res.headersSent) record(499, 'client_closed');
      if (res.writableFinished || state.onClientGone?.()) return;
      upstream.req.destroy();
    });
    req.pipe(upstream.req);
  }

  /**
   * A process start's answer: passed to the client unchanged, and read for the audit entry (its
   * first message says whether the process started) and, with `capture` (not a PTY), the
   * sandbox's log (stdout and stderr). When the client leaves before the process ended, a
   * captured stream is kept and read to the end for the log (bounded per sandbox:
   * SandboxLogs.claim).
   */
  private teeProcess(
    res: http.ServerResponse,
    answer: http.IncomingMessage,
    upstreamReq: http.ClientRequest,
    id: string,
    record: (status: number, code: string | null) => void,
    state: TeeState,
    capture: boolean,
  ): void {
    const decoder = new EnvelopeDecoder();
    let output: ProcessOutput | null = null;
    let started = false;
    let ended = false;
    let parsing = true;
    let clientGone = false;
    let release: (() => void) | null = null;
    const finish = (): void => {
      ended = true;
      output?.end();
      release?.();
      release = null;
    };
    const onEnvelope = (flags: number, data: Buffer): void => {
      const message = JSON.parse(data.toString('utf8')) as AgentProcessMessage & { error?: { code?: unknown } };
      if (flags & END_STREAM_FLAG) {
        const code = typeof message.error?.code === 'string' ? message.error.code : null;
        // An error before any start event: the process did not start.
        if (code !== null && !started) {
          const { status, kind } = statusOfAgentCode(code);
          record(status, kind);
        } else record(200, null);
        finish();
        return;
      }
      const e = message.event;
      if (e?.start) {
        record(200, null);
        started = true;
        if (capture) output = this.services.logs.open(id, Number(e.start.pid ?? 0));
        else parsing = false; // a PTY: its output is not read
      } else if (e?.data && output) {
        if (typeof e.data.stdout === 'string') output.write('stdout', Buffer.from(e.data.stdout, 'base64'));
        else if (typeof e.data.stderr === 'string') output.write('stderr', Buffer.from(e.data.stderr, 'base64'));
      } else if (e?.end) finish();
    };
    answer.on('data', (chunk: Buffer) => {
      if (!clientGone && !res.write(chunk)) {
        answer.pause();
        res.once('drain', () => answer.resume());
      }
      if (!parsing) return;
      try {
        for (const env of decoder.push(chunk)) onEnvelope(env.flags, env.data);
      } catch {
        parsing = false; // not what the agent should send: passed on, not read
      }
    });
    answer.once('end', () => {
      if (!clientGone) res.end();
      record(200, null);
      finish();
    });
    answer.once('error', () => {
      res.destroy();
      finish();
    });
    // The SDK left (disconnect, or a kill it sends next): the log keeps reading until the exit.
    state.onClientGone = () => {
      if (ended || !output) return false;
      clientGone = true;
      release = this.services.logs.claim(id, () => upstreamReq.destroy());
      if (!release) {
        this.services.logs.note(
          id,
          output.pid,
          `output of process ${output.pid} is no longer kept: too many processes of this sandbox are followed`,
        );
        finish();
        return false;
      }
      answer.resume();
      return true;
    };
  }
}

interface TeeState {
  /** Called when the client left before the answer ended; true: the stream is kept (and read) for the log. */
  onClientGone: (() => boolean) | null;
}

function notFound(res: http.ServerResponse, id: string): void {
  sendJson(res, 502, { message: 'The sandbox was not found', sandboxId: id, code: 502 });
}

function tokenMatches(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
