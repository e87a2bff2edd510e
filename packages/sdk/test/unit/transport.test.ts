import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { ConnectionError, Hutch, TimeoutError } from '../../src/index.js';

// Transport failures that need no Hutch server: nothing listening, and a peer that never answers.

let silent: Server;
let silentUrl: string;
const sockets: Socket[] = [];

before(async () => {
  silent = createServer((s) => sockets.push(s)); // accepts, never responds
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const addr = silent.address();
  silentUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
after(() => {
  for (const s of sockets) s.destroy();
  silent.close();
});

async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

test('nothing listening → ConnectionError naming the URL and how to start a server', async () => {
  const url = await closedPortUrl();
  const hutch = new Hutch({ url, apiKey: 'k' });
  await assert.rejects(hutch.info(), (err: unknown) => {
    assert.ok(err instanceof ConnectionError);
    assert.ok(err.message.includes(url), err.message);
    assert.match(err.message, /hutch server/);
    return true;
  });
});

test('no answer within timeoutMs → TimeoutError (per call beats the client default)', async () => {
  const hutch = new Hutch({ url: silentUrl, apiKey: 'k', timeoutMs: 60_000 });
  const started = Date.now();
  await assert.rejects(hutch.sandboxes.list({ timeoutMs: 200 }), TimeoutError);
  assert.ok(Date.now() - started < 5000);
  const quick = new Hutch({ url: silentUrl, apiKey: 'k', timeoutMs: 150 });
  await assert.rejects(quick.templates.list(), TimeoutError);
});

test('an aborted signal rejects with its reason', async () => {
  const hutch = new Hutch({ url: silentUrl, apiKey: 'k' });
  const ac = new AbortController();
  const reason = new Error('changed my mind');
  setTimeout(() => ac.abort(reason), 50);
  await assert.rejects(hutch.info({ signal: ac.signal }), (err) => err === reason);
  await assert.rejects(hutch.info({ signal: AbortSignal.abort(reason) }), (err) => err === reason);
});
