import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { newApiKey, newE2bShapedKey } from '../../admin-key.js';
import { ErrorBody } from '../schemas.js';
import type { Services } from '../services.js';

const CreateKeyBody = z
  .object({
    name: z.string().min(1).max(128),
    /** Shape the key as `e2b_<hex>` for e2b SDKs older than 2.46, which check the format. */
    e2b: z.boolean().optional(),
  })
  .strict();
const KeyInfo = z.object({ id: z.string(), name: z.string(), createdAt: z.string(), lastUsedAt: z.string().nullable() });

/** API keys: create (the secret is shown once) and list. Every key is an admin key for now. */
export function keyRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/keys',
      {
        schema: {
          body: CreateKeyBody,
          response: { 201: KeyInfo.extend({ key: z.string() }), 400: ErrorBody },
          tags: ['keys'],
          summary: 'Create an API key (works as Bearer and as E2B X-API-KEY); the key is only shown in this answer',
        },
      },
      async (req, reply) => {
        const key = req.body.e2b ? newE2bShapedKey() : newApiKey();
        const record = { id: randomUUID(), name: req.body.name, role: 'admin' as const, createdAt: new Date() };
        await services.keys.insert(key, record);
        return reply
          .status(201)
          .send({ id: record.id, name: record.name, createdAt: record.createdAt.toISOString(), lastUsedAt: null, key });
      },
    );
    app.get(
      '/v1/keys',
      { schema: { response: { 200: z.object({ keys: z.array(KeyInfo) }) }, tags: ['keys'], summary: 'List API keys' } },
      async () => ({
        keys: (await services.keys.list()).map((k) => ({
          id: k.id,
          name: k.name,
          createdAt: k.createdAt.toISOString(),
          lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
        })),
      }),
    );
  };
}
