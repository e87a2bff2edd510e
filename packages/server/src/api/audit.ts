import type http from 'node:http';
import { AsyncResource } from 'node:async_hooks';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify';
import type { AuditAuth, AuditEntry, AuditService } from '../core/audit.js';
import type { Logger } from '../core/logger.js';
import { requestContext, requestIdFrom } from '../core/request-context.js';
import { STATUS_BY_KIND } from './errors.js';
import { kindOfAgentCode } from '../runtime/agent/agent-client.js';

/**
 * What the audit log records and how (core/audit.ts keeps it). Every route that changes something
 * (POST, PUT, PATCH, DELETE — on /v1 and on the E2B control plane) must name its action below, and
 * so does every read that is a session or a transfer (a file download, a PTY): `checkAuditRoute`
 * refuses to register a mutating route without one (fail closed, like api/access.ts). The E2B data
 * plane, which bypasses Fastify, records through `recordEnvd`.
 *
 * An entry is made when the answer is complete (for an NDJSON stream or a PTY: when it opened),
 * or when the client went away first (status 499). Request bodies, query strings, headers and
 * answers are never recorded: only the route, the object's id or path, the status and the error
 * code.
 *
 * Requests also get their id here: the client's `X-Request-Id` when it is sane, else a new one,
 * echoed in the `X-Request-Id` response header, carried by every log line written while serving
 * the request (core/request-context.ts) and recorded in the audit entry.
 */
type Req = FastifyRequest;
interface Rule {
  action: string | ((req: Req) => string);
  /** The object acted on; default: from the route parameters (see defaultTarget). */
  target?: (req: Req) => string | null;
}

const bodyField =
  (field: string, prefixWithId = false) =>
  (req: Req): string | null => {
    const body = req.body as Record<string, unknown> | null | undefined;
    const value = body && typeof body === 'object' && !Buffer.isBuffer(body) ? body[field] : undefined;
    if (typeof value !== 'string') return defaultTarget(req);
    const id = (req.params as Record<string, string | undefined>).id;
    return prefixWithId && id ? `${id}:${value}` : value;
  };
const processStart = (req: Req): string => {
  const body = req.body as { pty?: unknown } | null | undefined;
  return body && typeof body === 'object' && body.pty ? 'pty.open' : 'process.start';
};

/** `<volume>/<snapshot>` (the snapshot from the route, or from the body of a create). */
function volumeSnapshotTarget(req: Req): string | null {
  const p = (req.params ?? {}) as Record<string, string | undefined>;
  const body = req.body as Record<string, unknown> | undefined;
  const snapshot = p.snapshot ?? (body && typeof body.name === 'string' ? body.name : undefined);
  return p.name === undefined ? null : snapshot === undefined ? p.name : `${p.name}/${snapshot}`;
}

/**
 * `METHOD /route` (parameters written `:`) → action. Secrets (`/v1/secrets/:name`) are listed ahead
 * of their routes: their target is the name, never the value.
 */
