import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { invalidArgument } from '../../core/errors.js';
import { listScope } from '../../core/tenancy.js';
import { hourOf, ZERO_USAGE } from '../../core/usage-meter.js';
import { callerOf } from '../caller.js';
import { errorBody } from '../errors.js';
import { ErrorBody, IdParams, TenantName } from '../schemas.js';
import type { Services } from '../services.js';

/**
 * Observability routes:
 *  - GET /metrics: Prometheus text format. It shows every tenant's figures, so it takes an admin
 *    key, or the dedicated scrape token (`--metrics-token-file`, env HUTCH_METRICS_TOKEN) that
 *    opens nothing else; members and read-only keys get a 403. A scraper can instead use a
 *    separate, unauthenticated listener (`--metrics-listen`), which serves only /metrics.
 *  - GET /v1/sandboxes/{id}/metrics: the sandbox's samples (tenancy as for every sandbox route).
 *  - GET /v1/usage: usage per tenant (members and read-only keys: their own tenant).
 */
export interface ObservabilityOptions {
  /** A bearer token that may read /metrics (and nothing else); null: admin keys only. */
  metricsToken: string | null;
}

const HOUR_MS = 3_600_000;

/** RFC 3339 / ISO 8601 or seconds since the epoch → ms. */
export function parseTime(value: string | undefined, field: string): number | null {
  if (value === undefined || value === '') return null;
  if (/^\d{1,12}(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const ms = Date.parse(value);
  if (!Number.isFinite(ms))
    throw invalidArgument(`${field}: "${value.slice(0, 40)}" is not a time (RFC 3339, e.g. 2025-01-31T12:00:00Z, or Unix seconds)`);
  return ms;
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

const TimeRange = z
  .object({
    start: z.string().max(40).optional(),
    end: z.string().max(40).optional(),
  })
  .strict();

const Sample = z.object({
  timestamp: z.string(),
  cpuPercent: z.number().nullable(),
  cpuCores: z.number().nullable(),
  cpuSeconds: z.number(),
  memoryBytes: z.number(),
  memoryCacheBytes: z.number(),
  pids: z.number().nullable(),
  diskUsedBytes: z.number().nullable(),
  diskSizeBytes: z.number().nullable(),
  netRxBytes: z.number().nullable(),
  netTxBytes: z.number().nullable(),
});

const SandboxMetrics = z.object({
  sandboxId: z.string(),
  state: z.string(),
  isolation: z.string(),
  cpuLimit: z.number(),
  memoryLimitBytes: z.number(),
  intervalSeconds: z.number(),
  windowSeconds: z.number(),
  samples: z.array(Sample),
});

const TenantUsage = z.object({
  tenant: z.string(),
  cpuSeconds: z.number(),
  cpuReservedSeconds: z.number(),
  memoryGiBSeconds: z.number(),
  memoryUsedGiBSeconds: z.number(),
  storageGiBHours: z.number(),
  sandboxSeconds: z.number(),
  networkRxBytes: z.number(),
  networkTxBytes: z.number(),
});

const UsageReport = z.object({
  start: z.string(),
  end: z.string(),
  bucketSeconds: z.number(),
  tenants: z.array(TenantUsage),
});

const round = (n: number, digits = 6): number => Number(n.toFixed(digits));

export function observabilityRoutes(services: Services, options: ObservabilityOptions): FastifyPluginAsyncZod {
  const tokenDigest = options.metricsToken ? digest(options.metricsToken) : null;

  /** An admin key or the scrape token; 401 without either, 403 for other keys. */
  const allowMetrics = async (req: FastifyRequest, reply: FastifyReply): Promise<boolean> => {
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (token && tokenDigest && timingSafeEqual(digest(token), tokenDigest)) return true;
    const key = token.length > 0 && token.length <= 256 ? await services.keys.verify(token) : null;
    if (!key) {
      await reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .send(
          errorBody(
            'unauthenticated',
            token ? 'the API key is not valid' : 'missing API key: /metrics takes an admin key or the metrics token',
          ),
        );
      return false;
    }
    if (key.role !== 'admin') {
      await reply
        .status(403)
        .send(
          errorBody(
            'permission_denied',
            `GET /metrics needs an admin key or the metrics token (it shows every tenant's figures; this key is ${key.role})`,
          ),
        );
      return false;
    }
    return true;
  };

  return async (app) => {
    app.get('/metrics', { schema: { hide: true } }, async (req, reply) => {
      if (!(await allowMetrics(req, reply))) return reply;
      const text = await services.metrics.render();
      return reply.header('content-type', services.metrics.contentType).header('cache-control', 'no-store').send(text);
    });

    app.get(
      '/v1/sandboxes/:id/metrics',
      {
        schema: {
          params: IdParams,
          querystring: TimeRange,
          response: { 200: SandboxMetrics, 400: ErrorBody, 404: ErrorBody },
          tags: ['observability'],
          summary:
            'Samples of the sandbox (cpu, memory, pids, disk, network) taken every few seconds and kept for the metrics window; start/end: RFC 3339 or Unix seconds',
        },
      },
      async (req) => {
        const record = await services.sandboxes.get(req.params.id);
        const meter = services.meter;
        const end = parseTime(req.query.end, 'end') ?? Date.now();
        const start = parseTime(req.query.start, 'start') ?? end - meter.windowMs;
        if (start > end) throw invalidArgument('start: must not be after end');
        return {
          sandboxId: record.id,
          state: record.state,
          isolation: record.isolation,
          cpuLimit: record.cpu,
          memoryLimitBytes: record.memoryMiB * 1024 * 1024,
          intervalSeconds: meter.intervalMs / 1000,
          windowSeconds: meter.windowMs / 1000,
          samples: meter.samples(record.id, start, end).map((s) => ({
            ...s,
            timestamp: s.timestamp.toISOString(),
            cpuPercent: s.cpuCores === null ? null : round(Math.min(100, (s.cpuCores / record.cpu) * 100), 2),
            cpuCores: s.cpuCores === null ? null : round(s.cpuCores, 4),
            cpuSeconds: round(s.cpuSeconds, 3),
          })),
        };
      },
    );

    app.get(
      '/v1/usage',
      {
        schema: {
          querystring: TimeRange.extend({ tenant: TenantName.optional() }),
          response: { 200: UsageReport, 400: ErrorBody, 404: ErrorBody },
          tags: ['observability'],
          summary:
            'Usage per tenant over whole UTC hours (default: this month): vCPU-seconds used and reserved, memory GiB-seconds reserved and used, storage GiB-hours, sandbox-seconds, network bytes. Members: their tenant; admins: all, or tenant=<name>',
        },
      },
      async (req) => {
        const caller = callerOf(req);
        const tenant = listScope(caller, req.query.tenant);
        const now = Date.now();
        const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
        const endMs = parseTime(req.query.end, 'end') ?? now;
        const startMs = parseTime(req.query.start, 'start') ?? monthStart;
        if (startMs > endMs) throw invalidArgument('start: must not be after end');
        // Whole hours: the hour that holds `start` through the one that holds `end`.
        const start = hourOf(startMs);
        const end = Math.max(start + HOUR_MS, Math.ceil(endMs / HOUR_MS) * HOUR_MS);
        if (end - start > 400 * 24 * HOUR_MS) throw invalidArgument('start: a range covers at most 400 days');
        const rows = await services.meter.totals({ start, end, tenant });
        if (tenant !== null && !rows.some((r) => r.tenant === tenant)) rows.push({ tenant, ...ZERO_USAGE });
        return {
          start: new Date(start).toISOString(),
          end: new Date(end).toISOString(),
          bucketSeconds: HOUR_MS / 1000,
          tenants: rows.map((r) => ({
            tenant: r.tenant,
            cpuSeconds: round(r.cpuSeconds, 3),
            cpuReservedSeconds: round(r.cpuReservedSeconds, 3),
            memoryGiBSeconds: round(r.memoryGiBSeconds, 3),
            memoryUsedGiBSeconds: round(r.memoryUsedGiBSeconds, 3),
            storageGiBHours: round(r.storageGiBSeconds / 3600, 6),
            sandboxSeconds: round(r.sandboxSeconds, 3),
            networkRxBytes: Math.round(r.netRxBytes),
            networkTxBytes: Math.round(r.netTxBytes),
          })),
        };
      },
    );
  };
}
