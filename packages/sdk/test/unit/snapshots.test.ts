import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, beforeEach, test } from 'node:test';
import { ConflictError, Hutch, Sandbox, type SandboxInfo, type SnapshotInfo } from '../../src/index.js';

// The wire mapping of snapshots, fork and gc against a stub that records each request and answers
// from a table (the real server is exercised by test/e2e/snapshots.test.ts).

interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

let stub: Server;
let hutch: Hutch;
let seen: Seen[] = [];
let answers: Record<string, { status: number; body?: unknown }> = {};

const SANDBOX_ID = 'k3j5h2l9q8w7e6r5t4y3';
const SNAPSHOT: SnapshotInfo = {
  id: 'snap-0123456789abcdef',
  tenant: 'default',
  sourceSandbox: SANDBOX_ID,
  template: 'minimal',
  layers: ['a'.repeat(64)],
  isolation: 'container',
  memory: false,
  sizeBytes: 12,
  metadata: { step: '1' },
  createdAt: '2025-01-01T00:00:00.000Z',
  reused: false,
  durationMs: 30,
};

/** The fields these tests look at; the SDK passes the rest through untouched. */
function sandboxInfo(id: string, template = 'minimal'): SandboxInfo {
  return { id, state: 'running', template, metadata: {} } as unknown as SandboxInfo;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

before(async () => {
  stub = createServer((req, res) => {
    void readBody(req).then((body) => {
      seen.push({ method: req.method!, url: req.url!, contentType: req.headers['content-type'], body });
      const answer = answers[`${req.method} ${req.url}`] ?? { status: 404, body: { error: { code: 'not_found', message: 'no route' } } };
      res.statusCode = answer.status;
      if (answer.body === undefined) return res.end();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
  const addr = stub.address();
  hutch = new Hutch({ url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, apiKey: 'k' });
});
after(() => stub.close());
beforeEach(() => {
  seen = [];
  answers = {};
});

/** The sandbox to snapshot, fetched through the public API (the GET is dropped from `seen`). */
async function source(): Promise<Sandbox> {
  answers[`GET /v1/sandboxes/${SANDBOX_ID}`] = { status: 200, body: sandboxInfo(SANDBOX_ID) };
  const sandbox = await hutch.sandboxes.get(SANDBOX_ID);
  seen = [];
  return sandbox;
}

test('sandbox.snapshot() posts the metadata (an empty body without) and returns the snapshot', async () => {
  answers[`POST /v1/sandboxes/${SANDBOX_ID}/snapshots`] = { status: 201, body: SNAPSHOT };
  const sandbox = await source();
  assert.deepEqual(await sandbox.snapshot({ metadata: { step: '1' } }), SNAPSHOT);
  assert.deepEqual(await sandbox.snapshot(), SNAPSHOT);
  assert.deepEqual(
    seen.map((s) => [s.method, s.url, s.contentType, s.body]),
    [
      ['POST', `/v1/sandboxes/${SANDBOX_ID}/snapshots`, 'application/json', '{"metadata":{"step":"1"}}'],
      ['POST', `/v1/sandboxes/${SANDBOX_ID}/snapshots`, 'application/json', '{}'],
    ],
  );
});

test('sandbox.fork() sends count and metadata and wraps the new sandboxes as Sandbox objects', async () => {
  const ids = ['aaaaaaaaaaaaaaaaaaa1', 'aaaaaaaaaaaaaaaaaaa2'];
  answers[`POST /v1/sandboxes/${SANDBOX_ID}/fork`] = {
    status: 201,
    body: { snapshot: SNAPSHOT, sandboxes: ids.map((id) => sandboxInfo(id, SNAPSHOT.id)) },
  };
  const sandbox = await source();
  const forked = await sandbox.fork({ count: 2, metadata: { branch: 'b' } });
  assert.deepEqual(forked.snapshot, SNAPSHOT);
  assert.equal(forked.sandboxes.length, 2);
  for (const [i, sb] of forked.sandboxes.entries()) {
    assert.ok(sb instanceof Sandbox);
    assert.equal(sb.id, ids[i]);
    assert.equal(sb.info.template, SNAPSHOT.id);
  }
  assert.equal(seen[0]!.body, '{"count":2,"metadata":{"branch":"b"}}');
});

test('hutch.snapshots: list, get, delete (true, false on 404, ConflictError on 409)', async () => {
  answers['GET /v1/snapshots'] = { status: 200, body: { snapshots: [SNAPSHOT] } };
  answers[`GET /v1/snapshots/${SNAPSHOT.id}`] = { status: 200, body: SNAPSHOT };
  answers[`DELETE /v1/snapshots/${SNAPSHOT.id}`] = { status: 204 };
  answers['DELETE /v1/snapshots/snap-inuse0000000000'] = {
    status: 409,
    body: { error: { code: 'conflict', message: `snapshot snap-inuse0000000000 is the template of sandbox ${SANDBOX_ID}` } },
  };
  assert.deepEqual(await hutch.snapshots.list(), [SNAPSHOT]);
  assert.deepEqual(await hutch.snapshots.get(SNAPSHOT.id), SNAPSHOT);
  assert.equal(await hutch.snapshots.delete(SNAPSHOT.id), true);
  assert.equal(await hutch.snapshots.delete('snap-gone000000000000'), false);
  await assert.rejects(hutch.snapshots.delete('snap-inuse0000000000'), (err: unknown) => {
    assert.ok(err instanceof ConflictError);
    assert.match(err.message, new RegExp(SANDBOX_ID));
    return true;
  });
  assert.equal(await hutch.snapshots.delete('a/b?c'), false);
  assert.equal(seen.at(-1)!.url, '/v1/snapshots/a%2Fb%3Fc', 'ids are path-encoded');
});

test('hutch.gc() always says whether it is a dry run (default: not)', async () => {
  const result = { layers: ['b'.repeat(64)], objects: 3, bytes: 300, staging: [], dryRun: true };
  answers['POST /v1/gc?dryRun=true'] = { status: 200, body: result };
  answers['POST /v1/gc?dryRun=false'] = { status: 200, body: { ...result, dryRun: false } };
  assert.deepEqual(await hutch.gc({ dryRun: true }), result);
  assert.equal((await hutch.gc()).dryRun, false);
  assert.deepEqual(
    seen.map((s) => `${s.method} ${s.url}`),
    ['POST /v1/gc?dryRun=true', 'POST /v1/gc?dryRun=false'],
  );
});
