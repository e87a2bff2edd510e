import type { Span, Tracer as OtelTracer } from '@opentelemetry/api';
import type { Logger } from '../core/logger.js';
import type { Attributes, SpanHandle, Tracer } from '../core/telemetry.js';

/**
 * Optional OpenTelemetry traces, exported with OTLP over HTTP (JSON, `Content-Type:
 * application/json`) to `--otlp-endpoint` or the standard OTEL_EXPORTER_OTLP_ENDPOINT /
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables. The SDK is imported only when tracing is on, so a
 * server without an endpoint loads none of it. Spans: `sandbox.create` (children
 * `sandbox.create.queue_wait`, `sandbox.create.provider`, `sandbox.create.agent_ready`,
 * `sandbox.create.template_start`, or `sandbox.create.warm_claim`) and `sandbox.exec`.
 * Parents are passed explicitly, so no context manager (and no async-hooks cost) is needed.
 */
export interface OtlpTracing extends Tracer {
  /** Where spans go. */
  readonly url: string;
  /** Sends what is buffered and stops. */
  shutdown(): Promise<void>;
}

/** The OTLP/HTTP traces URL for a base endpoint (`http://collector:4318` → `…/v1/traces`). */
export function tracesUrl(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, '');
  return trimmed.endsWith('/v1/traces') ? trimmed : `${trimmed}/v1/traces`;
}

/** The endpoint from the environment, when one is set (the exporter reads the variables itself). */
export function otlpEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || null;
}

export async function startOtlpTracing(options: {
  /** Base endpoint; null: the OTEL_EXPORTER_OTLP_* environment variables. */
  endpoint: string | null;
  version: string;
  serviceName?: string;
  log: Logger;
}): Promise<OtlpTracing> {
  const [api, sdk, exporterModule, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const url = options.endpoint ? tracesUrl(options.endpoint) : null;
  const exporter = new exporterModule.OTLPTraceExporter(url ? { url } : {});
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({
      'service.name': options.serviceName ?? 'hutch',
      'service.version': options.version,
    }),
    spanProcessors: [new sdk.BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000, maxQueueSize: 4096 })],
  });
  const tracer: OtelTracer = provider.getTracer('hutch', options.version);

  const wrap = (span: Span): SpanHandle => {
    let ended = false;
    return {
      child(name: string, attributes?: Attributes): SpanHandle {
        const parent = api.trace.setSpan(api.context.active(), span);
        return wrap(tracer.startSpan(name, attributes ? { attributes } : {}, parent));
      },
      setAttributes(attributes: Attributes): void {
        span.setAttributes(attributes);
      },
      end(error?: unknown): void {
        if (ended) return;
        ended = true;
        if (error !== undefined) {
          const err = error instanceof Error ? error : new Error(String(error));
          span.recordException(err);
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: err.message.slice(0, 500) });
        }
        span.end();
      },
    };
  };
  options.log.info({ otlp: url ?? otlpEndpointFromEnv() }, 'OpenTelemetry tracing on (OTLP/HTTP JSON)');
  return {
    url: url ?? otlpEndpointFromEnv() ?? '',
    startSpan: (name, attributes) => wrap(tracer.startSpan(name, attributes ? { attributes } : {}, api.ROOT_CONTEXT)),
    async shutdown() {
      await provider
        .shutdown()
        .catch((err: unknown) => options.log.warn({ err: (err as Error).message }, 'OTLP export at shutdown failed'));
    },
  };
}
