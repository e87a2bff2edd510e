import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Sandbox as E2bSandbox } from 'e2b';
import { Kysely, Migrator, SqliteDialect, type Migration } from 'kysely';
import { migrations } from '../packages/server/src/store/migrations.js';
import { startServer, type TestServer } from './harness.js';
import { tenantClient } from './tenant-client.js';
import { sleep, slowHttpServer, waitFor, type ApiError } from './hostile-lib.js';

/**
 * Issue 7, slice 1 — tenants, keys with roles, and tenant isolation of every object (H21 in
 * /work/shared/reference/hostile-workloads.md): another tenant's ids answer 404 on every route
 * that names a sandbox (enumerated from the OpenAPI document), on snapshots, volumes, pools and
 * keys, on the ingress and on both E2B planes; lists are filtered; read-only keys cannot write;
 * members cannot reach admin routes; quotas are per tenant; revoking a key ends its open streams;
 * keys are stored hashed. Real server, real runc sandboxes, real SQLite.
 */
let server: TestServer;

interface Key {
  id: string;
  key: string;
  name: string;
  tenant: string;
  role: string;
  lastUsedAt: string | null;
}
interface Sb {
  id: string;
  tenant: string;
  state: string;
  warm?: boolean;
}

/** Member keys of tenants ta and tb, a read-only key of ta. */
let A: Key;
let B: Key;
let R: Key;
/** A sandbox of ta (with a marker file) and one of tb. */
let SA: Sb;
let SB: Sb;
const MARKER = 'tenant-a-only\n';
const SMALL = { template: 'minimal', isolation: 'container', cpu: 0.25, memoryMiB: 48, pids: 64, diskMiB: 128, timeoutSeconds: 600 };

const client = tenantClient(() => server, SMALL);
const { bearer, as, exec, openWs } = client;
const newKey = (body: Record<string, unknown>, by?: Key): Promise<Key> => client.newKey<Key>(body, by);
const make = (k: Key, body?: Record<string, unknown>): Promise<Sb> => client.make<Sb>(k, body);

