import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Generated, type Migration, type MigrationProvider } from 'kysely';
import { migrations } from './migrations.js';
import { postgresDdlPlugin, type StoreDialect } from './dialect.js';
import { openPostgres, type StoreLog } from './postgres.js';
import { describeStore, type StoreLocation } from './store-url.js';

/** The store's tables (SQLite by default, or PostgreSQL: see openStore). */
export interface SandboxTable {
  id: string;
  state: string;
  template: string;
  template_digest: string;
  isolation: string;
  cpu: number;
  memory_mib: number;
  pids: number;
  timeout_seconds: number;
  env: string;
  metadata: string;
  idempotency_key: string | null;
  created_at: number;
  expires_at: number | null;
  deleted_at: number | null;
  error: string | null;
  /** JSON NetworkSettings (0002). */
  network: string;
  /** Per-sandbox secret for private ports (0002). */
  access_token: string;
  /** 0003: disk quota, JSON Lifecycle, JSON VolumeMount[], pause mode, state clock. */
  disk_mib: number;
  lifecycle: string;
  volumes: string;
  pause_mode: string | null;
  state_changed_at: number | null;
  /** 0004: the API key that created it. */
  owner: string | null;
  /** 0005: the tenant it belongs to. */
  tenant: string;
  /** 0006: JSON SecretRef[] (names and targets, never values). */
  secrets: string;
}

export interface VolumeTable {
  /** 0005: (tenant, name) is the key. */
  tenant: string;
  name: string;
  size_mib: number;
  labels: string;
  created_at: number;
}

export interface SnapshotTable {
  id: string;
  /** 0005. */
  tenant: string;
  source_sandbox: string;
  template: string;
  template_digest: string;
  layers: string;
  isolation: string;
  default_user: string;
  memory: number;
  spec: string | null;
  size_bytes: number;
  metadata: string;
  created_at: number;
}

export interface ApiKeyTable {
  id: string;
  hash: string;
  name: string;
  role: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  /** 0004: JSON KeyLimits; null: unlimited. */
  limits: string | null;
  /** 0005. */
  tenant: string;
}

export interface PoolTable {
  /** 0005: (tenant, name) is the key. */
  tenant: string;
  name: string;
  spec: string;
  created_at: number;
  updated_at: number;
}

export interface TenantTable {
  name: string;
  /** JSON ResourceLimits; null: unlimited. */
  quotas: string | null;
  created_at: number;
}

/** 0007: one recorded API call (core/audit.ts). */
export interface AuditTable {
  id: Generated<number>;
  time: number;
  tenant: string | null;
  key_id: string | null;
  auth: string | null;
  role: string | null;
  action: string;
  target: string | null;
  route: string;
  status: number;
  error: string | null;
  duration_ms: number;
  client: string | null;
  request_id: string | null;
}

/** 0008: a line (or piece) of a sandbox process's output (core/sandbox-logs.ts). */
export interface SandboxLogTable {
  seq: number;
  sandbox_id: string;
  time: number;
  pid: number;
  stream: string;
  text: string;
  bytes: number;
}

export interface SandboxLogDropTable {
  sandbox_id: string;
  bytes: number;
  entries: number;
}

export interface EnvironmentTable {
  id: string;
  tenant: string;
  owner: string | null;
  name: string | null;
  state: string;
  error: string | null;
  source: string;
  git_sha: string | null;
  pr_number: number | null;
  profiles: string;
  variables: string;
  url: string | null;
  services: string;
  volumes: string;
  warnings: string;
  created_at: number;
  updated_at: number;
  /** 0013: pinned (1): no TTL, no janitor. */
  keep: number;
  /** 0013: null: the server's default; 0: off. */
  idle_ttl_ms: number | null;
  delete_ttl_ms: number | null;
  /** 0013: last deploy or request through its URLs (ms). */
  active_at: number | null;
  slept_at: number | null;
  /** 0013: the DNS label part of its per-service hosts. */
  slug: string | null;
  project: string | null;
  base_ref: string | null;
}

/** 0013: a golden seeded volume per (tenant, project, base branch, Compose volume). */
export interface EnvironmentSeedTable {
  tenant: string;
  project: string;
  base_ref: string;
  volume: string;
  inputs_hash: string;
  snapshot_volume: string;
  state: string;
  environment: string | null;
  created_at: number;
}

/** 0009: usage per tenant and UTC hour (see core/usage-meter.ts). */
export interface UsageHourlyTable {
  tenant: string;
  hour: number;
  cpu_seconds: number;
  cpu_reserved_seconds: number;
  memory_gib_seconds: number;
  memory_used_gib_seconds: number;
  storage_gib_seconds: number;
  sandbox_seconds: number;
  net_rx_bytes: number;
  net_tx_bytes: number;
}

