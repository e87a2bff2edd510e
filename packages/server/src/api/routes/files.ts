import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ErrorBody, FileEntry, IdParams, ListQuery, MkdirBody, PathQuery, RenameBody } from '../schemas.js';
import type { Services } from '../services.js';
import { requireSecretFileAccess } from '../../core/secrets.js';
import { callerOf } from '../caller.js';

/** Raw-byte file transfer: bodies are streamed to and from the agent, never buffered whole. */
export function fileTransferRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    app.put(
      '/v1/sandboxes/:id/files',
      {
        schema: {
          params: IdParams,
          querystring: PathQuery,
          response: { 200: FileEntry, 404: ErrorBody },
          tags: ['files'],
          summary: 'Write a file from the raw request body',
        },
      },
      async (req) => {
        const body = (req.body ?? req.raw) as Readable;
        return services.files.write(req.params.id, req.query.path, body, req.query.user);
      },
    );

    app.get(
      '/v1/sandboxes/:id/files',
      { schema: { params: IdParams, querystring: PathQuery, tags: ['files'], summary: 'Read a file as raw bytes' } },
      async (req, reply) => {
        requireSecretFileAccess(callerOf(req), req.query.path);
        const { size, stream } = await services.files.read(req.params.id, req.query.path, req.query.user);
        void reply.header('content-type', 'application/octet-stream').header('content-length', String(size));
        return reply.send(stream);
      },
    );

    app.delete(
      '/v1/sandboxes/:id/files',
      { schema: { params: IdParams, querystring: PathQuery, tags: ['files'], summary: 'Remove a file or directory (recursively)' } },
      async (req, reply) => {
        await services.files.remove(req.params.id, req.query.path, req.query.user);
        return reply.status(204).send();
      },
    );
  };
}

export function fileRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/sandboxes/:id/files/stat',
      { schema: { params: IdParams, querystring: PathQuery, response: { 200: FileEntry }, tags: ['files'], summary: 'Stat a path' } },
      async (req) => services.files.stat(req.params.id, req.query.path, req.query.user),
    );
    app.get(
      '/v1/sandboxes/:id/files/list',
      { schema: { params: IdParams, querystring: ListQuery, tags: ['files'], summary: 'List a directory' } },
      async (req) => ({
        entries: await services.files.list(req.params.id, req.query.path, req.query.depth, req.query.user),
      }),
    );
    app.post(
      '/v1/sandboxes/:id/files/mkdir',
      {
        schema: {
          params: IdParams,
          body: MkdirBody,
          response: { 201: FileEntry },
          tags: ['files'],
          summary: 'Create a directory (and parents)',
        },
      },
      async (req, reply) => reply.status(201).send(await services.files.mkdir(req.params.id, req.body.path, req.body.user)),
    );
    app.post(
      '/v1/sandboxes/:id/files/rename',
      { schema: { params: IdParams, body: RenameBody, response: { 200: FileEntry }, tags: ['files'], summary: 'Rename or move a path' } },
      async (req) => services.files.rename(req.params.id, req.body.from, req.body.to, req.body.user),
    );
  };
}
