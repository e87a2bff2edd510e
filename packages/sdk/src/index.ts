/**
 * @hutch/sdk — the TypeScript client of a Hutch server.
 * Start with {@link Hutch}; every failure is a {@link HutchError} subclass.
 */
export { Hutch, type GcOptions } from './client.js';
export {
  resolveConfig,
  DEFAULT_URL,
  DEFAULT_DATA_DIR,
  DEFAULT_TIMEOUT_MS,
  type CallOptions,
  type ConnectionOptions,
  type ResolvedConfig,
} from './config.js';
export {
  HutchError,
  InvalidArgumentError,
  AuthenticationError,
  PermissionDeniedError,
  NotFoundError,
  ConflictError,
  PayloadTooLargeError,
  TierUnavailableError,
  RateLimitError,
  ServerError,
  UnavailableError,
  ConnectionError,
  TimeoutError,
  ERROR_TABLE,
  errorFromResponse,
} from './errors.js';
export { Sandboxes, type SandboxCreateOptions, type SandboxListOptions } from './sandboxes.js';
export { Sandbox, type ExecOptions, type ForkOptions, type ForkResult, type LogOptions, type SnapshotOptions } from './sandbox.js';
export {
  Processes,
  ProcessHandle,
  type ProcessCallbacks,
  type ProcessConnectOptions,
  type ProcessResult,
  type ProcessSelector,
  type ProcessStartOptions,
  type Signal,
} from './processes.js';
export { Pty, PtyHandle, type PtyCreateOptions, type PtyExit } from './pty.js';
export { Files, type FileOptions, type ListOptions } from './files.js';
export { Templates } from './templates.js';
export { Volumes, type VolumeCreateOptions } from './volumes.js';
export { Snapshots } from './snapshots.js';
export { NdjsonSplitter, readNdjson } from './ndjson.js';
export type * from './types.js';
export {
  ApiKeys,
  type ApiKeyInfo,
  type ApiKeyCreateOptions,
  type ApiKeyLimits,
  type ApiKeyListOptions,
  type ApiKeyRole,
  type CreatedApiKey,
  type RevokedApiKey,
} from './keys.js';
export {
  Tenants,
  type TenantCreateOptions,
  type TenantDeleteOptions,
  type TenantDeleteResult,
  type TenantInfo,
  type TenantQuotas,
  type TenantUsage,
} from './tenants.js';
export { Pools, type PoolInfo, type PoolSpec } from './pools.js';
export { Audit, type AuditEntry, type AuditExportOptions, type AuditFilter, type AuditListOptions, type AuditPage } from './audit.js';
export {
  Hooks,
  type HookDelivery,
  type HookDeliveryFilter,
  type HookDeliveryPage,
  type HookProject,
  type HookProjectCreate,
  type HookProvider,
  type Preview,
} from './hooks.js';
export {
  Environments,
  type EnvironmentCreateParams,
  type EnvironmentInfo,
  type EnvironmentServiceInfo,
  type EnvironmentSeedInfo,
  type EnvironmentServiceState,
  type EnvironmentSource,
  type EnvironmentState,
  type EnvironmentTtl,
  type EnvironmentUpdateParams,
  type EnvironmentWaitOptions,
} from './environments.js';
export type {
  MetricsOptions,
  SandboxMetrics,
  SandboxMetricsSample,
  TimeInput,
  TimeRange,
  UsageOptions,
  UsageReport,
  UsageTotals,
} from './observability.js';
export { Secrets, type PutSecretResult, type SecretCallOptions, type SecretInfo } from './secrets.js';
