import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TenantView } from '../../core/tenant-service.js';
import { callerOf } from '../caller.js';
import { CreateTenantBody, DeleteTenantQuery, ErrorBody, ResourceLimitsBody, Tenant, TenantParams } from '../schemas.js';
import type { Services } from '../services.js';

function tenantJson(t: TenantView) {
  return { name: t.name, quotas: t.quotas, createdAt: t.createdAt.toISOString(), usage: t.usage };
}

const admin = { minRole: 'admin' as const };

/** Tenants (admin keys only; other keys get 403): create with quotas, list, get, set quotas, delete. */
export function tenantRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/admin/tenants',
      {
        config: admin,
        schema: {
          body: CreateTenantBody,
          response: { 201: Tenant, 400: ErrorBody, 403: ErrorBody, 409: ErrorBody },
          tags: ['tenants'],
          summary: 'Create a tenant with quotas (maxSandboxes, cpu, memoryMiB, diskMiB, createsPerMinute; absent: unlimited)',
        },
      },
      async (req, reply) => reply.status(201).send(tenantJson(await services.tenants.create(callerOf(req), req.body))),
    );
    app.get(
      '/v1/admin/tenants',
      {
        config: admin,
        schema: {
          response: { 200: z.object({ tenants: z.array(Tenant) }), 403: ErrorBody },
          tags: ['tenants'],
          summary: 'List tenants with their quotas and current usage',
        },
      },
      async (req) => ({ tenants: (await services.tenants.list(callerOf(req))).map(tenantJson) }),
    );
    app.get(
      '/v1/admin/tenants/:name',
      {
        config: admin,
        schema: {
          params: TenantParams,
          response: { 200: Tenant, 403: ErrorBody, 404: ErrorBody },
          tags: ['tenants'],
          summary: 'One tenant',
        },
      },
      async (req) => tenantJson(await services.tenants.get(callerOf(req), req.params.name)),
    );
    app.put(
      '/v1/admin/tenants/:name/quotas',
      {
        config: admin,
        schema: {
          params: TenantParams,
          body: ResourceLimitsBody.nullable(),
          response: { 200: Tenant, 400: ErrorBody, 403: ErrorBody, 404: ErrorBody },
          tags: ['tenants'],
          summary: "Replace a tenant's quotas (null: unlimited); applies to its next creates",
        },
      },
      async (req) => tenantJson(await services.tenants.setQuotas(callerOf(req), req.params.name, req.body ?? null)),
    );
    app.delete(
      '/v1/admin/tenants/:name',
      {
        config: admin,
        schema: {
          params: TenantParams,
          querystring: DeleteTenantQuery,
          response: {
            200: z.object({ name: z.string(), deleted: z.record(z.string(), z.number()) }),
            403: ErrorBody,
            404: ErrorBody,
            409: ErrorBody,
          },
          tags: ['tenants'],
          summary:
            'Delete a tenant and revoke its keys; 409 while it owns sandboxes, volumes, snapshots or pools unless ?force=true (which deletes them)',
        },
      },
      async (req) => {
        const force = req.query.force === 'true' || req.query.force === '1';
        const { deleted } = await services.tenants.delete(callerOf(req), req.params.name, { force });
        return { name: req.params.name, deleted };
      },
    );
  };
}
