import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ErrorBody, PoolView, PutPoolBody } from '../schemas.js';
import type { Services } from '../services.js';

const NameParams = z.object({ name: z.string().min(1).max(100) });

/** Warm pools: define (PUT is create-or-replace), list with their figures, drain and remove. */
export function poolRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.put(
      '/v1/pools/:name',
      {
        schema: {
          params: NameParams,
          body: PutPoolBody,
          response: { 200: PoolView, 400: ErrorBody },
          tags: ['pools'],
          summary: 'Define a warm pool: creates with the same template, isolation, cpu, memoryMiB, pids and diskMiB claim a ready sandbox',
        },
      },
      async (req) => services.pools.put(req.params.name, req.body),
    );
    app.get(
      '/v1/pools',
      {
        schema: {
          response: { 200: z.object({ pools: z.array(PoolView) }) },
          tags: ['pools'],
          summary: 'List warm pools with size, hits, misses and refill rate',
        },
      },
      async () => ({ pools: services.pools.list() }),
    );
    app.get(
      '/v1/pools/:name',
      { schema: { params: NameParams, response: { 200: PoolView, 404: ErrorBody }, tags: ['pools'], summary: 'One warm pool' } },
      async (req) => services.pools.get(req.params.name),
    );
    app.delete(
      '/v1/pools/:name',
      {
        schema: {
          params: NameParams,
          tags: ['pools'],
          summary: 'Remove a warm pool; its ready sandboxes are destroyed',
        },
      },
      async (req, reply) => {
        await services.pools.delete(req.params.name);
        return reply.status(204).send();
      },
    );
  };
}
