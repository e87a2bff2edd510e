import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger as PinoLogger } from 'pino';
import { errorBody, errorHandler } from './errors.js';
import { fileRoutes, fileTransferRoutes } from './routes/files.js';
import { processRoutes } from './routes/processes.js';
import { ptyRoutes } from './routes/pty.js';
import { sandboxRoutes } from './routes/sandboxes.js';
import { networkRoutes } from './routes/network.js';
import { volumeRoutes } from './routes/volumes.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { keyRoutes } from './routes/keys.js';
import { poolRoutes } from './routes/pools.js';
import { tenantRoutes } from './routes/tenants.js';
import { environmentRoutes } from './routes/environments.js';
import { hookReceiverRoutes, hookRoutes } from './routes/hooks.js';
import { observabilityRoutes } from './routes/observability.js';
import { secretRoutes } from './routes/secrets.js';
import { callerFromKey, trackRequest } from './caller.js';
import { authorize, checkRoute } from './access.js';
import { Ingress } from './ingress.js';
import { E2bDataPlane } from './e2b/data-plane.js';
import { e2bControlRoutes } from './e2b/control-plane.js';
import { auditHooks, checkAuditRoute, requestIdOf, withRequestContext } from './audit.js';
import { auditRoutes } from './routes/audit.js';
import { logRoutes } from './routes/logs.js';
import type { Services } from './services.js';

/** HTTP adapter: validate, authorize, call a service, map errors. No decisions live here. */
export const JSON_BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  /** Host routing for sandbox ports: `<port>-<id>.<domain>`. */
  domain?: { scheme: string; host: string; port: number | null } | null;
  /** Environments' per-service hosts: `{service}--{slug}.<previewDomain>`. */
  previewDomain?: string | null;
  /** A bearer token that may read GET /metrics besides admin keys (null: admin keys only). */
  metricsToken?: string | null;
}

export async function buildApp(
  services: Services,
  logger: PinoLogger,
  version: string,
  options: AppOptions = {},
): Promise<FastifyInstance> {
  const domain = options.domain ?? null;
  const ingress = new Ingress(services, { domain: domain?.host ?? null, previewDomain: options.previewDomain ?? null });
  const e2bData = new E2bDataPlane(services, { domain: domain?.host ?? null });
  const app = Fastify({
    // Sandbox port traffic is routed before Fastify sees it: it is proxied as-is (any method,
    // any body, streamed), which Fastify's body parsing and schemas must not touch. API and envd
    // requests run in their request's context (id, X-Request-Id, log lines; api/audit.ts).
    serverFactory: (handler) =>
      http.createServer((req, res) => {
        const envd = e2bData.match(req);
        if (envd) return withRequestContext(req, res, () => void e2bData.handle(req, res, envd));
        const target = ingress.match(req);
        if (target) void ingress.handleRequest(req, res, target);
        else withRequestContext(req, res, () => handler(req, res));
      }),
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: requestIdOf,
    requestIdLogLabel: 'requestId',
    // No per-request child logger: the logger's mixin adds the request id from the async context.
    childLoggerFactory: (parent) => parent,
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

  app.decorateRequest('apiKey', null);
  app.decorateRequest('openStream', null);
  app.decorateRequest('auditCall', null);
  // Every route that names an object must have a tenancy rule (api/access.ts), and every route
  // that changes something an audit action (api/audit.ts): checked as routes register.
  app.addHook('onRoute', checkRoute);
  app.addHook('onRoute', checkAuditRoute);
  // First: audited calls are recorded however they end (a 401 included).
  const audit = auditHooks(services.audit, logger);
  app.addHook('onRequest', audit.onRequest);
  app.addHook('onSend', audit.onSend);
  app.addHook('preHandler', audit.preHandler);
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/v1/')) return;
    // Webhook receivers authenticate the delivery itself (signature or token: core/hook-service.ts).
    if (req.routeOptions.config.webhook === true) return;
    const header = req.headers.authorization ?? '';
    let key = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!key && req.headers.upgrade === 'websocket') key = new URL(req.url, 'http://x').searchParams.get('token') ?? '';
    const record = key.length > 0 && key.length <= 256 ? await services.keys.verify(key) : null;
    req.apiKey = record;
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
    trackRequest(services, req, reply, record);
    await authorize(services, req, callerFromKey(record));
  });

  // Requests by method, route pattern (never the raw URL: ids would be unbounded labels) and status.
  app.addHook('onResponse', async (req, reply) => {
    services.metrics.httpRequest(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  // `leader`: whether this replica runs the periodic loops (always true on an SQLite store).
  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true, leader: services.leader() }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(sandboxRoutes(services));
  await app.register(volumeRoutes(services));
  await app.register(snapshotRoutes(services));
  await app.register(keyRoutes(services));
  await app.register(tenantRoutes(services));
  await app.register(poolRoutes(services));
  await app.register(environmentRoutes(services));
  await app.register(hookReceiverRoutes(services));
  await app.register(hookRoutes(services));
  await app.register(secretRoutes(services));
  await app.register(processRoutes(services));
  await app.register(fileTransferRoutes(services));
  await app.register(fileRoutes(services));
  await app.register(ptyRoutes(services));
  await app.register(networkRoutes(services, { domain }));
  await app.register(auditRoutes(services));
  await app.register(logRoutes(services));
  await app.register(e2bControlRoutes(services, { domain: domain?.host ?? null }));
  await app.register(observabilityRoutes(services, { metricsToken: options.metricsToken ?? null }));
  await app.ready();
  // A WebSocket's 101 carries the request id too (the upgrade bypasses the HTTP handler).
  app.websocketServer.on('headers', (headers: string[], req: http.IncomingMessage) => headers.push(`X-Request-Id: ${requestIdOf(req)}`));
  // Upgrades: sandbox ports first, everything else to the listeners Fastify's plugins installed.
  const upgradeListeners = app.server.listeners('upgrade') as ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => void)[];
  app.server.removeAllListeners('upgrade');
  app.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const target = ingress.match(req);
    if (target) void ingress.handleUpgrade(req, socket, head, target);
    else for (const listener of upgradeListeners) listener.call(app.server, req, socket, head);
  });
  return app;
}
