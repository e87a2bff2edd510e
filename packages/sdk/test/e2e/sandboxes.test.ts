import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AuthenticationError, ConnectionError, HutchError, InvalidArgumentError, NotFoundError, type Sandbox } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

describe('sandbox lifecycle', () => {
  test('create, get, list with filters, refresh, timeout, kill (idempotent)', async () => {
    const hutch = server.client();
    const label = randomUUID();
    const sb = await hutch.sandboxes.create({
      template: 'minimal',
      cpu: 0.5,
      memoryMiB: 128,
      timeoutSeconds: 120,
      env: { GREETING: 'hello' },
      metadata: { suite: label },
    });
    try {
      assert.match(sb.id, /^[a-z0-9]{20}$/);
      assert.equal(sb.info.state, 'running');
      assert.equal(sb.info.template, 'minimal');
      assert.equal(sb.info.cpu, 0.5);
      assert.equal(sb.info.memoryMiB, 128);
      assert.deepEqual(sb.info.metadata, { suite: label });
      assert.deepEqual(sb.info.env, { GREETING: 'hello' });

      const again = await hutch.sandboxes.get(sb.id);
      assert.equal(again.id, sb.id);
      assert.equal(again.info.state, 'running');

      const mine = await hutch.sandboxes.list({ metadata: { suite: label } });
      assert.deepEqual(
        mine.map((s) => s.id),
        [sb.id],
      );
      const running = await hutch.sandboxes.list({ state: 'running', metadata: { suite: label } });
      assert.deepEqual(
        running.map((s) => s.id),
        [sb.id],
      );
      assert.deepEqual(await hutch.sandboxes.list({ state: ['stopped', 'error'], metadata: { suite: label } }), []);
      assert.deepEqual(await hutch.sandboxes.list({ metadata: { suite: `${label}-other` } }), []);

      const info = await sb.refresh();
      assert.equal(info.id, sb.id);
      assert.strictEqual(sb.info, info);

      const t0 = Date.now();
      const extended = await sb.setTimeout(900);
      const expires = Date.parse(extended.expiresAt!);
      assert.ok(Math.abs(expires - (t0 + 900_000)) < 30_000, `expiresAt ${extended.expiresAt} should be ~900 s from now`);
    } finally {
      assert.equal(await sb.kill(), true);
    }
    assert.equal(sb.info.state, 'deleted');
    assert.equal(await sb.kill(), false, 'a second kill is a no-op');
    await assert.rejects(hutch.sandboxes.get(sb.id), NotFoundError);
    await assert.rejects(sb.exec('true'), NotFoundError);
  });

  test('await using deletes the sandbox at scope exit', async () => {
    const hutch = server.client();
    let id: string;
    {
      await using sb = await hutch.sandboxes.create({ template: 'minimal' });
      id = sb.id;
      assert.equal((await sb.exec('echo inside')).stdout, 'inside\n');
    }
    await assert.rejects(hutch.sandboxes.get(id), NotFoundError);
  });
});

describe('exec', () => {
  let sb: Sandbox;
  before(async () => {
    sb = await server.client().sandboxes.create({ template: 'minimal', env: { GREETING: 'hello' } });
  });
  after(() => sb?.kill());

  test('a string runs under /bin/sh -c; non-zero exit is a result, not an error', async () => {
    const r = await sb.exec('echo $GREETING; echo oops >&2; exit 3');
    assert.equal(r.exitCode, 3);
    assert.equal(r.stdout, 'hello\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.timedOut, false);
    assert.equal(typeof r.durationMs, 'number');
  });

  test('an array runs as argv without a shell', async () => {
    const r = await sb.exec(['echo', 'a  b', '$GREETING', '*']);
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'a  b $GREETING *\n');
  });

  test('stdin, cwd, env and the default user (root in minimal)', async () => {
    assert.equal((await sb.exec('cat', { stdin: 'piped input' })).stdout, 'piped input');
    assert.equal((await sb.exec('pwd', { cwd: '/tmp' })).stdout, '/tmp\n');
    assert.equal((await sb.exec('echo $A-$GREETING', { env: { A: '1' } })).stdout, '1-hello\n');
    assert.equal((await sb.exec('id -u')).stdout, '0\n');
  });

  test('timeoutMs kills the command and reports timedOut', async () => {
    const started = Date.now();
    const r = await sb.exec('sleep 20', { timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    assert.notEqual(r.exitCode, 0);
    assert.ok(Date.now() - started < 15_000);
  });

  test('output over maxOutputBytes is truncated and flagged', async () => {
    const r = await sb.exec('head -c 5000 /dev/zero', { maxOutputBytes: 1000 });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, '\0'.repeat(1000));
    assert.equal(r.stdoutTruncated, true);
  });
});

describe('errors map to typed classes', () => {
  test('unknown sandbox → NotFoundError (404)', async () => {
    await assert.rejects(server.client().sandboxes.get('aaaaaaaaaaaaaaaaaaaa'), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'not_found');
      return true;
    });
    assert.equal(await server.client().sandboxes.kill('aaaaaaaaaaaaaaaaaaaa'), false);
  });

  test('a malformed id → InvalidArgumentError (400)', async () => {
    await assert.rejects(server.client().sandboxes.get('NOT-an-id!'), InvalidArgumentError);
  });

  test('invalid create fields → InvalidArgumentError naming the field', async () => {
    await assert.rejects(server.client().sandboxes.create({ template: 'minimal', cpu: 1000 }), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /cpu/);
      return true;
    });
    await assert.rejects(server.client().sandboxes.create({ template: 'minimal', env: { '1BAD': 'x' } }), InvalidArgumentError);
  });

  test('an unknown isolation tier is refused, never silently downgraded', async () => {
    await assert.rejects(server.client().sandboxes.create({ template: 'minimal', isolation: 'warp-drive' }), (err: unknown) => {
      assert.ok(err instanceof HutchError);
      assert.ok(err.status === 400 || err.status === 422, `status ${err.status}`);
      return true;
    });
  });

  test('a wrong API key → AuthenticationError (401); no key → 401 too', async () => {
    await assert.rejects(server.client({ apiKey: 'wrong-key' }).sandboxes.list(), (err: unknown) => {
      assert.ok(err instanceof AuthenticationError);
      assert.equal(err.status, 401);
      return true;
    });
  });

  test('a stopped server → ConnectionError', async () => {
    const url = server.url.replace(/:\d+$/, ':1');
    await assert.rejects(server.client({ url }).info(), ConnectionError);
  });
});

describe('server info and templates', () => {
  test('info reports tiers and the minimal template is listed', async () => {
    const hutch = server.client();
    const info = await hutch.info();
    assert.equal(typeof info.version, 'string');
    assert.ok(info.tiers.container, 'the container tier is reported');
    assert.equal(typeof info.tiers.container!.available, 'boolean');
    const templates = await hutch.templates.list();
    assert.ok(templates.some((t) => t.name === 'minimal'));
  });
});
