import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { HutchError } from '../src/core/errors.js';
import { AgentClient } from '../src/runtime/agent/agent-client.js';
import { probe } from '../src/runtime/kubernetes/agent-access.js';
import { freePort, startAgent } from './kubernetes-agent-sandbox-fixtures.js';

// The agent client over a stream endpoint (`{open}`: a connection opened per request, as the
// Kubernetes provider's port-forward path uses), against the REAL hutch-agent listening on
// loopback TCP with a token. open() here is a plain TCP connect, so what is tested is the client's
// side: every call kind works over per-request streams, the token still travels and is checked,
// each stream is closed after its request, and a failed open is reported as unreachable.

const TOKEN = 'test-token-0123456789';
let agent: { port: number; stop: () => Promise<void> };
let port: number;

before(async () => {
  agent = await startAgent(TOKEN);
  port = agent.port;
});

after(() => agent.stop());

/** A stream endpoint that counts the streams it opened and those still open. */
function counted(token = TOKEN): { client: AgentClient; opened: () => number; open: () => number } {
  const sockets: Socket[] = [];
  const client = new AgentClient({
    open: () =>
      new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
        sockets.push(s);
      }),
    token,
  });
  return { client, opened: () => sockets.length, open: () => sockets.filter((s) => !s.destroyed).length };
}

async function settle(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !check()) await new Promise((r) => setTimeout(r, 20));
}

test('health, unary and streaming calls over a stream per request, each closed after it', async () => {
  const { client, opened, open } = counted();
  assert.equal(await client.health(), true);
  const stat = await client.unary<{ entry?: { name?: string; type?: string } }>('filesystem.Filesystem/Stat', { path: '/' });
  assert.equal(stat.entry?.type, 'FILE_TYPE_DIRECTORY');
  let out = '';
  let exitCode: number | undefined;
  for await (const m of client.stream<{ event?: { data?: { stdout?: string }; end?: { exitCode?: number } } }>('process.Process/Start', {
    process: { cmd: '/bin/sh', args: ['-c', 'echo over-a-stream'], envs: {} },
    stdin: false,
  })) {
    if (m.event?.data?.stdout) out += Buffer.from(m.event.data.stdout, 'base64').toString();
    if (m.event?.end) exitCode = m.event.end.exitCode ?? 0;
  }
  assert.equal(out, 'over-a-stream\n');
  assert.equal(exitCode, 0);
  assert.equal(opened(), 3, 'one stream per request');
  await settle(() => open() === 0);
  assert.equal(open(), 0, 'no stream outlives its request');
  client.close();
});

test('the token travels over the stream: a wrong one is refused', async () => {
  const { client } = counted('wrong-token');
  await assert.rejects(client.unary('filesystem.Filesystem/Stat', { path: '/' }), (e: unknown) => e instanceof HutchError);
  client.close();
});

test('a tunnel through the agent rides a stream too', async () => {
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const { client } = counted();
  const tunnel = await client.openTunnel((echo.address() as AddressInfo).port);
  const back = new Promise<string>((r) => tunnel.once('data', (d: Buffer) => r(d.toString())));
  tunnel.write('ping');
  assert.equal(await back, 'ping');
  tunnel.destroy();
  await new Promise((r) => echo.close(r));
  client.close();
});

test('a stream that cannot be opened: unavailable, and the owner is told', async () => {
  let told: string | undefined;
  const client = new AgentClient(
    { open: () => Promise.reject(Object.assign(new Error('port-forward: connection refused'), { code: 'ECONNREFUSED' })), token: TOKEN },
    (err) => (told = err.code),
  );
  await assert.rejects(
    client.unary('filesystem.Filesystem/Stat', { path: '/' }),
    (e: unknown) => e instanceof HutchError && e.kind === 'unavailable',
  );
  assert.equal(told, 'ECONNREFUSED');
  assert.equal(await client.health(), false);
  client.close();
});

test('probe (auto mode): a listener and a refusal both mean routable', async () => {
  assert.deepEqual(await probe('127.0.0.1', port, 2000), { routable: true, outcome: 'connected' });
  const closed = await freePort();
  assert.deepEqual(await probe('127.0.0.1', closed, 2000), { routable: true, outcome: 'ECONNREFUSED' });
});
