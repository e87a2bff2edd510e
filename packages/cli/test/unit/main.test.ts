import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// The built binary's exit codes and error format, for cases that need no server.
const main = join(dirname(fileURLToPath(import.meta.url)), '../../dist/main.js');
const skip = existsSync(main) ? false : 'build the CLI first (npx tsc -b packages/cli)';

function hutch(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, HUTCH_DEBUG: '', ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('usage errors exit 2 with one "hutch:" line and no stack', { skip }, () => {
  for (const args of [
    ['exec', 'abc', 'ls', '-la'],
    ['bogus'],
    ['create', '--cpu', 'x'],
    [],
    ['create', '--volume', 'nopath'],
    ['create', '--on-timeout', 'later'],
    ['volume', 'create', 'BAD'],
    ['pause'],
    ['snapshot', 'ls-all'],
    ['fork', 'abc', '--count', '100'],
    ['gc', '--force'],
  ]) {
    const r = hutch(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /^hutch: |\nhutch: /);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('--help exits 0 on stdout; --version prints the version', { skip }, () => {
  const help = hutch(['exec', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /hutch exec \$id -- ls -la/);
  assert.equal(hutch(['--version']).stdout.trim(), '0.1.0');
});

test('an unreachable server exits 1 and says how to start one', { skip }, async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  const r = hutch(['ls'], { HUTCH_URL: `http://127.0.0.1:${port}`, HUTCH_API_KEY: 'k' });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^hutch: cannot reach the Hutch server at http://127\\.0\\.0\\.1:${port}`));
  assert.match(r.stderr, /hutch server/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  const debug = hutch(['--url', `http://127.0.0.1:${port}`, 'info'], { HUTCH_DEBUG: '1' });
  assert.match(debug.stderr, /\n\s+at /, 'HUTCH_DEBUG=1 shows the stack');
});