/** 0009: a running sandbox's counters as last accounted. */
export interface UsageMeterTable {
  sandbox_id: string;
  tenant: string;
  cpu: number;
  memory_mib: number;
  at: number;
  cpu_ns: number;
  net_rx: number;
  net_tx: number;
}

export interface SecretTable {
  /** 0006: (tenant, name) is the key. */
  tenant: string;
  name: string;
  /** 12-byte AES-GCM nonce, fresh for every write. */
  nonce: Buffer;
  /** Ciphertext followed by the 16-byte GCM tag. */
  ciphertext: Buffer;
  size_bytes: number;
  created_at: number;
  updated_at: number;
}

/** 0011: a repository whose webhooks deploy environments in a tenant (core/hooks.ts). */
export interface HookProjectTable {
  id: string;
  provider: string;
  repository: string;
  tenant: string;
  clone_url: string | null;
  branches: string;
  variables: string;
  created_at: number;
}

/** 0011: one webhook delivery as received. */
export interface HookDeliveryTable {
  id: Generated<number>;
  provider: string;
  delivery_id: string | null;
  event: string;
  action: string | null;
  repository: string | null;
  number: number | null;
  sha: string | null;
  signature_ok: number;
  duplicate_of: number | null;
  outcome: string;
  reason: string | null;
  target_key: string | null;
  environment_id: string | null;
  tenant: string | null;
  feedback: string | null;
  time: number;
  updated_at: number;
}

/** 0011: the environment of one pull/merge request or branch. */
export interface PreviewTable {
  key: string;
  provider: string;
  repo_id: string;
  repository: string;
  number: number | null;
  branch: string | null;
  tenant: string;
  environment_id: string | null;
  state: string;
  sha: string;
  deployed_sha: string | null;
  clone_url: string;
  fetch_ref: string;
  fork: number;
  approved_sha: string | null;
  labels: string;
  keep: number;
  comment_id: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
}

export interface MetaTable {
  key: string;
  value: string;
}

export interface Schema {
  sandboxes: SandboxTable;
  volumes: VolumeTable;
  snapshots: SnapshotTable;
  api_keys: ApiKeyTable;
  meta: MetaTable;
  pools: PoolTable;
  tenants: TenantTable;
  audit_log: AuditTable;
  sandbox_logs: SandboxLogTable;
  sandbox_log_drops: SandboxLogDropTable;
  environments: EnvironmentTable;
  environment_seeds: EnvironmentSeedTable;
  usage_hourly: UsageHourlyTable;
  usage_meters: UsageMeterTable;
  secrets: SecretTable;
  hook_projects: HookProjectTable;
  hook_deliveries: HookDeliveryTable;
  previews: PreviewTable;
  _placeholder?: { id: Generated<number> };
}

export type Db = Kysely<Schema>;

class StaticMigrations implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

/** An open store: the query builder, its dialect, and how to close it. */
export interface OpenedStore {
  db: Db;
  dialect: StoreDialect;
  /** The SQLite file or the redacted PostgreSQL URL (safe to log). */
  description: string;
  close(): Promise<void>;
}

/** Opens the store at `location` (SQLite file or PostgreSQL database) and migrates it forward. */
export async function openStore(location: StoreLocation, log?: StoreLog): Promise<OpenedStore> {
  if (location.kind === 'sqlite') {
    const { db, close } = await openDatabase(location.file);
    return { db, dialect: 'sqlite', description: describeStore(location), close };
  }
  const { db, close } = await openPostgres(location.url, log);
  try {
    // Kysely takes a session-level advisory lock around the run: replicas starting at once
    // migrate one after the other. Column types are mapped to PostgreSQL's (store/dialect.ts).
    await migrate(db.withPlugin(postgresDdlPlugin()));
  } catch (err) {
    await close();
    throw err;
  }
  return { db, dialect: 'postgres', description: describeStore(location), close };
}

async function migrate(db: Db): Promise<void> {
  const { error, results } = await new Migrator({
    db,
    provider: new StaticMigrations(),
    // Features land in parallel, each with its own numbered migration touching only its own
    // tables: a data dir that has 0009 may get 0006 later. Kysely applies the missing ones.
    allowUnorderedMigrations: true,
  }).migrateToLatest();
  if (error) throw new Error(`store migration failed: ${(error as Error).message}`, { cause: error });
  for (const r of results ?? []) if (r.status === 'Error') throw new Error(`store migration ${r.migrationName} failed`);
}

/** The embedded store: one SQLite file in WAL mode, checked at open, migrated forward. */
export async function openDatabase(file: string): Promise<{ db: Db; close: () => Promise<void> }> {
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const check = sqlite.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new Error(`the store ${file} failed quick_check: ${String(check)}`);
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrate(db);
  return { db, close: () => db.destroy() };
}
