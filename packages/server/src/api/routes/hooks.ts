import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { DELIVERY_OUTCOMES, type DeliveryRecord, type PreviewRecord, type ProjectRecord } from '../../core/hooks.js';
import { listScope } from '../../core/tenancy.js';
import { callerOf } from '../caller.js';
import { auditTarget } from '../audit.js';
import { ErrorBody } from '../schemas.js';
import type { Services } from '../services.js';
import { parseCursor, parseTime } from './audit.js';
import { redactUrlCredentials } from '../../environments/workspace.js';

/**
 * Git hosting webhooks (core/hook-service.ts, core/preview-service.ts). The receivers
 * (`POST /v1/hooks/github`, `/v1/hooks/gitlab`) are authenticated by the delivery's signature or
 * token, not by an API key, and keep the raw body (the HMAC is over its exact bytes). The rest —
 * the delivery log, projects, approvals, previews — are ordinary API routes.
 */
export const HOOK_BODY_LIMIT = 8 * 1024 * 1024;

const Provider = z.enum(['github', 'gitlab']);

const DeliveryJson = z.object({
  id: z.number(),
  provider: Provider,
  deliveryId: z.string().nullable(),
  event: z.string(),
  action: z.string().nullable(),
  repository: z.string().nullable(),
  number: z.number().nullable(),
  sha: z.string().nullable(),
  signatureOk: z.boolean(),
  duplicateOf: z.number().nullable(),
  outcome: z.enum(DELIVERY_OUTCOMES),
  reason: z.string().nullable(),
  targetKey: z.string().nullable(),
  environmentId: z.string().nullable(),
  tenant: z.string().nullable(),
  feedback: z.string().nullable(),
  time: z.string(),
  updatedAt: z.string(),
});

function deliveryJson(d: DeliveryRecord): z.infer<typeof DeliveryJson> {
  return { ...d, time: d.time.toISOString(), updatedAt: d.updatedAt.toISOString() };
}

const ProjectJson = z.object({
  id: z.string(),
  provider: Provider,
  repository: z.string(),
  tenant: z.string(),
  cloneUrl: z.string().nullable(),
  branches: z.array(z.string()),
  /** Names only: values may be secrets. */
  variables: z.array(z.string()),
  createdAt: z.string(),
});

function projectJson(p: ProjectRecord): z.infer<typeof ProjectJson> {
  return {
    ...p,
    cloneUrl: p.cloneUrl === null ? null : redactUrlCredentials(p.cloneUrl),
    variables: Object.keys(p.variables),
    createdAt: p.createdAt.toISOString(),
  };
}

const PreviewJson = z.object({
  key: z.string(),
  provider: Provider,
  repository: z.string(),
  number: z.number().nullable(),
  branch: z.string().nullable(),
  tenant: z.string(),
  environmentId: z.string().nullable(),
  state: z.string(),
  sha: z.string(),
  deployedSha: z.string().nullable(),
  fork: z.boolean(),
  approvedSha: z.string().nullable(),
  labels: z.array(z.string()),
  keep: z.boolean(),
  error: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

function previewJson(p: PreviewRecord): z.infer<typeof PreviewJson> {
  return {
    key: p.key,
    provider: p.provider,
    repository: p.repository,
    number: p.number,
    branch: p.branch,
    tenant: p.tenant,
    environmentId: p.environmentId,
    state: p.state,
    sha: p.sha,
    deployedSha: p.deployedSha,
    fork: p.fork,
    approvedSha: p.approvedSha,
    labels: p.labels,
    keep: p.keep,
    error: p.error,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

const DeliveriesQuery = z
  .object({
    tenant: z.string().max(63).optional(),
    provider: Provider.optional(),
    outcome: z.enum(DELIVERY_OUTCOMES).optional(),
    repository: z.string().min(1).max(255).optional(),
    number: z.coerce.number().int().positive().optional(),
    environment: z.string().min(1).max(40).optional(),
    since: z.string().min(1).max(64).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    cursor: z.string().max(32).optional(),
  })
  .strict();

const ProjectBody = z
  .object({
    provider: Provider,
    repository: z.string().min(3).max(255),
    /** The tenant owning the environments (default: the caller's). */
    tenant: z.string().max(63).optional(),
    cloneUrl: z.string().min(1).max(2000).nullable().optional(),
    branches: z.array(z.string().min(1).max(200)).max(50).optional(),
    variables: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/), z.string().max(65536)).optional(),
  })
  .strict();

const ApprovalBody = z
  .object({
    provider: Provider,
    repository: z.string().min(3).max(255),
    number: z.number().int().positive(),
    sha: z
      .string()
      .regex(/^[0-9a-f]{40}$/)
      .optional(),
  })
  .strict();

/** `delivery`: its id in the delivery log (null: a rejected one past the recording limit). */
const ReceiverAnswer = z.object({ delivery: z.number().nullable(), outcome: z.string(), message: z.string() });

/** The receivers: raw bodies, authenticated by signature or token (config.webhook skips the API key). */
export function hookReceiverRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    // In this plugin only: bodies stay bytes, whatever their type.
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: HOOK_BODY_LIMIT }, (_req, body, done) => done(null, body));
    app.removeContentTypeParser(['application/json', 'text/plain']);
    app.addContentTypeParser(['application/json', 'text/plain'], { parseAs: 'buffer', bodyLimit: HOOK_BODY_LIMIT }, (_req, body, done) =>
      done(null, body),
    );
    for (const provider of ['github', 'gitlab'] as const) {
      app.post(
        `/v1/hooks/${provider}`,
        {
          bodyLimit: HOOK_BODY_LIMIT,
          config: { webhook: true },
          schema: {
            response: { 200: ReceiverAnswer, 202: ReceiverAnswer, 400: ReceiverAnswer, 401: ReceiverAnswer },
            tags: ['hooks'],
            summary:
              provider === 'github'
                ? 'GitHub webhook receiver (X-Hub-Signature-256 over the raw body; no API key): 202 work queued, 200 ignored or duplicate, 401 bad signature'
                : 'GitLab webhook receiver (X-Gitlab-Token; no API key): 202 work queued, 200 ignored or duplicate, 401 bad token',
            security: [],
          },
        },
        async (req, reply) => {
          const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          const answer = await services.hooks.receive(provider, req.headers, body);
          if (answer.delivery) auditTarget(req, `delivery:${answer.delivery.id}`);
          if (answer.status === 401)
            void reply.header('www-authenticate', provider === 'github' ? 'X-Hub-Signature-256' : 'X-Gitlab-Token');
          return reply
            .status(answer.status)
            .send({ delivery: answer.delivery?.id ?? null, outcome: answer.delivery?.outcome ?? 'rejected', message: answer.message });
        },
      );
    }
  };
}

