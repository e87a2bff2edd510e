import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Sandbox as E2bSandbox } from 'e2b';
import WebSocket from 'ws';
import { startServer, type TestServer } from './harness.js';
import { tenantClient } from './tenant-client.js';
import { sleep, waitFor, type ApiError } from './hostile-lib.js';

/**
 * Issue 7 — the audit log, request ids and sandbox logs, against a real server with real runc
 * sandboxes and the real SQLite store: a scripted session is recorded as exactly the expected
 * actions (who, what, outcome); failed calls carry their error; a tenant sees only its own
 * entries; filters, pagination and the JSON-lines export; retention prunes old rows (written into
 * the store's file, as a row from long ago would be) and the table refuses changes; nothing
 * secret is recorded. Sandbox logs keep the output of execs, background, streamed and E2B
 * processes, drop the oldest output at the cap (saying so), stream new lines, go with the
 * sandbox, and are a 404 for another tenant.
 */
const CAP = 16 * 1024;
let server: TestServer;

interface Key {
  id: string;
  key: string;
  tenant: string;
  role: string;
}
interface Sb {
  id: string;
}
interface Entry {
  id: number;
  time: string;
  tenant: string | null;
  keyId: string | null;
  auth: string | null;
  role: string | null;
  action: string;
  target: string | null;
  route: string;
  status: number;
  error: string | null;
  durationMs: number;
  client: string | null;
  requestId: string | null;
}
interface Page {
  entries: Entry[];
  nextCursor: string | null;
}
interface LogEntry {
  seq: number;
  time: string;
  pid: number;
  stream: string;
  text: string;
}
interface Logs {
  entries: LogEntry[];
  dropped: { bytes: number; entries: number };
  cursor: number | null;
}

let A: Key; // member of ta
let B: Key; // member of tb
let R: Key; // read-only of ta
let SA: Sb; // ta's sandbox
const SMALL = { template: 'minimal', isolation: 'container', cpu: 1, memoryMiB: 48, pids: 64, diskMiB: 128, timeoutSeconds: 600 };

const client = tenantClient(() => server, SMALL);
const { bearer, as, exec, openWs } = client;
const newKey = (body: Record<string, unknown>, by?: Key): Promise<Key> => client.newKey<Key>(body, by);
const make = (k: Key): Promise<Sb> => client.make<Sb>(k);

/** GET /v1/audit as `k` (admin: the server's key). */
async function audit(k: Key | null, query: Record<string, string | number> = {}): Promise<{ status: number; body: Page & ApiError }> {
  const qs = new URLSearchParams(Object.entries(query).map(([a, b]): [string, string] => [a, String(b)])).toString();
  const path = `/v1/audit${qs ? `?${qs}` : ''}`;
  return k ? as<Page>(k, 'GET', path) : server.api<Page & ApiError>('GET', path);
}

async function entries(k: Key | null, query: Record<string, string | number> = {}): Promise<Entry[]> {
  const res = await audit(k, { limit: 1000, ...query });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.entries;
}

async function logs(k: Key, id: string, query = ''): Promise<{ status: number; body: Logs & ApiError }> {
  return as<Logs>(k, 'GET', `/v1/sandboxes/${id}/logs${query}`);
}

/** An NDJSON stream read line by line. */
async function ndjson(path: string, k: Key, init: RequestInit = {}, signal?: AbortSignal) {
  const res = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { ...bearer(k), ...(init.headers ?? {}) },
    ...(signal ? { signal } : {}),
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const lines: Array<Record<string, unknown>> = [];
  const next = async (): Promise<Record<string, unknown> | null> => {
    for (;;) {
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        const line = JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>;
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) return null;
      buffered += decoder.decode(value, { stream: true });
    }
  };
  return { res, next, lines, cancel: () => reader.cancel().catch(() => undefined) };
}

function db(): Database.Database {
  const d = new Database(join(server.dataDir, 'hutch.db'));
  d.pragma('busy_timeout = 5000');
  return d;
}

