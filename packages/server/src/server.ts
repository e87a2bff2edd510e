import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { adoptAdminKey, ensureAdminKey } from './admin-key.js';
import { buildApp } from './api/app.js';
import { FileService } from './core/file-service.js';
import { ProcessService } from './core/process-service.js';
import { SandboxService } from './core/sandbox-service.js';
import { ENVD_VERSION } from './api/e2b/control-plane.js';
import { VolumeService } from './core/volume-service.js';
import { VolumeSnapshotService } from './core/volume-snapshot-service.js';
import { LocalVolumes } from './runtime/local/local-volumes.js';
import { PLATFORM_MOUNT_PATHS } from './runtime/local/oci-spec.js';
import { HostExecutor } from './runtime/local/host-exec.js';
import { raiseHostLimits } from './runtime/local/host-tuning.js';
import { useHostExecutor } from './runtime/local/exec-tool.js';
import { SqliteSnapshotStore, SqliteVolumeStore } from './store/volume-repo.js';
import { SnapshotService } from './core/snapshot-service.js';
import { LayerStore } from './templates/layer-store.js';
import { probeHost, which } from './runtime/local/host-probe.js';
import { LocalProvider, type ContainerRuntimeChoice } from './runtime/local/local-provider.js';
import { openStore } from './store/database.js';
import { parseStoreUrl } from './store/store-url.js';
import { LeaderDuties, type Leadership, SoleLeadership } from './core/leadership.js';
import { PostgresLeadership } from './store/pg-leader.js';
import { AbandonedCreates } from './core/abandoned-creates.js';
import { SqliteApiKeyStore, SqliteMetaStore } from './store/key-repo.js';
import { SqliteSandboxStore } from './store/sandbox-repo.js';
import { LocalTemplateCatalog } from './templates/catalog.js';
import { VERSION } from './version.js';
import { NetworkManager } from './network/net-manager.js';
import { type Allocation, CapacityLedger } from './core/capacity.js';
import { CreateQueue } from './core/create-queue.js';
import { PoolService } from './core/pool-service.js';
import { SqlitePoolStore } from './store/pool-repo.js';
import { liveHostFigures, nodeSize } from './runtime/local/host-capacity.js';
import { newSandboxId } from './core/ids.js';
import { KeyService } from './core/key-service.js';
import { OpenStreams } from './core/open-streams.js';
import { Quotas } from './core/quotas.js';
import { TenantService } from './core/tenant-service.js';
import { SqliteTenantStore } from './store/tenant-repo.js';
import { EnvironmentService } from './core/environment-service.js';
import { EnvironmentLifecycle } from './core/environment-lifecycle.js';
import { PreviewRoutes } from './core/preview-routes.js';
import { EnvironmentSeeds } from './core/environment-seeds.js';
import { SqliteSeedStore } from './store/environment-seed-repo.js';
import { parseTtl } from './environments/ttl.js';
import { ImageBuilder } from './core/image-builder.js';
import { SandboxCopier } from './core/sandbox-copy.js';
import { SqliteEnvironmentStore } from './store/environment-repo.js';
import { HookService } from './core/hook-service.js';
import { DEFAULT_PREVIEW_OPTIONS, PreviewService } from './core/preview-service.js';
import { SqlDeliveryStore, SqlPreviewStore, SqlProjectStore } from './store/hook-repo.js';
import { webhookSecrets } from './hooks/signature.js';
import { GitHostClient, GITHUB_API_URL, GITLAB_API_URL } from './hooks/git-host-client.js';
import { portUrl } from './core/port-access.js';
import { SecretCipher } from './core/secret-cipher.js';
import { redactingLogHook, SecretRedaction } from './core/secret-redaction.js';
import { SecretService } from './core/secret-service.js';
import { EgressHeaders } from './core/egress-headers.js';
import { SqliteSecretStore } from './store/secret-repo.js';
import { loadSecretsKey } from './secrets-key.js';
import { availableParallelism } from 'node:os';
import { AuditService } from './core/audit.js';
import { SqliteAuditStore } from './store/audit-repo.js';
import { SandboxLogs } from './core/sandbox-logs.js';
import { SqliteSandboxLogStore } from './store/log-repo.js';
import { currentRequestId } from './core/request-context.js';
import type { Provider, VolumeBackend } from './core/provider.js';
import { type KubernetesSettings, setupKubernetes } from './runtime/kubernetes/setup.js';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { UsageMeter } from './core/usage-meter.js';
import { SqliteUsageStore } from './store/usage-repo.js';
import { ServerMetrics } from './observability/metrics.js';
import { otlpEndpointFromEnv, type OtlpTracing, startOtlpTracing } from './observability/tracing.js';

