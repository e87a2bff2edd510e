import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { VolumeView } from '../../core/volume-service.js';
import { CreateVolumeBody, ErrorBody, TenantQuery, Volume, VolumeList, VolumeParams } from '../schemas.js';
import type { Services } from '../services.js';
import { callerOf } from '../caller.js';
import { listScope, namespaceOf } from '../../core/tenancy.js';
import { creationNamespace } from '../access.js';

/** Volume names are per tenant: a name means the caller's tenant's volume (an admin's `?tenant=` another's). */

function volumeJson(v: VolumeView) {
  return {
    tenant: v.tenant,
    name: v.name,
    sizeMiB: v.sizeMiB,
    labels: v.labels,
    createdAt: v.createdAt.toISOString(),
    usedBytes: v.usedBytes,
    usedBy: v.usedBy,
  };
}

export function volumeRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/volumes',
      {
        schema: {
          querystring: TenantQuery,
          body: CreateVolumeBody,
          response: { 201: Volume, 400: ErrorBody, 409: ErrorBody, 429: ErrorBody },
          tags: ['volumes'],
          summary: "Create a named volume with a size quota (default 1024 MiB); its size counts against the tenant's storage quota",
        },
      },
      async (req, reply) =>
        reply
          .status(201)
          .send(volumeJson(await services.volumes.create(await creationNamespace(services, callerOf(req), req.query.tenant), req.body))),
    );
    app.get(
      '/v1/volumes',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: VolumeList },
          tags: ['volumes'],
          summary: "List your tenant's volumes with usage (admins: every tenant's; ?tenant= narrows)",
        },
      },
      async (req) => ({
        volumes: (await services.volumes.list(listScope(callerOf(req), req.query.tenant))).map(volumeJson),
      }),
    );
    app.get(
      '/v1/volumes/:name',
      {
        schema: {
          params: VolumeParams,
          querystring: TenantQuery,
          response: { 200: Volume, 404: ErrorBody },
          tags: ['volumes'],
          summary: 'Get a volume',
        },
      },
      async (req) => volumeJson(await services.volumes.get(namespaceOf(callerOf(req), req.query.tenant), req.params.name)),
    );
    app.delete(
      '/v1/volumes/:name',
      {
        schema: {
          params: VolumeParams,
          querystring: TenantQuery,
          tags: ['volumes'],
          summary: 'Delete a volume and its contents (409 while a sandbox uses it)',
        },
      },
      async (req, reply) => {
        await services.volumes.delete(namespaceOf(callerOf(req), req.query.tenant), req.params.name);
        return reply.status(204).send();
      },
    );
  };
}
