import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { HutchError } from '../../core/errors.js';
import { signedBy, signedFileUrlProblem, type SignedFileRequest } from '../../core/file-url-signature.js';
import { endToEndHeaders } from '../proxy-headers.js';
import type { Services } from '../services.js';

/**
 * The E2B data plane ("envd", port 49983 in E2B): the unmodified `e2b` SDK sends its Connect RPC
 * (process.Process, filesystem.Filesystem), `/files` and `/health` requests to one sandbox URL and
 * names the sandbox in the `E2b-Sandbox-Id` header, or reaches `49983-<id>.<domain>`. Hutch's agent
 * already speaks that protocol on its unix socket, so this is a pass-through: find the sandbox,
 * check its envd access token, and stream the request to the agent and the answer back unchanged.
 * The token is the sandbox's own (it opens that sandbox only); streams opened with it are ended
 * when the API key that created the sandbox is revoked.
 */
export const ENVD_PORT = 49983;
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
    let id = target.id;
    if (signed) {
      const found = await this.signedSandbox(req);
      if (typeof found !== 'string') return sendJson(res, found.status, { code: found.status, message: found.message });
      if (id !== null && id !== found) return sendJson(res, 401, { code: 401, message: 'the signature is not for this sandbox' });
      id = found;
    }
    if (id === null) return sendJson(res, 400, { code: 400, message: 'no sandbox named (E2b-Sandbox-Id)' });
    let accessToken: string;
    let owner: string | null;
    try {
      if (!SANDBOX_ID.test(id)) throw new HutchError('not_found', 'not a sandbox id');
      // Paused sandboxes with autoResume come back here; others (paused, stopped, gone) are a 502,
      // which the SDK reads as "not running".
      ({ accessToken, owner } = await this.services.sandboxes.requireRunning(id));
    } catch (err) {
      if (err instanceof HutchError && (err.kind === 'not_found' || err.kind === 'conflict' || err.kind === 'invalid_argument'))
        return notFound(res, id);
      return sendJson(res, 502, { message: (err as Error).message, sandboxId: id, code: 502 });
    }
    if (!signed && !tokenMatches(req.headers['x-access-token'], accessToken)) {
      return sendJson(res, 401, { code: 401, message: 'invalid or missing X-Access-Token (the envdAccessToken of the sandbox)' });
    }
    if (url === '/health' || url.startsWith('/health?')) {
      res.writeHead(204).end();
      return;
    }
    if (owner) {
      const stream = this.services.keys.track(owner, () => res.destroy());
      res.once('close', () => stream.done());
    }
    this.forward(req, res, id);
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
  private forward(req: http.IncomingMessage, res: http.ServerResponse, id: string): void {
    const headers = endToEndHeaders(req.headers, { drop: NOT_FORWARDED });
    const agent = this.services.sandboxes.agent(id);
    const upstream = agent.request(req.method ?? 'GET', req.url ?? '/', headers as Record<string, string>, {});
    upstream.response.then(
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
        // Streams must reach the client as they come (Connect server streams, downloads).
        res.flushHeaders();
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      },
      (err: unknown) => {
        if (!res.headersSent) sendJson(res, 502, { message: (err as Error).message, sandboxId: id, code: 502 });
        else res.destroy();
      },
    );
    // The client going away detaches; the agent decides what that means for the process.
    res.once('close', () => {
      if (!res.writableFinished) upstream.req.destroy();
    });
    req.pipe(upstream.req);
  }
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
