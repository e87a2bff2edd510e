import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CapacityReport } from '../core/capacity.js';
import type { PoolView } from '../core/pool-service.js';
import type { Isolation } from '../core/sandbox.js';
import {
  type CreateOutcome,
  type Direction,
  type EgressKind,
  type ExecOutcome,
  NOOP_TRACER,
  type Telemetry,
  type Tracer,
} from '../core/telemetry.js';
import type { UsageAmounts } from '../core/usage-meter.js';

/**
 * The server's Prometheus metrics (prom-client), one registry per server. Counters and
 * histograms are updated as things happen (core reports through the Telemetry interface);
 * gauges are computed when /metrics is scraped, from the store and in-memory state, so an idle
 * server does no work for them. Every label is a bounded set: tier, state, outcome, reason,
 * direction, route pattern, status code, and tenant (tenants are created by the operator). No
 * sandbox id is ever a label: per-sandbox figures are at GET /v1/sandboxes/{id}/metrics.
 */
export interface ScrapeSources {
  sandboxCounts(): Promise<Array<{ tenant: string; isolation: string; state: string; count: number }>>;
  pools(): PoolView[];
  capacity(): CapacityReport;
  createQueue(): { running: number; queued: number };
  /** A cheap query against the store (its duration is the store's health). */
  storePing(): Promise<void>;
  sampler(): { seconds: number; sandboxes: number; intervalSeconds: number };
  /** Whether this replica runs the periodic loops (core/leadership.ts). */
  leader?(): boolean;
}

const CREATE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const EXEC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const RESOURCE_LABEL = { cpu: 'cpu', memoryMiB: 'memory_mib', pids: 'pids', diskMiB: 'disk_mib' } as const;

/** `too many connections` → `too_many_connections` (reasons are fixed strings in the proxy). */
const labelValue = (text: string): string =>
  text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '')
    .slice(0, 48) || 'unknown';

export class ServerMetrics implements Telemetry {
  readonly registry = new Registry();
  tracer: Tracer = NOOP_TRACER;
  private sources: ScrapeSources | null = null;

  private readonly createSeconds: Histogram<'tier' | 'warm' | 'outcome'>;
  private readonly execSeconds: Histogram<'tier' | 'outcome'>;
  private readonly poolClaims: Counter<'tenant' | 'result'>;
  private readonly rejections: Counter<'tenant' | 'reason'>;
  private readonly egressDenials: Counter<'kind' | 'reason'>;
  private readonly proxied: Counter<'proxy' | 'direction'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly tenantCpu: Counter<'tenant'>;
  private readonly tenantSandboxSeconds: Counter<'tenant'>;
  private readonly tenantMemory: Counter<'tenant'>;
  private readonly tenantNet: Counter<'tenant' | 'direction'>;

