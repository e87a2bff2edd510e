import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { invalidArgument } from '../../core/errors.js';
import { SANDBOX_STATES, type SandboxState } from '../../core/sandbox.js';
import {
  CreateSandboxBody,
  ErrorBody,
  IdParams,
  ListSandboxesQuery,
  PauseResult,
  Sandbox,
  SandboxList,
  SandboxUsage,
  TimeoutBody,
  TemplateList,
} from '../schemas.js';
import { sandboxJson } from '../serialize.js';
import { callerOf } from '../caller.js';
import { auditTarget } from '../audit.js';
import { listScope } from '../../core/tenancy.js';
import type { Services } from '../services.js';

export function sandboxRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/sandboxes',
      {
        schema: {
          body: CreateSandboxBody,
          response: { 201: Sandbox, 400: ErrorBody, 422: ErrorBody, 429: ErrorBody, 503: ErrorBody },
          tags: ['sandboxes'],
          summary: 'Create a sandbox (warm from a matching pool when one has a sandbox ready; 429/503 with Retry-After when over a limit)',
        },
      },
      async (req, reply) => {
        const record = await services.sandboxes.create(req.body, callerOf(req));
        auditTarget(req, record.id);
        return reply.status(201).send(sandboxJson(record));
      },
    );

    app.get(
      '/v1/sandboxes',
      {
        schema: {
          querystring: ListSandboxesQuery,
          response: { 200: SandboxList },
          tags: ['sandboxes'],
          summary:
            "List your tenant's sandboxes (filters: state=a,b and metadata.<key>=<value>; admins see every tenant's, tenant=<name> narrows)",
        },
      },
      async (req) => {
        const { state, tenant, ...rest } = req.query;
        const states = state
          ? state
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : [];
        for (const s of states)
          if (!SANDBOX_STATES.includes(s as SandboxState))
            throw invalidArgument(`state: unknown state "${s}" (one of ${SANDBOX_STATES.join(', ')})`);
        const metadata: Record<string, string> = {};
        for (const [k, v] of Object.entries(rest)) {
          if (!k.startsWith('metadata.')) throw invalidArgument(`${k}: unknown query parameter (use state or metadata.<key>)`);
          metadata[k.slice('metadata.'.length)] = String(v);
        }
        const records = await services.sandboxes.list({
          tenant: listScope(callerOf(req), tenant),
          states: states as SandboxState[],
          ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
        });
        return { sandboxes: records.map(sandboxJson) };
      },
    );

    app.get(
      '/v1/sandboxes/:id',
      { schema: { params: IdParams, response: { 200: Sandbox, 404: ErrorBody }, tags: ['sandboxes'], summary: 'Get a sandbox' } },
      async (req) => sandboxJson(await services.sandboxes.get(req.params.id)),
    );

    app.delete(
      '/v1/sandboxes/:id',
      { schema: { params: IdParams, tags: ['sandboxes'], summary: 'Delete a sandbox and everything it used' } },
      async (req, reply) => {
        await services.sandboxes.delete(req.params.id);
        return reply.status(204).send();
      },
    );

    app.post(
      '/v1/sandboxes/:id/timeout',
      { schema: { params: IdParams, body: TimeoutBody, response: { 200: Sandbox }, tags: ['sandboxes'], summary: 'Set the TTL from now' } },
      async (req) => sandboxJson(await services.sandboxes.setTimeout(req.params.id, req.body.timeoutSeconds)),
    );

    const lifecycle = { params: IdParams, response: { 200: Sandbox, 404: ErrorBody, 409: ErrorBody }, tags: ['lifecycle'] };
    app.post(
      '/v1/sandboxes/:id/stop',
      { schema: { ...lifecycle, summary: 'Stop: processes end, memory and cpu are freed, files stay' } },
      async (req) => sandboxJson(await services.sandboxes.stop(req.params.id)),
    );
    app.post(
      '/v1/sandboxes/:id/start',
      { schema: { ...lifecycle, summary: 'Start a stopped sandbox (same id, files, env, metadata)' } },
      async (req) => sandboxJson(await services.sandboxes.start(req.params.id)),
    );
    app.post(
      '/v1/sandboxes/:id/pause',
      {
        schema: {
          params: IdParams,
          response: { 200: PauseResult, 404: ErrorBody, 409: ErrorBody },
          tags: ['lifecycle'],
          summary: 'Pause: memory kept where the tier can (gVisor checkpoint), else files only; the mode is in the answer',
        },
      },
      async (req) => {
        const started = performance.now();
        const { record, note } = await services.sandboxes.pause(req.params.id);
        return {
          id: record.id,
          state: record.state,
          pauseMode: record.pauseMode,
          note,
          durationMs: Math.round(performance.now() - started),
        };
      },
    );
    app.post(
      '/v1/sandboxes/:id/resume',
      {
        schema: {
          params: IdParams,
          response: { 200: PauseResult, 404: ErrorBody, 409: ErrorBody },
          tags: ['lifecycle'],
          summary: 'Resume a paused sandbox',
        },
      },
      async (req) => {
        const started = performance.now();
        const before = await services.sandboxes.get(req.params.id);
        const record = await services.sandboxes.resume(req.params.id);
        return {
          id: record.id,
          state: record.state,
          pauseMode: before.pauseMode,
          note: null,
          durationMs: Math.round(performance.now() - started),
        };
      },
    );
    app.get(
      '/v1/sandboxes/:id/usage',
      {
        schema: {
          params: IdParams,
          response: { 200: SandboxUsage, 404: ErrorBody },
          tags: ['sandboxes'],
          summary: "Disk usage of the sandbox's own filesystem (null while it is not mounted) and of its volumes",
        },
      },
      async (req) => {
        const record = await services.sandboxes.get(req.params.id);
        const volumes = [];
        for (const v of record.volumes) {
          const usage = await services.volumes.usage(record.tenant, v.name);
          volumes.push({ name: v.name, path: v.path, usedBytes: usage?.usedBytes ?? null, sizeBytes: usage?.sizeBytes ?? null });
        }
        return { disk: await services.sandboxes.diskUsage(record.id), volumes };
      },
    );

    app.get('/v1/templates', { schema: { response: { 200: TemplateList }, tags: ['templates'], summary: 'List templates' } }, async () => ({
      templates: await services.templates.list(),
    }));

    app.get('/v1/info', { schema: { tags: ['server'], summary: 'Version, host posture and available tiers' } }, async () =>
      services.info(),
    );
  };
}
