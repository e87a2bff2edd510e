import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Sandbox } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
let sb: Sandbox;
before(async () => {
  server = await startServer();
  sb = await server.client().sandboxes.create({ template: 'minimal' });
});
after(async () => {
  await sb?.kill();
  await server?.stop();
});

test('output streams live, in order, separated by stream', async () => {
  const events: Array<{ stream: 'out' | 'err'; text: string; at: number }> = [];
  const started = Date.now();
  const handle = await sb.processes.start('for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done', {
    onStdout: (text) => events.push({ stream: 'out', text, at: Date.now() }),
    onStderr: (text) => events.push({ stream: 'err', text, at: Date.now() }),
  });
  assert.ok(handle.pid > 0);
  const result = await handle.wait();
  const ended = Date.now();
  assert.equal(result.exitCode, 0);
  assert.equal(result.signal, null);
  assert.equal(result.stdout, 'out1\nout2\nout3\n');
  assert.equal(result.stderr, 'err1\nerr2\nerr3\n');
  const joined = (s: 'out' | 'err'): string =>
    events
      .filter((e) => e.stream === s)
      .map((e) => e.text)
      .join('');
  assert.equal(joined('out'), result.stdout);
  assert.equal(joined('err'), result.stderr);
  // Live, not buffered until exit: out1 arrived well before the process ended (~0.9 s run).
  const first = events.find((e) => e.text.includes('out1'))!;
  assert.ok(ended - first.at > 400, `out1 arrived ${ended - first.at} ms before the end`);
  assert.ok(first.at - started < ended - started);
  // Order across iterations: everything of round 1 before anything of round 3.
  const idx = (needle: string): number => events.findIndex((e) => e.text.includes(needle));
  assert.ok(idx('out1') < idx('out3') && idx('err1') < idx('err3') && idx('err1') < idx('out3'));
});

test('exit codes and raw bytes', async () => {
  assert.equal((await (await sb.processes.start('exit 7')).wait()).exitCode, 7);
  const bytes: number[] = [];
  const h = await sb.processes.start("printf '\\377\\000\\001'", { onStdoutBytes: (b) => bytes.push(...b) });
  await h.wait();
  assert.deepEqual(bytes, [255, 0, 1]);
});

test('a UTF-8 character split across two writes reaches onStdout whole', async () => {
  const texts: string[] = [];
  const h = await sb.processes.start("printf '\\342\\202'; sleep 0.3; printf '\\254\\n'", { onStdout: (t) => texts.push(t) });
  const r = await h.wait();
  assert.equal(texts.join(''), '€\n');
  assert.equal(r.stdout, '€\n');
});

test('stdin is echoed back through cat', async () => {
  const h = await sb.processes.start('cat', { stdin: true });
  await h.sendStdin('hello ');
  await h.sendStdin(new TextEncoder().encode('wörld\n'));
  await h.sendStdin(Uint8Array.of(0, 255));
  await h.closeStdin();
  const r = await h.wait();
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, 'hello wörld\n\u0000\uFFFD');
});

test('list shows running processes with their tag; kill by handle and by tag', async () => {
  const a = await sb.processes.start(['sleep', '60'], { tag: 'sleeper-a' });
  const b = await sb.processes.start(['sleep', '60'], { tag: 'sleeper-b' });
  const listed = await sb.processes.list();
  assert.ok(listed.some((p) => p.pid === a.pid && p.tag === 'sleeper-a'));
  assert.ok(listed.some((p) => p.pid === b.pid && p.tag === 'sleeper-b'));

  await a.kill();
  const ra = await a.wait();
  assert.equal(ra.signal, 'SIGKILL');
  assert.equal(ra.exitCode, -1);

  await sb.processes.kill('tag:sleeper-b', 'SIGTERM');
  const rb = await b.wait();
  assert.equal(rb.signal, 'SIGTERM');

  const after = await sb.processes.list();
  assert.ok(!after.some((p) => p.pid === a.pid || p.pid === b.pid));
});

test('disconnect keeps the process running; connect re-attaches; wait reports the exit', async () => {
  const h = await sb.processes.start('sleep 1; echo later; sleep 0.5; exit 4');
  h.disconnect();
  assert.ok(
    (await sb.processes.list()).some((p) => p.pid === h.pid),
    'still running after disconnect',
  );
  let seen = '';
  const attached = await sb.processes.connect(h.pid, { onStdout: (t) => (seen += t) });
  const r = await attached.wait();
  assert.equal(r.exitCode, 4);
  assert.equal(seen, 'later\n');
  // The disconnected handle asks the server for the exit status.
  assert.equal((await h.wait()).exitCode, 4);
  assert.equal((await sb.processes.wait(h.pid)).exitCode, 4);
});

test('the process time limit kills it and says timedOut', async () => {
  const started = Date.now();
  const r = await (await sb.processes.start('sleep 30', { timeoutMs: 500 })).wait();
  assert.equal(r.timedOut, true);
  assert.ok(Date.now() - started < 15_000);
});

test('cwd, env and user apply to streamed processes', async () => {
  const r = await (await sb.processes.start('echo $X $(pwd) $(id -u)', { cwd: '/tmp', env: { X: 'x1' }, user: 'root' })).wait();
  assert.equal(r.stdout, 'x1 /tmp 0\n');
});