/** X-API-KEY calls to the E2B control plane. */
async function e2b(k: Key, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'x-api-key': k.key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

before(async () => {
  server = await startServer();
  for (const name of ['ta', 'tb']) assert.equal((await server.api('POST', '/v1/admin/tenants', { name })).status, 201);
  A = await newKey({ tenant: 'ta', role: 'member', name: 'a-member' });
  B = await newKey({ tenant: 'tb', role: 'member', name: 'b-member' });
  R = await newKey({ tenant: 'ta', role: 'read-only', name: 'a-reader' });
  SA = await make(A);
  SB = await make(B);
  const put = await as(A, 'PUT', `/v1/sandboxes/${SA.id}/files?path=/tmp/marker`, MARKER, { 'content-type': 'application/octet-stream' });
  assert.equal(put.status, 200, JSON.stringify(put.body));
});
after(async () => {
  await server?.stop();
});

describe('tenants and keys', () => {
  test('admins create, list, get and set quotas of tenants; what existed belongs to default; the first key is an admin', async () => {
    const list = await server.api<{ tenants: Array<{ name: string; usage: { sandboxes: number } }> }>('GET', '/v1/admin/tenants');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.tenants.map((t) => t.name).sort(), ['default', 'ta', 'tb']);
    assert.equal(list.body.tenants.find((t) => t.name === 'ta')?.usage.sandboxes, 1);
    const dup = await server.api<ApiError>('POST', '/v1/admin/tenants', { name: 'ta' });
    assert.equal(dup.status, 409);
    const bad = await server.api<ApiError>('POST', '/v1/admin/tenants', { name: 'Not_A_Name' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /name/);
    assert.equal((await server.api('GET', '/v1/admin/tenants/nope')).status, 404);
    const quotas = await server.api<{ quotas: unknown }>('PUT', '/v1/admin/tenants/ta/quotas', { maxSandboxes: 50 });
    assert.equal(quotas.status, 200);
    assert.deepEqual(quotas.body.quotas, { maxSandboxes: 50 });
    assert.deepEqual((await server.api<{ quotas: unknown }>('PUT', '/v1/admin/tenants/ta/quotas', null)).body.quotas, null);
    const deleteDefault = await server.api<ApiError>('DELETE', '/v1/admin/tenants/default');
    assert.equal(deleteDefault.status, 409);

    const keys = await server.api<{ keys: Key[] }>('GET', '/v1/keys');
    const admin = keys.body.keys.find((k) => k.name === 'admin');
    assert.equal(admin?.role, 'admin');
    assert.equal(admin?.tenant, 'default');
    const mine = await server.api<Sb>('POST', '/v1/sandboxes', SMALL);
    assert.equal(mine.status, 201);
    assert.equal(mine.body.tenant, 'default', "an admin's sandbox belongs to its key's tenant");
    assert.equal(SA.tenant, 'ta');
    assert.equal((await server.api('DELETE', `/v1/sandboxes/${mine.body.id}`)).status, 204);
  });

  test('members and read-only keys get 403 on the admin routes', async () => {
    for (const k of [A, R]) {
      const routes: Array<[string, string, unknown]> = [
        ['GET', '/v1/admin/tenants', undefined],
        ['POST', '/v1/admin/tenants', { name: 'sneaky' }],
        ['GET', '/v1/admin/tenants/ta', undefined],
        ['PUT', '/v1/admin/tenants/ta/quotas', null],
        ['DELETE', '/v1/admin/tenants/tb', undefined],
        ['POST', '/v1/gc?dryRun=true', undefined],
      ];
      for (const [method, path, body] of routes) {
        const res = await as(k, method, path, body);
        assert.equal(res.status, 403, `${k.role} ${method} ${path}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error.code, 'permission_denied');
      }
    }
    assert.equal((await server.api('GET', '/v1/admin/tenants/sneaky')).status, 404);
  });

  test('keys: created for a tenant and role up to the creator’s own, listed within the tenant, revoked with limits on who may', async () => {
    const overRole = await as(A, 'POST', '/v1/keys', { role: 'admin' });
    assert.equal(overRole.status, 403, JSON.stringify(overRole.body));
    const otherTenant = await as(A, 'POST', '/v1/keys', { tenant: 'tb' });
    assert.equal(otherTenant.status, 404, 'a member names only its own tenant');
    assert.equal((await as(R, 'POST', '/v1/keys', { role: 'read-only' })).status, 403, 'read-only keys create nothing');
    const unknownTenant = await server.api<ApiError>('POST', '/v1/keys', { tenant: 'nope' });
    assert.equal(unknownTenant.status, 404);
    const reader = await newKey({ role: 'read-only' }, A);
    assert.equal(reader.tenant, 'ta');
    assert.equal(reader.role, 'read-only');

    const listA = await as<{ keys: Key[] }>(A, 'GET', '/v1/keys');
    assert.ok(listA.body.keys.length >= 3);
    assert.ok(
      listA.body.keys.every((k) => k.tenant === 'ta'),
      JSON.stringify(listA.body.keys),
    );
    assert.ok(
      listA.body.keys.every((k) => !('key' in k)),
      'secrets are never listed',
    );
    assert.equal((await as(A, 'GET', '/v1/keys?tenant=tb')).status, 404);
    const adminList = await server.api<{ keys: Key[] }>('GET', '/v1/keys?tenant=tb');
    assert.deepEqual(
      adminList.body.keys.map((k) => k.id),
      [B.id],
    );
    for (const [method, path, body] of [
      ['GET', `/v1/keys/${A.id}`, undefined],
      ['DELETE', `/v1/keys/${A.id}`, undefined],
      ['PUT', `/v1/keys/${A.id}/limits`, null],
    ] as const) {
      const res = await as(B, method, path, body);
      assert.equal(res.status, 404, `B ${method} ${path}: ${JSON.stringify(res.body)}`);
    }

    // A member of the default tenant sees the admin key but cannot revoke it; nobody revokes the last admin key.
    const member = await newKey({ name: 'default-member' });
    assert.equal(member.tenant, 'default');
    assert.equal(member.role, 'member');
    const admin = (await server.api<{ keys: Key[] }>('GET', '/v1/keys?tenant=default')).body.keys.find((k) => k.role === 'admin')!;
    assert.equal((await as(member, 'DELETE', `/v1/keys/${admin.id}`)).status, 403);
    const last = await server.api<ApiError>('DELETE', `/v1/keys/${admin.id}`);
    assert.equal(last.status, 409);
    assert.match(last.body.error.message, /last admin key/);

    const revoked = await as<{ revoked: boolean }>(A, 'DELETE', `/v1/keys/${reader.id}`);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal((await as(reader, 'GET', '/v1/sandboxes')).status, 401);
    assert.equal((await as(A, 'GET', `/v1/keys/${reader.id}`)).status, 404, 'a revoked key is gone from the API');
    assert.equal((await server.api('DELETE', `/v1/keys/${member.id}`)).status, 200);
  });

  test('keys are stored hashed (the store files never hold one) and their last use is recorded, at most once a minute', async () => {
    const fresh = await newKey({ tenant: 'tb', name: 'last-used' });
    const before = (await server.api<Key>('GET', `/v1/keys/${fresh.id}`)).body;
    assert.equal(before.lastUsedAt, null);
    const t0 = Date.now();
    assert.equal((await as(fresh, 'GET', '/v1/sandboxes')).status, 200);
    const used = (await server.api<Key>('GET', `/v1/keys/${fresh.id}`)).body;
    assert.ok(used.lastUsedAt !== null, 'last use recorded');
    assert.ok(Math.abs(Date.parse(used.lastUsedAt) - t0) < 5000, used.lastUsedAt);
    await sleep(20);
    assert.equal((await as(fresh, 'GET', '/v1/sandboxes')).status, 200);
    assert.equal(
      (await server.api<Key>('GET', `/v1/keys/${fresh.id}`)).body.lastUsedAt,
      used.lastUsedAt,
      'not rewritten within the minute',
    );

    const files = ['hutch.db', 'hutch.db-wal'].map((f) => join(server.dataDir, f)).filter((f) => existsSync(f));
    const stored = Buffer.concat(files.map((f) => readFileSync(f)));
    for (const k of [server.key, A.key, B.key, R.key, fresh.key]) {
      assert.equal(stored.includes(Buffer.from(k)), false, 'a key in plain text in the store');
    }
    const digest = createHash('sha256').update(fresh.key).digest('hex');
    assert.ok(stored.includes(Buffer.from(digest)), 'the key is stored as its SHA-256 digest');
    assert.equal((await server.api('DELETE', `/v1/keys/${fresh.id}`)).status, 200);
  });
});

describe('H21: another tenant’s objects do not exist for a key', () => {
  test('every route that names a sandbox (from the OpenAPI document) answers 404 to another tenant’s key; the sandbox is untouched', async () => {
    const doc = (await server.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json')).body;
    const routes: Array<[string, string]> = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/sandboxes/{id}')) continue;
      for (const method of Object.keys(ops))
        if (['get', 'post', 'put', 'delete'].includes(method)) routes.push([method.toUpperCase(), path]);
    }
    assert.ok(routes.length >= 25, `routes found: ${routes.length}`);
    const wrong: string[] = [];
    for (const [method, template] of routes) {
      const path = template.replace('{id}', SA.id).replace('{pid}', '99999');
      const body = method === 'POST' || method === 'PUT' ? {} : undefined;
      const res = await as(B, method, `${path}${path.includes('/files') ? '?path=/tmp/marker' : ''}`, body);
      if (res.status !== 404 || res.body.error?.code !== 'not_found' || /^no route/.test(res.body.error.message))
        wrong.push(`${method} ${template} → ${res.status} ${JSON.stringify(res.body).slice(0, 160)}`);
    }
    assert.deepEqual(wrong, [], 'routes that do not answer 404 to another tenant');
    // The same over a real WebSocket upgrade (the PTY).
    assert.equal((await openWs(`/v1/sandboxes/${SA.id}/pty`, B)).status, 404);

    const still = await as<Sb>(A, 'GET', `/v1/sandboxes/${SA.id}`);
    assert.equal(still.body.state, 'running');
    const marker = await fetch(`${server.url}/v1/sandboxes/${SA.id}/files?path=/tmp/marker`, { headers: bearer(A) });
    assert.equal(await marker.text(), MARKER, 'its files are untouched');
  });

  test('lists are filtered: a key sees its tenant’s sandboxes; admins see all, and ?tenant= narrows', async () => {
    const ids = async (k: Key | null, query = ''): Promise<{ status: number; ids: string[] }> => {
      const res = k
        ? await as<{ sandboxes: Sb[] }>(k, 'GET', `/v1/sandboxes${query}`)
        : await server.api<{ sandboxes: Sb[] }>('GET', `/v1/sandboxes${query}`);
      return { status: res.status, ids: (res.body.sandboxes ?? []).map((s) => s.id) };
    };
    assert.deepEqual((await ids(B)).ids, [SB.id]);
    assert.deepEqual((await ids(A)).ids, [SA.id]);
    assert.deepEqual((await ids(R)).ids, [SA.id]);
    const all = await ids(null);
    assert.ok(all.ids.includes(SA.id) && all.ids.includes(SB.id));
    assert.deepEqual((await ids(null, '?tenant=ta')).ids, [SA.id]);
    assert.equal((await ids(B, '?tenant=ta')).status, 404);
    assert.deepEqual((await ids(B, '?tenant=tb')).ids, [SB.id]);
  });

  test('snapshots and forks: another tenant’s snapshot is 404, absent from lists, and unknown as a template', async () => {
    const snap = await as<{ id: string; tenant: string }>(A, 'POST', `/v1/sandboxes/${SA.id}/snapshots`, {});
    assert.equal(snap.status, 201, JSON.stringify(snap.body));
    assert.equal(snap.body.tenant, 'ta');
    try {
      assert.equal((await as(B, 'GET', `/v1/snapshots/${snap.body.id}`)).status, 404);
      assert.equal((await as(B, 'DELETE', `/v1/snapshots/${snap.body.id}`)).status, 404);
      const listed = await as<{ snapshots: Array<{ id: string }> }>(B, 'GET', '/v1/snapshots');
      assert.ok(!listed.body.snapshots.some((s) => s.id === snap.body.id));
      const from = await as(B, 'POST', '/v1/sandboxes', { ...SMALL, template: snap.body.id });
      assert.equal(from.status, 400);
      assert.match(from.body.error.message, /unknown template or snapshot/);
      assert.ok(
        (await as<{ snapshots: Array<{ id: string }> }>(A, 'GET', '/v1/snapshots')).body.snapshots.some((s) => s.id === snap.body.id),
      );
      // Its own tenant can use it.
      const copy = await make(A, { template: snap.body.id });
      assert.equal((await exec(A, copy.id, 'cat /tmp/marker')).stdout, MARKER);
      assert.equal((await as(A, 'DELETE', `/v1/sandboxes/${copy.id}`)).status, 204);
      // An admin forking a tenant's sandbox makes copies in that tenant.
      const fork = await server.api<{ sandboxes: Sb[]; snapshot: { id: string; tenant: string } }>(
        'POST',
        `/v1/sandboxes/${SA.id}/fork`,
        {},
      );
      assert.equal(fork.status, 201, JSON.stringify(fork.body));
      assert.equal(fork.body.sandboxes[0]?.tenant, 'ta');
      assert.equal(fork.body.snapshot.tenant, 'ta');
      assert.equal((await as(A, 'DELETE', `/v1/sandboxes/${fork.body.sandboxes[0]!.id}`)).status, 204);
      assert.equal((await as(A, 'DELETE', `/v1/snapshots/${fork.body.snapshot.id}`)).status, 204);
    } finally {
      assert.equal((await as(A, 'DELETE', `/v1/snapshots/${snap.body.id}`)).status, 204);
    }
  });

  test('volumes: names are per tenant; another tenant’s volume is 404 and its contents are never mounted', async () => {
    const va = await as<{ tenant: string }>(A, 'POST', '/v1/volumes', { name: 'shared-name', sizeMiB: 64 });
    assert.equal(va.status, 201, JSON.stringify(va.body));
    assert.equal(va.body.tenant, 'ta');
    const only = await as(A, 'POST', '/v1/volumes', { name: 'only-a', sizeMiB: 64 });
    assert.equal(only.status, 201);
    let mountA: Sb | null = null;
    let mountB: Sb | null = null;
    try {
      for (const [method, path] of [
        ['GET', '/v1/volumes/only-a'],
        ['DELETE', '/v1/volumes/only-a'],
      ] as const)
        assert.equal((await as(B, method, path)).status, 404, `${method} ${path}`);
      const vb = await as<{ tenant: string }>(B, 'POST', '/v1/volumes', { name: 'shared-name', sizeMiB: 64 });
      assert.equal(vb.status, 201, `the same name in another tenant: ${JSON.stringify(vb.body)}`);
      const listB = await as<{ volumes: Array<{ name: string; tenant: string }> }>(B, 'GET', '/v1/volumes');
      assert.deepEqual(
        listB.body.volumes.map((v) => [v.tenant, v.name]),
        [['tb', 'shared-name']],
      );
      const listAll = await server.api<{ volumes: Array<{ name: string; tenant: string }> }>('GET', '/v1/volumes');
      assert.equal(listAll.body.volumes.length, 3);
      const noMount = await as(B, 'POST', '/v1/sandboxes', { ...SMALL, volumes: [{ name: 'only-a', path: '/data' }] });
      assert.equal(noMount.status, 400);
      assert.match(noMount.body.error.message, /does not exist/);

      mountA = await make(A, { volumes: [{ name: 'shared-name', path: '/data' }] });
      await exec(A, mountA.id, 'echo secret > /data/secret-a');
      mountB = await make(B, { volumes: [{ name: 'shared-name', path: '/data' }] });
      assert.equal((await exec(B, mountB.id, 'ls -A /data')).stdout, '', "tb's volume of the same name is its own, empty");
      const usage = await as<{ volumes: Array<{ name: string }> }>(B, 'GET', `/v1/sandboxes/${mountB.id}/usage`);
      assert.equal(usage.status, 200);
      const admin = await server.api<{ usedBy: string[] }>('GET', '/v1/volumes/shared-name?tenant=ta');
      assert.deepEqual(admin.body.usedBy, [mountA.id], 'an admin names the tenant of a named object');
      assert.equal((await server.api('POST', '/v1/volumes?tenant=nope', { name: 'x' })).status, 404, 'not in a tenant that does not exist');
    } finally {
      if (mountA) await as(A, 'DELETE', `/v1/sandboxes/${mountA.id}`);
      if (mountB) await as(B, 'DELETE', `/v1/sandboxes/${mountB.id}`);
      assert.equal((await as(A, 'DELETE', '/v1/volumes/shared-name')).status, 204);
      assert.equal((await as(A, 'DELETE', '/v1/volumes/only-a')).status, 204);
      assert.equal((await as(B, 'DELETE', '/v1/volumes/shared-name')).status, 204);
    }
  });

  test('pools: another tenant’s pool is 404, absent from lists, and never serves its creates', async () => {
    const spec = {
      template: 'minimal',
      isolation: 'container',
      cpu: 0.25,
      memoryMiB: 48,
      pids: 64,
      diskMiB: 128,
      min: 1,
      target: 1,
      max: 1,
    };
    const put = await as<{ tenant: string }>(A, 'PUT', '/v1/pools/warm', spec);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.tenant, 'ta');
    try {
      assert.equal((await as(B, 'GET', '/v1/pools/warm')).status, 404);
      assert.equal((await as(B, 'DELETE', '/v1/pools/warm')).status, 404);
      assert.deepEqual((await as<{ pools: unknown[] }>(B, 'GET', '/v1/pools')).body.pools, []);
      assert.ok(
        await waitFor(async () => (await as<{ size: number }>(A, 'GET', '/v1/pools/warm')).body.size >= 1, 30_000, 100),
        'the pool filled',
      );
      const theirs = await make(B);
      assert.equal(theirs.warm, false, "another tenant's create never claims this pool's sandbox");
      const ours = await make(A);
      assert.equal(ours.warm, true, "the pool's own tenant claims it");
      const pool = await as<{ hits: number; misses: number }>(A, 'GET', '/v1/pools/warm');
      assert.deepEqual([pool.body.hits, pool.body.misses], [1, 0]);
      await as(B, 'DELETE', `/v1/sandboxes/${theirs.id}`);
      await as(A, 'DELETE', `/v1/sandboxes/${ours.id}`);
    } finally {
      assert.equal((await as(A, 'DELETE', '/v1/pools/warm')).status, 204);
    }
  });

  test('ingress: another tenant’s key is a 404, a read-only key a 403; an access token or signed URL opens only its own sandbox', async () => {
    const web = await make(A, { template: 'base', cpu: 0.5, memoryMiB: 256 });
    try {
      await exec(A, web.id, 'echo hello-from-a > /tmp/hello.txt');
      const start = await as(A, 'POST', `/v1/sandboxes/${web.id}/processes`, {
        cmd: ['python3', '-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', '/tmp'],
      });
      assert.equal(start.status, 201, JSON.stringify(start.body));
      const port = (path = '/hello.txt', headers: Record<string, string> = {}) =>
        fetch(`${server.url}/v1/sandboxes/${web.id}/ports/8080${path}`, { headers });
      assert.ok(await waitFor(async () => (await port('/hello.txt', bearer(A))).status === 200, 15_000, 100), 'the web server answers');
      const urlA = await as<{ url: string; headers: Record<string, string> }>(A, 'GET', `/v1/sandboxes/${web.id}/url?port=8080`);
      const urlB = await as<{ url: string; headers: Record<string, string> }>(B, 'GET', `/v1/sandboxes/${SB.id}/url?port=8080`);
      assert.equal(urlB.status, 200);
      const sigA = new URL(urlA.body.url).searchParams.get('hutch_token')!;
      const sigB = new URL(urlB.body.url).searchParams.get('hutch_token')!;
      const cases: Array<[string, string, Record<string, string>, number]> = [
        ['no credentials', '/hello.txt', {}, 401],
        ["another tenant's key", '/hello.txt', bearer(B), 404],
        ['a read-only key of the tenant', '/hello.txt', bearer(R), 403],
        ["another sandbox's access token", '/hello.txt', { 'x-hutch-access-token': urlB.body.headers['X-Hutch-Access-Token']! }, 401],
        ["another sandbox's signed URL", `/hello.txt?hutch_token=${sigB}`, {}, 401],
        ["the tenant's key", '/hello.txt', bearer(A), 200],
        ['an admin key', '/hello.txt', bearer(server.key), 200],
        ["the sandbox's access token", '/hello.txt', { 'x-hutch-access-token': urlA.body.headers['X-Hutch-Access-Token']! }, 200],
        ["the sandbox's signed URL", `/hello.txt?hutch_token=${sigA}`, {}, 200],
      ];
      for (const [what, path, headers, status] of cases) {
        const res = await port(path, headers);
        const text = await res.text();
        assert.equal(res.status, status, `${what}: ${res.status} ${text.slice(0, 200)}`);
        if (status === 200) assert.equal(text, 'hello-from-a\n');
      }

      // The E2B data plane: a sandbox's envd token opens that sandbox only.
      const tokenOf = async (k: Key, id: string): Promise<string> =>
        (await e2b(k, 'GET', `/sandboxes/${id}`)).body.envdAccessToken as string;
      const health = (id: string, token: string) =>
        fetch(`${server.url}/health`, { headers: { 'e2b-sandbox-id': id, 'x-access-token': token } }).then((r) => r.status);
      assert.equal(await health(web.id, await tokenOf(B, SB.id)), 401);
      assert.equal(await health(web.id, await tokenOf(A, web.id)), 204);
    } finally {
      await as(A, 'DELETE', `/v1/sandboxes/${web.id}`);
    }
  });

  test('the E2B control plane: another tenant’s sandboxes and snapshots are 404 and absent from lists; read-only keys only read', async () => {
    const snap = await as<{ id: string }>(A, 'POST', `/v1/sandboxes/${SA.id}/snapshots`, {});
    assert.equal(snap.status, 201);
    try {
      const routes: Array<[string, string, unknown]> = [
        ['GET', `/sandboxes/${SA.id}`, undefined],
        ['DELETE', `/sandboxes/${SA.id}`, undefined],
        ['POST', `/sandboxes/${SA.id}/timeout`, { timeout: 60 }],
        ['POST', `/sandboxes/${SA.id}/connect`, { timeout: 60 }],
        ['POST', `/v2/sandboxes/${SA.id}/connect`, { timeout: 60 }],
        ['POST', `/sandboxes/${SA.id}/resume`, {}],
        ['POST', `/sandboxes/${SA.id}/pause`, {}],
        ['POST', `/sandboxes/${SA.id}/snapshots`, {}],
        ['POST', `/sandboxes/${SA.id}/fork`, {}],
        ['GET', `/sandboxes/${SA.id}/metrics`, undefined],
        ['DELETE', `/templates/${snap.body.id}`, undefined],
      ];
      for (const [method, path, body] of routes) {
        const res = await e2b(B, method, path, body);
        assert.equal(res.status, 404, `B ${method} ${path}: ${JSON.stringify(res.body)}`);
      }
      for (const path of ['/sandboxes', '/v2/sandboxes']) {
        const listed = await e2b(B, 'GET', path);
        const ids = (listed.body as unknown as Array<{ sandboxID: string }>).map((s) => s.sandboxID);
        assert.deepEqual(ids, [SB.id], path);
      }
      const snaps = (await e2b(B, 'GET', '/snapshots')).body as unknown as Array<{ snapshotID: string }>;
      assert.ok(!snaps.some((s) => s.snapshotID === snap.body.id));

      const readOnly = await e2b(R, 'GET', `/sandboxes/${SA.id}`);
      assert.equal(readOnly.status, 200);
      assert.equal(readOnly.body.envdAccessToken, undefined, 'the envd token (full access) is not handed to a read-only key');
      assert.equal(typeof (await e2b(A, 'GET', `/sandboxes/${SA.id}`)).body.envdAccessToken, 'string');
      for (const [method, path] of [
        ['POST', `/sandboxes/${SA.id}/connect`],
        ['DELETE', `/sandboxes/${SA.id}`],
        ['POST', '/sandboxes'],
      ] as const) {
        assert.equal((await e2b(R, method, path, method === 'POST' ? {} : undefined)).status, 403, `read-only ${method} ${path}`);
      }
      assert.equal((await as<Sb>(A, 'GET', `/v1/sandboxes/${SA.id}`)).body.state, 'running');
    } finally {
      await as(A, 'DELETE', `/v1/snapshots/${snap.body.id}`);
    }
  });
});

describe('roles', () => {
  test('a read-only key reads its tenant (GET) but every write is a 403, as are a PTY and a port URL', async () => {
    const doc = (await server.api<{ paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json')).body;
    const wrong: string[] = [];
    let writes = 0;
    for (const [template, ops] of Object.entries(doc.paths)) {
      if (!template.startsWith('/v1/')) continue;
      for (const method of Object.keys(ops).map((m) => m.toUpperCase())) {
        if (!['GET', 'POST', 'PUT', 'DELETE'].includes(method)) continue;
        // Webhook receivers (`security: []`) take no API key: their signature is the credential (previews.test.ts).
        const security = (ops[method.toLowerCase()] as { security?: unknown[] }).security;
        if (Array.isArray(security) && security.length === 0) continue;
        const path = template
          .replace('{id}', template.startsWith('/v1/keys') ? R.id : SA.id)
          .replace('{pid}', '99999')
          .replace('{snapshotId}', 'snap-0000000000000000')
          .replace('{name}', 'nope');
        const query = path.includes('/files') ? '?path=/tmp/marker' : path.endsWith('/url') ? '?port=8080' : '';
        const writeLike = method !== 'GET' || /\/(pty|url)$/.test(template) || template.startsWith('/v1/admin');
        if (writeLike) writes++;
        const res = await as(R, method, `${path}${query}`, method === 'GET' || method === 'DELETE' ? undefined : {});
        if (writeLike ? res.status !== 403 : res.status === 403)
          wrong.push(`${method} ${template} → ${res.status} ${JSON.stringify(res.body).slice(0, 120)}`);
      }
    }
    assert.ok(writes >= 30, `write routes: ${writes}`);
    assert.deepEqual(wrong, []);
    assert.equal((await openWs(`/v1/sandboxes/${SA.id}/pty`, R)).status, 403);
    const read = await fetch(`${server.url}/v1/sandboxes/${SA.id}/files?path=/tmp/marker`, { headers: bearer(R) });
    assert.equal(await read.text(), MARKER);
    assert.equal((await as<Sb>(A, 'GET', `/v1/sandboxes/${SA.id}`)).body.state, 'running', 'the sandbox is untouched');
  });
});

describe('quotas are per tenant', () => {
  test('sandboxes, memory, storage (disks and volumes), a wake, pool sizes and creates per minute: 429 naming the tenant and quota', async () => {
    assert.equal(
      (await server.api('POST', '/v1/admin/tenants', { name: 'tq', quotas: { maxSandboxes: 2, memoryMiB: 100, diskMiB: 1000 } })).status,
      201,
    );
    const q1 = await newKey({ tenant: 'tq', name: 'q1' });
    const q2 = await newKey({ tenant: 'tq', name: 'q2' });
    const made: string[] = [];
    const create = async (k: Key, memoryMiB: number) => {
      const res = await as<Sb>(k, 'POST', '/v1/sandboxes', { ...SMALL, memoryMiB, diskMiB: 256 });
      if (res.status === 201) made.push(res.body.id);
      return res;
    };
    const refused = (res: { status: number; body: ApiError; headers: Headers }, pattern: RegExp): void => {
      assert.equal(res.status, 429, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'resource_exhausted');
      assert.match(res.body.error.message, /tenant "tq" quota reached/);
      assert.match(res.body.error.message, pattern);
      assert.ok(Number(res.headers.get('retry-after')) > 0, 'Retry-After');
    };
    try {
      const a = await create(q1, 64);
      assert.equal(a.status, 201, JSON.stringify(a.body));
      // Another key of the same tenant shares the quota.
      refused(await create(q2, 64), /memoryMiB 100/);
      assert.equal((await create(q2, 32)).status, 201);
      refused(await create(q1, 16), /maxSandboxes 2/);
      // Another tenant is not affected.
      const other = await make(B);
      made.push(other.id);

      // Storage: 2 × 256 MiB of disks; a 512 MiB volume would pass 1000.
      refused(await as(q1, 'POST', '/v1/volumes', { name: 'big', sizeMiB: 512 }), /diskMiB 1000/);
      const small = await as(q1, 'POST', '/v1/volumes', { name: 'small', sizeMiB: 256 });
      assert.equal(small.status, 201, JSON.stringify(small.body));

      // A pool may not be sized above the quota.
      const pool = await as(q1, 'PUT', '/v1/pools/big', { ...SMALL, timeoutSeconds: undefined, min: 0, target: 0, max: 5 });
      assert.equal(pool.status, 400, JSON.stringify(pool.body));
      assert.match(pool.body.error.message, /max: .*maxSandboxes 2/);

      // A stopped sandbox gives its memory back, and needs it again to start.
      assert.equal((await as(q1, 'POST', `/v1/sandboxes/${a.body.id}/stop`)).status, 200);
      assert.equal((await as(q2, 'DELETE', `/v1/sandboxes/${made[1]}`)).status, 204);
      const c = await create(q2, 64);
      assert.equal(c.status, 201, JSON.stringify(c.body));
      refused(await as(q1, 'POST', `/v1/sandboxes/${a.body.id}/start`), /memoryMiB 100/);

      const usage = await server.api<{ usage: { sandboxes: number; memoryMiB: number; diskMiB: number } }>('GET', '/v1/admin/tenants/tq');
      assert.deepEqual(usage.body.usage.sandboxes, 2);
      assert.equal(usage.body.usage.memoryMiB, 64);
      assert.equal(usage.body.usage.diskMiB, 256 + 256 + 256);

      // Creates per minute, counted per tenant (three so far this minute).
      assert.equal((await server.api('PUT', '/v1/admin/tenants/tq/quotas', { createsPerMinute: 4 })).status, 200);
      assert.equal((await create(q1, 16)).status, 201);
      refused(await create(q2, 16), /createsPerMinute 4/);
      // Lifted quotas apply to the next create.
      assert.equal((await server.api('PUT', '/v1/admin/tenants/tq/quotas', null)).status, 200);
      assert.equal((await create(q2, 16)).status, 201);
    } finally {
      for (const id of made) await server.api('DELETE', `/v1/sandboxes/${id}`);
      await server.api('DELETE', '/v1/volumes/small?tenant=tq');
      assert.equal((await server.api('DELETE', '/v1/admin/tenants/tq')).status, 200);
    }
  });
});

describe('revocation', () => {
  test('revoking a key ends its NDJSON stream, PTY WebSocket, proxied request and E2B process stream within seconds', async () => {
    const K = await newKey({ tenant: 'ta', name: 'to-revoke' });
    const web = await make(K, { template: 'base', cpu: 0.5, memoryMiB: 256 });
    const ended: Record<string, Promise<string>> = {};
    try {
      // NDJSON process stream.
      const ndjson = await fetch(`${server.url}/v1/sandboxes/${SA.id}/processes`, {
        method: 'POST',
        headers: { ...bearer(K), 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify({ cmd: 'sleep 300' }),
      });
      assert.equal(ndjson.status, 200);
      const reader = ndjson.body!.getReader();
      assert.match(new TextDecoder().decode((await reader.read()).value), /"type":"start"/);
      ended.ndjson = (async () => {
        try {
          while (!(await reader.read()).done);
          return 'ended';
        } catch {
          return 'ended';
        }
      })();

      // PTY WebSocket.
      const pty = await openWs(`/v1/sandboxes/${SA.id}/pty?cmd=${encodeURIComponent('sleep 300')}`, K);
      assert.equal(pty.status, 101);
      ended.pty = new Promise((resolve) => pty.ws!.once('close', () => resolve('ended')));

      // A request proxied through the ingress, held open by a server that answers after 300 s.
      const slow = slowHttpServer(8081, 300);
      assert.equal((await as(K, 'POST', `/v1/sandboxes/${web.id}/processes`, { cmd: ['python3', '-c', slow] })).status, 201);
      assert.ok(
        await waitFor(async () => (await exec(K, web.id, 'test -e /tmp/ready && echo y || true')).stdout === 'y\n', 15_000, 100),
        'the slow server listens',
      );
      const proxied = fetch(`${server.url}/v1/sandboxes/${web.id}/ports/8081/`, { headers: bearer(K) });
      ended.ingress = proxied.then(
        (r) =>
          r.text().then(
            () => 'ended',
            () => 'ended',
          ),
        () => 'ended',
      );
      assert.ok(
        await waitFor(async () => (await exec(K, web.id, 'test -e /tmp/accepted && echo y || true')).stdout === 'y\n', 15_000, 100),
        'the proxied request reached the sandbox',
      );

      // An E2B data-plane (Connect) process stream of a sandbox the key created.
      const e2bSb = await E2bSandbox.connect(web.id, { apiKey: K.key, apiUrl: server.url, sandboxUrl: server.url });
      const handle = await e2bSb.commands.run('sleep 300', { background: true });
      ended.e2b = handle.wait().then(
        () => 'ended',
        () => 'ended',
      );

      await sleep(200);
      const started = Date.now();
      const revoked = await server.api<{ closedConnections: number }>('DELETE', `/v1/keys/${K.id}`);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
      assert.ok(revoked.body.closedConnections >= 4, JSON.stringify(revoked.body));
      for (const [what, done] of Object.entries(ended)) {
        const result = await Promise.race([done, sleep(5000).then(() => 'still open')]);
        assert.equal(result, 'ended', `${what} after the revocation`);
      }
      assert.ok(Date.now() - started < 5000, `all ended within ${Date.now() - started} ms`);

      assert.equal((await as(K, 'GET', '/v1/sandboxes')).status, 401);
      assert.equal((await e2b(K, 'GET', '/sandboxes')).status, 401);
      assert.equal((await openWs(`/v1/sandboxes/${SA.id}/pty`, K)).status, 401);
      const proxiedAgain = await fetch(`${server.url}/v1/sandboxes/${web.id}/ports/8081/`, { headers: bearer(K) });
      assert.equal(proxiedAgain.status, 401, 'a revoked key opens no port');
    } finally {
      await server.api('DELETE', `/v1/sandboxes/${web.id}`);
    }
  });
});

describe('tenant deletion', () => {
  test('refused (409, naming what it owns) while a tenant owns objects; ?force=true deletes them and revokes its keys', async () => {
    const vol = await as(B, 'POST', '/v1/volumes', { name: 'keep', sizeMiB: 64 });
    assert.equal(vol.status, 201);
    const refused = await server.api<ApiError>('DELETE', '/v1/admin/tenants/tb');
    assert.equal(refused.status, 409);
    assert.match(refused.body.error.message, /1 sandbox, 1 volume/);
    assert.equal((await as(B, 'GET', `/v1/sandboxes/${SB.id}`)).status, 200, 'nothing was revoked or deleted');
    const forced = await server.api<{ deleted: Record<string, number> }>('DELETE', '/v1/admin/tenants/tb?force=true');
    assert.equal(forced.status, 200, JSON.stringify(forced.body));
    assert.deepEqual(forced.body.deleted, { keys: 1, pools: 0, sandboxes: 1, snapshots: 0, volumes: 1, secrets: 0 });
    assert.equal((await server.api('GET', `/v1/sandboxes/${SB.id}`)).status, 404);
    assert.equal((await as(B, 'GET', '/v1/sandboxes')).status, 401);
    assert.equal((await server.api('GET', '/v1/admin/tenants/tb')).status, 404);
  });
});

describe('a store from before tenants', () => {
  let old: TestServer | null = null;
  after(async () => {
    await old?.stop();
  });

  test('is migrated: its keys keep working (as admins of the default tenant), its volumes and pools move into that tenant', async () => {
    const dataDir = mkdtempSync('/var/tmp/hutch-test-');
    const legacyKey = 'hutch_' + 'ab'.repeat(24);
    const sqlite = new Database(join(dataDir, 'hutch.db'));
    const db = new Kysely<Record<string, Record<string, unknown>>>({ dialect: new SqliteDialect({ database: sqlite }) });
    const upTo4: Record<string, Migration> = Object.fromEntries(Object.entries(migrations).filter(([name]) => name < '0005'));
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => upTo4 } }).migrateToLatest();
    assert.equal(error, undefined);
    const now = Date.now();
    await db
      .insertInto('api_keys')
      .values({
        id: 'legacy',
        hash: createHash('sha256').update(legacyKey).digest('hex'),
        name: 'ci',
        role: 'admin',
        created_at: now,
        last_used_at: null,
        revoked_at: null,
        limits: JSON.stringify({ maxSandboxes: 3 }),
      })
      .execute();
    await db.insertInto('volumes').values({ name: 'olddata', size_mib: 64, labels: '{}', created_at: now }).execute();
    const spec = {
      template: 'minimal',
      isolation: 'container',
      cpu: 1,
      memoryMiB: 512,
      pids: 512,
      diskMiB: 2048,
      min: 0,
      max: 0,
      target: 0,
    };
    await db
      .insertInto('pools')
      .values({ name: 'oldpool', spec: JSON.stringify(spec), created_at: now, updated_at: now })
      .execute();
    await db.destroy();

    old = await startServer({}, { dataDir });
    const key = (await old.api<{ keys: Key[] }>('GET', '/v1/keys', undefined, bearer(legacyKey))).body.keys.find((k) => k.id === 'legacy');
    assert.deepEqual([key?.tenant, key?.role], ['default', 'admin']);
    const volumes = await old.api<{ volumes: Array<{ name: string; tenant: string }> }>('GET', '/v1/volumes');
    assert.deepEqual(
      volumes.body.volumes.map((v) => [v.tenant, v.name]),
      [['default', 'olddata']],
    );
    const pools = await old.api<{ pools: Array<{ name: string; tenant: string }> }>('GET', '/v1/pools');
    assert.deepEqual(
      pools.body.pools.map((p) => [p.tenant, p.name]),
      [['default', 'oldpool']],
    );
    const tenants = await old.api<{ tenants: Array<{ name: string }> }>('GET', '/v1/admin/tenants');
    assert.deepEqual(
      tenants.body.tenants.map((t) => t.name),
      ['default'],
    );
    assert.equal((await old.api('DELETE', '/v1/pools/oldpool')).status, 204);
  });
});
