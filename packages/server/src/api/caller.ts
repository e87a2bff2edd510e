import type { FastifyRequest } from 'fastify';
import type { Caller } from '../core/sandbox-service.js';
import type { ApiKeyRecord } from '../core/stores.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified API key of a /v1 request (set by the auth hook). */
    apiKey: ApiKeyRecord | null;
  }
}

/** The caller of a request, for per-key limits and create-queue fairness. */
export function callerOf(req: FastifyRequest): Caller {
  return req.apiKey ? { keyId: req.apiKey.id, limits: req.apiKey.limits } : { keyId: 'anonymous', limits: null };
}
