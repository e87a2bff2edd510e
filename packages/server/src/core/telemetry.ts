import type { Isolation } from './sandbox.js';

/**
 * What core reports about itself for metrics and traces. Services call these; the server wires a
 * Prometheus implementation (observability/metrics.ts) and, when an OTLP endpoint is configured,
 * a tracer (observability/tracing.ts). The defaults do nothing, so core and its tests need
 * neither. Labels are bounded by construction: tiers, outcomes and reasons are fixed sets and
 * tenants are the operator's; no sandbox id is ever a label.
 */
export type Attributes = Record<string, string | number | boolean>;

/** A span of a trace: ended once, with the error when the work failed. */
export interface SpanHandle {
  child(name: string, attributes?: Attributes): SpanHandle;
  setAttributes(attributes: Attributes): void;
  end(error?: unknown): void;
}

export interface Tracer {
  startSpan(name: string, attributes?: Attributes): SpanHandle;
}

/**
 * How a create ended: `rejected` is an admission refusal (429/503 from a quota, the queue or
 * capacity), `invalid` a request error (4xx: unknown template, unavailable tier…), `error` a failure.
 */
export type CreateOutcome = 'ok' | 'error' | 'rejected' | 'invalid';
/** How an exec ended: exit 0, another exit status or a signal, its timeout, or an API error. */
export type ExecOutcome = 'ok' | 'nonzero' | 'timeout' | 'error';
export type EgressKind = 'dns' | 'http' | 'tls';
/** `in`: towards the sandbox; `out`: from it. */
export type Direction = 'in' | 'out';

export interface Telemetry {
  readonly tracer: Tracer;
  createFinished(e: { tier: Isolation; warm: boolean; outcome: CreateOutcome; seconds: number }): void;
  execFinished(e: { tier: Isolation; outcome: ExecOutcome; seconds: number }): void;
  poolClaim(tenant: string, hit: boolean): void;
  /** A create or start refused for capacity; `reason` is a HutchError's admission reason. */
  admissionRejected(tenant: string, reason: string): void;
  egressDenied(kind: EgressKind, reason: string): void;
  /** Bytes through the ingress (sandbox ports) or the egress proxy. */
  proxyBytes(proxy: 'ingress' | 'egress', direction: Direction, bytes: number): void;
}

const NOOP_SPAN: SpanHandle = {
  child: () => NOOP_SPAN,
  setAttributes: () => undefined,
  end: () => undefined,
};

export const NOOP_TRACER: Tracer = { startSpan: () => NOOP_SPAN };

export const NOOP_TELEMETRY: Telemetry = {
  tracer: NOOP_TRACER,
  createFinished: () => undefined,
  execFinished: () => undefined,
  poolClaim: () => undefined,
  admissionRejected: () => undefined,
  egressDenied: () => undefined,
  proxyBytes: () => undefined,
};

/** Seconds since a `performance.now()` reading. */
export function secondsSince(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}
