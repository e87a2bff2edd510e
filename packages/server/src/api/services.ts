import type { FileService } from '../core/file-service.js';
import type { ProcessService } from '../core/process-service.js';
import type { SandboxService } from '../core/sandbox-service.js';
import type { VolumeService } from '../core/volume-service.js';
import type { VolumeSnapshotService } from '../core/volume-snapshot-service.js';
import type { SnapshotService } from '../core/snapshot-service.js';
import type { KeyService } from '../core/key-service.js';
import type { TenantService } from '../core/tenant-service.js';
import type { TemplateCatalog } from '../core/templates.js';
import type { PoolService } from '../core/pool-service.js';
import type { AuditService } from '../core/audit.js';
import type { SandboxLogs } from '../core/sandbox-logs.js';
import type { EnvironmentService } from '../core/environment-service.js';
import type { EnvironmentLifecycle } from '../core/environment-lifecycle.js';
import type { PreviewRoutes } from '../core/preview-routes.js';
import type { EnvironmentSeeds } from '../core/environment-seeds.js';
import type { UsageMeter } from '../core/usage-meter.js';
import type { ServerMetrics } from '../observability/metrics.js';
import type { SecretService } from '../core/secret-service.js';
import type { HookService } from '../core/hook-service.js';
import type { PreviewService } from '../core/preview-service.js';

/** Everything the HTTP adapter may call. */
export interface Services {
  sandboxes: SandboxService;
  volumes: VolumeService;
  /** Volume snapshots (the kubernetes provider's VolumeSnapshots). */
  volumeSnapshots: VolumeSnapshotService;
  snapshots: SnapshotService;
  processes: ProcessService;
  files: FileService;
  templates: TemplateCatalog;
  keys: KeyService;
  tenants: TenantService;
  pools: PoolService;
  audit: AuditService;
  logs: SandboxLogs;
  environments: EnvironmentService;
  /** keep, TTLs, sleep and wake of environments. */
  environmentLifecycle: EnvironmentLifecycle;
  /** Per-service hosts of environments → sandbox and port. */
  previewRoutes: PreviewRoutes;
  /** Golden seed snapshots of environments. */
  environmentSeeds: EnvironmentSeeds;
  /** Per-sandbox samples and per-tenant usage. */
  meter: UsageMeter;
  /** Prometheus registry (GET /metrics) and request counting. */
  metrics: ServerMetrics;
  secrets: SecretService;
  /** Webhook deliveries and projects. */
  hooks: HookService;
  /** Preview environments driven by webhooks. */
  previews: PreviewService;
  info: () => Promise<Record<string, unknown>>;
  /** Whether this replica runs the periodic loops (core/leadership.ts); shown by /healthz. */
  leader: () => boolean;
}