export function hookRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/hooks/deliveries',
      {
        schema: {
          querystring: DeliveriesQuery,
          response: {
            200: z.object({ deliveries: z.array(DeliveryJson), nextCursor: z.string().nullable() }),
            400: ErrorBody,
            404: ErrorBody,
          },
          tags: ['hooks'],
          summary:
            "The webhook delivery log, newest first: what each delivery triggered or why it was ignored (your tenant's; admins: every tenant's and unmatched ones, ?tenant= narrows). Filters: provider, outcome, repository, number, environment, since; limit + cursor",
        },
      },
      async (req) => {
        const q = req.query;
        const before = q.cursor !== undefined ? parseCursor(q.cursor) : undefined;
        const limit = q.limit ?? 100;
        const deliveries = await services.hooks.listDeliveries({
          tenant: listScope(callerOf(req), q.tenant),
          limit,
          ...(q.provider !== undefined ? { provider: q.provider } : {}),
          ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
          ...(q.repository !== undefined ? { repository: q.repository } : {}),
          ...(q.number !== undefined ? { number: q.number } : {}),
          ...(q.environment !== undefined ? { environmentId: q.environment } : {}),
          ...(q.since !== undefined ? { since: parseTime(q.since, 'since') } : {}),
          ...(before !== undefined ? { before } : {}),
        });
        const last = deliveries[deliveries.length - 1];
        return { deliveries: deliveries.map(deliveryJson), nextCursor: deliveries.length === limit && last ? String(last.id) : null };
      },
    );
    app.get(
      '/v1/hooks/previews',
      {
        schema: {
          querystring: z.object({ tenant: z.string().max(63).optional() }).strict(),
          response: { 200: z.object({ previews: z.array(PreviewJson) }) },
          tags: ['hooks'],
          summary: 'Preview environments driven by webhooks (not destroyed ones): pull request, commit, state, environment',
        },
      },
      async (req) => ({ previews: (await services.previews.list(listScope(callerOf(req), req.query.tenant))).map(previewJson) }),
    );
    app.post(
      '/v1/hooks/projects',
      {
        config: { minRole: 'admin' },
        schema: {
          body: ProjectBody,
          response: { 201: ProjectJson, 400: ErrorBody, 409: ErrorBody },
          tags: ['hooks'],
          summary:
            "Register a repository: its webhook deliveries deploy environments in `tenant` (default: the admin's), fetched from `cloneUrl` when set; pushes to `branches` deploy branch environments; `variables` go to its environments (never to forks)",
        },
      },
      async (req, reply) => {
        const { tenant, ...rest } = req.body;
        const project = await services.hooks.addProject({ ...rest, tenant: tenant ?? callerOf(req).tenant });
        auditTarget(req, project.id);
        return reply.status(201).send(projectJson(project));
      },
    );
    app.get(
      '/v1/hooks/projects',
      {
        schema: {
          querystring: z.object({ tenant: z.string().max(63).optional() }).strict(),
          response: { 200: z.object({ projects: z.array(ProjectJson) }) },
          tags: ['hooks'],
          summary: 'Registered repositories (variable names only)',
        },
      },
      async (req) => ({ projects: (await services.hooks.listProjects(listScope(callerOf(req), req.query.tenant))).map(projectJson) }),
    );
    app.delete(
      '/v1/hooks/projects/:id',
      {
        config: { minRole: 'admin' },
        schema: {
          params: z.object({ id: z.string().max(40) }),
          tags: ['hooks'],
          summary: 'Unregister a repository (its deliveries are ignored from then on; its environments stay until closed or deleted)',
        },
      },
      async (req, reply) => {
        await services.hooks.removeProject(req.params.id);
        return reply.status(204).send();
      },
    );
    app.post(
      '/v1/hooks/approvals',
      {
        schema: {
          body: ApprovalBody,
          response: { 200: PreviewJson, 400: ErrorBody, 404: ErrorBody },
          tags: ['hooks'],
          summary: "Approve a fork's pull request at a commit (default: the one waiting): it deploys",
        },
      },
      async (req) => previewJson(await services.previews.approve(callerOf(req), req.body)),
    );
  };
}