export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  /** Where template layers live (default <dataDir>/layers; env HUTCH_LAYERS_DIR). */
  layersDir?: string;
  /** The hutch-agent binary to inject (default: the repository's agent/bin/hutch-agent; env HUTCH_AGENT_BINARY). */
  agentBinary?: string;
  logLevel?: string;
  /** Build missing templates at start (default true). */
  buildTemplates?: boolean;
  /** Address pools for networked sandboxes (defaults 10.213.0.0/16 and fd68:7574:6368::/48). */
  networkPool4?: string;
  networkPool6?: string;
  /** Upstream DNS servers for the platform resolver (default: the host's /etc/resolv.conf). */
  dnsUpstreams?: string[];
  /** Host routing for sandbox ports, `<port>-<id>.<domain>`; may carry a scheme and port. */
  domain?: string;
  /** Allocation may exceed the node's size by these factors (see DEFAULT_OVERCOMMIT). */
  overcommit?: Partial<Allocation>;
  /** Cold creates running at once (default: the cpu count, at least 2). */
  createConcurrency?: number;
  /** Cold creates waiting at most (default 64); beyond: 429. */
  createQueue?: number;
  /** A pool without matching creates for this long shrinks to its min (default 5 minutes). */
  poolIdleDrainMs?: number;
  /** Audit entries older than this many days are pruned (default 90; 0: kept forever). */
  auditRetentionDays?: number;
  /** How often the audit log is pruned (default hourly, and once at start). */
  auditPruneIntervalMs?: number;
  /** Output kept per sandbox in its log, in bytes (default 1 MiB, at least 16 KiB; 0: no sandbox logs). */
  sandboxLogBytes?: number;
  /** The container tier's OCI runtime (default auto: crun if installed, else runc). */
  containerRuntime?: ContainerRuntimeChoice;
  /** Where sandboxes run: this machine (default) or a Kubernetes cluster (`kubernetes`). */
  provider?: 'local' | 'kubernetes';
  /** Settings of the kubernetes provider. */
  kubernetes?: KubernetesSettings;
  /** Environments may be created from file:// git URLs (repositories on this machine's disk). */
  gitAllowFileUrls?: boolean;
  /** How often running sandboxes are sampled for metrics and usage (default 5 s). */
  sampleIntervalSeconds?: number;
  /** How long per-sandbox samples are kept (default 3600 s). */
  metricsWindowSeconds?: number;
  /** A bearer token that may read GET /metrics besides admin keys (env HUTCH_METRICS_TOKEN). */
  metricsToken?: string;
  /** Also serve GET /metrics, unauthenticated, on this `host:port` (for a scraper on a private network). */
  metricsListen?: string;
  /** Export traces with OTLP/HTTP to this endpoint (default: env OTEL_EXPORTER_OTLP_ENDPOINT; none: off). */
  otlpEndpoint?: string;
  /** The key sealing secret values (must exist); default <dataDir>/secrets.key, generated on first start. */
  secretsKeyFile?: string;
  /** Environments without their own idle TTL sleep after this long without activity (`30m`; default off). */
  envIdleTtl?: string;
  /** Environments without their own delete TTL are destroyed after this long without activity (`7d`; default off). */
  envDeleteTtl?: string;
  /** How often environment TTLs are checked (default 30 s). */
  envSweepIntervalMs?: number;
  /** Per-service environment hosts `{service}--{slug}.<previewDomain>`; may carry a scheme and port. */
  previewDomain?: string;
  /** The admin key in a read-only file (e.g. a mounted Kubernetes Secret); default <dataDir>/admin.key, generated. */
  adminKeyFile?: string;
  /** Secrets of GitHub webhook signatures (two during a rotation); env HUTCH_GITHUB_WEBHOOK_SECRET (comma list). */
  githubWebhookSecrets?: string[];
  /** GitLab webhook tokens (two during a rotation); env HUTCH_GITLAB_WEBHOOK_TOKEN (comma list). */
  gitlabWebhookTokens?: string[];
  /** Tokens for preview feedback and the janitor (statuses, comments, pull request state); none: no feedback. */
  githubToken?: string;
  gitlabToken?: string;
  /** REST API base URLs (default https://api.github.com, https://gitlab.com/api/v4). */
  githubApiUrl?: string;
  gitlabApiUrl?: string;
  /** The label approving a fork's pull request (default hutch:approved) and the one pinning a preview (hutch:keep). */
  previewApprovalLabel?: string;
  previewKeepLabel?: string;
  /** How often the preview janitor asks the git host about open previews (default 600 s). */
  previewJanitorIntervalSeconds?: number;
  /**
   * Where the store lives: `sqlite:///path` (default: <dataDir>/hutch.db) or `postgres://…` (shared
   * by several replicas; env HUTCH_STORE). Never logged with its password.
   */
  store?: string;
  /** PostgreSQL store: how often a follower tries to lead and the leader checks its lock (default 3000 ms). */
  leaderRetryMs?: number;
  /** PostgreSQL store: a create still `creating` after this long was abandoned by a stopped replica (default 30 min). */
  abandonedCreateMs?: number;
}

