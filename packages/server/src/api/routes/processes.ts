import { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { invalidArgument } from '../../core/errors.js';
import type { ProcessSelector } from '../../core/process-service.js';
import { streamEvents } from '../ndjson.js';
import {
  ErrorBody,
  ExecBody,
  ExecResult,
  IdParams,
  ProcessList,
  ProcessParams,
  PtySize,
  SignalBody,
  StartProcessBody,
  WaitResult,
} from '../schemas.js';
import type { Services } from '../services.js';

const MAX_STDIN_CHUNK = 16 * 1024 * 1024;

/** `12` → {pid: 12}; `tag:web` → {tag: "web"}. */
export function parseSelector(raw: string): ProcessSelector {
  if (raw.startsWith('tag:') && raw.length > 4) return { tag: raw.slice(4) };
  if (/^[1-9][0-9]{0,9}$/.test(raw)) return { pid: Number(raw) };
  throw invalidArgument(`pid: "${raw.slice(0, 40)}" is neither a process id nor tag:<tag>`);
}

async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw invalidArgument(`stdin: chunk larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function processRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    // stdin writes carry raw bytes of any content type.
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

    app.post(
      '/v1/sandboxes/:id/exec',
      {
        schema: {
          params: IdParams,
          body: ExecBody,
          response: { 200: ExecResult, 404: ErrorBody, 409: ErrorBody },
          tags: ['processes'],
          summary: 'Run a command to completion (buffered output)',
        },
      },
      async (req) => services.processes.exec(req.params.id, req.body),
    );

    app.post(
      '/v1/sandboxes/:id/processes',
      {
        schema: {
          params: IdParams,
          body: StartProcessBody,
          tags: ['processes'],
          summary: 'Start a process; with Accept: application/x-ndjson, stream its events',
        },
      },
      async (req, reply) => {
        if ((req.headers.accept ?? '').includes('application/x-ndjson')) {
          return streamEvents(req, reply, (signal) => services.processes.start(req.params.id, req.body, signal));
        }
        const started = await services.processes.startDetached(req.params.id, req.body);
        return reply.status(201).send({ pid: started.pid, tag: req.body.tag ?? null });
      },
    );

    app.get(
      '/v1/sandboxes/:id/processes',
      { schema: { params: IdParams, response: { 200: ProcessList }, tags: ['processes'], summary: 'List running processes' } },
      async (req) => ({
        processes: await services.processes.list(req.params.id),
      }),
    );

    app.get(
      '/v1/sandboxes/:id/processes/:pid/stream',
      { schema: { params: ProcessParams, tags: ['processes'], summary: 'Attach to a process output (NDJSON) from now on' } },
      async (req, reply) =>
        streamEvents(req, reply, (signal) => services.processes.connect(req.params.id, parseSelector(req.params.pid), signal)),
    );

    app.get(
      '/v1/sandboxes/:id/processes/:pid/wait',
      { schema: { params: ProcessParams, response: { 200: WaitResult }, tags: ['processes'], summary: 'Wait for a process to exit' } },
      async (req, reply) => {
        const controller = new AbortController();
        reply.raw.once('close', () => controller.abort());
        return services.processes.wait(req.params.id, parseSelector(req.params.pid), controller.signal);
      },
    );

    app.post(
      '/v1/sandboxes/:id/processes/:pid/stdin',
      { schema: { params: ProcessParams, tags: ['processes'], summary: 'Write raw bytes to stdin (or the PTY)' } },
      async (req, reply) => {
        const body = req.body ?? Buffer.alloc(0);
        if (!Buffer.isBuffer(body) && !(body instanceof Readable))
          throw invalidArgument('stdin: send the raw bytes as the body (Content-Type: application/octet-stream)');
        const data = Buffer.isBuffer(body) ? body : await readAll(body, MAX_STDIN_CHUNK);
        await services.processes.sendStdin(
          req.params.id,
          parseSelector(req.params.pid),
          data,
          (req.query as { pty?: string }).pty === 'true',
        );
        return reply.status(204).send();
      },
    );

    app.post(
      '/v1/sandboxes/:id/processes/:pid/close-stdin',
      { schema: { params: ProcessParams, tags: ['processes'], summary: 'Close stdin' } },
      async (req, reply) => {
        await services.processes.closeStdin(req.params.id, parseSelector(req.params.pid));
        return reply.status(204).send();
      },
    );

    app.post(
      '/v1/sandboxes/:id/processes/:pid/signal',
      { schema: { params: ProcessParams, body: SignalBody, tags: ['processes'], summary: 'Send a signal to the process group' } },
      async (req, reply) => {
        await services.processes.signal(req.params.id, parseSelector(req.params.pid), req.body.signal);
        return reply.status(204).send();
      },
    );

    app.post(
      '/v1/sandboxes/:id/processes/:pid/resize',
      { schema: { params: ProcessParams, body: PtySize, tags: ['processes'], summary: 'Resize a PTY' } },
      async (req, reply) => {
        await services.processes.resize(req.params.id, parseSelector(req.params.pid), req.body.cols, req.body.rows);
        return reply.status(204).send();
      },
    );
  };
}