  constructor(version: string) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'hutch_info', help: 'Server version (always 1)', labelNames: ['version'], registers }).set({ version }, 1);

    this.createSeconds = new Histogram({
      name: 'hutch_create_duration_seconds',
      help: 'Sandbox create latency as the API sees it (queue wait included); outcome ok, error or rejected (admission)',
      labelNames: ['tier', 'warm', 'outcome'],
      buckets: CREATE_BUCKETS,
      registers,
    });
    this.execSeconds = new Histogram({
      name: 'hutch_exec_duration_seconds',
      help: 'Buffered exec duration (start to exit); outcome ok (exit 0), nonzero, timeout or error',
      labelNames: ['tier', 'outcome'],
      buckets: EXEC_BUCKETS,
      registers,
    });
    this.poolClaims = new Counter({
      name: 'hutch_pool_claims_total',
      help: 'Creates that matched a warm pool: hit (got a ready sandbox) or miss (the pool was empty)',
      labelNames: ['tenant', 'result'],
      registers,
    });
    this.rejections = new Counter({
      name: 'hutch_admission_rejections_total',
      help: 'Creates and starts refused by admission (tenant_quota_*, key_limit_*, queue_full, queue_per_key, node_*, host_*)',
      labelNames: ['tenant', 'reason'],
      registers,
    });
    this.egressDenials = new Counter({
      name: 'hutch_egress_denials_total',
      help: 'Egress refused by name: DNS queries answered NXDOMAIN, HTTP/TLS connections the proxy refused (by reason)',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.proxied = new Counter({
      name: 'hutch_proxy_bytes_total',
      help: 'Bytes through the ingress (sandbox ports) and the egress proxy; direction in = towards the sandbox',
      labelNames: ['proxy', 'direction'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'hutch_http_requests_total',
      help: 'API requests by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.tenantCpu = new Counter({
      name: 'hutch_tenant_cpu_seconds_total',
      help: 'Cpu time consumed by the tenant’s sandboxes (as accounted by the sampler; see GET /v1/usage)',
      labelNames: ['tenant'],
      registers,
    });
    this.tenantSandboxSeconds = new Counter({
      name: 'hutch_tenant_sandbox_seconds_total',
      help: 'Running time of the tenant’s sandboxes',
      labelNames: ['tenant'],
      registers,
    });
    this.tenantMemory = new Counter({
      name: 'hutch_tenant_memory_gib_seconds_total',
      help: 'Reserved memory (limit) × running time of the tenant’s sandboxes',
      labelNames: ['tenant'],
      registers,
    });
    this.tenantNet = new Counter({
      name: 'hutch_tenant_network_bytes_total',
      help: 'Bytes on the tenant’s sandbox links; direction in = received by the sandbox',
      labelNames: ['tenant', 'direction'],
      registers,
    });

    // Computed at scrape time (collect() runs with the gauge as `this`).
    const src = (): ScrapeSources | null => this.sources;
    new Gauge({
      name: 'hutch_sandboxes',
      help: 'Sandboxes that are not deleted, by tenant, tier and state',
      labelNames: ['tenant', 'tier', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const r of (await src()?.sandboxCounts()) ?? []) this.set({ tenant: r.tenant, tier: r.isolation, state: r.state }, r.count);
      },
    });
    new Gauge({
      name: 'hutch_pool_members',
      help: 'Warm pool members by tenant: ready or starting',
      labelNames: ['tenant', 'state'],
      registers,
      collect() {
        this.reset();
        const sums = new Map<string, { ready: number; starting: number }>();
        for (const p of src()?.pools() ?? []) {
          const s = sums.get(p.tenant) ?? { ready: 0, starting: 0 };
          s.ready += p.size;
          s.starting += p.starting;
          sums.set(p.tenant, s);
        }
        for (const [tenant, s] of sums) {
          this.set({ tenant, state: 'ready' }, s.ready);
          this.set({ tenant, state: 'starting' }, s.starting);
        }
      },
    });
    const capacityGauges = {
      allocated: 'Sum of the limits of live sandboxes (running: all; resting: disk) and unclaimed pool members',
      allocatable: 'What may be allocated: the node’s size × overcommit',
    } as const;
    for (const [field, help] of Object.entries(capacityGauges) as Array<[keyof typeof capacityGauges, string]>) {
      new Gauge({
        name: `hutch_capacity_${field}`,
        help,
        labelNames: ['resource'],
        registers,
        collect() {
          const report = src()?.capacity();
          if (!report) return;
          for (const [k, label] of Object.entries(RESOURCE_LABEL))
            this.set({ resource: label }, report[field][k as keyof typeof RESOURCE_LABEL]);
        },
      });
    }
    new Gauge({
      name: 'hutch_create_queue',
      help: 'Cold creates running and waiting in the create queue',
      labelNames: ['state'],
      registers,
      collect() {
        const q = src()?.createQueue();
        if (!q) return;
        this.set({ state: 'running' }, q.running);
        this.set({ state: 'waiting' }, q.queued);
      },
    });
    // One store query per scrape, shared by both gauges (a registry collects them concurrently).
    let ping: { at: number; result: Promise<{ ok: boolean; seconds: number }> } | null = null;
    const pingOnce = (): Promise<{ ok: boolean; seconds: number }> => {
      const now = performance.now();
      if (!ping || now - ping.at > 1000) {
        const sources = src();
        ping = {
          at: now,
          result: sources
            ? sources.storePing().then(
                () => ({ ok: true, seconds: (performance.now() - now) / 1000 }),
                () => ({ ok: false, seconds: (performance.now() - now) / 1000 }),
              )
            : Promise.resolve({ ok: false, seconds: 0 }),
        };
      }
      return ping.result;
    };
    new Gauge({
      name: 'hutch_store_up',
      help: '1 when the scrape-time store query succeeded',
      registers,
      async collect() {
        this.set((await pingOnce()).ok ? 1 : 0);
      },
    });
    new Gauge({
      name: 'hutch_store_query_seconds',
      help: 'Duration of a cheap store query run at scrape time',
      registers,
      async collect() {
        this.set((await pingOnce()).seconds);
      },
    });
    new Gauge({
      name: 'hutch_leader',
      help: '1 on the replica that runs the periodic loops (reaper, pools, usage meter, audit retention); always 1 on SQLite',
      registers,
      collect() {
        const leader = src()?.leader;
        if (leader) this.set(leader() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'hutch_sampler_duration_seconds',
      help: 'Duration of the last per-sandbox sampling round',
      registers,
      collect() {
        const s = src()?.sampler();
        if (s) this.set(s.seconds);
      },
    });
    new Gauge({
      name: 'hutch_sampler_sandboxes',
      help: 'Sandboxes read in the last sampling round',
      registers,
      collect() {
        const s = src()?.sampler();
        if (s) this.set(s.sandboxes);
      },
    });
    new Gauge({
      name: 'hutch_sampler_interval_seconds',
      help: 'Configured sampling interval',
      registers,
      collect() {
        const s = src()?.sampler();
        if (s) this.set(s.intervalSeconds);
      },
    });
  }

  /** Where the scrape-time gauges read from (wired once the services exist). */
  attach(sources: ScrapeSources): void {
    this.sources = sources;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  createFinished(e: { tier: Isolation; warm: boolean; outcome: CreateOutcome; seconds: number }): void {
    this.createSeconds.observe({ tier: e.tier, warm: String(e.warm), outcome: e.outcome }, e.seconds);
  }

  execFinished(e: { tier: Isolation; outcome: ExecOutcome; seconds: number }): void {
    this.execSeconds.observe({ tier: e.tier, outcome: e.outcome }, e.seconds);
  }

  poolClaim(tenant: string, hit: boolean): void {
    this.poolClaims.inc({ tenant, result: hit ? 'hit' : 'miss' });
  }

  admissionRejected(tenant: string, reason: string): void {
    this.rejections.inc({ tenant, reason: labelValue(reason) });
  }

  egressDenied(kind: EgressKind, reason: string): void {
    this.egressDenials.inc({ kind, reason: labelValue(reason) });
  }

  proxyBytes(proxy: 'ingress' | 'egress', direction: Direction, bytes: number): void {
    if (bytes > 0) this.proxied.inc({ proxy, direction }, bytes);
  }

  httpRequest(method: string, route: string, status: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
  }

  /** Usage the sampler accounted to a tenant (its Prometheus counters). */
  usageAccounted(tenant: string, a: UsageAmounts): void {
    if (a.cpuSeconds > 0) this.tenantCpu.inc({ tenant }, a.cpuSeconds);
    if (a.sandboxSeconds > 0) this.tenantSandboxSeconds.inc({ tenant }, a.sandboxSeconds);
    if (a.memoryGiBSeconds > 0) this.tenantMemory.inc({ tenant }, a.memoryGiBSeconds);
    if (a.netRxBytes > 0) this.tenantNet.inc({ tenant, direction: 'in' }, a.netRxBytes);
    if (a.netTxBytes > 0) this.tenantNet.inc({ tenant, direction: 'out' }, a.netTxBytes);
  }
}
