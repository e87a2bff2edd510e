import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { VolumeView } from '../../core/volume-service.js';
import type { VolumeSnapshotView } from '../../core/volume-snapshot-service.js';
import {
  CreateVolumeBody,
  CreateVolumeSnapshotBody,
  ErrorBody,
  TenantQuery,
  Volume,
  VolumeList,
  VolumeParams,
  VolumeSnapshot,
  VolumeSnapshotList,
  VolumeSnapshotParams,
} from '../schemas.js';
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

function snapshotJson(s: VolumeSnapshotView) {
  return { ...s, createdAt: s.createdAt.toISOString() };
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
    app.post(
      '/v1/volumes/:name/snapshots',
      {
        schema: {
          params: VolumeParams,
          querystring: TenantQuery,
          body: CreateVolumeSnapshotBody,
          response: { 201: VolumeSnapshot, 404: ErrorBody, 409: ErrorBody, 422: ErrorBody },
          tags: ['volumes'],
          summary: 'Snapshot a volume (kubernetes provider: a VolumeSnapshot of its claim; 422 where the cluster or provider has none)',
        },
      },
      async (req, reply) =>
        reply
          .status(201)
          .send(
            snapshotJson(await services.volumeSnapshots.create(namespaceOf(callerOf(req), req.query.tenant), req.params.name, req.body)),
          ),
    );
    app.get(
      '/v1/volumes/:name/snapshots',
      {
        schema: {
          params: VolumeParams,
          querystring: TenantQuery,
          response: { 200: VolumeSnapshotList, 404: ErrorBody, 422: ErrorBody },
          tags: ['volumes'],
          summary: "List a volume's snapshots, oldest first",
        },
      },
      async (req) => ({
        snapshots: (await services.volumeSnapshots.list(namespaceOf(callerOf(req), req.query.tenant), req.params.name)).map(snapshotJson),
      }),
    );
    app.get(
      '/v1/volumes/:name/snapshots/:snapshot',
      {
        schema: {
          params: VolumeSnapshotParams,
          querystring: TenantQuery,
          response: { 200: VolumeSnapshot, 404: ErrorBody, 422: ErrorBody },
          tags: ['volumes'],
          summary: 'Get a volume snapshot (readyToUse once the CSI driver has made it)',
        },
      },
      async (req) =>
        snapshotJson(
          await services.volumeSnapshots.get(namespaceOf(callerOf(req), req.query.tenant), req.params.name, req.params.snapshot),
        ),
    );
    app.delete(
      '/v1/volumes/:name/snapshots/:snapshot',
      {
        schema: {
          params: VolumeSnapshotParams,
          querystring: TenantQuery,
          tags: ['volumes'],
          summary: 'Delete a volume snapshot',
        },
      },
      async (req, reply) => {
        await services.volumeSnapshots.delete(namespaceOf(callerOf(req), req.query.tenant), req.params.name, req.params.snapshot);
        return reply.status(204).send();
      },
    );
  };
}
