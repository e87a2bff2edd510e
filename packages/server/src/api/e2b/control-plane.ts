import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { HutchError } from '../../core/errors.js';
import type { SandboxRecord } from '../../core/sandbox.js';
import { EnvMap, Metadata } from '../schemas.js';
import { STATUS_BY_KIND } from '../errors.js';
import type { Services } from '../services.js';
import { callerFromKey, callerOf, trackRequest } from '../caller.js';
import { authorize } from '../access.js';
import { auditTarget } from '../audit.js';
import { listScope } from '../../core/tenancy.js';

/**
 * The E2B control plane (REST, `X-API-KEY`), as a thin adapter over Hutch's sandbox service: the
 * unmodified `e2b` SDK creates, lists, connects to, pauses and kills Hutch sandboxes with it. Paths
 * are E2B's (`/sandboxes`, `/v2/sandboxes`), at the server's root, so `E2B_API_URL` is the plain
 * server URL. Errors use E2B's shape: `{"code": <http status>, "message": "..."}`.
 */
export const ENVD_VERSION = '0.6.4';
const CLIENT_ID = 'hutch';

const CreateBody = z
  .object({
    templateID: z.string().min(1).max(128).optional(),
    timeout: z.number().int().min(1).max(86400).optional(),
    metadata: Metadata.nullish(),
    envVars: EnvMap.nullish(),
    secure: z.boolean().optional(),
    autoPause: z.boolean().optional(),
    autoResume: z.object({ enabled: z.boolean().optional() }).passthrough().nullish(),
    allow_internet_access: z.boolean().optional(),
    network: z
      .object({
        allowOut: z.array(z.string()).max(256).optional(),
        denyOut: z.array(z.string()).max(256).optional(),
        allowPublicTraffic: z.boolean().optional(),
      })
      .passthrough()
      .nullish(),
  })
  .passthrough();
const TimeoutBody = z.object({ timeout: z.number().int().min(0).max(86400) }).passthrough();
const SnapshotBody = z.object({ name: z.string().min(1).max(128).optional() }).passthrough();
const ForkBody = z
  .object({ timeout: z.number().int().min(1).max(86400).optional(), count: z.number().int().min(1).max(64).optional() })
  .passthrough();
const ConnectBody = z.object({ timeout: z.number().int().min(0).max(86400).optional() }).passthrough();

