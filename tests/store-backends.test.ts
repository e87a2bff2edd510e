import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { openStore, type OpenedStore } from '../packages/server/src/store/database.js';
import { parseStoreUrl, redactStoreUrl } from '../packages/server/src/store/store-url.js';
import { storeError } from '../packages/server/src/store/postgres.js';
import { SqliteSandboxStore } from '../packages/server/src/store/sandbox-repo.js';
import { SqliteApiKeyStore, SqliteMetaStore } from '../packages/server/src/store/key-repo.js';
import { SqliteTenantStore } from '../packages/server/src/store/tenant-repo.js';
import { SqliteSnapshotStore, SqliteVolumeStore } from '../packages/server/src/store/volume-repo.js';
import { SqliteAuditStore } from '../packages/server/src/store/audit-repo.js';
import { SqliteEnvironmentStore } from '../packages/server/src/store/environment-repo.js';
import { SqliteSeedStore } from '../packages/server/src/store/environment-seed-repo.js';
import { SqliteSecretStore } from '../packages/server/src/store/secret-repo.js';
import { SqliteUsageStore } from '../packages/server/src/store/usage-repo.js';
import { SqliteSandboxLogStore } from '../packages/server/src/store/log-repo.js';
import { SqlitePoolStore } from '../packages/server/src/store/pool-repo.js';
import { SandboxLogs } from '../packages/server/src/core/sandbox-logs.js';
import { SqlDeliveryStore } from '../packages/server/src/store/hook-repo.js';
import { NOW, sandboxRecord as sandbox } from './store-records.js';
import type { AuditEntry } from '../packages/server/src/core/audit.js';
import type { EnvironmentRecord } from '../packages/server/src/core/environment.js';
import { isDuplicateKey } from '../packages/server/src/core/errors.js';
import { startPostgres, type PgCluster } from './pg-fixture.js';

/**
 * One contract suite for the store's repositories, run against the embedded SQLite file and a
 * real PostgreSQL cluster (tests/pg-fixture.ts): the same calls must give the same answers.
 * Times and sizes are chosen above 2^31 (ms timestamps, multi-GiB snapshots) on purpose.
 */
const at = (offsetMs: number): Date => new Date(NOW + offsetMs);

function auditEntry(over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    time: at(0),
    tenant: 'default',
    keyId: 'key1',
    auth: 'key',
    role: 'admin',
    action: 'sandbox.create',
    target: 'sbx1',
    route: 'POST /v1/sandboxes',
    status: 201,
    error: null,
    durationMs: 12.4,
    client: '127.0.0.1',
    requestId: 'req-1',
    ...over,
  };
}

function environment(id: string): EnvironmentRecord {
  return {
    id,
    tenant: 'default',
    owner: 'key1',
    name: 'preview',
    state: 'creating',
    error: null,
    source: { kind: 'git', url: 'file:///repo', ref: 'main' },
    gitSha: null,
    prNumber: 42,
    profiles: ['web'],
    variables: { X: '1' },
    url: null,
    services: [],
    volumes: [],
    warnings: [],
    createdAt: at(0),
    updatedAt: at(0),
    keep: false,
    ttl: { idleMs: 3_600_000, deleteMs: null },
    activeAt: at(0),
    sleptAt: null,
    slug: `s-${id}`,
    project: 'repo',
    baseRef: 'main',
  };
}