const RULES: Record<string, Rule> = {
  'POST /v1/sandboxes': { action: 'sandbox.create' },
  'DELETE /v1/sandboxes/:': { action: 'sandbox.delete' },
  'POST /v1/sandboxes/:/timeout': { action: 'sandbox.timeout' },
  'POST /v1/sandboxes/:/stop': { action: 'sandbox.stop' },
  'POST /v1/sandboxes/:/start': { action: 'sandbox.start' },
  'POST /v1/sandboxes/:/pause': { action: 'sandbox.pause' },
  'POST /v1/sandboxes/:/resume': { action: 'sandbox.resume' },
  'PUT /v1/sandboxes/:/network': { action: 'sandbox.network' },
  'POST /v1/sandboxes/:/snapshots': { action: 'snapshot.create' },
  'POST /v1/sandboxes/:/fork': { action: 'sandbox.fork' },
  'DELETE /v1/snapshots/:': { action: 'snapshot.delete' },
  'POST /v1/gc': { action: 'gc.run' },
  'POST /v1/sandboxes/:/exec': { action: 'sandbox.exec' },
  'POST /v1/sandboxes/:/processes': { action: processStart },
  'POST /v1/sandboxes/:/processes/:/stdin': { action: 'process.stdin' },
  'POST /v1/sandboxes/:/processes/:/close-stdin': { action: 'process.close-stdin' },
  'POST /v1/sandboxes/:/processes/:/signal': { action: 'process.signal' },
  'POST /v1/sandboxes/:/processes/:/resize': { action: 'process.resize' },
  'GET /v1/sandboxes/:/pty': { action: 'pty.open' },
  'PUT /v1/sandboxes/:/files': { action: 'file.write' },
  'GET /v1/sandboxes/:/files': { action: 'file.read' },
  'DELETE /v1/sandboxes/:/files': { action: 'file.remove' },
  'POST /v1/sandboxes/:/files/mkdir': { action: 'file.mkdir', target: bodyField('path', true) },
  'POST /v1/sandboxes/:/files/rename': { action: 'file.rename', target: bodyField('from', true) },
  'POST /v1/keys': { action: 'key.create' },
  'DELETE /v1/keys/:': { action: 'key.revoke' },
  'PUT /v1/keys/:/limits': { action: 'key.limits' },
  'POST /v1/admin/tenants': { action: 'tenant.create', target: bodyField('name') },
  'PUT /v1/admin/tenants/:/quotas': { action: 'tenant.quotas' },
  'DELETE /v1/admin/tenants/:': { action: 'tenant.delete' },
  'PUT /v1/pools/:': { action: 'pool.put' },
  'DELETE /v1/pools/:': { action: 'pool.delete' },
  'POST /v1/volumes': { action: 'volume.create', target: bodyField('name') },
  'DELETE /v1/volumes/:': { action: 'volume.delete' },
  'POST /v1/volumes/:/snapshots': { action: 'volume.snapshot', target: volumeSnapshotTarget },
  'DELETE /v1/volumes/:/snapshots/:': { action: 'volume.snapshot.delete', target: volumeSnapshotTarget },
  'POST /v1/environments': { action: 'environment.create' },
  'DELETE /v1/environments/:': { action: 'environment.delete' },
  'PATCH /v1/environments/:': { action: 'environment.update' },
  'POST /v1/environment-seeds/refresh': { action: 'environment.seed-refresh', target: bodyField('project') },
  'POST /v1/hooks/github': { action: 'hook.github' },
  'POST /v1/hooks/gitlab': { action: 'hook.gitlab' },
  'POST /v1/hooks/projects': { action: 'hook.project.create', target: bodyField('repository') },
  'DELETE /v1/hooks/projects/:': { action: 'hook.project.delete' },
  'POST /v1/hooks/approvals': { action: 'hook.approve', target: bodyField('repository') },
  'PUT /v1/secrets/:': { action: 'secret.put' },
  'DELETE /v1/secrets/:': { action: 'secret.delete' },
  // The E2B control plane: the same actions; `route` tells the two apart.
  'POST /sandboxes': { action: 'sandbox.create' },
  'POST /v2/sandboxes': { action: 'sandbox.create' },
  'DELETE /sandboxes/:': { action: 'sandbox.delete' },
  'POST /sandboxes/:/timeout': { action: 'sandbox.timeout' },
  'POST /sandboxes/:/pause': { action: 'sandbox.pause' },
  'POST /sandboxes/:/snapshots': { action: 'snapshot.create' },
  'DELETE /templates/:': { action: 'snapshot.delete' },
  'POST /sandboxes/:/fork': { action: 'sandbox.fork' },
  'POST /sandboxes/:/connect': { action: 'sandbox.connect' },
  'POST /v2/sandboxes/:/connect': { action: 'sandbox.connect' },
  'POST /sandboxes/:/resume': { action: 'sandbox.resume' },
};

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function ruleKey(method: string, url: string): string {
  return `${method} ${url.replace(/:[A-Za-z0-9_]+/g, ':')}`;
}

/** Throws at registration for a mutating route without an audit action (fail closed). */
export function checkAuditRoute(route: RouteOptions): void {
  for (const method of [route.method].flat()) {
    if (MUTATING.has(method) && !RULES[ruleKey(method, route.url)])
      throw new Error(`route ${method} ${route.url} changes something but api/audit.ts names no audit action for it`);
  }
}

/** The object named by the route: a sandbox, snapshot, key, tenant, pool or volume; files and processes under their sandbox. */
function defaultTarget(req: Req): string | null {
  const p = (req.params ?? {}) as Record<string, string | undefined>;
  const base = p.id ?? p.snapshotId ?? p.templateID ?? p.name ?? null;
  if (base === null) return null;
  if (p.pid !== undefined) return `${base}#${p.pid}`;
  const path = (req.query as Record<string, unknown> | undefined)?.path;
  if (typeof path === 'string' && /\/files$/.test(req.routeOptions.url ?? '')) return `${base}:${path}`;
  return base;
}

/** The audit record of one request while it runs. */
class AuditCall {
  readonly time = new Date();
  readonly started = performance.now();
  target: string | null = null;
  error: string | null = null;
  done = false;
  constructor(
    readonly rule: Rule,
    readonly route: string,
    /** Makes the entry (once). */
    readonly finish: (status: number) => void,
  ) {}
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set for requests the audit log records. */
    auditCall: AuditCall | null;
  }
}