/** `127.0.0.1:9464`, `[::1]:9464` or `:9464` (all addresses) → host and port. */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/i.exec(text);
  const port = Number(match?.[3]);
  if (!match || !(port >= 0 && port <= 65535)) throw new Error(`--metrics-listen: "${text}" must be host:port (e.g. 127.0.0.1:9464)`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

/**
 * cpu is compressible (oversubscribed sandboxes are throttled, never killed) and idle sandboxes
 * use a small part of their memory, pids and (sparse) disk limits; the live checks (free memory,
 * disk and pids on the host) guard what the ratios let through.
 */
export const DEFAULT_OVERCOMMIT: Allocation = { cpu: 100, memoryMiB: 4, pids: 8, diskMiB: 4 };

/** How often each replica re-reads the tenants (quotas) from a shared PostgreSQL store. */
const TENANT_REFRESH_MS = 5_000;

export const DEFAULT_POOL4 = '10.213.0.0/16';
export const DEFAULT_POOL6 = 'fd68:7574:6368::/48';

/** `sbx.example.com`, `https://sbx.example.com` or `sbx.example.com:8080` → parts. */
export function parseDomain(text: string, flag = '--domain'): { scheme: string; host: string; port: number | null } {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new Error(`${flag}: "${text}" is not a host name`);
  }
  if (url.pathname !== '/' || url.search || !/^[a-z0-9.-]+$/i.test(url.hostname))
    throw new Error(`${flag}: "${text}" must be a host name, optionally with scheme and port`);
  return { scheme: url.protocol.replace(':', ''), host: url.hostname.toLowerCase(), port: url.port ? Number(url.port) : null };
}

export interface RunningServer {
  url: string;
  adminKey: string;
  close(): Promise<void>;
}

export function defaultAgentBinary(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '../../../agent/bin/hutch-agent');
}

/** Copies the agent into the data dir under its content hash, so sandboxes never see it change. */
async function installAgent(source: string, dataDir: string): Promise<string> {
  if (!existsSync(source)) {
    throw new Error(`hutch-agent binary not found at ${source}: run "npm run setup" (or set HUTCH_AGENT_BINARY)`);
  }
  const bytes = await readFile(source);
  const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const target = join(dataDir, 'agent', digest, 'hutch-agent');
  if (!existsSync(target)) {
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    await copyFile(source, tmp);
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  }
  return target;
}

