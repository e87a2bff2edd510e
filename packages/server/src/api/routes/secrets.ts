import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { SecretRecord } from '../../core/secrets.js';
import { listScope, namespaceOf } from '../../core/tenancy.js';
import { creationNamespace } from '../access.js';
import { callerOf } from '../caller.js';
import { ErrorBody, PutSecretBody, SecretInfo, SecretList, SecretParams, TenantQuery } from '../schemas.js';
import type { Services } from '../services.js';

/**
 * Secrets: names are per tenant (an admin's `?tenant=` names another's). Every answer is metadata;
 * a value goes in with PUT and only ever comes out inside the sandboxes that ask for it.
 */
function secretJson(s: SecretRecord) {
  return {
    tenant: s.tenant,
    name: s.name,
    sizeBytes: s.sizeBytes,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

export function secretRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.put(
      '/v1/secrets/:name',
      {
        schema: {
          params: SecretParams,
          querystring: TenantQuery,
          body: PutSecretBody,
          response: { 200: SecretInfo, 201: SecretInfo, 400: ErrorBody, 403: ErrorBody, 404: ErrorBody },
          tags: ['secrets'],
          summary:
            'Create (201) or replace (200) a secret: {value}, a UTF-8 string of at most 64 KiB; stored encrypted, never returned. Sandboxes already using it keep their value until they restart',
        },
      },
      async (req, reply) => {
        const tenant = await creationNamespace(services, callerOf(req), req.query.tenant);
        const { record, created } = await services.secrets.put(tenant, req.params.name, req.body.value);
        return reply.status(created ? 201 : 200).send(secretJson(record));
      },
    );
    app.get(
      '/v1/secrets',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: SecretList },
          tags: ['secrets'],
          summary: "List your tenant's secrets: names and metadata, never values (admins: every tenant's; ?tenant= narrows)",
        },
      },
      async (req) => ({ secrets: (await services.secrets.list(listScope(callerOf(req), req.query.tenant))).map(secretJson) }),
    );
    app.get(
      '/v1/secrets/:name',
      {
        schema: {
          params: SecretParams,
          querystring: TenantQuery,
          response: { 200: SecretInfo, 404: ErrorBody },
          tags: ['secrets'],
          summary: "A secret's metadata (never its value)",
        },
      },
      async (req) => secretJson(await services.secrets.get(namespaceOf(callerOf(req), req.query.tenant), req.params.name)),
    );
    app.delete(
      '/v1/secrets/:name',
      {
        schema: {
          params: SecretParams,
          querystring: TenantQuery,
          tags: ['secrets'],
          summary:
            'Delete a secret. Running sandboxes keep what they were given; a stopped or paused one that names it cannot start again (409) until it is written again',
        },
      },
      async (req, reply) => {
        await services.secrets.delete(namespaceOf(callerOf(req), req.query.tenant), req.params.name);
        return reply.status(204).send();
      },
    );
  };
}