let cluster: PgCluster;
const dirs: string[] = [];
before(async () => {
  cluster = await startPostgres();
});
after(() => {
  cluster?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('store URLs: sqlite paths and URLs, postgres URLs; passwords never shown', () => {
  assert.deepEqual(parseStoreUrl('sqlite:///var/lib/hutch/hutch.db'), { kind: 'sqlite', file: '/var/lib/hutch/hutch.db' });
  assert.deepEqual(parseStoreUrl('/tmp/x.db'), { kind: 'sqlite', file: '/tmp/x.db' });
  assert.equal(parseStoreUrl('postgresql://u:p@db:5432/hutch').kind, 'postgres');
  assert.throws(() => parseStoreUrl('mysql://u:p@db/hutch'), /--store: unsupported scheme "mysql:\/\/"/);
  assert.throws(
    () => parseStoreUrl('postgres://u:s3cret@db:5432/', 'HUTCH_STORE'),
    (err: Error) => {
      assert.match(err.message, /^HUTCH_STORE: .*names no database/);
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    },
  );
  assert.equal(
    redactStoreUrl('postgres://hutch:p@ss/w:rd@db:5432/hutch?sslmode=require'),
    'postgres://hutch:***@db:5432/hutch?sslmode=require',
  );
  assert.equal(redactStoreUrl('postgres://db/hutch?user=h&password=x1'), 'postgres://db/hutch?user=h&password=***');
  // A driver message quoting the password (with '@' and '/' in it) shows it nowhere.
  const err = storeError('postgres://hutch:p@ss/w:rd@db:5432/hutch', 'cannot open the store', new Error('auth failed for "p@ss/w:rd"'));
  assert.doesNotMatch(err.message, /p@ss|ss\/w|w:rd/);
  assert.match(err.message, /auth failed for "\*\*\*"/);
});

test('PostgreSQL: a wrong password is a clear error that does not show it', async () => {
  const wrong = cluster.url.replace(cluster.password, 'not-the-password-123');
  await assert.rejects(openStore(parseStoreUrl(wrong)), (err: Error) => {
    assert.match(
      err.message,
      /cannot connect to the PostgreSQL store \(postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres\).*password authentication failed/,
    );
    assert.doesNotMatch(err.message, /not-the-password-123/);
    return true;
  });
});

const backends: Array<{ name: string; open: () => Promise<OpenedStore> }> = [
  {
    name: 'sqlite',
    open: async () => {
      const dir = mkdtempSync('/var/tmp/hutch-store-test-');
      dirs.push(dir);
      return openStore({ kind: 'sqlite', file: join(dir, 'hutch.db') });
    },
  },
  {
    name: 'postgres',
    open: async () => openStore(parseStoreUrl(await cluster.createDatabase(`store_${Math.random().toString(36).slice(2, 10)}`))),
  },
];

for (const backend of backends) {
  describe(`store on ${backend.name}`, () => {
    let store: OpenedStore;
    before(async () => {
      store = await backend.open();
    });
    after(async () => {
      await store?.close();
    });

    test('dialect is detected and migrations are recorded once', async () => {
      assert.equal(store.dialect, backend.name);
      const rows = await store.db
        .selectFrom('kysely_migration' as never)
        .select('name' as never)
        .execute();
      const names = rows.map((r) => (r as { name: string }).name);
      assert.ok(names.includes('0001_initial') && names.includes('0007_audit') && names.includes('0010_environments'), names.join(','));
      // The default tenant from 0005, with a ms timestamp read back as a number.
      const tenant = await store.db.selectFrom('tenants').selectAll().where('name', '=', 'default').executeTakeFirstOrThrow();
      assert.equal(typeof tenant.created_at, 'number');
    });

    test('sandboxes: insert, read back exactly, patch, filters, idempotency keys per tenant', async () => {
      const repo = new SqliteSandboxStore(store.db);
      const a = sandbox('sbxa', { idempotencyKey: 'k1', volumes: [{ name: 'data', path: '/data', readOnly: false }] });
      await repo.insert(a);
      await repo.insert(sandbox('sbxb', { tenant: 'other', idempotencyKey: 'k1', createdAt: at(1), expiresAt: at(100) }));
      await repo.insert(sandbox('sbxc', { state: 'stopped', createdAt: at(2), metadata: { team: 'y' } }));
      assert.deepEqual(await repo.get('sbxa'), a);
      // The same key in the same tenant is refused by the (partial) unique index.
      await assert.rejects(repo.insert(sandbox('sbxd', { idempotencyKey: 'k1' })));
      assert.equal((await repo.getByIdempotencyKey('other', 'k1'))?.id, 'sbxb');
      assert.equal((await repo.getByIdempotencyKey('default', 'k1'))?.id, 'sbxa');
      await repo.update('sbxa', { state: 'paused', pauseMode: 'filesystem', stateChangedAt: at(5_000), expiresAt: null });
      const paused = await repo.get('sbxa');
      assert.equal(paused?.state, 'paused');
      assert.equal(paused?.stateChangedAt?.getTime(), NOW + 5_000);
      assert.equal(paused?.expiresAt, null);
      assert.deepEqual(
        (await repo.list({ tenant: 'default' })).map((r) => r.id),
        ['sbxa', 'sbxc'],
      );
      assert.deepEqual(
        (await repo.list({ states: ['running'], expiredBefore: at(200) })).map((r) => r.id),
        ['sbxb'],
      );
      assert.deepEqual(
        (await repo.list({ metadata: { team: 'y' } })).map((r) => r.id),
        ['sbxc'],
      );
      assert.deepEqual(await repo.usingVolume('default', 'data'), ['sbxa']);
      assert.deepEqual((await repo.usingTemplate('minimal')).sort(), ['sbxa', 'sbxb', 'sbxc']);
      assert.equal(await repo.countOf('default'), 2);
      assert.equal(await repo.count(), 3);
    });

    test('tenants, API keys and meta', async () => {
      const tenants = new SqliteTenantStore(store.db);
      await tenants.insert({ name: 'acme', quotas: { maxSandboxes: 3 } as never, createdAt: new Date(Date.now() + 60_000) });
      assert.deepEqual((await tenants.get('acme'))?.quotas, { maxSandboxes: 3 });
      // A duplicate name is recognised as such on both stores (a create racing another: 409).
      await assert.rejects(tenants.insert({ name: 'acme', quotas: null, createdAt: at(0) }), (err) => isDuplicateKey(err));
      assert.ok(await tenants.setQuotas('acme', null));
      assert.equal((await tenants.get('acme'))?.quotas, null);
      assert.deepEqual(
        (await tenants.list()).map((t) => t.name),
        ['default', 'acme'],
      );
      const keys = new SqliteApiKeyStore(store.db);
      await keys.insert('hk_secret_admin', {
        id: 'k-admin',
        name: 'admin',
        tenant: 'default',
        role: 'admin',
        createdAt: at(0),
        lastUsedAt: null,
        limits: null,
      });
      await keys.insert('hk_secret_dev', {
        id: 'k-dev',
        name: 'dev',
        tenant: 'acme',
        role: 'member',
        createdAt: at(1),
        lastUsedAt: null,
        limits: null,
      });
      const verified = await keys.verify('hk_secret_dev');
      assert.equal(verified?.id, 'k-dev');
      assert.equal(verified?.tenant, 'acme');
      assert.equal(await keys.verify('hk_wrong'), null);
      assert.ok(await keys.setLimits('k-dev', { maxSandboxes: 1 } as never));
      assert.deepEqual((await keys.get('k-dev'))?.limits, { maxSandboxes: 1 });
      assert.deepEqual(
        (await keys.list('acme')).map((k) => k.id),
        ['k-dev'],
      );
      assert.equal(await keys.countAdmins(), 1);
      assert.ok(await keys.revoke('k-dev'));
      assert.equal(await keys.isRevoked('hk_secret_dev'), true);
      assert.equal(await keys.verify('hk_secret_dev'), null);
      await tenants.remove('acme');
      assert.equal(await tenants.get('acme'), null);
      const meta = new SqliteMetaStore(store.db);
      await meta.set('server_id', 'one');
      await meta.set('server_id', 'two');
      assert.equal(await meta.get('server_id'), 'two');
    });

    test('volumes, snapshots (sizes past 4 GiB), pools and secrets (bytes)', async () => {
      const volumes = new SqliteVolumeStore(store.db);
      await volumes.insert({ tenant: 'default', name: 'data', sizeMiB: 1024, labels: { a: 'b' }, createdAt: at(0) });
      await volumes.insert({ tenant: 'other', name: 'data', sizeMiB: 10, labels: {}, createdAt: at(1) });
      assert.deepEqual((await volumes.get('default', 'data'))?.labels, { a: 'b' });
      assert.equal((await volumes.list(null)).length, 2);
      await volumes.remove('other', 'data');
      assert.deepEqual(
        (await volumes.list(null)).map((v) => v.tenant),
        ['default'],
      );
      const snapshots = new SqliteSnapshotStore(store.db);
      const snap = {
        id: 'snap1',
        tenant: 'default',
        sourceSandbox: 'sbxa',
        template: 'minimal',
        templateDigest: 'sha256:abc',
        layers: ['sha256:1', 'sha256:2'],
        isolation: 'gvisor' as const,
        defaultUser: 'user',
        memory: true,
        spec: { cpu: 0.5, memoryMiB: 512, pids: 64, env: {} },
        sizeBytes: 5 * 1024 ** 3 + 7,
        metadata: {},
        createdAt: at(0),
      };
      await snapshots.insert(snap);
      assert.deepEqual(await snapshots.get('snap1'), snap);
      const pools = new SqlitePoolStore(store.db);
      const def = { tenant: 'default', name: 'warm', spec: { template: 'minimal', min: 1 } as never, createdAt: at(0), updatedAt: at(0) };
      await pools.put(def);
      await pools.put({ ...def, spec: { template: 'minimal', min: 2 } as never, updatedAt: at(9) });
      const listed = await pools.list();
      assert.equal(listed.length, 1);
      assert.deepEqual(listed[0]!.spec, { template: 'minimal', min: 2 });
      assert.equal(listed[0]!.updatedAt.getTime(), NOW + 9);
      const secrets = new SqliteSecretStore(store.db);
      const nonce = Buffer.from('000102030405060708090a0b', 'hex');
      const ciphertext = Buffer.from([0, 1, 2, 255, 0, 254]);
      const sec = { tenant: 'default', name: 'TOKEN', nonce, ciphertext, sizeBytes: 6, createdAt: at(0), updatedAt: at(0) };
      assert.equal(await secrets.upsert(sec), true);
      assert.equal(await secrets.upsert({ ...sec, updatedAt: at(1) }), false);
      const got = await secrets.get('default', 'TOKEN');
      assert.ok(got && Buffer.isBuffer(got.ciphertext) && got.ciphertext.equals(ciphertext) && got.nonce.equals(nonce));
      assert.equal(got.createdAt.getTime(), NOW);
      assert.equal(await secrets.count(), 1);
    });

    test('audit: filters, NUL-safe, append-only in the store itself, pruned only by age', async () => {
      const audit = new SqliteAuditStore(store.db);
      await audit.append([
        auditEntry({ time: at(-10_000), action: 'sandbox.exec', target: 'sbx1#12' }),
        auditEntry({ time: at(0), action: 'sandbox.create', target: 'sbx1' }),
        auditEntry({ time: at(1), action: 'file.write', target: 'sbx1:/tmp/a\0b', status: 404, error: 'not_found' }),
        auditEntry({ time: at(2), action: 'sandboxes.list', target: null }),
      ]);
      const all = await audit.query({ tenant: null, order: 'asc', limit: 10 });
      assert.equal(all.length, 4);
      assert.ok(all.every((e) => typeof e.id === 'number'));
      assert.deepEqual(
        (await audit.query({ tenant: 'default', action: 'sandbox', order: 'asc', limit: 10 })).map((e) => e.action),
        ['sandbox.exec', 'sandbox.create'],
      );
      assert.equal((await audit.query({ tenant: null, target: 'sbx1', order: 'desc', limit: 10 })).length, 3);
      assert.deepEqual(
        (await audit.query({ tenant: null, outcome: { kind: 'error' }, order: 'asc', limit: 10 })).map((e) => e.error),
        ['not_found'],
      );
      // A NUL in a target (a client's %00) is kept as U+FFFD on PostgreSQL, which cannot store it.
      const target = (await audit.query({ tenant: null, action: 'file.write', order: 'asc', limit: 1 }))[0]!.target!;
      assert.ok(target === 'sbx1:/tmp/a\0b' || target === 'sbx1:/tmp/a\uFFFDb', JSON.stringify(target));
      if (backend.name === 'postgres') assert.equal(target, 'sbx1:/tmp/a\uFFFDb');
      await assert.rejects(
        store.db.updateTable('audit_log').set({ status: 200 }).where('status', '=', 404).execute(),
        /audit_log is append-only/,
      );
      await assert.rejects(store.db.deleteFrom('audit_log').execute(), /only deleted by retention pruning/);
      if (backend.name === 'postgres') await assert.rejects(sql`TRUNCATE audit_log`.execute(store.db), /audit_log is append-only/);
      assert.equal(await audit.prune(at(-1)), 1);
      assert.equal((await audit.query({ tenant: null, order: 'asc', limit: 10 })).length, 3);
      // Pruning recorded its cut-off: newer rows stay protected.
      await assert.rejects(store.db.deleteFrom('audit_log').execute(), /only deleted by retention pruning/);
    });

    test('environments: insert, patch, list by state', async () => {
      const envs = new SqliteEnvironmentStore(store.db);
      await envs.insert(environment('env1'));
      await envs.insert({ ...environment('env2'), createdAt: at(1) });
      await envs.update('env1', { state: 'running', url: 'http://x', warnings: ['w'], keep: true, activeAt: at(7_000) });
      const got = await envs.get('env1');
      assert.equal(got?.state, 'running');
      assert.equal(got?.keep, true);
      assert.equal(got?.activeAt.getTime(), NOW + 7_000);
      assert.deepEqual(got?.ttl, { idleMs: 3_600_000, deleteMs: null });
      assert.equal((await envs.bySlug('s-env2'))?.id, 'env2');
      assert.deepEqual(got?.warnings, ['w']);
      assert.deepEqual(got?.source, { kind: 'git', url: 'file:///repo', ref: 'main' });
      assert.equal(got?.prNumber, 42);
      assert.deepEqual(
        (await envs.list('default', ['creating'])).map((e) => e.id),
        ['env2'],
      );
      await envs.update('env2', { state: 'deleted' });
      assert.deepEqual(
        (await envs.list(null)).map((e) => e.id),
        ['env1'],
      );
    });

    test('environment seeds: put replaces the key, list filters, remove', async () => {
      const seeds = new SqliteSeedStore(store.db);
      const key = { tenant: 'default', project: 'shop', baseRef: 'main', volume: 'db-data' };
      await seeds.put({ ...key, inputsHash: 'h1', snapshotVolume: 'seed-a', environment: 'env1', createdAt: at(0) });
      await seeds.put({ ...key, volume: 'cache', inputsHash: 'h9', snapshotVolume: 'seed-c', environment: null, createdAt: at(1) });
      await seeds.put({ ...key, inputsHash: 'h2', snapshotVolume: 'seed-b', environment: 'env2', createdAt: at(2) });
      const got = await seeds.get(key);
      assert.deepEqual(got, { ...key, inputsHash: 'h2', snapshotVolume: 'seed-b', environment: 'env2', createdAt: new Date(NOW + 2) });
      assert.deepEqual(
        (await seeds.list('default', { project: 'shop', baseRef: 'main' })).map((s) => s.volume),
        ['cache', 'db-data'],
      );
      assert.deepEqual(await seeds.list('other'), []);
      await seeds.remove(key);
      assert.equal(await seeds.get(key), null);
      assert.equal((await seeds.list(null)).length, 1);
    });

    test('usage: hourly buckets add up, meters keep large counters exactly', async () => {
      const usage = new SqliteUsageStore(store.db);
      const meter = {
        sandboxId: 'sbxa',
        tenant: 'default',
        cpu: 0.25,
        memoryMiB: 256,
        at: NOW,
        cpuNs: 123_456_789_012_345,
        netRx: 2 ** 40,
        netTx: 1.5,
      };
      const amounts = {
        cpuSeconds: 1.5,
        cpuReservedSeconds: 2,
        memoryGiBSeconds: 0.125,
        memoryUsedGiBSeconds: 0.0625,
        storageGiBSeconds: 3,
        sandboxSeconds: 4,
        netRxBytes: 100,
        netTxBytes: 200,
      };
      const hour = NOW - (NOW % 3_600_000);
      await usage.commit({ meters: [meter], closed: [], buckets: [{ tenant: 'default', hour, amounts }], storageAt: NOW });
      await usage.commit({
        meters: [{ ...meter, at: NOW + 1 }],
        closed: [],
        buckets: [{ tenant: 'default', hour, amounts }],
        storageAt: null,
      });
      assert.deepEqual(await usage.loadMeters(), [{ ...meter, at: NOW + 1 }]);
      assert.equal(await usage.storageAt(), NOW);
      const totals = await usage.totals({ start: hour, end: hour + 3_600_000, tenant: null });
      assert.equal(totals.length, 1);
      assert.equal(totals[0]!.cpuSeconds, 3);
      assert.equal(totals[0]!.netTxBytes, 400);
      await usage.commit({ meters: [], closed: ['sbxa'], buckets: [], storageAt: null });
      assert.deepEqual(await usage.loadMeters(), []);
      const storage = await usage.storageMiB();
      assert.equal(storage.get('default')! > 5 * 1024, true, 'the 5 GiB snapshot counts');
      assert.ok((await usage.sandboxCounts()).some((c) => c.tenant === 'default' && c.count >= 1));
      await usage.ping();
    });

    test('sandbox logs: append (NUL-safe), read pages, trim oldest first, drops, orphans', async () => {
      const logs = new SqliteSandboxLogStore(store.db);
      const entries = Array.from({ length: 6 }, (_, i) => ({
        seq: i + 1,
        sandboxId: 'sbxa',
        time: at(i),
        pid: 7,
        stream: 'stdout' as const,
        text: i === 2 ? 'bin\0ary\n' : `line ${i}\n`,
        bytes: 10,
      }));
      await logs.append([...entries, { ...entries[0]!, seq: 7, sandboxId: 'gone' }]);
      const loaded = await logs.load();
      assert.equal(loaded.maxSeq, 7);
      assert.equal(loaded.sizes.get('sbxa'), 60);
      assert.deepEqual(
        (await logs.read('sbxa', { limit: 2 })).map((e) => e.seq),
        [5, 6],
      );
      assert.deepEqual(
        (await logs.read('sbxa', { after: 2, limit: 2 })).map((e) => e.seq),
        [3, 4],
      );
      assert.deepEqual(await logs.trim('sbxa', 25), { bytes: 30, entries: 3 });
      await logs.addDrops('sbxa', { bytes: 5, entries: 1 });
      assert.deepEqual(await logs.drops('sbxa'), { bytes: 35, entries: 4 });
      assert.equal(await logs.removeOrphans(), 1);
      // One writer on SQLite (it counts on from load()); blocks of numbers on PostgreSQL.
      assert.equal((await logs.reserveSeqBlock()) === null, backend.name === 'sqlite');
      assert.equal((await logs.load()).maxSeq, 6);
    });

    test('webhook deliveries: ids from the store, a replay recorded as a duplicate of the first', async () => {
      const deliveries = new SqlDeliveryStore(store.db);
      const base = {
        provider: 'github' as const,
        deliveryId: 'd-1',
        event: 'pull_request',
        action: 'opened',
        repository: 'acme/app',
        number: 7,
        sha: 'abc',
        signatureOk: true,
        outcome: 'queued' as const,
        reason: null,
        targetKey: null,
        environmentId: null,
        tenant: 'default',
        feedback: null,
        time: at(0),
      };
      const first = await deliveries.record(base);
      const replay = await deliveries.record({ ...base, time: at(1) });
      assert.equal(typeof first.id, 'number');
      assert.ok(replay.id > first.id);
      assert.equal(replay.duplicateOf, first.id);
      await deliveries.update(first.id, { outcome: 'deployed', environmentId: 'env1' });
      const got = await deliveries.get(first.id);
      assert.equal(got?.outcome, 'deployed');
      assert.equal(got?.signatureOk, true);
      assert.equal(got?.time.getTime(), NOW);
    });

    test('transactions commit together or not at all', async () => {
      await assert.rejects(
        store.db.transaction().execute(async (trx) => {
          await trx.insertInto('meta').values({ key: 'tx-probe', value: '1' }).execute();
          throw new Error('rolled back');
        }),
        /rolled back/,
      );
      assert.equal(await new SqliteMetaStore(store.db).get('tx-probe'), null);
      await store.db.transaction().execute(async (trx) => {
        await trx.insertInto('meta').values({ key: 'tx-probe', value: '2' }).execute();
      });
      assert.equal(await new SqliteMetaStore(store.db).get('tx-probe'), '2');
    });
  });
}

test('PostgreSQL: two writers of sandbox logs (replicas) number from disjoint blocks, and none of their entries is lost', async () => {
  const url = await cluster.createDatabase('two_log_writers');
  const stores = [await openStore(parseStoreUrl(url)), await openStore(parseStoreUrl(url))];
  const errors: string[] = [];
  const log = {
    info: () => undefined,
    warn: () => undefined,
    debug: () => undefined,
    error: (o: object | string) => errors.push(JSON.stringify(o)),
  };
  try {
    const repos = stores.map((s) => new SqliteSandboxLogStore(s.db));
    const probe = await Promise.all(repos.map((r) => r.reserveSeqBlock()));
    assert.ok(probe[0] && probe[1] && Math.abs(probe[0].first - probe[1].first) >= probe[0].size, JSON.stringify(probe));
    const writers = repos.map((r) => new SandboxLogs(r, log, { flushMs: 10 }));
    for (const w of writers) await w.load();
    for (let i = 0; i < 40; i++) {
      writers.forEach((w, n) => {
        w.emit('shared-sbx', 10 + n, 'stdout', `replica ${n} line ${i}\n`);
        w.emit(`own-${n}`, 10 + n, 'stderr', `only ${n} line ${i}\n`);
      });
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 15)); // several batches
    }
    for (const w of writers) await w.close();
    assert.deepEqual(errors, []);
    const shared = await repos[0]!.read('shared-sbx', { limit: 1000 });
    assert.equal(shared.length, 80);
    assert.equal(new Set(shared.map((e) => e.seq)).size, 80, 'every entry has a seq of its own');
    for (const n of [0, 1]) assert.equal((await repos[1]!.read(`own-${n}`, { limit: 1000 })).length, 40);
    // Each replica's entries of one sandbox are in the order it wrote them.
    const mine = shared.filter((e) => e.text.startsWith('replica 1 ')).map((e) => Number(/line (\d+)/.exec(e.text)![1]));
    assert.deepEqual(
      mine,
      [...mine].sort((a, b) => a - b),
    );
  } finally {
    for (const s of stores) await s.close();
  }
});

test('PostgreSQL: reopening migrates nothing twice, and the schema uses 64-bit integers and doubles', async () => {
  const url = await cluster.createDatabase('reopen');
  const first = await openStore(parseStoreUrl(url));
  await first.close();
  const second = await openStore(parseStoreUrl(url));
  await second.close();
  const types = await cluster.query<{ column_name: string; data_type: string }>(
    `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'sandboxes' AND column_name IN ('created_at', 'cpu', 'memory_mib')`,
    [],
    'reopen',
  );
  assert.deepEqual(Object.fromEntries(types.map((t) => [t.column_name, t.data_type])), {
    created_at: 'bigint',
    cpu: 'double precision',
    memory_mib: 'bigint',
  });
  const migrations = await cluster.query<{ n: string }>('SELECT count(*) AS n FROM kysely_migration', [], 'reopen');
  const expected = Object.keys((await import('../packages/server/src/store/migrations.js')).migrations).length;
  assert.equal(Number(migrations[0]!.n), expected);
});