const KIND_BY_STATUS = new Map<number, string>(Object.entries(STATUS_BY_KIND).map(([kind, status]) => [status, kind]));

/** The error code of a failed answer: the body's `error.code` (Hutch) or the status's kind (E2B's `{code: 404}`). */
function errorCodeOf(status: number, payload: unknown): string | null {
  if (status < 400) return null;
  if (typeof payload === 'string' && payload.length <= 64 * 1024 && payload.startsWith('{')) {
    try {
      const body = JSON.parse(payload) as { error?: { code?: unknown } };
      if (typeof body.error?.code === 'string') return body.error.code;
    } catch {
      /* not JSON */
    }
  }
  return KIND_BY_STATUS.get(status) ?? (status === 499 ? 'client_closed' : `http_${status}`);
}

const RAW_CONTEXT = Symbol('hutch.requestContext');
type RawRequest = http.IncomingMessage & { [RAW_CONTEXT]?: { requestId: string; scope: AsyncResource | null } };

/**
 * Runs `handle` in the request's context: its id (from X-Request-Id or new), echoed as a response
 * header, and the async context that puts it in every log line. For the HTTP server's handler.
 */
export function withRequestContext(req: http.IncomingMessage, res: http.ServerResponse, handle: () => void): void {
  const requestId = requestIdFrom(req.headers['x-request-id']);
  res.setHeader('x-request-id', requestId);
  requestContext.run({ requestId }, () => {
    (req as RawRequest)[RAW_CONTEXT] = { requestId, scope: new AsyncResource('hutch.request') };
    handle();
  });
}

/** Fastify's request id: the one withRequestContext chose (upgrades, which bypass it, get theirs here, once). */
export function requestIdOf(req: http.IncomingMessage): string {
  const raw = req as RawRequest;
  if (!raw[RAW_CONTEXT]) raw[RAW_CONTEXT] = { requestId: requestIdFrom(req.headers['x-request-id']), scope: null };
  return raw[RAW_CONTEXT].requestId;
}

/**
 * Hooks that record audited calls, echo the request id, and keep the handler in the request's
 * async context (a body read in between loses it).
 */
export function auditHooks(audit: AuditService | null, log: Logger) {
  const settle = (req: Req, status: number): void => {
    const call = req.auditCall;
    if (!call || call.done) return;
    call.done = true;
    const durationMs = performance.now() - call.started;
    const key = req.apiKey;
    const error = call.error ?? errorCodeOf(status, undefined);
    let action: string;
    let target: string | null;
    try {
      action = typeof call.rule.action === 'string' ? call.rule.action : call.rule.action(req);
      target = call.target ?? (call.rule.target ? call.rule.target(req) : defaultTarget(req));
    } catch {
      action = typeof call.rule.action === 'string' ? call.rule.action : 'unknown';
      target = null;
    }
    const entry: AuditEntry = {
      time: call.time,
      tenant: key?.tenant ?? null,
      keyId: key?.id ?? null,
      auth: key ? 'key' : null,
      role: key?.role ?? null,
      action,
      target: target === null ? null : target.slice(0, 4200),
      route: call.route,
      status,
      error: status >= 400 ? error : null,
      durationMs,
      client: req.ip ?? null,
      requestId: req.id,
    };
    audit?.record(entry);
    log.debug({ requestId: req.id, action, target, status, error: entry.error, ms: Math.round(durationMs) }, 'audited call');
  };

  return {
    onRequest(req: Req, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      req.auditCall = null;
      // Also on answers that bypass withRequestContext (a refused WebSocket upgrade).
      void reply.header('x-request-id', req.id);
      const url = req.routeOptions.url;
      const rule = url === undefined ? undefined : RULES[ruleKey(req.method, url)];
      const started = performance.now();
      if (rule && url !== undefined) {
        req.auditCall = new AuditCall(rule, `${req.method} ${url}`, (status) => settle(req, status));
      }
      // The end of the exchange, however it ends (answered, streamed, hijacked, client gone).
      reply.raw.once('close', () => {
        const res = reply.raw;
        if (req.auditCall && !req.auditCall.done) settle(req, res.headersSent ? res.statusCode : 499);
        log.debug(
          {
            requestId: req.id,
            method: req.method,
            url: req.url.split('?')[0],
            status: res.headersSent ? res.statusCode : 499,
            ms: Math.round(performance.now() - started),
          },
          'request',
        );
      });
      done();
    },
    onSend(req: Req, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void): void {
      if (req.auditCall && reply.statusCode >= 400) req.auditCall.error = errorCodeOf(reply.statusCode, payload);
      done(null, payload);
    },
    /** Re-enters the request's async context before the handler (body parsing runs outside it). */
    preHandler(req: Req, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const scope = (req.raw as RawRequest)[RAW_CONTEXT]?.scope;
      if (scope) scope.runInAsyncScope(done);
      else done();
    },
  };
}

