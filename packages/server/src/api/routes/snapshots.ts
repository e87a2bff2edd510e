import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { SnapshotView } from '../../core/snapshot-service.js';
import {
  CreateSnapshotBody,
  ErrorBody,
  ForkBody,
  GcQuery,
  IdParams,
  Snapshot,
  SnapshotList,
  SnapshotParams,
  TenantQuery,
} from '../schemas.js';
import { listScope } from '../../core/tenancy.js';
import { sandboxJson } from '../serialize.js';
import type { Services } from '../services.js';
import { callerOf } from '../caller.js';

function snapshotJson(s: SnapshotView) {
  return {
    id: s.id,
    tenant: s.tenant,
    sourceSandbox: s.sourceSandbox,
    template: s.template,
    layers: s.layers,
    isolation: s.isolation,
    memory: s.memory,
    sizeBytes: s.sizeBytes,
    metadata: s.metadata,
    createdAt: s.createdAt.toISOString(),
    ...(s.reused !== undefined ? { reused: s.reused } : {}),
    ...(s.durationMs !== undefined ? { durationMs: s.durationMs } : {}),
  };
}

export function snapshotRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/sandboxes/:id/snapshots',
      {
        schema: {
          params: IdParams,
          body: CreateSnapshotBody.nullish(),
          response: { 201: Snapshot, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody },
          tags: ['snapshots'],
          summary: "Snapshot a sandbox's files as a layer usable as a template ({template: <snapshot id>})",
        },
      },
      async (req, reply) => reply.status(201).send(snapshotJson(await services.snapshots.create(req.params.id, req.body ?? {}))),
    );
    app.post(
      '/v1/sandboxes/:id/fork',
      {
        schema: {
          params: IdParams,
          body: ForkBody.nullish(),
          tags: ['snapshots'],
          summary: 'Snapshot a sandbox and create `count` sandboxes (default 1) from the snapshot, with its settings',
        },
      },
      async (req, reply) => {
        const { snapshot, sandboxes } = await services.snapshots.fork(req.params.id, req.body ?? {}, callerOf(req));
        return reply.status(201).send({ snapshot: snapshotJson(snapshot), sandboxes: sandboxes.map(sandboxJson) });
      },
    );
    app.get(
      '/v1/snapshots',
      {
        schema: {
          querystring: TenantQuery,
          response: { 200: SnapshotList },
          tags: ['snapshots'],
          summary: "List your tenant's snapshots (admins: every tenant's; ?tenant= narrows)",
        },
      },
      async (req) => ({
        snapshots: (await services.snapshots.list(listScope(callerOf(req), req.query.tenant))).map(snapshotJson),
      }),
    );
    app.get(
      '/v1/snapshots/:snapshotId',
      { schema: { params: SnapshotParams, response: { 200: Snapshot, 404: ErrorBody }, tags: ['snapshots'], summary: 'Get a snapshot' } },
      async (req) => snapshotJson(await services.snapshots.get(req.params.snapshotId)),
    );
    app.delete(
      '/v1/snapshots/:snapshotId',
      { schema: { params: SnapshotParams, tags: ['snapshots'], summary: 'Delete a snapshot (409 while a sandbox was created from it)' } },
      async (req, reply) => {
        await services.snapshots.delete(req.params.snapshotId);
        return reply.status(204).send();
      },
    );
    app.post(
      '/v1/gc',
      {
        config: { minRole: 'admin' },
        schema: {
          querystring: GcQuery,
          tags: ['snapshots'],
          summary: 'Remove layers (and their files) no snapshot references; ?dryRun=true only lists them (admin keys only)',
        },
      },
      async (req) => services.snapshots.gc(req.query.dryRun === 'true' || req.query.dryRun === '1'),
    );
  };
}
