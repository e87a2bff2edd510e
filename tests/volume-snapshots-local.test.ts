import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';

/** Volume snapshots exist on the kubernetes provider only; the local provider says so (422) and keeps deleting volumes. */
let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test('on the local provider volume snapshots are a 422 naming the provider; volumes delete as before', async () => {
  assert.equal((await server.api('POST', '/v1/volumes', { name: 'snapless', sizeMiB: 64 })).status, 201);
  for (const [method, path, body] of [
    ['POST', '/v1/volumes/snapless/snapshots', { name: 'first' }],
    ['GET', '/v1/volumes/snapless/snapshots', undefined],
    ['GET', '/v1/volumes/snapless/snapshots/first', undefined],
    ['DELETE', '/v1/volumes/snapless/snapshots/first', undefined],
  ] as const) {
    const res = await server.api<{ error: { code: string; message: string } }>(method, path, body);
    assert.equal(res.status, 422, `${method} ${path}`);
    assert.equal(res.body.error.code, 'tier_unavailable');
    assert.equal(res.body.error.message, 'volume snapshots are unsupported on the local provider (they need the kubernetes provider)');
  }
  const bad = await server.api<{ error: { message: string } }>('POST', '/v1/volumes/snapless/snapshots', { name: 'Bad Name' });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /name/);
  assert.equal((await server.api('DELETE', '/v1/volumes/snapless')).status, 204);
});
