import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';
import { startPostgres, type PgCluster } from './pg-fixture.js';
import { openStore } from '../packages/server/src/store/database.js';
import { parseStoreUrl } from '../packages/server/src/store/store-url.js';
import { SqliteSandboxStore } from '../packages/server/src/store/sandbox-repo.js';
import { sandboxRecord } from './store-records.js';
import { newSandboxId } from '../packages/server/src/core/ids.js';

/**
 * A real server (local provider, real runc sandboxes) on `--store postgres://…`: sandboxes,
 * tenants, keys and the audit log live in PostgreSQL, survive a kill -9 of the server, and the
 * store's password shows nowhere in its output.
 */
interface Sb {
  id: string;
  state: string;
  tenant: string;
}
interface Key {
  id: string;
  key: string;
  tenant: string;
}
interface Exec {
  exitCode: number;
  stdout: string;
}
const SMALL = { template: 'minimal', isolation: 'container', cpu: 0.25, memoryMiB: 48, pids: 64, diskMiB: 128, timeoutSeconds: 600 };

/** Creates older than this are ended by the leader (the server default is 30 min). */
const ABANDONED_MS = 3000;

let cluster: PgCluster;
let server: TestServer;
let storeUrl: string;

before(async () => {
  cluster = await startPostgres();
  storeUrl = await cluster.createDatabase('hutch_server');
  // Pools of its own (another test server may hold the defaults).
  server = await startServer({
    store: storeUrl,
    networkPool4: '10.232.0.0/16',
    networkPool6: 'fd68:7574:63e8::/48',
    logLevel: 'info',
    abandonedCreateMs: ABANDONED_MS,
  });
});
after(async () => {
  try {
    await server?.stop();
  } finally {
    cluster?.stop();
  }
});

const as = <T>(k: Key, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  server.api<T>(method, path, body, { authorization: `Bearer ${k.key}`, ...headers });

test('a server on PostgreSQL: sandboxes, tenants and keys survive a kill -9; the password shows nowhere', async () => {
  const info = await server.api<{ store: string }>('GET', '/v1/info');
  assert.equal(info.status, 200);
  assert.equal(info.body.store, 'postgres');
  assert.ok(!existsSync(join(server.dataDir, 'hutch.db')), 'no SQLite file next to a PostgreSQL store');
  assert.match(server.output(), /store: +postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/hutch_server/);

  assert.equal((await server.api('POST', '/v1/admin/tenants', { name: 'pgt' })).status, 201);
  const created = await server.api<Key>('POST', '/v1/keys', { tenant: 'pgt', role: 'member', name: 'pg-member' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const member = created.body;
  const sb = await as<Sb>(member, 'POST', '/v1/sandboxes', SMALL);
  assert.equal(sb.status, 201, JSON.stringify(sb.body));
  assert.equal(sb.body.tenant, 'pgt');
  const put = await as(member, 'PUT', `/v1/sandboxes/${sb.body.id}/files?path=/tmp/marker`, 'kept in pg\n', {
    'content-type': 'application/octet-stream',
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const first = await as<Exec>(member, 'POST', `/v1/sandboxes/${sb.body.id}/exec`, { cmd: 'echo hi; cat /tmp/marker' });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.stdout, 'hi\nkept in pg\n');

  // The rows are in PostgreSQL, not in a file of the data dir.
  const rows = await cluster.query<{ id: string; state: string; created_at: string }>(
    'SELECT id, state, created_at FROM sandboxes WHERE id = $1',
    [sb.body.id],
    'hutch_server',
  );
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.state, 'running');

  await server.restart(); // kill -9, then start on the same data dir and store
  const got = await as<Sb>(member, 'GET', `/v1/sandboxes/${sb.body.id}`);
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.equal(got.body.state, 'running');
  const again = await as<Exec>(member, 'POST', `/v1/sandboxes/${sb.body.id}/exec`, { cmd: 'cat /tmp/marker' });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(again.body.stdout, 'kept in pg\n');
  const tenants = await server.api<{ tenants: Array<{ name: string }> }>('GET', '/v1/admin/tenants');
  assert.ok(tenants.body.tenants.some((t) => t.name === 'pgt'));
  // Another tenant's key does not see it (tenancy is enforced the same way on this store).
  assert.equal((await server.api('POST', '/v1/admin/tenants', { name: 'pgother' })).status, 201);
  const other = (await server.api<Key>('POST', '/v1/keys', { tenant: 'pgother', role: 'member', name: 'other' })).body;
  assert.equal((await as(other, 'GET', `/v1/sandboxes/${sb.body.id}`)).status, 404);

  const deleted = await as(member, 'DELETE', `/v1/sandboxes/${sb.body.id}`);
  assert.equal(deleted.status, 204);
  // The audit log is written to PostgreSQL too (batched: wait for the flush, bounded).
  let audited = 0;
  for (let i = 0; i < 50 && audited === 0; i++) {
    const n = await cluster.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_log WHERE action = 'sandbox.delete' AND target = $1`,
      [sb.body.id],
      'hutch_server',
    );
    audited = Number(n[0]!.n);
    if (audited === 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(audited, 1);
  assert.ok(!server.output().includes(cluster.password), 'the store password is never printed');
});

test('the leader ends creates a stopped replica abandoned (still `creating` after the bound); newer ones are left alone', async () => {
  // Written as a replica does before it starts the runtime's part, by "another replica" (this test).
  const store = await openStore(parseStoreUrl(storeUrl));
  try {
    const repo = new SqliteSandboxStore(store.db);
    const abandoned = sandboxRecord(newSandboxId(), {
      state: 'creating',
      createdAt: new Date(Date.now() - 60_000),
    });
    const fresh = sandboxRecord(newSandboxId(), {
      state: 'creating',
      createdAt: new Date(Date.now() + 3_600_000),
    });
    await repo.insert(abandoned);
    await repo.insert(fresh);
    let state = '';
    for (let i = 0; i < 100 && state !== 'error'; i++) {
      state = (await repo.get(abandoned.id))?.state ?? '';
      if (state !== 'error') await new Promise((r) => setTimeout(r, 100));
    }
    const ended = await server.api<{ state: string; error: string | null }>('GET', `/v1/sandboxes/${abandoned.id}`);
    assert.equal(ended.body.state, 'error', JSON.stringify(ended.body));
    assert.match(ended.body.error ?? '', /create abandoned: the server replica creating it stopped/);
    assert.equal((await repo.get(fresh.id))?.state, 'creating', 'a create younger than the bound is left alone');
    await store.db.deleteFrom('sandboxes').where('id', '=', fresh.id).execute();
  } finally {
    await store.close();
  }
});
