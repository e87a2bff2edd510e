import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { VolumeView } from '../../core/volume-service.js';
import { CreateVolumeBody, ErrorBody, Volume, VolumeList, VolumeParams } from '../schemas.js';
import type { Services } from '../services.js';

function volumeJson(v: VolumeView) {
  return {
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
          body: CreateVolumeBody,
          response: { 201: Volume, 400: ErrorBody, 409: ErrorBody },
          tags: ['volumes'],
          summary: 'Create a named volume with a size quota (default 1024 MiB)',
        },
      },
      async (req, reply) => reply.status(201).send(volumeJson(await services.volumes.create(req.body))),
    );
    app.get(
      '/v1/volumes',
      { schema: { response: { 200: VolumeList }, tags: ['volumes'], summary: 'List volumes with usage' } },
      async () => ({
        volumes: (await services.volumes.list()).map(volumeJson),
      }),
    );
    app.get(
      '/v1/volumes/:name',
      { schema: { params: VolumeParams, response: { 200: Volume, 404: ErrorBody }, tags: ['volumes'], summary: 'Get a volume' } },
      async (req) => volumeJson(await services.volumes.get(req.params.name)),
    );
    app.delete(
      '/v1/volumes/:name',
      {
        schema: {
          params: VolumeParams,
          tags: ['volumes'],
          summary: 'Delete a volume and its contents (409 while a sandbox uses it)',
        },
      },
      async (req, reply) => {
        await services.volumes.delete(req.params.name);
        return reply.status(204).send();
      },
    );
  };
}