/** Starts the Hutch server; sandboxes are not children of this process and outlive close(). */
export async function runServer(options: ServerOptions): Promise<RunningServer> {
  const dataDir = resolve(options.dataDir);
  // Values injected into sandboxes, so that no line the server logs shows one.
  const redaction = new SecretRedaction();
  const logger = pino({
    level: options.logLevel ?? process.env.HUTCH_LOG_LEVEL ?? 'info',
    base: { svc: 'hutch' },
    // Every line written while serving a request names it (core/request-context.ts). A fresh
    // object each time: pino merges the line's own fields into it.
    mixin: () => {
      const requestId = currentRequestId();
      return requestId ? { requestId } : {};
    },
    hooks: { logMethod: redactingLogHook(redaction) },
  });
  const kubernetes = options.provider === 'kubernetes';
  if (!kubernetes && process.getuid?.() !== 0) throw new Error('hutch server must run as root (it manages namespaces, cgroups and mounts)');
  await mkdir(dataDir, { recursive: true });
  // Searchable (not readable) by others: the runtimes open sandbox root filesystems below it as the
  // sandbox's mapped root user. Secrets in it (admin.key, the database) are 0600 themselves.
  await chmod(dataDir, 0o711);
  const layersDir = resolve(options.layersDir ?? process.env.HUTCH_LAYERS_DIR ?? join(dataDir, 'layers'));
  await mkdir(layersDir, { recursive: true });

  // Before the store opens: a missing, unreadable, wrong-size or too-open key file refuses the start.
  const secretsKey = await loadSecretsKey(dataDir, options.secretsKeyFile);
  const storeText = options.store ?? process.env.HUTCH_STORE;
  const storeLocation = storeText
    ? parseStoreUrl(storeText, options.store ? '--store' : 'HUTCH_STORE')
    : { kind: 'sqlite' as const, file: join(dataDir, 'hutch.db') };
  const { db, dialect, description: storeDescription, close: closeDb } = await openStore(storeLocation, logger);
  const meta = new SqliteMetaStore(db);
  let serverId = await meta.get('server_id');
  if (!serverId) {
    serverId = randomUUID();
    await meta.set('server_id', serverId);
  }
  const cipher = new SecretCipher(secretsKey.key);
  const secretStore = new SqliteSecretStore(db);
  const knownKeyId = await meta.get('secrets_key_id');
  if (knownKeyId !== null && knownKeyId !== cipher.keyId && (await secretStore.count()) > 0) {
    await closeDb();
    throw new Error(
      `the secrets key in ${secretsKey.file} (id ${cipher.keyId}) is not the one the stored secrets were sealed with (id ${knownKeyId}): start with the right --secrets-key-file`,
    );
  }
  if (knownKeyId !== cipher.keyId) await meta.set('secrets_key_id', cipher.keyId);
  const secrets = new SecretService(secretStore, cipher, logger);
  const keyStore = new SqliteApiKeyStore(db);
  const admin = options.adminKeyFile
    ? await adoptAdminKey(options.adminKeyFile, keyStore)
    : await ensureAdminKey(dataDir, keyStore, (message) => logger.warn(message));
  const tenants = new TenantService(new SqliteTenantStore(db), logger);
  await tenants.load();
  const keys = new KeyService(keyStore, tenants, new OpenStreams(), logger);

  // Metrics always; traces when an OTLP endpoint is configured (the SDK is loaded only then).
  const metricsToken = options.metricsToken ?? process.env.HUTCH_METRICS_TOKEN ?? null;
  if (metricsToken !== null && metricsToken.length < 16) throw new Error('the metrics token must be at least 16 characters');
  const metricsListen = options.metricsListen ? parseListen(options.metricsListen) : null;
  const metrics = new ServerMetrics(VERSION);
  const otlpEndpoint = options.otlpEndpoint ?? null;
  let tracing: OtlpTracing | null = null;
  if (otlpEndpoint || otlpEndpointFromEnv()) {
    tracing = await startOtlpTracing({ endpoint: otlpEndpoint, version: VERSION, log: logger });
    metrics.tracer = tracing;
  }
  const agentBinary = await installAgent(options.agentBinary ?? process.env.HUTCH_AGENT_BINARY ?? defaultAgentBinary(), dataDir);
  // Settings checked before anything starts.
  const envTtls = {
    idleTtlMs: options.envIdleTtl === undefined ? 0 : parseTtl(options.envIdleTtl, '--env-idle-ttl'),
    deleteTtlMs: options.envDeleteTtl === undefined ? 0 : parseTtl(options.envDeleteTtl, '--env-delete-ttl'),
  };
  const domain = options.domain ? parseDomain(options.domain) : null;
  const previewDomain = options.previewDomain ? parseDomain(options.previewDomain, '--preview-domain') : null;
  // Host tools (runc, mount, nft, …) are started by a small helper process: far cheaper than a
  // fork of this one (see runtime/local/host-exec.ts). Without it, tools are spawned directly.
  const hostExec = new HostExecutor(agentBinary);
  if (await hostExec.start()) useHostExecutor(hostExec);
  else logger.warn('the host-exec helper did not start: host tools are spawned by the server itself (slower)');
  // Headers the egress proxy adds for sandboxes' injectHeader secrets (filled by the sandbox service).
  const egressHeaders = new EgressHeaders();
  const runtime: RuntimeSetup = kubernetes
    ? await setupKubernetes({ settings: options.kubernetes ?? {}, dataDir, agentBinary, installation: serverId, meta, log: logger }).then(
        (k) => ({
          ...k,
          network: null,
          providerName: 'kubernetes',
          startBackground: async () => undefined,
          stopBackground: () => k.provider.close(),
        }),
      )
    : await setupLocal(options, dataDir, agentBinary, logger, metrics, egressHeaders);
  const { provider, network } = runtime;
  const templates = new LocalTemplateCatalog(layersDir, (message) => logger.info({ templates: layersDir }, message));
  const sandboxStore = new SqliteSandboxStore(db);
  const capacity = new CapacityLedger({ ...runtime.capacity, retryAfterSeconds: 10 });
  // Tenant quotas (and per-key limits), checked against the ledger's per-tenant sums.
  const quotas = new Quotas(capacity, tenants);
  const volumes = new VolumeService(new SqliteVolumeStore(db), sandboxStore, runtime.volumes, logger, PLATFORM_MOUNT_PATHS, quotas);
  const volumeSnapshots = new VolumeSnapshotService(volumes, runtime.volumes, logger);
  const snapshots = new SnapshotService(
    new SqliteSnapshotStore(db),
    sandboxStore,
    provider,
    new LayerStore(join(dataDir, 'snapshots')),
    templates,
    logger,
  );
  const createQueue = new CreateQueue({
    concurrency: options.createConcurrency ?? Math.max(2, availableParallelism()),
    maxQueued: options.createQueue ?? 64,
  });
  const sandboxes = new SandboxService(sandboxStore, provider, templates, logger, volumes, snapshots, capacity, createQueue, quotas);
  snapshots.sandboxes = sandboxes;
  sandboxes.secrets = secrets;
  sandboxes.redaction = redaction;
  sandboxes.egressHeaders = egressHeaders;
  const pools = new PoolService(
    new SqlitePoolStore(db),
    {
      templateDigest: (t, tenant) => sandboxes.templateDigest(t, tenant),
      bootWarm: (id, spec, tenant, pool) => sandboxes.bootWarm(id, spec, tenant, pool),
      poolRemoved: (tenant, pool) => sandboxes.poolRemoved(tenant, pool),
      destroyWarm: (id) => sandboxes.destroyWarm(id),
      newId: newSandboxId,
    },
    capacity,
    createQueue,
    logger,
    options.poolIdleDrainMs !== undefined ? { idleDrainMs: options.poolIdleDrainMs } : {},
    quotas,
  );
  sandboxes.pools = pools;
  sandboxes.telemetry = metrics;
  pools.telemetry = metrics;
  const usageStore = new SqliteUsageStore(db);
  const meter = new UsageMeter(usageStore, provider, logger, {
    intervalMs: Math.round((options.sampleIntervalSeconds ?? 5) * 1000),
    windowMs: Math.round((options.metricsWindowSeconds ?? 3600) * 1000),
  });
  meter.onAccount = (tenant, amounts) => metrics.usageAccounted(tenant, amounts);
  // Before reconciliation: meters of sandboxes that ran while the server was down are accounted on the first round.
  await meter.load();
  sandboxes.meter = meter;
  metrics.attach({
    sandboxCounts: () => usageStore.sandboxCounts(),
    pools: () => pools.list(null),
    capacity: () => capacity.report(),
    createQueue: () => createQueue.stats,
    storePing: () => usageStore.ping(),
    sampler: () => ({ ...meter.lastTick, intervalSeconds: meter.intervalMs / 1000 }),
    leader: () => leadership.leader,
  });
  tenants.contents = { sandboxes, volumes, snapshots, pools, keys, secrets, allocated: (tenant) => capacity.allocated({ tenant }) };
  // The audit log (append-only, batched writes, pruned by age) and the sandboxes' output logs.
  const audit = new AuditService(new SqliteAuditStore(db), logger, {
    ...(options.auditRetentionDays !== undefined ? { retentionDays: options.auditRetentionDays } : {}),
    ...(options.auditPruneIntervalMs !== undefined ? { pruneIntervalMs: options.auditPruneIntervalMs } : {}),
  });
  const logs = new SandboxLogs(new SqliteSandboxLogStore(db), logger, {
    ...(options.sandboxLogBytes !== undefined ? { capBytes: options.sandboxLogBytes } : {}),
    // Injected secret values in a sandbox's output are replaced by *** before it is kept or shown.
    redactorFor: (id) => redaction.redactorFor(id),
  });
  await logs.load();
  sandboxes.onDeleted = (id) => logs.remove(id);
  const processes = new ProcessService(sandboxes, logs);
  sandboxes.startProcess = (id, req) => processes.startDetached(id, req);
  const files = new FileService(sandboxes);
  // The URL clients use (the listening address is only known later; read lazily).
  let publicUrl = '';
  const copier = new SandboxCopier(processes, files);
  const builder = new ImageBuilder(sandboxes, processes, snapshots, copier, logger);
  const environmentStore = new SqliteEnvironmentStore(db);
  const environmentSeeds = new EnvironmentSeeds(new SqliteSeedStore(db), volumes, sandboxes, logger);
  const environments = new EnvironmentService(
    environmentStore,
    sandboxes,
    processes,
    volumes,
    copier,
    builder,
    logger,
    {
      dataDir,
      gitAllowFileUrls: options.gitAllowFileUrls === true,
      portUrl: (id, port) => portUrl(domain, publicUrl, id, port),
      previewUrl: previewDomain
        ? (label) => `${previewDomain.scheme}://${label}.${previewDomain.host}${previewDomain.port ? `:${previewDomain.port}` : ''}/`
        : null,
    },
    environmentSeeds,
  );

  const environmentLifecycle = new EnvironmentLifecycle(environmentStore, environments, logger, {
    ...envTtls,
    ...(options.envSweepIntervalMs !== undefined ? { sweepIntervalMs: options.envSweepIntervalMs } : {}),
  });
  // Webhooks → preview environments (issue 8): deliveries, projects, the reconciler and its janitor.
  const deliveryStore = new SqlDeliveryStore(db);
  const projectStore = new SqlProjectStore(db);
  const previews = new PreviewService(
    new SqlPreviewStore(db),
    projectStore,
    deliveryStore,
    environments,
    new GitHostClient({
      github: { apiUrl: options.githubApiUrl ?? GITHUB_API_URL, token: options.githubToken ?? null },
      gitlab: { apiUrl: options.gitlabApiUrl ?? GITLAB_API_URL, token: options.gitlabToken ?? null },
    }),
    logger,
    {
      ...DEFAULT_PREVIEW_OPTIONS,
      ...(options.previewApprovalLabel ? { approvalLabel: options.previewApprovalLabel } : {}),
      ...(options.previewKeepLabel ? { keepLabel: options.previewKeepLabel } : {}),
      ...(options.previewJanitorIntervalSeconds ? { janitorIntervalMs: options.previewJanitorIntervalSeconds * 1000 } : {}),
    },
  );
  const hooks = new HookService(
    deliveryStore,
    projectStore,
    previews,
    {
      github: webhookSecrets(options.githubWebhookSecrets, process.env.HUTCH_GITHUB_WEBHOOK_SECRET),
      gitlab: webhookSecrets(options.gitlabWebhookTokens, process.env.HUTCH_GITLAB_WEBHOOK_TOKEN),
    },
    (tenant) => tenants.require(tenant),
    logger,
  );

  // The periodic loops run on one replica at a time (core/leadership.ts): with SQLite this one;
  // with PostgreSQL whoever holds the store's advisory lock. The first attempt is made now.
  const leadership: Leadership =
    storeLocation.kind === 'postgres'
      ? new PostgresLeadership(storeLocation.url, logger, options.leaderRetryMs !== undefined ? { retryMs: options.leaderRetryMs } : {})
      : new SoleLeadership();
  await leadership.start();
  // Reconciliation acts on what the store says is everyone's (a follower would mark the leader's
  // creates as interrupted): the replica that leads at its start reconciles, others do not.
  previews.lifecycle = environmentLifecycle;
  previews.seeds = environmentSeeds;
  if (leadership.leader) {
    await sandboxes.reconcile();
    await environments.reconcile();
    // Previews whose deploy or destroy a restart interrupted are taken up again (by one replica).
    await previews.resume();
  } else {
    logger.info({ store: storeDescription }, 'another replica leads: not reconciling; periodic loops start if this one takes over');
    await meter.follow();
  }
  await runtime.startBackground();
  await pools.load();
  // In-memory copies other replicas may make stale (tenant quotas; API keys re-read themselves
  // after 5 s): refreshed on every replica, not only the leader. docs/kubernetes.md lists the rest.
  const replicaRefresh =
    storeLocation.kind === 'postgres'
      ? setInterval(
          () => void tenants.load().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'tenant refresh failed')),
          TENANT_REFRESH_MS,
        ).unref()
      : null;
  // Every periodic loop that acts on the shared store belongs here, so that it runs on one
  // replica at a time.
  const duties = new LeaderDuties(
    leadership,
    [
      { name: 'audit-retention', start: () => audit.start(), stop: () => audit.stopPruning() },
      { name: 'reaper', start: () => sandboxes.startReaper(), stop: () => sandboxes.stopReaper() },
      { name: 'pools', start: () => pools.start(), stop: () => pools.shutdown() },
      { name: 'usage-meter', start: () => meter.lead(), stop: () => meter.follow() },
      { name: 'environment-ttl', start: () => environmentLifecycle.start(), stop: () => environmentLifecycle.stop() },
      { name: 'preview-janitor', start: () => previews.start(), stop: () => previews.stopJanitor() },
      // Only with several replicas: a single server's reconcile at start ends its own.
      ...(storeLocation.kind === 'postgres' ? [new AbandonedCreates(sandboxes, logger, options.abandonedCreateMs)] : []),
    ],
    logger,
  );

  const info = async (): Promise<Record<string, unknown>> => ({
    version: VERSION,
    serverId,
    dataDir,
    store: dialect,
    // Whether this replica runs the periodic loops (reaper, pools, usage meter, audit retention).
    leader: leadership.leader,
    provider: runtime.providerName,
    defaultIsolation: 'container',
    tiers: provider.tiers(),
    templates: await templates.list(),
    capacity: { ...capacity.report(), createQueue: createQueue.stats },
    observability: {
      sampleIntervalSeconds: meter.intervalMs / 1000,
      metricsWindowSeconds: meter.windowMs / 1000,
      metricsListen: metricsServer ? options.metricsListen : null,
      tracing: tracing ? tracing.url : null,
    },
    // What an unmodified e2b SDK needs: E2B_API_URL = apiUrl, E2B_SANDBOX_URL = sandboxUrl, and
    // E2B_API_KEY = any Hutch key (`hutch keys create --e2b` for SDKs before 2.46).
    e2b: { apiUrl: publicUrl, sandboxUrl: publicUrl, domain: domain?.host ?? null, envdVersion: ENVD_VERSION },
    posture: runtime.posture,
  });

  const app = await buildApp(
    {
      sandboxes,
      volumes,
      volumeSnapshots,
      snapshots,
      processes,
      files,
      templates,
      keys,
      tenants,
      pools,
      environments,
      environmentLifecycle,
      previewRoutes: new PreviewRoutes(environmentStore),
      environmentSeeds,
      meter,
      metrics,
      audit,
      logs,
      secrets,
      hooks,
      previews,
      info,
      leader: () => leadership.leader,
    },
    logger,
    VERSION,
    { domain, previewDomain: previewDomain?.host ?? null, metricsToken },
  );
  let metricsServer: HttpServer | null = null;
  if (metricsListen) {
    metricsServer = createHttpServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
        return;
      }
      metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`),
      );
    });
    await new Promise<void>((resolveListen, rejectListen) => {
      metricsServer!.once('error', rejectListen);
      metricsServer!.listen(metricsListen.port, metricsListen.host, () => resolveListen());
    });
  }
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  publicUrl = url;

  if (options.buildTemplates !== false) {
    void (async () => {
      for (const name of templates.names()) {
        await templates
          .build(name)
          .catch((err: unknown) => logger.error({ template: name, err: (err as Error).message }, 'template build failed'));
      }
    })();
  }

  const unavailable = Object.entries(provider.tiers())
    .filter(([, t]) => !t.available)
    .map(([name, t]) => `${name} (${t.reason ?? 'unavailable'})`);
  process.stdout.write(
    [
      '',
      `Hutch ${VERSION} listening on ${url}`,
      `  data dir:  ${dataDir}`,
      `  store:     ${storeDescription}`,
      // A key from --admin-key-file (a Secret) is not printed: pod logs are read more widely.
      options.adminKeyFile
        ? `  admin key: from ${options.adminKeyFile}`
        : `  admin key: ${admin.key}${admin.created ? '   (new; stored in ' + join(dataDir, 'admin.key') + ')' : ''}`,
      `  secrets:   key in ${secretsKey.file}${secretsKey.created ? '   (new: back it up; without it the stored secrets are lost)' : ''}`,
      `  tiers:     ${
        Object.entries(provider.tiers())
          .filter(([, t]) => t.available)
          .map(([n]) => n)
          .join(', ') || 'none'
      }${unavailable.length ? `; unavailable: ${unavailable.join('; ')}` : ''}`,
      `  try:       HUTCH_URL=${url} hutch run -- echo hello`,
      '',
    ].join('\n') + '\n',
  );

  return {
    url,
    adminKey: admin.key,
    async close() {
      // The loops (the environment TTL sweep among them) stop first; leadership is given up last (another replica takes over then).
      await duties.close();
      if (replicaRefresh) clearInterval(replicaRefresh);
      await previews.close();
      await environments.shutdown();
      await pools.close();
      sandboxes.shutdown();
      await sandboxes.settle();
      await meter.close();
      await runtime.stopBackground();
      // Log followers end first (an open follow would keep the HTTP server from closing); audit
      // entries of the calls that finish while it closes are written after it.
      await logs.close();
      await app.close();
      await audit.close();
      await new Promise<void>((r) => (metricsServer ? metricsServer.close(() => r()) : r()));
      await tracing?.shutdown();
      await network?.close();
      useHostExecutor(null);
      hostExec.close();
      await leadership.close();
      await closeDb();
    },
  };
}

interface RuntimeSetup {
  provider: Provider;
  volumes: VolumeBackend;
  network: NetworkManager | null;
  providerName: string;
  capacity: Omit<ConstructorParameters<typeof CapacityLedger>[0], 'retryAfterSeconds'>;
  posture: Record<string, unknown>;
  startBackground(): Promise<void>;
  stopBackground(): Promise<void>;
}

/** The local provider: this host's runtimes, sandbox network and capacity. */
async function setupLocal(
  options: ServerOptions,
  dataDir: string,
  agentBinary: string,
  logger: pino.Logger,
  metrics: ServerMetrics,
  egressHeaders: EgressHeaders,
): Promise<RuntimeSetup> {
  const domain = options.domain ? parseDomain(options.domain) : null;
  const host = await probeHost();
  await raiseHostLimits((message) => logger.info({ host: 'limits' }, message));
  const stateKey = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  const netTools = ['ip', 'nft', 'conntrack', 'nsenter'];
  const found = await Promise.all(netTools.map((t) => which(t)));
  const missingNetTools = netTools.filter((_, i) => found[i] === null);
  let network: NetworkManager | null = null;
  let networkUnavailable: string | undefined;
  if (missingNetTools.length > 0) {
    networkUnavailable = `missing tools: ${missingNetTools.join(', ')} (apt-get install iproute2 nftables conntrack util-linux)`;
  } else {
    network = new NetworkManager({
      key: stateKey,
      stateDir: `/run/hutch/${stateKey}`,
      pool4: options.networkPool4 ?? DEFAULT_POOL4,
      pool6: options.networkPool6 ?? DEFAULT_POOL6,
      ...(options.dnsUpstreams ? { dnsUpstreams: options.dnsUpstreams } : {}),
      log: logger,
      telemetry: metrics,
      injectedHeaders: (id, host) => egressHeaders.for(id, host),
    });
    try {
      await network.init();
    } catch (err) {
      networkUnavailable = `network set-up failed: ${(err as Error).message}`;
      logger.error({ err: networkUnavailable }, 'sandbox networking is unavailable; egress other than none will be refused');
      await network.close().catch(() => undefined);
      network = null;
    }
  }
  const provider = new LocalProvider({
    dataDir,
    agentBinary,
    host,
    network,
    log: logger,
    ...(networkUnavailable ? { networkUnavailable } : {}),
    ...(options.containerRuntime ? { containerRuntime: options.containerRuntime } : {}),
  });
  const node = nodeSize(dataDir);
  return {
    provider,
    volumes: new LocalVolumes(dataDir),
    network,
    providerName: 'local',
    capacity: {
      node,
      overcommit: { ...DEFAULT_OVERCOMMIT, ...options.overcommit },
      reserve: {
        memoryMiB: Math.max(256, Math.round(node.memoryMiB * 0.05)),
        diskMiB: Math.max(1024, Math.round(node.diskMiB * 0.02)),
        pids: Math.max(512, Math.round(node.pids * 0.05)),
      },
      live: () => liveHostFigures(dataDir),
    },
    posture: {
      kernel: host.kernel,
      cgroup: host.cgroup,
      userNamespaces: host.userNamespaces,
      seccomp: host.seccomp,
      overlayfs: host.overlayfs,
      kvm: host.kvm,
      runtimes: { runc: host.runc?.version ?? null, crun: host.crun?.version ?? null, runsc: host.runsc?.version ?? null },
      nftables: host.nft?.version ?? null,
      network: network
        ? {
            available: true,
            pool4: network.pool.cidr4,
            pool6: network.pool.cidr6,
            gateway4: network.pool.gateway4,
            domain: domain?.host ?? null,
          }
        : { available: false, reason: networkUnavailable },
      sandboxUidRange: '100000-165535 (sandbox root maps to host uid 100000)',
    },
    startBackground: () => provider.startBackground(),
    stopBackground: () => provider.stopBackground(),
  };
}
