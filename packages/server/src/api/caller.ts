import type { FastifyReply, FastifyRequest } from 'fastify';
import { HutchError } from '../core/errors.js';
import type { OpenStream } from '../core/open-streams.js';
import type { ApiKeyRecord } from '../core/stores.js';
import type { Caller } from '../core/tenancy.js';
import type { Services } from './services.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified API key of a /v1 or E2B request (set by the auth hook). */
    apiKey: ApiKeyRecord | null;
    /** This request's connection, tracked under its key until it ends (revocation closes it). */
    openStream: OpenStream | null;
  }
}

export function callerFromKey(key: ApiKeyRecord): Caller {
  return { tenant: key.tenant, keyId: key.id, role: key.role, limits: key.limits };
}

/** The caller of an authenticated request: its key's tenant, id, role and limits. */
export function callerOf(req: FastifyRequest): Caller {
  if (!req.apiKey) throw new HutchError('unauthenticated', 'missing API key');
  return callerFromKey(req.apiKey);
}

/**
 * Tracks an authenticated request's connection under its key until the request ends: revoking
 * the key destroys it (a streamed response, a WebSocket, a long exec all end at once). Upgrades
 * are tracked until their socket closes, plain requests until their response does.
 */
export function trackRequest(services: Services, req: FastifyRequest, reply: FastifyReply, key: ApiKeyRecord): void {
  const socket = req.raw.socket;
  const stream = services.keys.track(key.id, () => socket.destroy());
  req.openStream = stream;
  const done = (): void => stream.done();
  if ((req.headers.upgrade ?? '').toLowerCase() === 'websocket') socket.once('close', done);
  else reply.raw.once('close', done);
}
