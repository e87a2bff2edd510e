import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { newApiKey, newE2bShapedKey } from '../../admin-key.js';
import { ErrorBody } from '../schemas.js';
import { notFound } from '../../core/errors.js';
import type { Services } from '../services.js';

const Limits = z
  .object({
    maxSandboxes: z.number().int().min(0).max(1_000_000).optional(),
    cpu: z.number().min(0).max(100_000).optional(),
    memoryMiB: z
      .number()
      .int()
      .min(0)
      .max(1 << 30)
      .optional(),
    diskMiB: z
      .number()
      .int()
      .min(0)
      .max(1 << 30)
      .optional(),
    createsPerMinute: z.number().int().min(0).max(1_000_000).optional(),
  })
  .strict();
const CreateKeyBody = z
  .object({
    name: z.string().min(1).max(128),
    /** Shape the key as `e2b_<hex>` for e2b SDKs older than 2.46, which check the format. */
    e2b: z.boolean().optional(),
    /** Per-key limits (absent: unlimited). */
    limits: Limits.optional(),
  })
  .strict();
const KeyInfo = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  limits: Limits.nullable(),
});

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
        const limits = req.body.limits ?? null;
        const record = { id: randomUUID(), name: req.body.name, role: 'admin' as const, createdAt: new Date(), limits };
        await services.keys.insert(key, record);
        return reply
          .status(201)
          .send({ id: record.id, name: record.name, createdAt: record.createdAt.toISOString(), lastUsedAt: null, limits, key });
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
          limits: k.limits,
        })),
      }),
    );
    app.put(
      '/v1/keys/:id/limits',
      {
        schema: {
          params: z.object({ id: z.string().max(64) }),
          body: Limits.nullable(),
          response: { 200: z.object({ id: z.string(), limits: Limits.nullable() }), 400: ErrorBody, 404: ErrorBody },
          tags: ['keys'],
          summary: "Replace an API key's limits (null: unlimited); applies to its next creates",
        },
      },
      async (req) => {
        const limits = req.body ?? null;
        if (!(await services.keys.setLimits(req.params.id, limits))) throw notFound(`API key ${req.params.id} not found`);
        return { id: req.params.id, limits };
      },
    );
  };
}
