import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { ChildProcess } from 'node:child_process';
import { type ExtraServerOptions, freePort, launch, removeServerNetwork, startServer, type TestServer } from './harness.js';
import { type ApiError, waitFor } from './hostile-lib.js';
import { startTestInternet, TEST_ADDRESSES, TEST_NAMES, type TestInternet } from './net-fixture.js';

/**
 * Issue 7, secrets: a tenant's secrets stored encrypted (AES-256-GCM, key file), never returned by
 * the API, injected on create as environment variables and files on a tmpfs (mode 0400, the exec
 * user's) into the sandbox that asked only, again at start and resume, also on warm-pool claims;
 * tenants' secrets isolated (404), read-only keys cannot write; what the server logs hides the
 * values (hostile workload H16 of /work/shared/reference/hostile-workloads.md). Real server, real
 * runc and runsc sandboxes, real SQLite.
 */
let server: TestServer;
/** Everything the server process wrote (stdout and stderr), from start to end. */
let serverLog = '';

interface Key {
  id: string;
  key: string;
  tenant: string;
  role: string;
}
interface SecretInfo {
  tenant: string;
  name: string;
  sizeBytes: number;
  createdAt: string;
  updatedAt: string;
}
interface Sb {
  id: string;
  tenant: string;
  state: string;
  warm?: boolean;
  env: Record<string, string>;
  secrets: Array<Record<string, unknown>>;
}
interface Exec {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Member keys of tenants ta and tb, a read-only key of ta. */
let A: Key;
let B: Key;
let R: Key;

/** Every value written in this file: none may ever appear in an API answer or the server's log. */
const VALUES: string[] = [];
function value(label: string): string {
  const v = `${label}-${randomBytes(12).toString('hex')}`;
  VALUES.push(v);
  return v;
}
const SMALL = { cpu: 0.25, memoryMiB: 128, pids: 128, diskMiB: 256, timeoutSeconds: 900 };
/** Address pools of this file's server (not the default ones, which other test servers use). */
const POOL4 = '10.243.0.0/16';
const POOL6 = 'fd68:7574:63a3::/48';

function leaked(text: string): string | undefined {
  return VALUES.find((v) => text.includes(v));
}

/**
 * A call with a key; the raw answer must not contain any value (checked on every call but execs,
 * whose output is what the sandbox printed).
 */
async function call<T = unknown>(
  k: Key | null,
  method: string,
  path: string,
  body?: unknown,
  options: { allowValues?: boolean } = {},
): Promise<{ status: number; body: T & ApiError; text: string }> {
  const headers: Record<string, string> = { authorization: `Bearer ${k ? k.key : server.key}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${server.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  if (!options.allowValues) assert.equal(leaked(text), undefined, `${method} ${path} answered with a secret value: ${text.slice(0, 300)}`);
  return { status: res.status, body: (text && text.startsWith('{') ? JSON.parse(text) : {}) as T & ApiError, text };
}

async function newKey(tenant: string, role: string): Promise<Key> {
  const res = await call<Key>(null, 'POST', '/v1/keys', { tenant, role });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

async function put(k: Key | null, name: string, v: unknown, query = ''): Promise<{ status: number; body: SecretInfo & ApiError }> {
  return call<SecretInfo>(k, 'PUT', `/v1/secrets/${name}${query}`, { value: v });
}

async function create(k: Key, body: Record<string, unknown>): Promise<Sb> {
  const res = await call<Sb>(k, 'POST', '/v1/sandboxes', { ...SMALL, ...body });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

async function run(k: Key, id: string, cmd: string, user?: string): Promise<Exec> {
  const res = await call<Exec>(
    k,
    'POST',
    `/v1/sandboxes/${id}/exec`,
    { cmd, timeoutMs: 30_000, ...(user ? { user } : {}) },
    { allowValues: true },
  );
  assert.equal(res.status, 200, res.text);
  return res.body;
}

/** Mode, owner and content of a file and the filesystem it is on, read inside the sandbox (python: gVisor's statx is unreliable). */
const INSPECT_PY = String.raw`
import json, os, sys
p = sys.argv[1]
out = {}
try:
    st = os.stat(p)
    out['mode'] = oct(st.st_mode & 0o7777)
    out['uid'] = st.st_uid
    out['content'] = open(p).read()
except Exception as e:
    out['error'] = type(e).__name__
mounts = [l.split() for l in open('/proc/self/mountinfo')]
out['fs'] = [m[m.index('-') + 1] for m in mounts if m[4] == '/run/secrets']
print(json.dumps(out))
`;

async function inspect(
  k: Key,
  id: string,
  path: string,
  user?: string,
): Promise<{ mode?: string; uid?: number; content?: string; error?: string; fs: string[] }> {
  const r = await run(k, id, `python3 -c '${INSPECT_PY.replaceAll("'", "'\\''")}' ${path}`, user);
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout) as { mode?: string; uid?: number; content?: string; error?: string; fs: string[] };
}

async function envOf(k: Key, id: string, name: string, user?: string): Promise<string> {
  return (await run(k, id, `printf %s "$${name}"`, user)).stdout;
}

function captureLog(): void {
  const child = server.child;
  child.stdout!.on('data', (d: Buffer) => (serverLog += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (serverLog += d.toString()));
}

before(async () => {
  // The fake internet's resolver is the upstream; nothing is forwarded to it unless the fixture runs
  // (the only allowed names are looked up in the header-injection tests, which start it).
  server = await startServer({ logLevel: 'debug', networkPool4: POOL4, networkPool6: POOL6, dnsUpstreams: [TEST_ADDRESSES.dns] });
  captureLog();
  for (const name of ['ta', 'tb']) assert.equal((await call(null, 'POST', '/v1/admin/tenants', { name })).status, 201);
  A = await newKey('ta', 'member');
  B = await newKey('tb', 'member');
  R = await newKey('ta', 'read-only');
});
after(async () => {
  await server?.stop();
});

describe('the secret store', () => {
  test('PUT creates (201) then replaces (200); GET and lists show metadata only; errors name the field', async () => {
    const first = value('token');
    const created = await put(A, 'api-token', first);
    assert.equal(created.status, 201);
    assert.equal(created.body.name, 'api-token');
    assert.equal(created.body.tenant, 'ta');
    assert.equal(created.body.sizeBytes, Buffer.byteLength(first));
    assert.deepEqual(Object.keys(created.body).sort(), ['createdAt', 'name', 'sizeBytes', 'tenant', 'updatedAt']);
    const second = value('token2-é');
    const replaced = await put(A, 'api-token', second);
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.createdAt, created.body.createdAt);
    assert.ok(replaced.body.updatedAt >= created.body.updatedAt);
    assert.equal(replaced.body.sizeBytes, Buffer.byteLength(second), 'bytes, not characters');

    const got = await call<SecretInfo>(A, 'GET', '/v1/secrets/api-token');
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, replaced.body);
    const list = await call<{ secrets: SecretInfo[] }>(A, 'GET', '/v1/secrets');
    assert.deepEqual(
      list.body.secrets.map((s) => s.name),
      ['api-token'],
    );

    const cases: Array<[string, unknown, number, RegExp]> = [
      ['bad name!', 'x', 400, /name/],
      ['9starts-with-digit', 'xyzw', 400, /name: .* is not a secret name/],
      ['a'.repeat(65), 'xyzw', 400, /name/],
      ['ok', 42, 400, /^value: /],
      ['ok', '', 400, /^value: must not be empty/],
      ['ok', 'a\0b', 400, /^value: must not contain NUL/],
      ['ok', 'x'.repeat(64 * 1024 + 1), 400, /^value: 65537 bytes is over the limit of 65536/],
    ];
    for (const [name, v, status, message] of cases) {
      const res = await put(A, encodeURIComponent(name), v);
      assert.equal(res.status, status, `${name}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, message);
    }
    const extra = await call(A, 'PUT', '/v1/secrets/ok', { value: 'abcd', note: 'x' });
    assert.equal(extra.status, 400);
    const missing = await call(A, 'GET', '/v1/secrets/nope');
    assert.equal(missing.status, 404);
    const gone = await call(A, 'DELETE', '/v1/secrets/nope');
    assert.equal(gone.status, 404);
  });

  test("another tenant's secret is a 404 on every route; read-only keys read metadata but cannot write; admins use ?tenant=", async () => {
    assert.equal((await put(B, 'b-only', value('b'))).status, 201);
    for (const [method, body] of [
      ['GET', undefined],
      ['DELETE', undefined],
    ] as const) {
      const res = await call(A, method, '/v1/secrets/b-only', body);
      assert.equal(res.status, 404, `${method}: ${JSON.stringify(res.body)}`);
    }
    // A member naming another tenant: the same 404 as a tenant that does not exist.
    assert.equal((await call(A, 'GET', '/v1/secrets/b-only?tenant=tb')).status, 404);
    assert.equal((await call(A, 'GET', '/v1/secrets?tenant=tb')).status, 404);
    assert.equal((await put(A, 'b-only', value('x'), '?tenant=tb')).status, 404);
    // A PUT of the same name by A makes A's own secret; B's is untouched.
    assert.equal((await put(A, 'b-only', value('a-own'))).status, 201);
    const bList = await call<{ secrets: SecretInfo[] }>(B, 'GET', '/v1/secrets');
    assert.deepEqual(
      bList.body.secrets.map((s) => `${s.tenant}/${s.name}`),
      ['tb/b-only'],
    );
    assert.equal((await call(A, 'DELETE', '/v1/secrets/b-only')).status, 204);
    assert.equal((await call(B, 'GET', '/v1/secrets/b-only')).status, 200, "deleting A's secret left B's alone");

    // Read-only: metadata yes, writes no (403 before anything is read).
    const rList = await call<{ secrets: SecretInfo[] }>(R, 'GET', '/v1/secrets');
    assert.equal(rList.status, 200);
    assert.ok(rList.body.secrets.some((s) => s.name === 'api-token'));
    assert.equal((await call(R, 'GET', '/v1/secrets/api-token')).status, 200);
    const rPut = await put(R, 'api-token', value('ro'));
    assert.equal(rPut.status, 403);
    assert.equal(rPut.body.error.code, 'permission_denied');
    assert.equal((await call(R, 'DELETE', '/v1/secrets/api-token')).status, 403);
    assert.equal((await call<SecretInfo>(A, 'GET', '/v1/secrets/api-token')).body.sizeBytes > 0, true);

    // Admins: every tenant's in the list, ?tenant= to narrow and to act on another tenant's.
    const all = await call<{ secrets: SecretInfo[] }>(null, 'GET', '/v1/secrets');
    assert.ok(all.body.secrets.some((s) => s.tenant === 'ta') && all.body.secrets.some((s) => s.tenant === 'tb'));
    const tbOnly = await call<{ secrets: SecretInfo[] }>(null, 'GET', '/v1/secrets?tenant=tb');
    assert.ok(tbOnly.body.secrets.every((s) => s.tenant === 'tb'));
    const adminPut = await put(null, 'from-admin', value('adm'), '?tenant=tb');
    assert.equal(adminPut.status, 201);
    assert.equal(adminPut.body.tenant, 'tb');
    assert.equal((await call(B, 'GET', '/v1/secrets/from-admin')).status, 200);
    assert.equal((await call(null, 'DELETE', '/v1/secrets/from-admin?tenant=tb')).status, 204);
    assert.equal((await put(null, 'x', value('x'), '?tenant=no-such-tenant')).status, 404);
  });

  test('deleting a tenant deletes its secrets: a tenant made later with the same name has none', async () => {
    assert.equal((await call(null, 'POST', '/v1/admin/tenants', { name: 'tc' })).status, 201);
    assert.equal((await put(null, 'tc-token', value('tc'), '?tenant=tc')).status, 201);
    const deleted = await call<{ deleted: Record<string, number> }>(null, 'DELETE', '/v1/admin/tenants/tc');
    assert.equal(deleted.status, 200, deleted.text);
    assert.equal(deleted.body.deleted.secrets, 1);
    assert.equal((await call(null, 'POST', '/v1/admin/tenants', { name: 'tc' })).status, 201);
    assert.deepEqual((await call<{ secrets: SecretInfo[] }>(null, 'GET', '/v1/secrets?tenant=tc')).body.secrets, []);
    assert.equal((await call(null, 'DELETE', '/v1/admin/tenants/tc')).status, 200);
  });

  test('values are sealed at rest: in neither the database nor its WAL; a row moved to another tenant does not open', async () => {
    const v = value('at-rest');
    assert.equal((await put(A, 'at-rest', v)).status, 201);
    const files = readdirSync(server.dataDir).filter((f) => f.startsWith('hutch.db'));
    assert.ok(files.includes('hutch.db'));
    for (const f of files) {
      const bytes = readFileSync(join(server.dataDir, f));
      for (const needle of VALUES) assert.equal(bytes.includes(Buffer.from(needle)), false, `${f} holds a value in clear`);
    }
    // The key file: generated, 0600, 32 bytes as 64 hex characters.
    const keyFile = join(server.dataDir, 'secrets.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(readFileSync(keyFile, 'utf8'), /^[0-9a-f]{64}\n$/);

    // The authenticated data binds tenant and name: ta's row copied as tb's does not decrypt.
    const db = new Database(join(server.dataDir, 'hutch.db'));
    try {
      db.prepare(
        "INSERT INTO secrets (tenant, name, nonce, ciphertext, size_bytes, created_at, updated_at) SELECT 'tb', 'stolen', nonce, ciphertext, size_bytes, created_at, updated_at FROM secrets WHERE tenant = 'ta' AND name = 'at-rest'",
      ).run();
    } finally {
      db.close();
    }
    const before = (await call<{ sandboxes: Sb[] }>(B, 'GET', '/v1/sandboxes')).body.sandboxes.length;
    const res = await call(B, 'POST', '/v1/sandboxes', { ...SMALL, template: 'minimal', secrets: [{ name: 'stolen', env: 'STOLEN' }] });
    assert.equal(res.status, 500, res.text);
    assert.match(res.body.error.message, /secret "stolen" of tenant tb cannot be decrypted/);
    assert.equal((await call<{ sandboxes: Sb[] }>(B, 'GET', '/v1/sandboxes')).body.sandboxes.length, before);
    assert.equal((await call(B, 'DELETE', '/v1/secrets/stolen')).status, 204);
  });
});

