import { sql, type Kysely, type Migration } from 'kysely';
import { dialectOf, perDialect } from './dialect.js';

/**
 * Forward-only schema migrations, applied in name order at open. Never change what a shipped one
 * does. They run on SQLite and on PostgreSQL: write column types as SQLite's (`integer`, `real`,
 * `text`, `blob`; store/dialect.ts maps them on PostgreSQL) and, where raw SQL differs (triggers,
 * casts), give both spellings with perDialect(). tests/store-pg.test.ts runs them on both.
 */
export const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('sandboxes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('template', 'text', (c) => c.notNull())
        .addColumn('template_digest', 'text', (c) => c.notNull())
        .addColumn('isolation', 'text', (c) => c.notNull())
        .addColumn('cpu', 'real', (c) => c.notNull())
        .addColumn('memory_mib', 'integer', (c) => c.notNull())
        .addColumn('pids', 'integer', (c) => c.notNull())
        .addColumn('timeout_seconds', 'integer', (c) => c.notNull())
        .addColumn('env', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('idempotency_key', 'text')
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'integer')
        .addColumn('deleted_at', 'integer')
        .addColumn('error', 'text')
        .execute();
      await db.schema.createIndex('sandboxes_state').on('sandboxes').column('state').execute();
      await sql`CREATE UNIQUE INDEX sandboxes_idempotency ON sandboxes (idempotency_key) WHERE idempotency_key IS NOT NULL`.execute(db);
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('last_used_at', 'integer')
        .addColumn('revoked_at', 'integer')
        .execute();
      await db.schema
        .createTable('meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_network': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable('sandboxes')
        .addColumn('network', 'text', (c) => c.notNull().defaultTo('{"egress":"none","public":false}'))
        .execute();
      await db.schema
        .alterTable('sandboxes')
        .addColumn('access_token', 'text', (c) => c.notNull().defaultTo(''))
        .execute();
    },
  },
  '0003_persistence': {
    async up(db: Kysely<unknown>): Promise<void> {
      for (const [name, type, dflt] of [
        ['disk_mib', 'integer', 2048],
        ['lifecycle', 'text', '{}'],
        ['volumes', 'text', '[]'],
      ] as const) {
        await db.schema
          .alterTable('sandboxes')
          .addColumn(name, type, (c) => c.notNull().defaultTo(dflt))
          .execute();
      }
      await db.schema.alterTable('sandboxes').addColumn('pause_mode', 'text').execute();
      await db.schema.alterTable('sandboxes').addColumn('state_changed_at', 'integer').execute();
      await db.schema
        .createTable('volumes')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('size_mib', 'integer', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('snapshots')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('source_sandbox', 'text', (c) => c.notNull())
        .addColumn('template', 'text', (c) => c.notNull())
        .addColumn('template_digest', 'text', (c) => c.notNull())
        // JSON array of the snapshot's own layer digests, top first (the template's layer below them).
        .addColumn('layers', 'text', (c) => c.notNull())
        .addColumn('isolation', 'text', (c) => c.notNull())
        .addColumn('default_user', 'text', (c) => c.notNull())
        .addColumn('memory', 'integer', (c) => c.notNull())
        // JSON {cpu, memoryMiB, pids, env} of a memory snapshot's source (restores must match it).
        .addColumn('spec', 'text')
        .addColumn('size_bytes', 'integer', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .execute();
    },
  },
  '0004_pools_and_limits': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The API key that created a sandbox (per-key limits); null for older rows.
      await db.schema.alterTable('sandboxes').addColumn('owner', 'text').execute();
      // JSON KeyLimits of an API key; null: unlimited.
      await db.schema.alterTable('api_keys').addColumn('limits', 'text').execute();
      await db.schema
        .createTable('pools')
        .addColumn('name', 'text', (c) => c.primaryKey())
        // JSON PoolSpec (template, isolation, resources, min, max, target).
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .execute();
    },
  },
  '0005_tenants': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('tenants')
        .addColumn('name', 'text', (c) => c.primaryKey())
        // JSON ResourceLimits; null: unlimited.
        .addColumn('quotas', 'text')
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .execute();
      // Everything that existed before tenants belongs to the default tenant; existing keys keep
      // their role (admin: every key had full access before).
      await sql`INSERT INTO tenants (name, quotas, created_at) VALUES ('default', NULL, ${Date.now()})`.execute(db);
      for (const table of ['api_keys', 'sandboxes', 'snapshots']) {
        await db.schema
          .alterTable(table)
          .addColumn('tenant', 'text', (c) => c.notNull().defaultTo('default'))
          .execute();
      }
      await db.schema.createIndex('sandboxes_tenant').on('sandboxes').columns(['tenant', 'state']).execute();
      // Idempotency keys are per tenant (one tenant's key never answers with another's sandbox).
      await sql`DROP INDEX sandboxes_idempotency`.execute(db);
      await sql`CREATE UNIQUE INDEX sandboxes_idempotency ON sandboxes (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL`.execute(
        db,
      );
      await db.schema.createIndex('api_keys_tenant').on('api_keys').column('tenant').execute();
      // Volume and pool names are unique per tenant: both tables get (tenant, name) as their key.
      await db.schema
        .createTable('volumes_0005')
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('size_mib', 'integer', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('volumes_pk', ['tenant', 'name'])
        .execute();
      await sql`INSERT INTO volumes_0005 (tenant, name, size_mib, labels, created_at)
                SELECT 'default', name, size_mib, labels, created_at FROM volumes`.execute(db);
      await db.schema.dropTable('volumes').execute();
      await db.schema.alterTable('volumes_0005').renameTo('volumes').execute();
      await db.schema
        .createTable('pools_0005')
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('pools_pk', ['tenant', 'name'])
        .execute();
      await sql`INSERT INTO pools_0005 (tenant, name, spec, created_at, updated_at)
                SELECT 'default', name, spec, created_at, updated_at FROM pools`.execute(db);
      await db.schema.dropTable('pools').execute();
      await db.schema.alterTable('pools_0005').renameTo('pools').execute();
    },
  },
  '0006_secrets': {
    async up(db: Kysely<unknown>): Promise<void> {
      // A tenant's secrets: the value only as AES-256-GCM ciphertext (core/secret-cipher.ts), with
      // its nonce; (tenant, name) is the key and, as authenticated data, binds the row to both.
      await db.schema
        .createTable('secrets')
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('nonce', 'blob', (c) => c.notNull())
        // Ciphertext followed by the 16-byte GCM tag.
        .addColumn('ciphertext', 'blob', (c) => c.notNull())
        .addColumn('size_bytes', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('secrets_pk', ['tenant', 'name'])
        .execute();
      // JSON SecretRef[] of a sandbox: names and where they go, never values.
      await db.schema
        .alterTable('sandboxes')
        .addColumn('secrets', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute();
    },
  },
  '0007_audit': {
    async up(db: Kysely<unknown>): Promise<void> {
      // The audit log (core/audit.ts): one row per recorded call, append-only. Never a request
      // body, an environment value, file contents or a secret: names, ids, paths and outcomes.
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('time', 'integer', (c) => c.notNull())
        .addColumn('tenant', 'text')
        .addColumn('key_id', 'text')
        .addColumn('auth', 'text')
        .addColumn('role', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('route', 'text', (c) => c.notNull())
        .addColumn('status', 'integer', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('duration_ms', 'integer', (c) => c.notNull())
        .addColumn('client', 'text')
        .addColumn('request_id', 'text')
        .execute();
      await db.schema.createIndex('audit_log_time').on('audit_log').column('time').execute();
      await db.schema.createIndex('audit_log_tenant').on('audit_log').columns(['tenant', 'id']).execute();
      await db.schema.createIndex('audit_log_key').on('audit_log').columns(['key_id', 'id']).execute();
      await db.schema.createIndex('audit_log_request').on('audit_log').column('request_id').execute();
      // Append-only in the store itself: no row is ever changed, and rows are deleted only by
      // retention pruning, which first records the cut-off in meta (older rows only).
      await perDialect(db, {
        sqlite: sql`CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
                    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END`,
        postgres: sql`CREATE FUNCTION audit_log_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$`,
      }).execute(db);
      await perDialect(db, {
        sqlite: sql`CREATE TRIGGER audit_log_prune_only BEFORE DELETE ON audit_log
                    WHEN OLD.time >= COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audit_prune_before'), 0)
                    BEGIN SELECT RAISE(ABORT, 'audit_log rows are only deleted by retention pruning'); END`,
        postgres: sql`CREATE FUNCTION audit_log_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN
                        IF OLD.time >= COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'audit_prune_before'), 0) THEN
                          RAISE EXCEPTION 'audit_log rows are only deleted by retention pruning';
                        END IF;
                        RETURN OLD;
                      END $$`,
      }).execute(db);
      if (dialectOf(db) === 'postgres') {
        await sql`CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
                  FOR EACH ROW EXECUTE FUNCTION audit_log_no_update()`.execute(db);
        // TRUNCATE skips row triggers (SQLite has no TRUNCATE): refused as a statement.
        await sql`CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
                  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_no_update()`.execute(db);
        await sql`CREATE TRIGGER audit_log_prune_only BEFORE DELETE ON audit_log
                  FOR EACH ROW EXECUTE FUNCTION audit_log_prune_only()`.execute(db);
      }
    },
  },
  '0008_sandbox_logs': {
    async up(db: Kysely<unknown>): Promise<void> {
      // Output of processes started through the API (core/sandbox-logs.ts), per sandbox, capped.
      await db.schema
        .createTable('sandbox_logs')
        .addColumn('seq', 'integer', (c) => c.primaryKey())
        .addColumn('sandbox_id', 'text', (c) => c.notNull())
        .addColumn('time', 'integer', (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('stream', 'text', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        .addColumn('bytes', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sandbox_logs_sandbox').on('sandbox_logs').columns(['sandbox_id', 'seq']).execute();
      // What the cap dropped from each sandbox's log (the oldest output goes first).
      await db.schema
        .createTable('sandbox_log_drops')
        .addColumn('sandbox_id', 'text', (c) => c.primaryKey())
        .addColumn('bytes', 'integer', (c) => c.notNull())
        .addColumn('entries', 'integer', (c) => c.notNull())
        .execute();
    },
  },
  '0010_environments': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('environments')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('owner', 'text')
        .addColumn('name', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        // JSON EnvironmentSource.
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('git_sha', 'text')
        .addColumn('pr_number', 'integer')
        // JSON string[] / Record<string, string> / ServiceRecord[] / EnvironmentVolume[] / string[].
        .addColumn('profiles', 'text', (c) => c.notNull())
        .addColumn('variables', 'text', (c) => c.notNull())
        .addColumn('url', 'text')
        .addColumn('services', 'text', (c) => c.notNull())
        .addColumn('volumes', 'text', (c) => c.notNull())
        .addColumn('warnings', 'text', (c) => c.notNull())
        .addColumn('created_at', 'integer', (c) => c.notNull())
        .addColumn('updated_at', 'integer', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('environments_tenant').on('environments').columns(['tenant', 'state']).execute();
    },
  },
  // Git hosting webhooks (issue 8): projects (repository → tenant), every delivery received, and
  // the preview environment of each pull/merge request. Portable SQL only (PostgreSQL too): ms
  // timestamps as bigint, booleans as integer 0/1, JSON as text.
  '0011_hooks': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('hook_projects')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('repository', 'text', (c) => c.notNull())
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('clone_url', 'text')
        // JSON string[] / Record<string, string>.
        .addColumn('branches', 'text', (c) => c.notNull())
        .addColumn('variables', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('hook_projects_repository').unique().on('hook_projects').columns(['provider', 'repository']).execute();
      await db.schema
        .createTable('hook_deliveries')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('delivery_id', 'text')
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('action', 'text')
        .addColumn('repository', 'text')
        .addColumn('number', 'integer')
        .addColumn('sha', 'text')
        .addColumn('signature_ok', 'integer', (c) => c.notNull())
        .addColumn('duplicate_of', 'integer')
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('target_key', 'text')
        .addColumn('environment_id', 'text')
        .addColumn('tenant', 'text')
        .addColumn('feedback', 'text')
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // One first delivery per id (replays are rows of their own, marked duplicate_of).
      await sql`CREATE UNIQUE INDEX hook_deliveries_once ON hook_deliveries (provider, delivery_id)
                WHERE signature_ok = 1 AND duplicate_of IS NULL`.execute(db);
      await db.schema.createIndex('hook_deliveries_tenant').on('hook_deliveries').columns(['tenant', 'id']).execute();
      await db.schema.createIndex('hook_deliveries_time').on('hook_deliveries').column('time').execute();
      await db.schema
        .createTable('previews')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('repo_id', 'text', (c) => c.notNull())
        .addColumn('repository', 'text', (c) => c.notNull())
        .addColumn('number', 'integer')
        .addColumn('branch', 'text')
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('environment_id', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('sha', 'text', (c) => c.notNull())
        .addColumn('deployed_sha', 'text')
        .addColumn('clone_url', 'text', (c) => c.notNull())
        .addColumn('fetch_ref', 'text', (c) => c.notNull())
        .addColumn('fork', 'integer', (c) => c.notNull())
        .addColumn('approved_sha', 'text')
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('keep', 'integer', (c) => c.notNull())
        .addColumn('comment_id', 'text')
        .addColumn('error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('previews_tenant').on('previews').columns(['tenant', 'state']).execute();
    },
  },
  // Usage accounting (issue 7): per-tenant totals by hour, and each running sandbox's meter (its
  // counters as last accounted), so a restart neither loses nor double-counts what ran meanwhile.
  '0009_usage': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('usage_hourly')
        .addColumn('tenant', 'text', (c) => c.notNull())
        // Start of the UTC hour, ms since the epoch.
        .addColumn('hour', 'integer', (c) => c.notNull())
        .addColumn('cpu_seconds', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('cpu_reserved_seconds', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('memory_gib_seconds', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('memory_used_gib_seconds', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('storage_gib_seconds', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('sandbox_seconds', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('net_rx_bytes', 'real', (c) => c.notNull().defaultTo(0))
        .addColumn('net_tx_bytes', 'real', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('usage_hourly_pk', ['tenant', 'hour'])
        .execute();
      await db.schema.createIndex('usage_hourly_hour').on('usage_hourly').column('hour').execute();
      await db.schema
        .createTable('usage_meters')
        .addColumn('sandbox_id', 'text', (c) => c.primaryKey())
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('cpu', 'real', (c) => c.notNull())
        .addColumn('memory_mib', 'integer', (c) => c.notNull())
        // Accounted up to this time (ms), with the cgroup's cpu and the link's byte counters then.
        .addColumn('at', 'integer', (c) => c.notNull())
        .addColumn('cpu_ns', 'real', (c) => c.notNull())
        .addColumn('net_rx', 'real', (c) => c.notNull())
        .addColumn('net_tx', 'real', (c) => c.notNull())
        .execute();
    },
  },
  // Environment lifecycle (issue 8): keep, TTLs (null: the server's default; 0: off), last
  // activity, the per-service host slug, what the environment is a preview of (project + base
  // branch: the seed snapshot's key), and the golden seed volumes. Portable types: bigint ms,
  // integer 0/1 booleans, JSON as text.
  '0013_environment_lifecycle': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable('environments')
        .addColumn('keep', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      for (const column of ['idle_ttl_ms', 'delete_ttl_ms', 'active_at', 'slept_at'])
        await db.schema.alterTable('environments').addColumn(column, 'bigint').execute();
      for (const column of ['slug', 'project', 'base_ref']) await db.schema.alterTable('environments').addColumn(column, 'text').execute();
      await db.schema.createIndex('environments_slug').on('environments').column('slug').execute();
      await db.schema
        .createTable('environment_seeds')
        .addColumn('tenant', 'text', (c) => c.notNull())
        .addColumn('project', 'text', (c) => c.notNull())
        .addColumn('base_ref', 'text', (c) => c.notNull())
        // The Compose volume the seed job fills.
        .addColumn('volume', 'text', (c) => c.notNull())
        // Content hash of what the seed job runs (its plan, image and copied files).
        .addColumn('inputs_hash', 'text', (c) => c.notNull())
        // The Hutch volume holding the golden copy.
        .addColumn('snapshot_volume', 'text', (c) => c.notNull())
        // seeding | ready
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('environment', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('environment_seeds_pk', ['tenant', 'project', 'base_ref', 'volume'])
        .execute();
    },
  },
  // PostgreSQL only (several replicas write sandbox logs): seq numbers are taken in blocks of
  // SEQ_BLOCK (store/log-repo.ts), one nextval each, so two replicas never number alike.
  '0015_pg_sandbox_log_seq_blocks': {
    async up(db: Kysely<unknown>): Promise<void> {
      if (dialectOf(db) !== 'postgres') return;
      await sql`CREATE SEQUENCE sandbox_log_seq_blocks AS bigint INCREMENT BY 1000000 MINVALUE 1 START WITH 1`.execute(db);
      // Above what exists (logs written before this migration, by one server).
      await sql`SELECT setval('sandbox_log_seq_blocks', COALESCE((SELECT MAX(seq) FROM sandbox_logs), 0) + 1, false)`.execute(db);
    },
  },
};
