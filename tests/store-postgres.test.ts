import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';
import { startPostgres, type PgCluster } from './pg-fixture.js';

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

let cluster: PgCluster;
let server: TestServer;
let storeUrl: string;

before(async () => {
  cluster = await startPostgres();
  storeUrl = await cluster.createDatabase('hutch_server');
  // Pools of its own (another test server may hold the defaults).
  server = await startServer({ store: storeUrl, networkPool4: '10.232.0.0/16', networkPool6: 'fd68:7574:63e8::/48', logLevel: 'info' });
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
