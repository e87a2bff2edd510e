import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger as PinoLogger } from 'pino';
import { errorBody, errorHandler } from './errors.js';
import { fileRoutes, fileTransferRoutes } from './routes/files.js';
import { processRoutes } from './routes/processes.js';
import { ptyRoutes } from './routes/pty.js';
import { sandboxRoutes } from './routes/sandboxes.js';
import type { Services } from './services.js';

/** HTTP adapter: validate, authorize, call a service, map errors. No decisions live here. */
export const JSON_BODY_LIMIT = 1024 * 1024;

export async function buildApp(services: Services, logger: PinoLogger, version: string): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: JSON_BODY_LIMIT,
    disableRequestLogging: true,
    maxParamLength: 500,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(errorBody('not_found', `no route for ${req.method} ${req.url.split('?')[0]}`));
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Hutch API', version, description: 'Self-hosted sandboxes for untrusted code. See docs/api.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });

  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    const header = req.headers.authorization ?? '';
    let key = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!key && req.headers.upgrade === 'websocket') key = new URL(req.url, 'http://x').searchParams.get('token') ?? '';
    const record = key.length > 0 && key.length <= 256 ? await services.keys.verify(key) : null;
    if (!record) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .send(
          errorBody(
            'unauthenticated',
            key ? 'the API key is not valid' : 'missing API key: send Authorization: Bearer <key> (see <data-dir>/admin.key)',
          ),
        );
    }
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(sandboxRoutes(services));
  await app.register(processRoutes(services));
  await app.register(fileTransferRoutes(services));
  await app.register(fileRoutes(services));
  await app.register(ptyRoutes(services));
  return app;
}