describe('injection', () => {
  for (const tier of ['container', 'gvisor'] as const) {
    test(`${tier}: env and a 0400 tmpfs file of the exec user, in the sandbox that asked only; references only in answers; start re-reads the store`, async () => {
      const token = value(`${tier}-env`);
      const file = value(`${tier}-file`);
      assert.equal((await put(A, `${tier}-env`, token)).status, 201);
      assert.equal((await put(A, `${tier}-file`, file)).status, 201);
      const refs = [
        { name: `${tier}-env`, env: 'API_TOKEN' },
        { name: `${tier}-file`, file: '/run/secrets/db/password' },
      ];
      const sb = await create(A, { template: 'base', isolation: tier, env: { PLAIN: 'visible' }, secrets: refs, persistent: true });
      assert.deepEqual(sb.secrets, refs);
      assert.deepEqual(sb.env, { PLAIN: 'visible' });
      const other = await create(A, { template: 'base', isolation: tier });

      // The default (exec) user, root, and a process started with its own env all see the variable.
      assert.equal(await envOf(A, sb.id, 'API_TOKEN'), token);
      assert.equal(await envOf(A, sb.id, 'API_TOKEN', 'root'), token);
      assert.equal(await envOf(A, sb.id, 'PLAIN'), 'visible');
      const seen = await inspect(A, sb.id, '/run/secrets/db/password');
      assert.deepEqual(seen, { mode: '0o400', uid: 1000, content: file, fs: ['tmpfs'] });
      // Another sandbox of the same tenant has neither.
      assert.equal(await envOf(A, other.id, 'API_TOKEN'), '');
      const nothing = await inspect(A, other.id, '/run/secrets/db/password');
      assert.equal(nothing.error, 'FileNotFoundError');
      assert.deepEqual(nothing.fs, ['tmpfs']);
      // Nothing of either value in the agent's own environment block, and not on the sandbox's disk.
      assert.equal((await run(A, sb.id, 'cat /proc/1/environ', 'root')).stdout.includes(token), false);
      const onDisk = await run(A, sb.id, `grep -rlsF -e '${file}' -e '${token}' /etc /home /tmp /var /root; echo done`, 'root');
      assert.equal(onDisk.stdout.trim(), 'done');

      // The API shows references only: the sandbox, the list, the E2B control plane.
      const got = await call<Sb>(A, 'GET', `/v1/sandboxes/${sb.id}`);
      assert.deepEqual(got.body.secrets, refs);
      await call(A, 'GET', '/v1/sandboxes');
      const e2b = await fetch(`${server.url}/sandboxes/${sb.id}`, { headers: { 'x-api-key': A.key } });
      assert.equal(e2b.status, 200);
      assert.equal(leaked(await e2b.text()), undefined);
      // Nor is a value in the sandbox's bundle, its disk image or anything else of it on the host
      // (the agent got them over its socket).
      const sandboxDir = join(server.dataDir, 'sandboxes', sb.id);
      assert.ok(
        filesHolding(sandboxDir, ['visible']).some((p) => p.endsWith('config.json')),
        'the scan reads the bundle (it holds the plain env)',
      );
      assert.deepEqual(filesHolding(sandboxDir, [token, file]), []);

      // Read-only keys: no download of the secrets tmpfs.
      const ro = await fetch(`${server.url}/v1/sandboxes/${sb.id}/files?path=/run/secrets/db/password&user=root`, {
        headers: { authorization: `Bearer ${R.key}` },
      });
      assert.equal(ro.status, 403);
      assert.equal(leaked(await ro.text()), undefined);

      // Stop, replace the value, start: the sandbox gets the store's current value.
      assert.equal((await call(A, 'POST', `/v1/sandboxes/${sb.id}/stop`)).status, 200);
      const rotated = value(`${tier}-rotated`);
      assert.equal((await put(A, `${tier}-env`, rotated)).status, 200);
      const started = await call<Sb>(A, 'POST', `/v1/sandboxes/${sb.id}/start`);
      assert.equal(started.status, 200, started.text);
      assert.equal(await envOf(A, sb.id, 'API_TOKEN'), rotated);
      assert.equal((await inspect(A, sb.id, '/run/secrets/db/password')).content, file);

      // A secret deleted while the sandbox is stopped: start is a 409 naming it; it stays stopped.
      assert.equal((await call(A, 'POST', `/v1/sandboxes/${sb.id}/stop`)).status, 200);
      assert.equal((await call(A, 'DELETE', `/v1/secrets/${tier}-file`)).status, 204);
      const refused = await call(A, 'POST', `/v1/sandboxes/${sb.id}/start`);
      assert.equal(refused.status, 409, refused.text);
      assert.match(refused.body.error.message, new RegExp(`secret "${tier}-file" .*no longer exists.*PUT /v1/secrets/${tier}-file`));
      assert.equal((await call<Sb>(A, 'GET', `/v1/sandboxes/${sb.id}`)).body.state, 'stopped');
      assert.equal((await put(A, `${tier}-file`, file)).status, 201);
      assert.equal((await call(A, 'POST', `/v1/sandboxes/${sb.id}/start`)).status, 200);
      assert.equal((await inspect(A, sb.id, '/run/secrets/db/password')).content, file);

      if (tier === 'gvisor') {
        // A memory image would carry the values into every sandbox made from it: refused.
        const snap = await call(A, 'POST', `/v1/sandboxes/${sb.id}/snapshots`, { memory: true });
        assert.equal(snap.status, 400, snap.text);
        assert.match(snap.body.error.message, /^memory: .* was given secrets/);
      }
      // A files-only snapshot does not capture the secrets tmpfs.
      const files = await call<{ id: string }>(A, 'POST', `/v1/sandboxes/${sb.id}/snapshots`, {});
      assert.equal(files.status, 201, files.text);
      const fromSnap = await create(A, { template: files.body.id, isolation: tier });
      assert.equal((await inspect(A, fromSnap.id, '/run/secrets/db/password')).error, 'FileNotFoundError');
      assert.equal(await envOf(A, fromSnap.id, 'API_TOKEN'), '');
      for (const id of [fromSnap.id, sb.id, other.id]) assert.equal((await call(A, 'DELETE', `/v1/sandboxes/${id}`)).status, 204);
      assert.equal((await call(A, 'DELETE', `/v1/snapshots/${files.body.id}`)).status, 204);
    });
  }

  test("a missing secret, or another tenant's, is a 400 naming it at create, and nothing is created", async () => {
    assert.equal((await put(B, 'tb-secret', value('tb'))).status, 201);
    const before = (await call<{ sandboxes: Sb[] }>(A, 'GET', '/v1/sandboxes')).body.sandboxes.length;
    for (const name of ['does-not-exist', 'tb-secret']) {
      const res = await call(A, 'POST', '/v1/sandboxes', { ...SMALL, template: 'minimal', secrets: [{ name, env: 'X_TOKEN' }] });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.error.message, `secrets[0].name: secret "${name}" does not exist (PUT /v1/secrets/${name} first)`);
    }
    assert.equal((await call<{ sandboxes: Sb[] }>(A, 'GET', '/v1/sandboxes')).body.sandboxes.length, before);

    const bad: Array<[unknown, RegExp]> = [
      [[{ name: 'api-token' }], /secrets\[0\]: give exactly one of env, file or injectHeader/],
      [[{ name: 'api-token', env: 'A', file: '/run/secrets/a' }], /secrets\[0\]: give exactly one/],
      [[{ name: 'api-token', env: 'HUTCH_X' }], /secrets\[0\]\.env: names starting with HUTCH_ are reserved/],
      [[{ name: 'api-token', env: '1BAD' }], /secrets\[0\]\.env: .* is not an environment variable name/],
      [[{ name: 'api-token', env: 'PLAIN' }], /secrets\[0\]\.env: PLAIN is also set in env/],
      [
        [
          { name: 'api-token', env: 'T' },
          { name: 'api-token', env: 'T' },
        ],
        /secrets\[1\]\.env: T is set by two secrets/,
      ],
      [[{ name: 'api-token', file: '/etc/token' }], /secrets\[0\]\.file: .* below \/run\/secrets\//],
      [[{ name: 'api-token', file: '/run/secrets/../x' }], /secrets\[0\]\.file: .* must be a normalized path/],
      [[{ name: 'api-token', file: '/run/secrets/.hidden' }], /secrets\[0\]\.file: .*components/],
      [
        [
          { name: 'api-token', file: '/run/secrets/a' },
          { name: 'api-token', file: '/run/secrets/a/b' },
        ],
        /secrets\[1\]\.file: \/run\/secrets\/a\/b collides with \/run\/secrets\/a/,
      ],
    ];
    // Environment values that every exec would have to carry past the kernel's limit: refused.
    for (let i = 0; i < 5; i++) assert.equal((await put(A, `big-${i}`, 'x'.repeat(60 * 1024))).status, 201);
    bad.push([
      Array.from({ length: 5 }, (_, i) => ({ name: `big-${i}`, env: `BIG_${i}` })),
      /^secrets: the env values add up to 307200 bytes, over 262144 .*give large values as files/,
    ]);
    for (const [secrets, message] of bad) {
      const res = await call(A, 'POST', '/v1/sandboxes', { ...SMALL, template: 'minimal', env: { PLAIN: '1' }, secrets });
      assert.equal(res.status, 400, `${JSON.stringify(secrets)}: ${res.text}`);
      assert.match(res.body.error.message, message);
    }
    assert.equal((await call<{ sandboxes: Sb[] }>(A, 'GET', '/v1/sandboxes')).body.sandboxes.length, before);
  });

  test("a warm-pool claim applies the request's secrets (the pool's sandboxes had none)", async () => {
    const v = value('warm');
    assert.equal((await put(A, 'warm-token', v)).status, 201);
    const spec = {
      template: 'base',
      isolation: 'container',
      cpu: 0.25,
      memoryMiB: 128,
      pids: 128,
      diskMiB: 256,
      min: 1,
      max: 1,
      target: 1,
    };
    assert.equal((await call(A, 'PUT', '/v1/pools/warm', spec)).status, 200);
    await waitFor(async () => ((await call<{ size: number }>(A, 'GET', '/v1/pools/warm')).body.size >= 1 ? true : undefined), 60_000, 200);
    const { min: _min, max: _max, target: _target, ...shape } = spec;
    const sb = (
      await call<Sb>(A, 'POST', '/v1/sandboxes', {
        ...shape,
        timeoutSeconds: 300,
        secrets: [
          { name: 'warm-token', env: 'WARM_TOKEN' },
          { name: 'warm-token', file: '/run/secrets/warm' },
        ],
      })
    ).body;
    assert.equal(sb.warm, true);
    assert.equal(await envOf(A, sb.id, 'WARM_TOKEN'), v);
    assert.deepEqual(await inspect(A, sb.id, '/run/secrets/warm'), { mode: '0o400', uid: 1000, content: v, fs: ['tmpfs'] });
    assert.equal((await call(A, 'DELETE', '/v1/pools/warm')).status, 204);
    assert.equal((await call(A, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
  });
});

describe('egress header injection', () => {
  let inet: TestInternet;
  const HOST = TEST_NAMES.pypi;
  before(async () => {
    inet = await startTestInternet({ sandboxPool4: POOL4, sandboxPool6: POOL6 });
  });
  after(async () => {
    await inet?.stop();
  });

  /** Plain-HTTP requests to HOST from inside a sandbox: two on one keep-alive connection, one on its own, one with its own Authorization. */
  const REQUESTS_PY = String.raw`
import http.client, json, sys
tag = sys.argv[1]
out = []
c = http.client.HTTPConnection('pypi-mirror.test', 80, timeout=5)
for i in range(2):
    c.request('GET', '/record-%s-keepalive-%d' % (tag, i))
    r = c.getresponse()
    out.append([r.status, r.read().decode()])
c.request('GET', '/record-%s-forged' % tag, headers={'Authorization': 'Bearer forged-by-the-sandbox'})
r = c.getresponse()
out.append([r.status, r.read().decode()])
c.request('GET', '/x', headers={'Host': 'other.test'})
r = c.getresponse()
out.append([r.status, r.read().decode()[:60]])
print(json.dumps(out))
`;
  const TLS_PY = String.raw`
import socket, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    with socket.create_connection(('pypi-mirror.test', 443), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname='pypi-mirror.test') as t:
            print('connected')
except Exception as e:
    print('refused', type(e).__name__)
`;
  const py = (code: string, ...args: string[]): string => `python3 -c '${code.replaceAll("'", "'\\''")}' ${args.join(' ')}`;

  for (const tier of ['container', 'gvisor'] as const) {
    test(`${tier}: plain-HTTP requests to the host carry the header; the sandbox never sees the value; TLS to the host is refused`, async () => {
      const v = value(`${tier}-header`);
      assert.equal((await put(A, `${tier}-api-key`, v)).status, 201);
      const network = { egress: { allow: [HOST] } };
      const sb = await create(A, {
        template: 'base',
        isolation: tier,
        network,
        secrets: [{ name: `${tier}-api-key`, injectHeader: { host: HOST, header: 'Authorization', format: 'Bearer {}' } }],
      });
      assert.deepEqual(sb.secrets, [
        { name: `${tier}-api-key`, injectHeader: { host: HOST, header: 'Authorization', format: 'Bearer {}' } },
      ]);
      const plain = await create(A, { template: 'base', isolation: tier, network });

      const r = await run(A, sb.id, py(REQUESTS_PY, tier));
      assert.equal(r.exitCode, 0, r.stderr);
      const answers = JSON.parse(r.stdout) as Array<[number, string]>;
      assert.deepEqual(answers.slice(0, 3), [
        [200, 'recorded'],
        [200, 'recorded'],
        [200, 'recorded'],
      ]);
      assert.equal(answers[3]![0], 421, 'another host on the same connection');
      assert.equal((await run(A, plain.id, py(REQUESTS_PY, `${tier}-plain`))).exitCode, 0);

      const events = await inet.events();
      const seen = (path: string) => events.find((e) => e.detail === `${HOST} ${path}`);
      for (const path of [`/record-${tier}-keepalive-0`, `/record-${tier}-keepalive-1`, `/record-${tier}-forged`])
        assert.equal(seen(path)?.headers?.authorization, `Bearer ${v}`, `${path}: ${JSON.stringify(seen(path))}`);
      assert.equal(
        seen(`/record-${tier}-plain-keepalive-0`)?.headers?.authorization,
        undefined,
        'a sandbox without the reference gets nothing',
      );
      assert.equal(seen(`/record-${tier}-plain-forged`)?.headers?.authorization, 'Bearer forged-by-the-sandbox');

      // Nowhere inside: environment, files, any process's environ or cmdline.
      const inside = await run(
        A,
        sb.id,
        `env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'; grep -rlsF '${v}' /run /etc /tmp /home /root /var; echo scanned`,
        'root',
      );
      assert.ok(inside.stdout.endsWith('scanned\n'), inside.stderr);
      const withoutOurCommand = inside.stdout.split('\n').filter((l) => !l.includes('grep -rlsF'));
      assert.equal(
        withoutOurCommand.some((l) => l.includes(v)),
        false,
        'the value is inside the sandbox',
      );

      // TLS to the host: refused (the header cannot be added inside TLS), and the log says why.
      const tls = await run(A, sb.id, py(TLS_PY));
      assert.match(tls.stdout, /^refused/);
      await waitFor(() => (serverLog.includes('over plain HTTP only') ? true : undefined), 5000);
      for (const id of [sb.id, plain.id]) assert.equal((await call(A, 'DELETE', `/v1/sandboxes/${id}`)).status, 204);
    });
  }

  test('header injection needs an allowlist naming the host', async () => {
    assert.equal((await put(A, 'hdr', value('hdr'))).status, 201);
    const ref = { name: 'hdr', injectHeader: { host: HOST, header: 'X-Api-Key' } };
    const cases: Array<[unknown, unknown, RegExp]> = [
      [
        undefined,
        [ref],
        /secrets\[0\]\.injectHeader\.host: header injection needs network\.egress to be an allowlist naming pypi-mirror\.test \(egress is "none"\)/,
      ],
      [{ egress: 'open' }, [ref], /egress is "open"/],
      [{ egress: { allow: ['other.test'] } }, [ref], /pypi-mirror\.test is not in network\.egress\.allow/],
      [{ egress: { allow: ['*.test'], deny: [HOST] } }, [ref], /is denied by network\.egress\.deny/],
      [{ egress: { allow: [HOST] } }, [{ name: 'hdr', injectHeader: { host: HOST, header: 'Host' } }], /header: Host cannot be injected/],
      [
        { egress: { allow: [HOST] } },
        [{ name: 'hdr', injectHeader: { host: HOST, header: 'X', format: 'no placeholder' } }],
        /format: .*containing \{\}/,
      ],
      [{ egress: { allow: [HOST] } }, [{ name: 'hdr', injectHeader: { host: '198.18.0.10', header: 'X' } }], /host: .* must be a DNS name/],
    ];
    for (const [network, secrets, message] of cases) {
      const res = await call(A, 'POST', '/v1/sandboxes', { ...SMALL, template: 'minimal', ...(network ? { network } : {}), secrets });
      assert.equal(res.status, 400, res.text);
      assert.match(res.body.error.message, message);
    }
    // A wildcard entry names it too.
    const ok = await call<Sb>(A, 'POST', '/v1/sandboxes', {
      ...SMALL,
      template: 'minimal',
      network: { egress: { allow: ['*.test'] } },
      secrets: [ref],
    });
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await call(A, 'DELETE', `/v1/sandboxes/${ok.body.id}`)).status, 204);
  });
});

describe('what the server prints', () => {
  test("no line of the server log shows a value, nor the sandbox's DNS log, also when a process looks it up as a name", async () => {
    const v = value('printed');
    assert.equal((await put(A, 'printed', v)).status, 201);
    // An allowlist: the sandbox's DNS queries go to the platform resolver, which keeps the names
    // (GET …/network dnsLog) and logs them (info). A name not allowed is never sent upstream.
    const sb = await create(A, {
      template: 'base',
      network: { egress: { allow: ['allowed.test'] } },
      secrets: [{ name: 'printed', env: 'PRINTED' }],
    });
    const out = await run(A, sb.id, 'echo "$PRINTED"; echo "$PRINTED" >&2');
    assert.equal(out.stdout, `${v}\n`, 'the caller that ran the process gets its output as printed');
    const lookup = await run(
      A,
      sb.id,
      `python3 -c 'import os, socket
try:
    socket.getaddrinfo(os.environ["PRINTED"] + ".nowhere.test", 80)
except socket.gaierror as e:
    print("refused", e.errno)'`,
    );
    assert.match(lookup.stdout, /^refused/);
    const net = await call<{ dnsLog: Array<{ name: string; verdict: string }> }>(R, 'GET', `/v1/sandboxes/${sb.id}/network`);
    assert.equal(net.status, 200, net.text);
    assert.ok(
      net.body.dnsLog.some((q) => q.name === '***.nowhere.test' && q.verdict === 'denied'),
      JSON.stringify(net.body.dnsLog),
    );
    await waitFor(() => (serverLog.includes('***.nowhere.test') ? true : undefined), 5000);
    // The sandbox's kept output (GET …/logs, a read-only key may read it): the printed value is ***.
    const logs = await waitFor(async () => {
      const res = await call<{ entries: Array<{ stream: string; text: string }> }>(R, 'GET', `/v1/sandboxes/${sb.id}/logs`);
      return res.body.entries?.filter((e) => e.text === '***\n').length === 2 ? res.body.entries : undefined;
    }, 10_000);
    assert.ok(logs, `the sandbox logs did not show *** on both streams within 10 s`);
    assert.deepEqual(
      logs
        .filter((e) => e.text === '***\n')
        .map((e) => e.stream)
        .sort(),
      ['stderr', 'stdout'],
    );
    // Nor in the audit log (its answers are checked by call()), nor in the store's files.
    assert.equal((await call(null, 'GET', '/v1/audit?limit=500')).status, 200);
    for (const f of readdirSync(server.dataDir).filter((n) => n.startsWith('hutch.db'))) {
      const bytes = readFileSync(join(server.dataDir, f));
      assert.equal(bytes.includes(Buffer.from(v)), false, `${f} holds the printed value`);
    }
    assert.equal((await call(A, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
    assert.ok(serverLog.includes('secret created'), 'the log was captured at debug level');
    assert.equal(leaked(serverLog), undefined);
  });

  test('the key file: refused when missing (explicit), too open, the wrong size, or not the key the secrets were sealed with', async () => {
    const dir = mkdtempSync('/var/tmp/hutch-secrets-key-');
    const dataDir = join(dir, 'data');
    const keyFile = join(dir, 'key');
    let child: ChildProcess | null = null;
    const launchWith = async (options: Record<string, unknown>): Promise<{ child: ChildProcess; log: string[]; url: string }> => {
      const log: string[] = [];
      const port = await freePort();
      child = launch(dataDir, port, log, { server: { buildTemplates: false, ...options } as ExtraServerOptions });
      return { child, log, url: `http://127.0.0.1:${port}` };
    };
    const refused = async (options: Record<string, unknown>): Promise<string> => {
      const { child: c, log } = await launchWith(options);
      const code = await new Promise<number | null>((resolve) => c.once('exit', resolve));
      assert.notEqual(code, 0, log.join(''));
      return log.join('');
    };
    try {
      assert.match(await refused({ secretsKeyFile: keyFile }), /--secrets-key-file \S+ does not exist; create one with/);
      writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`);
      chmodSync(keyFile, 0o644);
      assert.match(await refused({ secretsKeyFile: keyFile }), /readable or writable by others \(mode 0644\): chmod 600/);
      writeFileSync(keyFile, 'short\n');
      chmodSync(keyFile, 0o600);
      assert.match(await refused({ secretsKeyFile: keyFile }), /must hold a 32-byte key: 64 hex characters .* it has 6 bytes/);

      // A store with secrets sealed by one key does not start with another.
      writeFileSync(keyFile, randomBytes(32)); // 32 raw bytes work too
      const first = await launchWith({ secretsKeyFile: keyFile });
      const key = await waitFor(() => {
        try {
          return readFileSync(join(dataDir, 'admin.key'), 'utf8').trim() || undefined;
        } catch {
          return undefined;
        }
      }, 60_000);
      await waitFor(async () => ((await fetch(`${first.url}/healthz`).catch(() => null))?.ok ? true : undefined), 60_000);
      const res = await fetch(`${first.url}/v1/secrets/sealed`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ value: value('sealed') }),
      });
      assert.equal(res.status, 201);
      const exited = new Promise((resolve) => first.child.once('exit', resolve));
      first.child.kill('SIGTERM');
      await exited;
      writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`);
      assert.match(await refused({ secretsKeyFile: keyFile }), /is not the one the stored secrets were sealed with .*--secrets-key-file/);
    } finally {
      const c = child as ChildProcess | null;
      if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      const stateKey = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
      rmSync(`/run/hutch/${stateKey}`, { recursive: true, force: true });
      removeServerNetwork(stateKey);
    }
  });
});

/** Paths of regular files below `dir` that contain any of `needles` (the host's view). */
function filesHolding(dir: string, needles: string[]): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'rootfs') walk(p); // rootfs is the mounted overlay: its upper layer is below disk/
      } else if (e.isFile()) {
        try {
          const bytes = readFileSync(p);
          if (needles.some((n) => bytes.includes(Buffer.from(n)))) found.push(p);
        } catch {
          /* unreadable: skip */
        }
      }
    }
  };
  walk(dir);
  return found;
}
