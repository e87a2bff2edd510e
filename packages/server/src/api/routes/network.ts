import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { isPortPublic, portUrl, signPortToken } from '../../core/port-access.js';
import type { SandboxRecord } from '../../core/sandbox.js';
import { ErrorBody, IdParams, NetworkSettingsBody, NetworkState, PortUrl, PortUrlQuery } from '../schemas.js';
import type { Services } from '../services.js';

/** Network settings of a sandbox (egress policy, public ports) and URLs for its ports. */
export interface PortUrlOptions {
  /** Host routing (`<port>-<id>.<host>`), when the server runs with --domain. */
  domain: { scheme: string; host: string; port: number | null } | null;
}

export function networkRoutes(services: Services, options: PortUrlOptions): FastifyPluginAsyncZod {
  const state = (record: SandboxRecord) => ({ ...record.network, ...services.sandboxes.networkInfo(record.id) });
  return async (app) => {
    app.get(
      '/v1/sandboxes/:id/network',
      {
        schema: {
          params: IdParams,
          response: { 200: NetworkState, 404: ErrorBody },
          tags: ['network'],
          summary: 'Egress policy, addresses and recent DNS queries of a sandbox',
        },
      },
      async (req) => state(await services.sandboxes.get(req.params.id)),
    );

    app.put(
      '/v1/sandboxes/:id/network',
      {
        schema: {
          params: IdParams,
          body: NetworkSettingsBody,
          response: { 200: NetworkState, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody },
          tags: ['network'],
          summary: 'Replace the egress policy (live; forbidden connections are cut) and public ports',
        },
      },
      async (req) => {
        const { record, cut } = await services.sandboxes.setNetwork(req.params.id, req.body);
        return { ...state(record), cut };
      },
    );

    app.get(
      '/v1/sandboxes/:id/url',
      {
        // It hands out access to the sandbox's private ports: not for read-only keys.
        config: { minRole: 'member' },
        schema: {
          params: IdParams,
          querystring: PortUrlQuery,
          response: { 200: PortUrl, 404: ErrorBody },
          tags: ['network'],
          summary: 'URL of a sandbox port through the ingress (signed for private ports)',
        },
      },
      async (req) => {
        const record = await services.sandboxes.requireRunning(req.params.id);
        const port = req.query.port;
        const open = isPortPublic(record.network, port);
        const base = portUrl(options.domain, `${req.protocol}://${req.headers.host ?? 'localhost'}`, record.id, port);
        if (open) return { url: base, port, public: true, expiresAt: null, headers: {} as Record<string, string> };
        const { token, expiresAt } = signPortToken(record, port, req.query.expiresIn ?? 3600);
        return {
          url: `${base}?hutch_token=${token}`,
          port,
          public: false,
          expiresAt: expiresAt.toISOString(),
          headers: { 'X-Hutch-Access-Token': record.accessToken },
        };
      },
    );
  };
}
