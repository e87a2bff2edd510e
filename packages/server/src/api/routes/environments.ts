import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { EnvironmentRecord } from '../../core/environment.js';
import { listScope } from '../../core/tenancy.js';
import { callerOf } from '../caller.js';
import { auditTarget } from '../audit.js';
import {
  CreateEnvironmentBody,
  Environment,
  EnvironmentList,
  EnvironmentLogs,
  EnvironmentLogsQuery,
  EnvironmentParams,
  ENVIRONMENT_ARCHIVE_MAX_BYTES,
  ENVIRONMENT_BODY_LIMIT,
  ErrorBody,
  TenantQuery,
  UpdateEnvironmentBody,
  EnvironmentSeedList,
  RefreshSeedsBody,
} from '../schemas.js';
import type { SeedRecord } from '../../core/environment-seeds.js';
import type { Expiry } from '../../core/environment-lifecycle.js';
import type { Services } from '../services.js';
import { invalidArgument } from '../../core/errors.js';

export function environmentJson(e: EnvironmentRecord, expiry: Expiry) {
  return {
    id: e.id,
    tenant: e.tenant,
    name: e.name,
    state: e.state,
    error: e.error,
    url: e.url,
    source: e.source,
    gitSha: e.gitSha,
    prNumber: e.prNumber,
    profiles: e.profiles,
    services: e.services.map((s) => ({
      name: s.name,
      state: s.state,
      job: s.job,
      sandboxId: s.sandboxId,
      template: s.template,
      url: s.routes[0]?.url ?? null,
      routes: s.routes,
      exitCode: s.exitCode,
      error: s.error,
      note: s.note ?? null,
    })),
    volumes: e.volumes,
    warnings: e.warnings,
    createdAt: e.createdAt.toISOString(),
    updatedAt: e.updatedAt.toISOString(),
    keep: e.keep,
    ttl: { idleSeconds: Math.round(expiry.idleTtlMs / 1000), deleteSeconds: Math.round(expiry.deleteTtlMs / 1000) },
    activeAt: e.activeAt.toISOString(),
    sleepsAt: expiry.sleepsAt?.toISOString() ?? null,
    deletesAt: expiry.deletesAt?.toISOString() ?? null,
    sleptAt: e.sleptAt?.toISOString() ?? null,
    slug: e.slug,
    project: e.project,
    baseRef: e.baseRef,
  };
}

function seedJson(s: SeedRecord) {
  return {
    tenant: s.tenant,
    project: s.project,
    baseRef: s.baseRef,
    volume: s.volume,
    inputsHash: s.inputsHash,
    snapshotVolume: s.snapshotVolume,
    environment: s.environment,
    createdAt: s.createdAt.toISOString(),
  };
}

export function environmentRoutes(services: Services): FastifyPluginAsyncZod {
  const json = (e: EnvironmentRecord) => environmentJson(e, services.environmentLifecycle.expiry(e));
  return async (app) => {
    app.post(
      '/v1/environments',
      {
        bodyLimit: ENVIRONMENT_BODY_LIMIT,
        schema: {
          body: CreateEnvironmentBody,
          response: { 201: Environment, 400: ErrorBody, 413: ErrorBody, 422: ErrorBody, 429: ErrorBody },
          tags: ['environments'],
          summary:
            'Create an environment from a Compose project (a base64 tar/tar.gz of the directory, or a git URL and ref); answers once the project is validated, services come up in the background',
        },
      },
      async (req, reply) => {
        const { source, ...rest } = req.body;
        let input;
        if ('archive' in source) {
          const archive = Buffer.from(source.archive, 'base64');
          if (archive.length > ENVIRONMENT_ARCHIVE_MAX_BYTES)
            throw invalidArgument(`source.archive: at most ${ENVIRONMENT_ARCHIVE_MAX_BYTES / 1024 / 1024} MiB`);
          input = { ...rest, source: { archive } };
        } else input = { ...rest, source };
        const record = await services.environments.create(input, callerOf(req));
        auditTarget(req, record.id);
        return reply.status(201).send(json(record));
      },
    );
    app.get(
      '/v1/environments',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: EnvironmentList },
          tags: ['environments'],
          summary: "List your tenant's environments with each service's state and URL (admins: every tenant's; ?tenant= narrows)",
        },
      },
      async (req) => ({
        environments: (await services.environments.list(listScope(callerOf(req), req.query.tenant))).map(json),
      }),
    );
    app.get(
      '/v1/environments/:id',
      {
        schema: {
          params: EnvironmentParams,
          response: { 200: Environment, 404: ErrorBody },
          tags: ['environments'],
          summary: 'Get an environment',
        },
      },
      async (req) => json(await services.environments.get(req.params.id)),
    );
    app.patch(
      '/v1/environments/:id',
      {
        schema: {
          params: EnvironmentParams,
          body: UpdateEnvironmentBody,
          response: { 200: Environment, 400: ErrorBody, 404: ErrorBody },
          tags: ['environments'],
          summary:
            'Pin an environment (keep: no TTL, no janitor) or set its TTLs (ttl.idle: sleep, ttl.delete: destroy; "30m", "72h", "3d", "off", or null for the server default); counts as activity',
        },
      },
      async (req) => {
        await services.environments.get(req.params.id);
        return json(await services.environmentLifecycle.update(req.params.id, req.body));
      },
    );
    app.delete(
      '/v1/environments/:id',
      {
        schema: {
          params: EnvironmentParams,
          tags: ['environments'],
          summary: 'Destroy an environment: its sandboxes, the volumes it created and its network (idempotent: 204 again once deleted)',
        },
      },
      async (req, reply) => {
        await services.environments.delete(req.params.id);
        return reply.status(204).send();
      },
    );
    app.get(
      '/v1/environment-seeds',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: EnvironmentSeedList },
          tags: ['environments'],
          summary: "List the golden seed snapshots (x-hutch.seed strategy snapshot) of your tenant's projects and base branches",
        },
      },
      async (req) => ({ seeds: (await services.environmentSeeds.list(listScope(callerOf(req), req.query.tenant))).map(seedJson) }),
    );
    app.post(
      '/v1/environment-seeds/refresh',
      {
        schema: {
          body: RefreshSeedsBody,
          response: { 200: EnvironmentSeedList },
          tags: ['environments'],
          summary:
            "Forget a project's golden seed snapshots (one base branch, or all): the next environment runs its seed job again and takes a new one",
        },
      },
      async (req) => ({
        seeds: (await services.environmentSeeds.refresh(callerOf(req).tenant, req.body.project, req.body.baseRef)).map(seedJson),
      }),
    );
    app.get(
      '/v1/environments/:id/logs',
      {
        schema: {
          params: EnvironmentParams,
          querystring: EnvironmentLogsQuery,
          response: { 200: EnvironmentLogs, 404: ErrorBody },
          tags: ['environments'],
          summary: "The last lines (tail, default 200) of each service's output, or one service's",
        },
      },
      async (req) => ({ logs: await services.environments.logs(req.params.id, req.query.service, req.query.tail) }),
    );
  };
}