before(async () => {
  server = await startServer({ logLevel: 'info', sandboxLogBytes: CAP, auditRetentionDays: 1, auditPruneIntervalMs: 300 });
  for (const name of ['ta', 'tb']) assert.equal((await server.api('POST', '/v1/admin/tenants', { name })).status, 201);
  A = await newKey({ tenant: 'ta', role: 'member', name: 'a-member' });
  B = await newKey({ tenant: 'tb', role: 'member', name: 'b-member' });
  R = await newKey({ tenant: 'ta', role: 'read-only', name: 'a-reader' });
  SA = await make(A);
});
after(async () => {
  await server?.stop();
});

describe('audit log', () => {
  test('a scripted session is recorded as exactly its actions, with tenant, key, role, status and target', async () => {
    const C = await newKey({ tenant: 'ta', role: 'member', name: 'c-session' });
    const sb = await make(C);
    await exec(C, sb.id, 'echo session');
    const put = await as(C, 'PUT', `/v1/sandboxes/${sb.id}/files?path=/tmp/s.txt`, 'hello', { 'content-type': 'application/octet-stream' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const got = await as(C, 'GET', `/v1/sandboxes/${sb.id}/files?path=/tmp/s.txt`);
    assert.equal(got.status, 200);
    assert.equal((await as(C, 'POST', `/v1/sandboxes/${sb.id}/processes`, { cmd: 'sleep 0.2' })).status, 201);
    const pty = await openWs(`/v1/sandboxes/${sb.id}/pty?cmd=${encodeURIComponent('sleep 30')}`, C);
    assert.equal(pty.status, 101);
    pty.ws!.close();
    const D = await newKey({ role: 'member', name: 'd-short' }, C);
    assert.equal((await as(C, 'DELETE', `/v1/keys/${D.id}`)).status, 200);
    assert.equal((await as(C, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
    // Reads (lists, gets, this very query) are not recorded.
    await as(C, 'GET', `/v1/sandboxes`);

    const mine = (await entries(C, { key: C.id })).reverse();
    assert.deepEqual(
      mine.map((e) => [e.action, e.status, e.target]),
      [
        ['sandbox.create', 201, sb.id],
        ['sandbox.exec', 200, sb.id],
        ['file.write', 200, `${sb.id}:/tmp/s.txt`],
        ['file.read', 200, `${sb.id}:/tmp/s.txt`],
        ['process.start', 201, sb.id],
        ['pty.open', 101, sb.id],
        ['key.create', 201, D.id],
        ['key.revoke', 200, D.id],
        ['sandbox.delete', 204, sb.id],
      ],
    );
    for (const e of mine) {
      assert.equal(e.tenant, 'ta');
      assert.equal(e.keyId, C.id);
      assert.equal(e.role, 'member');
      assert.equal(e.auth, 'key');
      assert.equal(e.error, null);
      assert.equal(e.client, '127.0.0.1');
      assert.match(e.requestId ?? '', /^\S{1,128}$/);
      assert.ok(e.durationMs >= 0 && e.durationMs < 60_000, `${e.action} ${e.durationMs} ms`);
      assert.ok(Date.parse(e.time) > Date.now() - 120_000);
    }
    assert.equal(mine[1]!.route, 'POST /v1/sandboxes/:id/exec');
    assert.equal(new Set(mine.map((e) => e.requestId)).size, mine.length, 'one request id each');
  });

  test('failed calls are recorded with their status and error code; unauthenticated ones only for admins', async () => {
    const before = Date.now();
    assert.equal((await as(B, 'POST', `/v1/sandboxes/${SA.id}/exec`, { cmd: 'true' })).status, 404);
    assert.equal((await as(R, 'POST', `/v1/sandboxes/${SA.id}/exec`, { cmd: 'true' })).status, 403);
    assert.equal((await as(A, 'POST', `/v1/sandboxes/${SA.id}/exec`, { cmd: 5 })).status, 400);
    const bad = await fetch(`${server.url}/v1/sandboxes/${SA.id}`, { method: 'DELETE', headers: bearer('not-a-key') });
    assert.equal(bad.status, 401);
    const e2bPause = await fetch(`${server.url}/sandboxes/aaaaaaaaaaaaaaaaaaaa/pause`, { method: 'POST', headers: { 'x-api-key': A.key } });
    assert.equal(e2bPause.status, 404);
    assert.equal((await openWs(`/v1/sandboxes/${SA.id}/pty`, R)).status, 403);

    const since = new Date(before - 1000).toISOString();
    const b = await entries(B, { since, outcome: 'error' });
    assert.deepEqual(
      b.map((e) => [e.tenant, e.keyId, e.action, e.target, e.status, e.error]),
      [['tb', B.id, 'sandbox.exec', SA.id, 404, 'not_found']],
    );
    const a = await entries(A, { since, outcome: 'error' });
    assert.deepEqual(
      a.map((e) => [e.keyId, e.role, e.action, e.route, e.status, e.error]),
      [
        [R.id, 'read-only', 'pty.open', 'GET /v1/sandboxes/:id/pty', 403, 'permission_denied'],
        [A.id, 'member', 'sandbox.pause', 'POST /sandboxes/:id/pause', 404, 'not_found'],
        [A.id, 'member', 'sandbox.exec', 'POST /v1/sandboxes/:id/exec', 400, 'invalid_argument'],
        [R.id, 'read-only', 'sandbox.exec', 'POST /v1/sandboxes/:id/exec', 403, 'permission_denied'],
      ],
    );
    const anonymous = (await entries(null, { since, outcome: 401 })).filter((e) => e.target === SA.id);
    assert.equal(anonymous.length, 1);
    assert.deepEqual(
      [anonymous[0]!.tenant, anonymous[0]!.keyId, anonymous[0]!.action, anonymous[0]!.error],
      [null, null, 'sandbox.delete', 'unauthenticated'],
    );
  });

  test("a tenant sees only its own entries (read-only keys included); another tenant's is a 404; admins see all", async () => {
    // B's attempt on A's sandbox names A's sandbox, but it is B's call: A never sees it.
    assert.equal((await as(B, 'DELETE', `/v1/sandboxes/${SA.id}`)).status, 404);
    const byA = await entries(A);
    assert.ok(byA.length > 0);
    assert.ok(
      byA.every((e) => e.tenant === 'ta'),
      'only ta',
    );
    assert.ok(!byA.some((e) => e.keyId === B.id));
    const byR = await entries(R);
    assert.deepEqual(
      byR.map((e) => e.id),
      byA.map((e) => e.id),
      'read-only keys read their tenant’s log',
    );
    assert.equal((await audit(A, { tenant: 'tb' })).status, 404);
    assert.equal((await audit(R, { tenant: 'tb' })).status, 404);
    const exported = await fetch(`${server.url}/v1/audit/export?tenant=tb`, { headers: bearer(A) });
    assert.equal(exported.status, 404);
    const lines = (await (await fetch(`${server.url}/v1/audit/export`, { headers: bearer(A) })).text()).trim().split('\n');
    assert.ok(lines.every((l) => (JSON.parse(l) as Entry).tenant === 'ta'));

    const all = await entries(null);
    assert.ok(all.some((e) => e.tenant === 'ta') && all.some((e) => e.tenant === 'tb') && all.some((e) => e.tenant === 'default'));
    const tb = await entries(null, { tenant: 'tb' });
    assert.ok(tb.length > 0 && tb.every((e) => e.tenant === 'tb'));
    assert.ok(tb.some((e) => e.action === 'sandbox.delete' && e.target === SA.id && e.status === 404));
  });

  test('filters: key, action prefix, target (with its files and processes), outcome, since/until', async () => {
    const sb = await make(A);
    const { pid } = await exec(A, sb.id, 'echo filters');
    await as(A, 'PUT', `/v1/sandboxes/${sb.id}/files?path=/tmp/f`, 'x', { 'content-type': 'application/octet-stream' });
    // The exec's process is gone: a failure with its code.
    assert.equal((await as(A, 'POST', `/v1/sandboxes/${sb.id}/processes/${pid}/signal`, { signal: 'SIGTERM' })).status, 404);
    assert.equal((await as(A, 'POST', `/v1/sandboxes/${sb.id}/files/mkdir`, { path: '/tmp/d' })).status, 201);

    const target = await entries(A, { target: sb.id });
    assert.deepEqual(target.map((e) => [e.action, e.target]).reverse(), [
      ['sandbox.create', sb.id],
      ['sandbox.exec', sb.id],
      ['file.write', `${sb.id}:/tmp/f`],
      ['process.signal', `${sb.id}#${pid}`],
      ['file.mkdir', `${sb.id}:/tmp/d`],
    ]);
    assert.deepEqual(
      (await entries(A, { target: `${sb.id}:/tmp/f` })).map((e) => e.action),
      ['file.write'],
    );
    const files = await entries(A, { action: 'file' });
    assert.ok(files.length >= 2 && files.every((e) => e.action.startsWith('file.')));
    const sandbox = await entries(A, { action: 'sandbox', target: sb.id });
    assert.deepEqual(sandbox.map((e) => e.action).reverse(), ['sandbox.create', 'sandbox.exec']);
    assert.deepEqual((await entries(A, { action: 'sandbox.exec', target: sb.id })).length, 1);
    assert.deepEqual((await entries(A, { action: 'sandbox.ex', target: sb.id })).length, 0, 'a prefix ends at a dot');
    const errors = await entries(A, { outcome: 'error' });
    assert.ok(errors.length > 0 && errors.every((e) => e.status >= 400 && e.error !== null));
    assert.deepEqual(
      (await entries(A, { outcome: 'not_found', target: sb.id })).map((e) => e.status),
      [404],
    );
    assert.deepEqual(
      (await entries(A, { outcome: 404, target: sb.id })).map((e) => e.action),
      ['process.signal'],
    );
    assert.ok((await entries(A, { outcome: 'ok' })).every((e) => e.status < 400));
    assert.ok((await entries(A, { key: R.id })).every((e) => e.keyId === R.id && e.role === 'read-only'));
    assert.equal((await entries(A, { since: new Date(Date.now() + 60_000).toISOString() })).length, 0);
    assert.equal((await entries(A, { until: '2000-01-01T00:00:00Z' })).length, 0);
    assert.equal((await entries(A, { since: '10m', target: sb.id })).length, 5, 'a duration back from now');
    assert.equal((await audit(A, { since: 'yesterday-ish' })).status, 400);
    assert.equal((await audit(A, { outcome: 'Not Valid' })).status, 400);
    await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`);
  });

  test('pagination: limit + cursor walks every entry once, newest first', async () => {
    const all = await entries(null);
    assert.ok(all.length > 10, `${all.length} entries`);
    const seen: number[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const page = await audit(null, { limit: 4, ...(cursor ? { cursor } : {}) });
      assert.equal(page.status, 200);
      assert.ok(page.body.entries.length <= 4);
      seen.push(...page.body.entries.map((e) => e.id));
      cursor = page.body.nextCursor;
      if (!cursor) break;
    }
    // Calls made meanwhile (none: the pages themselves are reads) would only add newer entries.
    assert.deepEqual(
      seen,
      all.map((e) => e.id),
    );
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1]! > seen[i]!, 'strictly newest first');
    assert.equal((await audit(null, { cursor: 'abc' })).status, 400);
  });

  test('export: JSON lines, each a full entry, oldest first, with the filters of the list', async () => {
    const listed = await entries(A);
    for (const path of ['/v1/audit/export', '/v1/audit?format=jsonl']) {
      const res = await fetch(`${server.url}${path}`, { headers: bearer(A) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
      const text = await res.text();
      assert.ok(text.endsWith('\n'));
      const lines = text.slice(0, -1).split('\n');
      const parsed = lines.map((line) => JSON.parse(line) as Entry);
      assert.deepEqual(parsed, [...listed].reverse(), path);
    }
    const execs = (await (await fetch(`${server.url}/v1/audit/export?action=sandbox.exec&limit=2`, { headers: bearer(A) })).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Entry);
    assert.equal(execs.length, 2);
    assert.ok(execs.every((e) => e.action === 'sandbox.exec'));
    assert.ok(execs[0]!.id < execs[1]!.id);
  });

  test('nothing secret is recorded: no bodies, environment values, file contents or keys', async () => {
    const SECRET = 'zq-secret-value-7Hk2';
    const sb = await make(A);
    const res = await as(A, 'POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'true', env: { TOKEN: `${SECRET}-env` } });
    assert.equal(res.status, 200);
    await as(A, 'PUT', `/v1/sandboxes/${sb.id}/files?path=/tmp/secret`, `${SECRET}-file`, { 'content-type': 'application/octet-stream' });
    const key = await newKey({ role: 'read-only', name: 'k-secret' }, A);
    await as(A, 'POST', '/v1/sandboxes', { ...SMALL, cpu: 999, env: { X: `${SECRET}-failed` } });
    await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`);
    await audit(A); // flushes
    const d = db();
    try {
      const rows = JSON.stringify(d.prepare('SELECT * FROM audit_log').all());
      assert.ok(!rows.includes(SECRET), 'no secret in the audit table');
      assert.ok(!rows.includes(key.key), 'no API key in the audit table');
      assert.ok(!rows.includes(A.key));
    } finally {
      d.close();
    }
  });

  test('retention: rows older than the retention are pruned (recent ones stay); the table refuses updates and other deletes', async () => {
    const d = db();
    try {
      const insert = d.prepare(
        `INSERT INTO audit_log (time, tenant, key_id, auth, role, action, target, route, status, error, duration_ms, client, request_id)
         VALUES (?, 'ta', 'k', 'key', 'member', ?, NULL, 'POST /v1/test', 200, NULL, 1, '127.0.0.1', ?)`,
      );
      const day = 86_400_000;
      insert.run(Date.now() - 3 * day, 'test.old', 'old-1');
      insert.run(Date.now() - 1.5 * day, 'test.old', 'old-2');
      insert.run(Date.now() - 0.5 * day, 'test.recent', 'recent-1');
      // Visible until the next pruning (every 300 ms in this server).
      const gone = await waitFor(async () => (await entries(null, { action: 'test.old' })).length === 0, 10_000, 100);
      assert.ok(gone, 'rows older than 1 day were pruned');
      assert.deepEqual(
        (await entries(null, { action: 'test' })).map((e) => e.requestId),
        ['recent-1'],
      );
      assert.throws(() => d.prepare(`UPDATE audit_log SET action = 'x' WHERE request_id = 'recent-1'`).run(), /append-only/);
      assert.throws(() => d.prepare(`DELETE FROM audit_log WHERE request_id = 'recent-1'`).run(), /retention/);
    } finally {
      d.close();
    }
  });

  test('the E2B planes are recorded: control calls under the key, data-plane calls under the sandbox token', async () => {
    // The E2B SDK runs commands with bash: the base template.
    const base = await as<Sb>(A, 'POST', '/v1/sandboxes', { ...SMALL, template: 'base', memoryMiB: 128 });
    assert.equal(base.status, 201, JSON.stringify(base.body));
    const S = base.body;
    const since = new Date().toISOString();
    const sbx = await E2bSandbox.connect(S.id, { apiKey: A.key, apiUrl: server.url, sandboxUrl: server.url });
    const run = await sbx.commands.run('echo e2b-out; echo e2b-err >&2');
    assert.equal(run.stdout, 'e2b-out\n');
    await sbx.files.write('/tmp/e2b.txt', 'e2b file');
    assert.equal(await sbx.files.read('/tmp/e2b.txt'), 'e2b file');
    await sbx.files.makeDir('/tmp/e2b-dir');
    await sbx.files.list('/tmp'); // a read: not recorded
    let screen = '';
    const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => void (screen += new TextDecoder().decode(d)) });
    await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('echo e2b-pty-text\n')); // keystrokes: part of the session
    assert.ok(await waitFor(() => screen.includes('e2b-pty-text'), 30_000));
    await sbx.pty.kill(pty.pid);
    const got = (await entries(A, { since, target: S.id })).reverse();
    assert.deepEqual(
      got.map((e) => [e.action, e.auth, e.keyId, e.target, e.status]),
      [
        ['sandbox.connect', 'key', A.id, S.id, 200],
        ['process.start', 'sandbox-token', `token:${S.id}`, S.id, 200],
        ['file.write', 'sandbox-token', `token:${S.id}`, `${S.id}:/tmp/e2b.txt`, 200],
        ['file.read', 'sandbox-token', `token:${S.id}`, `${S.id}:/tmp/e2b.txt`, 200],
        ['file.mkdir', 'sandbox-token', `token:${S.id}`, `${S.id}:/tmp/e2b-dir`, 200],
        ['pty.open', 'sandbox-token', `token:${S.id}`, S.id, 200],
        ['process.signal', 'sandbox-token', `token:${S.id}`, `${S.id}#${pty.pid}`, 200],
      ],
    );
    assert.ok(got.every((e) => e.tenant === 'ta' && e.requestId));
    assert.equal(got[1]!.route, 'POST /process.Process/Start');
    const out = await logs(A, S.id);
    assert.ok(out.body.entries.some((e) => e.stream === 'stdout' && e.text === 'e2b-out\n'));
    assert.ok(out.body.entries.some((e) => e.stream === 'stderr' && e.text === 'e2b-err\n'));
    assert.ok(!out.body.entries.some((e) => e.text.includes('e2b-pty-text')), 'PTY output is not kept');
    await as(A, 'DELETE', `/v1/sandboxes/${S.id}`);
  });
});

describe('request ids', () => {
  test('a sane X-Request-Id is echoed and recorded, an insane one replaced; the server log lines of the request carry it', async () => {
    const sb = await make(A);
    const mine = await as(A, 'POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'true' }, { 'x-request-id': 'audit-test-exec-1' });
    assert.equal(mine.headers.get('x-request-id'), 'audit-test-exec-1');
    const generated = await as(A, 'POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'true' });
    const id = generated.headers.get('x-request-id') ?? '';
    assert.match(id, /^req_[A-Za-z0-9]{16}$/);
    const insane = await as(A, 'POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'true' }, { 'x-request-id': 'has space\tand "quotes"' });
    assert.match(insane.headers.get('x-request-id') ?? '', /^req_/);
    assert.match((await as(A, 'GET', '/v1/sandboxes/nope')).headers.get('x-request-id') ?? '', /^req_/, 'every answer has one');
    assert.equal((await fetch(`${server.url}/v1/sandboxes`)).headers.get('x-request-id')?.startsWith('req_'), true, 'a 401 too');
    const execs = await entries(A, { action: 'sandbox.exec', target: sb.id });
    assert.deepEqual(
      execs
        .map((e) => e.requestId)
        .reverse()
        .slice(0, 2),
      ['audit-test-exec-1', id],
    );

    // A WebSocket's 101 carries it too, and so does its pty.open entry.
    const upgraded = await new Promise<string | undefined>((resolve, reject) => {
      const ws = new WebSocket(`${server.url.replace('http:', 'ws:')}/v1/sandboxes/${sb.id}/pty?cmd=true`, {
        headers: { ...bearer(A), 'x-request-id': 'audit-test-pty-1' },
      });
      ws.once('upgrade', (res) => {
        resolve(res.headers['x-request-id'] as string | undefined);
        ws.close();
      });
      ws.once('error', reject);
    });
    assert.equal(upgraded, 'audit-test-pty-1');
    assert.deepEqual(
      (await entries(A, { action: 'pty.open', target: sb.id })).map((e) => e.requestId),
      ['audit-test-pty-1'],
    );

    assert.equal((await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`, undefined, { 'x-request-id': 'audit-test-delete-1' })).status, 204);
    const line = await waitFor(
      () =>
        server
          .output()
          .split('\n')
          .find((l) => l.includes('"sandbox deleted"') && l.includes(sb.id)),
      5000,
    );
    assert.ok(line, 'the service logged the delete');
    assert.equal((JSON.parse(line) as { requestId?: string }).requestId, 'audit-test-delete-1');
  });
});

describe('sandbox logs', () => {
  test('keep the output of execs and of background processes, with pid, stream and time', async () => {
    const sb = await make(A);
    // (Pauses between the streams: the agent reads stdout and stderr separately.)
    const ran = await exec(A, sb.id, 'echo out-1; sleep 0.2; echo err-1 >&2; sleep 0.2; printf no-newline');
    const bg = await as<{ pid: number }>(A, 'POST', `/v1/sandboxes/${sb.id}/processes`, {
      cmd: 'for i in 1 2 3; do echo bg-$i; sleep 0.1; done',
    });
    assert.equal(bg.status, 201);
    const all = await waitFor(async () => {
      const res = await logs(A, sb.id);
      return res.body.entries.some((e) => e.text === 'bg-3\n') ? res.body : null;
    }, 30_000);
    assert.ok(all, 'the background process output arrived');
    const shape = all.entries.map((e) => [e.pid, e.stream, e.text]);
    assert.deepEqual(shape, [
      [ran.pid, 'stdout', 'out-1\n'],
      [ran.pid, 'stderr', 'err-1\n'],
      [ran.pid, 'stdout', 'no-newline'],
      [bg.body.pid, 'stdout', 'bg-1\n'],
      [bg.body.pid, 'stdout', 'bg-2\n'],
      [bg.body.pid, 'stdout', 'bg-3\n'],
    ]);
    assert.deepEqual(all.dropped, { bytes: 0, entries: 0 });
    for (let i = 1; i < all.entries.length; i++) assert.ok(all.entries[i - 1]!.seq < all.entries[i]!.seq);
    assert.ok(all.entries.every((e) => Math.abs(Date.parse(e.time) - Date.now()) < 60_000));
    // A cursor: what came after an entry; limit: the newest ones.
    const after = await logs(A, sb.id, `?after=${all.entries[2]!.seq}&limit=2`);
    assert.deepEqual(
      after.body.entries.map((e) => e.text),
      ['bg-1\n', 'bg-2\n'],
    );
    assert.deepEqual(
      (await logs(A, sb.id, '?limit=1')).body.entries.map((e) => e.text),
      ['bg-3\n'],
    );
    assert.equal((await logs(R, sb.id)).status, 200, 'read-only keys read logs');
    await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`);
  });

  test('a streamed process is still logged after its client detaches; PTY output is not kept', async () => {
    const sb = await make(A);
    const controller = new AbortController();
    const stream = await ndjson(
      `/v1/sandboxes/${sb.id}/processes`,
      A,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify({ cmd: 'echo first; sleep 0.5; echo after-detach' }),
      },
      controller.signal,
    );
    assert.equal((await stream.next())?.type, 'start');
    controller.abort();
    await stream.cancel();
    const texts = await waitFor(async () => {
      const t = (await logs(A, sb.id)).body.entries.map((e) => e.text);
      return t.includes('after-detach\n') ? t : null;
    }, 30_000);
    assert.deepEqual(texts, ['first\n', 'after-detach\n']);

    const pty = await openWs(`/v1/sandboxes/${sb.id}/pty?cmd=${encodeURIComponent('echo pty-only-text; sleep 5')}`, A);
    assert.equal(pty.status, 101);
    let seen = '';
    pty.ws!.on('message', (data: Buffer, binary: boolean) => {
      if (binary) seen += data.toString();
    });
    assert.ok(await waitFor(() => seen.includes('pty-only-text'), 30_000), 'the terminal showed it');
    pty.ws!.close();
    await sleep(300);
    assert.ok(!(await logs(A, sb.id)).body.entries.some((e) => e.text.includes('pty-only-text')));
    await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`);
  });

  test('the cap drops the oldest output and says how much', async () => {
    const sb = await make(A);
    // 6000 lines of 5 bytes: 30 000 bytes, about twice the 16 KiB cap.
    await exec(A, sb.id, 'seq -w 1 6000');
    const res = await logs(A, sb.id, '?limit=10000');
    assert.equal(res.status, 200);
    const kept = res.body.entries;
    const text = kept.map((e) => e.text).join('');
    const bytes = Buffer.byteLength(text);
    assert.ok(bytes <= CAP, `${bytes} bytes kept`);
    // Whole entries go (at most 1 KiB each at this cap).
    assert.ok(bytes > CAP - 1024, `${bytes} bytes kept`);
    const lines = text.split('\n').slice(0, -1);
    assert.equal(lines[lines.length - 1], '6000', 'the newest output is kept');
    assert.ok(Number(lines[0]) > 1, 'the oldest is gone');
    assert.deepEqual(
      lines,
      Array.from({ length: lines.length }, (_, i) => String(6001 - lines.length + i).padStart(4, '0')),
      'a contiguous tail of whole lines',
    );
    assert.ok(kept.length < lines.length, 'lines that came together are one entry');
    assert.equal(res.body.dropped.bytes + bytes, 30_000);
    assert.ok(res.body.dropped.entries > 0);
    // Followers see the marker first.
    const controller = new AbortController();
    const follow = await ndjson(`/v1/sandboxes/${sb.id}/logs?follow=1&limit=1`, A, {}, controller.signal);
    assert.deepEqual(await follow.next(), { type: 'dropped', bytes: res.body.dropped.bytes, entries: res.body.dropped.entries });
    assert.match(String((await follow.next())?.text), /6000\n$/);
    controller.abort();
    await follow.cancel();
    await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`);
  });

  test('follow streams new lines as they come; the log goes with the sandbox; another tenant gets 404', async () => {
    const sb = await make(A);
    await exec(A, sb.id, 'echo before');
    assert.equal((await logs(B, sb.id)).status, 404);
    const other = await fetch(`${server.url}/v1/sandboxes/${sb.id}/logs?follow=1`, { headers: bearer(B) });
    assert.equal(other.status, 404);
    await other.text();

    const follow = await ndjson(`/v1/sandboxes/${sb.id}/logs?follow=1`, A);
    assert.equal(follow.res.status, 200);
    assert.equal(follow.res.headers.get('content-type'), 'application/x-ndjson');
    assert.deepEqual((({ type, stream, text }) => ({ type, stream, text }))((await follow.next()) as Record<string, unknown>), {
      type: 'log',
      stream: 'stdout',
      text: 'before\n',
    });
    await exec(A, sb.id, 'echo live-1; sleep 0.2; echo live-2 >&2');
    assert.equal((await follow.next())?.text, 'live-1\n');
    assert.deepEqual((({ stream, text }) => ({ stream, text }))((await follow.next()) as Record<string, unknown>), {
      stream: 'stderr',
      text: 'live-2\n',
    });
    const bg = await as<{ pid: number }>(A, 'POST', `/v1/sandboxes/${sb.id}/processes`, { cmd: 'sleep 0.3; echo later' });
    const later = await follow.next();
    assert.deepEqual([later?.text, later?.pid], ['later\n', bg.body.pid]);

    assert.equal((await as(A, 'DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
    assert.deepEqual(await follow.next(), { type: 'end', reason: 'the sandbox was deleted' });
    assert.equal(await follow.next(), null, 'the stream ended');
    assert.equal((await logs(A, sb.id)).status, 404);
    const d = db();
    try {
      // Removed right after the delete answered (in the background).
      const count = (): number => (d.prepare('SELECT COUNT(*) AS n FROM sandbox_logs WHERE sandbox_id = ?').get(sb.id) as { n: number }).n;
      assert.ok(await waitFor(() => count() === 0, 5000), 'no rows left in the store');
    } finally {
      d.close();
    }
  });
});