class E2bError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new E2bError(400, `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
}

export function e2bControlRoutes(services: Services, options: { domain: string | null }): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    app.setErrorHandler((err: Error, _req, reply) => {
      const status =
        err instanceof E2bError
          ? err.status
          : err instanceof HutchError
            ? STATUS_BY_KIND[err.kind]
            : ((err as unknown as { statusCode?: number }).statusCode ?? 500);
      void reply.status(status).send({ code: status, message: err.message });
    });
    app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      const key = req.headers['x-api-key'];
      const record = typeof key === 'string' && key.length > 0 && key.length <= 256 ? await services.keys.verify(key) : null;
      if (!record) return reply.status(401).send({ code: 401, message: 'missing or invalid X-API-KEY (a Hutch API key)' });
      req.apiKey = record;
      trackRequest(services, req, reply, record);
      // Tenancy and roles as on /v1: another tenant's sandbox is a 404, read-only keys only read.
      await authorize(services, req, callerFromKey(record));
    });

    // The envd token is full access to the sandbox: never handed to a read-only key.
    const detail = (r: SandboxRecord, req: FastifyRequest) => ({
      ...listed(r),
      ...(callerOf(req).role === 'read-only' ? {} : { envdAccessToken: r.accessToken }),
      domain: options.domain,
    });

    const create = async (req: FastifyRequest, reply: FastifyReply) => {
      const body = parse(CreateBody, req.body);
      const egress =
        body.network?.allowOut && body.network.allowOut.length > 0
          ? { allow: body.network.allowOut, deny: body.network.denyOut ?? [] }
          : body.allow_internet_access === true
            ? 'open'
            : 'none';
      const record = await services.sandboxes.create(
        {
          template: body.templateID ?? 'base',
          timeoutSeconds: body.timeout ?? 300,
          env: body.envVars ?? {},
          metadata: body.metadata ?? {},
          onTimeout: body.autoPause ? 'pause' : 'delete',
          autoResume: body.autoResume?.enabled === true,
          // E2B: ports are public unless allowPublicTraffic is false (`secure` is about envd).
          network: { egress, public: body.network?.allowPublicTraffic !== false },
        },
        callerOf(req),
      );
      auditTarget(req, record.id);
      return reply.status(201).send(created(record, options.domain));
    };
    app.post('/sandboxes', create);
    app.post('/v2/sandboxes', create);

    // v2 lists running and paused sandboxes unless `state` says otherwise (what the SDK documents);
    // v1 lists the running ones.
    const list =
      (defaultStates: string) =>
      async (req: FastifyRequest<{ Querystring: Record<string, string | string[] | undefined> }>, reply: FastifyReply) => {
        const q = req.query;
        const one = (name: string): string | undefined => {
          const v = q[name];
          if (Array.isArray(v)) throw new E2bError(400, `${name}: give it once`);
          return v;
        };
        // `state=running,paused` (the JS SDK) or `state=running&state=paused` (repeated).
        const wanted = [q.state ?? defaultStates]
          .flat()
          .flatMap((s) => s.split(','))
          .map((s) => s.trim())
          .filter(Boolean);
        for (const s of wanted) if (s !== 'running' && s !== 'paused') throw new E2bError(400, `state: "${s}" is not running or paused`);
        const states = wanted.flatMap((s) => (s === 'paused' ? (['paused', 'stopped'] as const) : (['running'] as const)));
        const metadata = metadataQuery(one('metadata'));
        let records = await services.sandboxes.list({
          tenant: listScope(callerOf(req), undefined),
          states: [...new Set(states)],
          ...(Object.keys(metadata).length ? { metadata } : {}),
        });
        const template = one('template');
        if (template) records = records.filter((r) => r.template === template);
        const startedAfter = one('startedAfter');
        if (startedAfter) {
          const after = Date.parse(startedAfter);
          if (Number.isNaN(after)) throw new E2bError(400, `startedAfter: "${startedAfter}" is not a date`);
          // At or after, as E2B documents it.
          records = records.filter((r) => r.createdAt.getTime() >= after);
        }
        const order = (one('order') ?? 'desc').toLowerCase();
        if (order !== 'asc' && order !== 'desc') throw new E2bError(400, `order: "${order}" is not asc or desc`);
        const descending = order === 'desc';
        records.sort((a, b) => (a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id)) * (descending ? -1 : 1));
        const limitText = one('limit');
        const limit = limitText === undefined ? 100 : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new E2bError(400, `limit: must be an integer from 1 to 1000`);
        let start = 0;
        const nextToken = one('nextToken');
        if (nextToken) {
          const cursor = Buffer.from(nextToken, 'base64url').toString('utf8');
          start = records.findIndex((r) => `${r.createdAt.getTime()}:${r.id}` === cursor) + 1;
          if (start === 0) throw new E2bError(400, 'nextToken: not a token this server issued (or the sandbox is gone)');
        }
        const page = records.slice(start, start + limit);
        const last = page[page.length - 1];
        if (last && start + limit < records.length)
          void reply.header('x-next-token', Buffer.from(`${last.createdAt.getTime()}:${last.id}`).toString('base64url'));
        return page.map(listed);
      };
    app.get('/sandboxes', list('running'));
    app.get('/v2/sandboxes', list('running,paused'));

    app.get<{ Params: { id: string } }>('/sandboxes/:id', async (req) => detail(await services.sandboxes.get(req.params.id), req));

    app.delete<{ Params: { id: string } }>('/sandboxes/:id', async (req, reply) => {
      await services.sandboxes.delete(req.params.id);
      return reply.status(204).send();
    });

    app.post<{ Params: { id: string } }>('/sandboxes/:id/timeout', async (req, reply) => {
      const { timeout } = parse(TimeoutBody, req.body);
      await services.sandboxes.setTimeout(req.params.id, Math.max(1, timeout));
      return reply.status(204).send();
    });

    app.post<{ Params: { id: string } }>('/sandboxes/:id/pause', async (req, reply) => {
      const record = await services.sandboxes.get(req.params.id);
      if (record.state === 'paused') throw new E2bError(409, `sandbox ${record.id} is already paused`);
      await services.sandboxes.pause(record.id);
      return reply.status(204).send();
    });

    // Snapshots and forks, over Hutch's snapshot service. A snapshot id is a template id.
    app.post<{ Params: { id: string } }>('/sandboxes/:id/snapshots', async (req, reply) => {
      const { name } = parse(SnapshotBody, req.body);
      const snapshot = await services.snapshots.create(req.params.id, name ? { metadata: { name } } : {});
      return reply.status(201).send({ snapshotID: snapshot.id, names: name ? [name] : [] });
    });
    app.get('/snapshots', async (req: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply) => {
      const q = req.query;
      let all = await services.snapshots.list(listScope(callerOf(req), undefined));
      if (q.sandboxID) all = all.filter((s) => s.sourceSandbox === q.sandboxID);
      if (q.name) all = all.filter((s) => s.metadata.name === q.name);
      all.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || a.id.localeCompare(b.id));
      const limit = q.limit === undefined ? 100 : Number(q.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new E2bError(400, 'limit: must be an integer from 1 to 1000');
      const start = q.nextToken ? all.findIndex((s) => s.id === Buffer.from(q.nextToken!, 'base64url').toString('utf8')) + 1 : 0;
      if (q.nextToken && start === 0) throw new E2bError(400, 'nextToken: not a token this server issued');
      const page = all.slice(start, start + limit);
      if (start + limit < all.length) void reply.header('x-next-token', Buffer.from(page[page.length - 1]!.id).toString('base64url'));
      return page.map((s) => ({ snapshotID: s.id, names: s.metadata.name ? [s.metadata.name] : [] }));
    });
    // E2B deletes snapshots as templates.
    app.delete<{ Params: { templateID: string } }>('/templates/:templateID', async (req, reply) => {
      await services.snapshots.delete(req.params.templateID);
      return reply.status(204).send();
    });
    app.post<{ Params: { id: string } }>('/sandboxes/:id/fork', async (req, reply) => {
      const body = parse(ForkBody, req.body);
      const { sandboxes } = await services.snapshots.fork(req.params.id, { count: body.count ?? 1 }, callerOf(req));
      const results = [];
      for (const sb of sandboxes) {
        const record = body.timeout ? await services.sandboxes.setTimeout(sb.id, body.timeout) : sb;
        results.push({ sandbox: created(record, options.domain) });
      }
      return reply.status(201).send(results);
    });

    app.get<{ Params: { id: string } }>('/sandboxes/:id/metrics', async (req) => {
      const m = await services.sandboxes.metrics(req.params.id);
      if (!m) return [];
      return [{ ...m, timestamp: m.timestamp.toISOString(), timestampUnix: Math.floor(m.timestamp.getTime() / 1000) }];
    });

    // Connect: resumes a paused sandbox (201), and only ever extends the TTL (200 if it was running).
    const connect = async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      const { timeout } = parse(ConnectBody, req.body);
      let record = await services.sandboxes.get(req.params.id);
      let status = 200;
      if (record.state === 'paused' || record.state === 'stopped') {
        record = record.state === 'paused' ? await services.sandboxes.resume(record.id) : await services.sandboxes.start(record.id);
        status = 201;
      }
      if (record.state !== 'running') throw new E2bError(404, `sandbox ${record.id} is ${record.state}`);
      // Only ever extends (a sandbox without a TTL keeps none).
      if (timeout !== undefined && timeout > 0) record = await services.sandboxes.extendTimeout(record.id, timeout);
      return reply.status(status).send(created(record, options.domain));
    };
    app.post('/sandboxes/:id/connect', connect);
    app.post('/v2/sandboxes/:id/connect', connect);
    // Older SDKs resume through this path.
    app.post<{ Params: { id: string } }>('/sandboxes/:id/resume', async (req, reply) => {
      const record = await services.sandboxes.get(req.params.id);
      if (record.state !== 'paused') throw new E2bError(409, `sandbox ${record.id} is ${record.state}, not paused`);
      return connect(req, reply);
    });
  };
}

/**
 * The `metadata` list filter: `k=v&k2=v2` whose keys and values the SDKs URL-encode before
 * encoding the whole query parameter (so after the query string is parsed they are still
 * encoded once); decoded once more, as E2B's API does.
 */
function metadataQuery(text: string | undefined): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (!text) return metadata;
  const decode = (part: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new E2bError(400, `metadata: "${part}" is not URL-encoded`);
    }
  };
  for (const [k, v] of new URLSearchParams(text)) metadata[decode(k)] = decode(v);
  return metadata;
}

/** What create, connect and fork answer for a sandbox. */
function created(r: SandboxRecord, domain: string | null) {
  return {
    sandboxID: r.id,
    templateID: r.template,
    clientID: CLIENT_ID,
    envdVersion: ENVD_VERSION,
    envdAccessToken: r.accessToken,
    trafficAccessToken: null,
    domain,
  };
}

function listed(r: SandboxRecord) {
  return {
    sandboxID: r.id,
    templateID: r.template,
    alias: r.template,
    clientID: CLIENT_ID,
    startedAt: r.createdAt.toISOString(),
    endAt: (r.expiresAt ?? new Date(8.64e15)).toISOString(),
    cpuCount: Math.max(1, Math.ceil(r.cpu)),
    memoryMB: r.memoryMiB,
    diskSizeMB: r.diskMiB,
    envdVersion: ENVD_VERSION,
    metadata: r.metadata,
    state: r.state === 'running' ? 'running' : 'paused',
  };
}