/** The object a handler acted on when the route does not name it (a create): recorded in the entry. */
export function auditTarget(req: Req, target: string): void {
  if (req.auditCall) req.auditCall.target = target;
}

/** Records a streamed answer or a session as soon as it opened (its duration: the time to open). */
export function auditOpened(req: Req, status: number): void {
  req.auditCall?.finish(status);
}

/** One E2B data-plane (envd) call as the audit log records it. */
export interface EnvdCall {
  time: Date;
  started: number;
  requestId: string;
  client: string | null;
  route: string;
  action: string;
  target: string | null;
  tenant: string | null;
  auth: AuditAuth | null;
  sandboxId: string | null;
}

/**
 * The action of an envd request, or null for what is not recorded (reads: stat, list, watch,
 * connect to a process's output, health). `body` is the first bytes of a Connect request's body,
 * read only to tell a PTY from a process and to name the path or pid.
 */
export function envdAction(method: string, url: string, body: Buffer | null): { action: string; target: string | null } | null {
  const path = url.split('?')[0]!;
  if (path === '/files') {
    const q = new URL(url, 'http://x').searchParams;
    const target = q.get('path');
    if (method === 'GET') return { action: 'file.read', target };
    if (method === 'POST') return { action: 'file.write', target };
    return null;
  }
  const rpc = /^\/(process\.Process|filesystem\.Filesystem)\/([A-Za-z]+)$/.exec(path);
  if (!rpc) return null;
  const parsed = parseConnectBody(body);
  const pidOf = (): string | null => {
    const p = (parsed?.process ?? null) as { pid?: unknown; tag?: unknown } | null;
    if (p && (typeof p.pid === 'number' || typeof p.pid === 'string')) return String(p.pid);
    if (p && typeof p.tag === 'string') return `tag:${p.tag}`;
    return null;
  };
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  switch (`${rpc[1]}/${rpc[2]}`) {
    case 'process.Process/Start':
      return { action: parsed && parsed.pty ? 'pty.open' : 'process.start', target: null };
    case 'process.Process/SendInput': {
      // Keystrokes into a terminal are part of its PTY session (recorded as pty.open), as on a WebSocket.
      const input = (parsed?.input ?? null) as { pty?: unknown } | null;
      if (input && input.pty !== undefined) return null;
      return { action: 'process.stdin', target: pidOf() };
    }
    case 'process.Process/CloseStdin':
      return { action: 'process.close-stdin', target: pidOf() };
    case 'process.Process/SendSignal':
      return { action: 'process.signal', target: pidOf() };
    case 'process.Process/Update':
      return { action: 'process.resize', target: pidOf() };
    case 'filesystem.Filesystem/MakeDir':
      return { action: 'file.mkdir', target: str(parsed?.path) };
    case 'filesystem.Filesystem/Move':
      return { action: 'file.rename', target: str(parsed?.source) };
    case 'filesystem.Filesystem/Remove':
      return { action: 'file.remove', target: str(parsed?.path) };
    default:
      return null;
  }
}

/** The JSON of a Connect request body: plain (unary) or the first envelope (streams). */
function parseConnectBody(body: Buffer | null): Record<string, unknown> | null {
  if (!body || body.length === 0) return null;
  let text: string;
  if (body[0] === 0x7b) text = body.toString('utf8');
  else if (body.length >= 5) text = body.subarray(5, 5 + body.readUInt32BE(1)).toString('utf8');
  else return null;
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Records an envd call with its outcome. */
export function recordEnvd(audit: AuditService | null, call: EnvdCall, status: number, errorCode: string | null): void {
  if (!audit) return;
  const target =
    call.sandboxId === null
      ? call.target
      : call.target === null
        ? call.sandboxId
        : `${call.sandboxId}${call.target.startsWith('/') ? ':' : '#'}${call.target}`;
  audit.record({
    time: call.time,
    tenant: call.tenant,
    keyId: call.auth && call.sandboxId ? `token:${call.sandboxId}` : null,
    auth: call.auth,
    role: null,
    action: call.action,
    target: target === null ? null : target.slice(0, 4200),
    route: call.route,
    status,
    error: status >= 400 || errorCode !== null ? (errorCode ?? KIND_BY_STATUS.get(status) ?? `http_${status}`) : null,
    durationMs: performance.now() - call.started,
    client: call.client,
    requestId: call.requestId,
  });
}

/** The HTTP status an agent (Connect) error code stands for, as Hutch maps it. */
export function statusOfAgentCode(code: string | null): { status: number; kind: string } {
  const kind = kindOfAgentCode(code);
  return { status: STATUS_BY_KIND[kind], kind };
}
