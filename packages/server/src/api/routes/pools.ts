import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorBody, PoolView, PutPoolBody, TenantQuery } from '../schemas.js';
import type { Services } from '../services.js';
import { callerOf } from '../caller.js';
import { listScope, namespaceOf } from '../../core/tenancy.js';
import { creationNamespace } from '../access.js';

const NameParams = z.object({ name: z.string().min(1).max(100) });

/**
 * Warm pools: define (PUT is create-or-replace), list with their figures, drain and remove. Pools
 * belong to a tenant (names are per tenant; an admin's `?tenant=` names another's) and only serve
 * that tenant's creates.
 */
export function poolRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.put(
      '/v1/pools/:name',
      {
        schema: {
          params: NameParams,
          querystring: TenantQuery,
          body: PutPoolBody,
          response: { 200: PoolView, 400: ErrorBody },
          tags: ['pools'],
          summary: 'Define a warm pool: creates with the same template, isolation, cpu, memoryMiB, pids and diskMiB claim a ready sandbox',
        },
      },
      async (req) => services.pools.put(await creationNamespace(services, callerOf(req), req.query.tenant), req.params.name, req.body),
    );
    app.get(
      '/v1/pools',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: z.object({ pools: z.array(PoolView) }) },
          tags: ['pools'],
          summary: "List your tenant's warm pools with size, hits, misses and refill rate (admins: every tenant's; ?tenant= narrows)",
        },
      },
      async (req) => ({ pools: services.pools.list(listScope(callerOf(req), req.query.tenant)) }),
    );
    app.get(
      '/v1/pools/:name',
      {
        schema: {
          params: NameParams,
          querystring: TenantQuery,
          response: { 200: PoolView, 404: ErrorBody },
          tags: ['pools'],
          summary: 'One warm pool',
        },
      },
      async (req) => services.pools.get(namespaceOf(callerOf(req), req.query.tenant), req.params.name),
    );
    app.delete(
      '/v1/pools/:name',
      {
        schema: {
          params: NameParams,
          querystring: TenantQuery,
          tags: ['pools'],
          summary: 'Remove a warm pool; its ready sandboxes are destroyed',
        },
      },
      async (req, reply) => {
        await services.pools.delete(namespaceOf(callerOf(req), req.query.tenant), req.params.name);
        return reply.status(204).send();
      },
    );
  };
}
