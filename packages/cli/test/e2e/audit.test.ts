import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { CLI_MAIN, startServer, type TestServer } from '../../../sdk/test/server.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Run>; stdout: () => string } {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], { env: server.env() });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: out, stderr: err }));
  });
  child.stdin!.end();
  return { child, done, stdout: () => out };
}

const hutch = (args: string[]): Promise<Run> => start(args).done;

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} failed (${r.code}): ${r.stderr}`);
  return r;
}

describe('hutch audit and hutch logs', () => {
  test('audit: table, --json with filters, --export as JSON lines', async () => {
    const id = ok(await hutch(['create', '--template', 'minimal']), 'create').stdout.trim();
    ok(await hutch(['exec', '--no-stdin', id, '--', 'echo audited']), 'exec');
    ok(await hutch(['rm', id]), 'rm');
    const table = ok(await hutch(['audit', '--target', id]), 'audit').stdout;
    assert.match(table, /^TIME\s+TENANT\s+KEY\s+ACTION\s+TARGET\s+STATUS/);
    assert.match(table, /sandbox\.delete\s+\S+\s+204/);
    const page = JSON.parse(ok(await hutch(['audit', '--target', id, '--json']), 'audit --json').stdout) as {
      entries: Array<{ action: string; target: string; status: number }>;
      nextCursor: string | null;
    };
    assert.deepEqual(
      page.entries.map((e) => e.action),
      ['sandbox.delete', 'process.start', 'sandbox.create'],
      'newest first (exec streams: a process start)',
    );
    assert.equal(page.nextCursor, null);
    const limited = ok(await hutch(['audit', '--limit', '1']), 'audit --limit');
    assert.match(limited.stderr, /more: hutch audit --cursor \d+/);
    const exported = ok(await hutch(['audit', '--target', id, '--export']), 'audit --export').stdout;
    const lines = exported
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string });
    assert.deepEqual(
      lines.map((e) => e.action),
      ['sandbox.create', 'process.start', 'sandbox.delete'],
      'oldest first',
    );
    const bad = await hutch(['audit', '--since', 'whenever']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /since/);
  });

  test('logs: stdout and stderr as they came, --json, -t, -f follows new output', async () => {
    const id = ok(await hutch(['create', '--template', 'minimal']), 'create').stdout.trim();
    try {
      ok(await hutch(['exec', id, '--', 'echo to-out; sleep 0.2; echo to-err >&2']), 'exec');
      const plain = ok(await hutch(['logs', id]), 'logs');
      assert.equal(plain.stdout, 'to-out\n');
      assert.equal(plain.stderr, 'to-err\n');
      const entries = ok(await hutch(['logs', id, '--json']), 'logs --json')
        .stdout.trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { stream: string; text: string; seq: number });
      assert.deepEqual(
        entries.map((e) => [e.stream, e.text]),
        [
          ['stdout', 'to-out\n'],
          ['stderr', 'to-err\n'],
        ],
      );
      assert.match(ok(await hutch(['logs', id, '-t']), 'logs -t').stdout, /^\d{4}-\d\d-\d\dT\S+ \[\d+\] stdout: to-out\n$/);
      assert.equal(ok(await hutch(['logs', id, '--after', String(entries[0]!.seq)]), 'logs --after').stderr, 'to-err\n');

      const follow = start(['logs', '-f', id]);
      for (let i = 0; i < 100 && !follow.stdout().includes('to-out'); i++) await new Promise((r) => setTimeout(r, 50));
      ok(await hutch(['exec', id, '--', 'echo followed']), 'exec');
      for (let i = 0; i < 100 && !follow.stdout().includes('followed'); i++) await new Promise((r) => setTimeout(r, 50));
      ok(await hutch(['rm', id]), 'rm');
      const r = await follow.done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'to-out\nfollowed\n');
      assert.match(r.stderr, /to-err\n[\s\S]*the sandbox was deleted/);
    } finally {
      await hutch(['rm', id]);
    }
    const gone = await hutch(['logs', id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /not found/);
  });
});
