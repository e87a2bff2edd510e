import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiKeyRecord } from '../../core/stores.js';
import { callerOf } from '../caller.js';
import { auditTarget } from '../audit.js';
import { CreateKeyBody, ErrorBody, KeyInfo, KeyParams, ResourceLimitsBody, TenantQuery } from '../schemas.js';
import type { Services } from '../services.js';

function keyJson(k: ApiKeyRecord) {
  return {
    id: k.id,
    name: k.name,
    tenant: k.tenant,
    role: k.role,
    createdAt: k.createdAt.toISOString(),
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
    limits: k.limits,
  };
}

/**
 * API keys: create for a tenant with a role (the secret is shown once), list, limit, revoke.
 * Members manage their own tenant's keys up to their own role; admins any key (core/key-service.ts).
 */
export function keyRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/keys',
      {
        schema: {
          body: CreateKeyBody,
          response: { 201: KeyInfo.extend({ key: z.string() }), 400: ErrorBody, 403: ErrorBody, 404: ErrorBody },
          tags: ['keys'],
          summary:
            'Create an API key for a tenant with a role (default: your tenant, member); works as Bearer and as E2B X-API-KEY; the key is only shown in this answer',
        },
      },
      async (req, reply) => {
        const { record, key } = await services.keys.create(callerOf(req), req.body);
        auditTarget(req, record.id);
        return reply.status(201).send({ ...keyJson(record), key });
      },
    );
    app.get(
      '/v1/keys',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: z.object({ keys: z.array(KeyInfo) }) },
          tags: ['keys'],
          summary: "List API keys (never their secrets): your tenant's, or an admin's view of all (?tenant= narrows)",
        },
      },
      async (req) => ({ keys: (await services.keys.list(callerOf(req), req.query.tenant)).map(keyJson) }),
    );
    app.get(
      '/v1/keys/:id',
      { schema: { params: KeyParams, response: { 200: KeyInfo, 404: ErrorBody }, tags: ['keys'], summary: 'One API key' } },
      async (req) => keyJson(await services.keys.get(callerOf(req), req.params.id)),
    );
    app.delete(
      '/v1/keys/:id',
      {
        schema: {
          params: KeyParams,
          response: { 200: z.object({ id: z.string(), revoked: z.literal(true), closedConnections: z.number() }), 404: ErrorBody },
          tags: ['keys'],
          summary: 'Revoke an API key: it stops working at once and its open streams and WebSockets are closed',
        },
      },
      async (req) => {
        const { closed } = await services.keys.revoke(callerOf(req), req.params.id, req.openStream ?? undefined);
        return { id: req.params.id, revoked: true as const, closedConnections: closed };
      },
    );
    app.put(
      '/v1/keys/:id/limits',
      {
        schema: {
          params: KeyParams,
          body: ResourceLimitsBody.nullable(),
          response: { 200: z.object({ id: z.string(), limits: ResourceLimitsBody.nullable() }), 400: ErrorBody, 404: ErrorBody },
          tags: ['keys'],
          summary: "Replace an API key's own limits inside its tenant's quotas (null: none); applies to its next creates",
        },
      },
      async (req) => {
        const record = await services.keys.setLimits(callerOf(req), req.params.id, req.body ?? null);
        return { id: record.id, limits: record.limits };
      },
    );
  };
}
