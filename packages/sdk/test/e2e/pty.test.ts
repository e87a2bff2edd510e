import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PtyHandle, Sandbox } from '../../src/index.js';
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

/** Collects terminal output and resolves when it matches. */
function screen(): { onData: (b: Uint8Array) => void; text: () => string; waitFor: (re: RegExp, ms?: number) => Promise<void> } {
  let text = '';
  let waiters: Array<() => void> = [];
  return {
    onData: (b) => {
      text += Buffer.from(b).toString('utf8');
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
    },
    text: () => text,
    waitFor: (re, ms = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; screen so far: ${JSON.stringify(text)}`)), ms);
        const check = (): void => {
          if (re.test(text)) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      }),
  };
}

test('an interactive shell computes echo $((6*7)) = 42 and exits 0', async () => {
  const s = screen();
  const pty: PtyHandle = await sb.pty.create({ cols: 80, rows: 24, onData: s.onData });
  assert.ok(pty.pid > 0);
  pty.write('echo $((6*7))\n');
  await s.waitFor(/(^|\n)42\r?\n/);
  pty.write('exit\n');
  assert.equal((await pty.wait()).exitCode, 0);
});

test('it is a real terminal, and resize reaches it', async () => {
  const s = screen();
  const pty = await sb.pty.create({ cols: 80, rows: 24, onData: s.onData });
  pty.write('tty; stty size\n');
  await s.waitFor(/\/dev\/pts\/\d+[\s\S]*24 80/);
  pty.resize(120, 40);
  pty.write('stty size\n');
  await s.waitFor(/40 120/);
  pty.write(new TextEncoder().encode('exit 3\n'));
  assert.equal((await pty.wait()).exitCode, 3);
});

test('a given command runs in the terminal instead of the shell', async () => {
  const s = screen();
  const pty = await sb.pty.create({ cmd: 'tty', onData: s.onData });
  const { exitCode } = await pty.wait();
  assert.equal(exitCode, 0);
  assert.match(s.text(), /\/dev\/pts\/\d+/);
});

test('kill ends the terminal process', async () => {
  const s = screen();
  const pty = await sb.pty.create({ onData: s.onData });
  await pty.kill();
  const exit = await pty.wait();
  assert.notEqual(exit.exitCode, 0);
});
