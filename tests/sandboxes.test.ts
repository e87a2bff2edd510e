import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';

/** The REST API end to end against real sandboxes, for every tier. */
interface Sandbox {
  id: string;
  state: string;
  isolation: string;
  template: string;
  expiresAt: string | null;
  metadata: Record<string, string>;
}
interface Exec {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  signal: string | null;
  stdoutTruncated: boolean;
  durationMs: number;
}

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test('healthz, info and openapi', async () => {
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  const info = await server.api<{ tiers: Record<string, { available: boolean; reason?: string }>; version: string }>('GET', '/v1/info');
  assert.equal(info.status, 200);
  assert.equal(info.body.tiers.container!.available, true, `container tier: ${info.body.tiers.container!.reason}`);
  assert.equal(info.body.tiers.gvisor!.available, true, `gvisor tier: ${info.body.tiers.gvisor!.reason}`);
  const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  assert.ok(doc.paths['/v1/sandboxes'], 'openapi lists /v1/sandboxes');
  assert.ok(doc.paths['/v1/sandboxes/{id}/exec'], 'openapi lists exec');
});

test('auth is required on /v1', async () => {
  const res = await fetch(`${server.url}/v1/sandboxes`);
  assert.equal(res.status, 401);
  const body = (await res.json()) as { error: { code: string } };
  assert.equal(body.error.code, 'unauthenticated');
  const wrong = await fetch(`${server.url}/v1/sandboxes`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
});

test('bad input gets a clear 400 naming the field', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ memoryMiB: -5 }, /memoryMiB/],
    [{ timeoutSeconds: 0 }, /timeoutSeconds/],
    [{ env: { 'BAD NAME': 'x' } }, /env/],
    [{ isolation: 'vm9000' }, /isolation/],
    [{ template: '../etc' }, /template/],
    [{ unknownField: 1 }, /unknownField|Unrecognized/i],
  ];
  for (const [body, pattern] of cases) {
    const res = await server.api<{ error: { code: string; message: string } }>('POST', '/v1/sandboxes', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(res.body.error.code, 'invalid_argument');
    assert.match(res.body.error.message, pattern);
  }
  const unknownTemplate = await server.api<{ error: { message: string } }>('POST', '/v1/sandboxes', { template: 'nosuchtemplate' });
  assert.equal(unknownTemplate.status, 400);
  assert.match(unknownTemplate.body.error.message, /template/);
  for (const id of ['..%2F..%2Fetc', 'a'.repeat(300), 'ABCDEFGHIJKLMNOPQRST']) {
    const res = await server.api<{ error: { code: string } }>('GET', `/v1/sandboxes/${id}`);
    assert.equal(res.status, 400, id);
  }
  const missing = await server.api<{ error: { code: string } }>('GET', '/v1/sandboxes/aaaaaaaaaaaaaaaaaaaa');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'not_found');
  const malformed = await server.api('POST', '/v1/sandboxes', '{"template": ', { 'content-type': 'application/json' });
  assert.equal(malformed.status, 400);
  const proto = await server.api('POST', '/v1/sandboxes', '{"__proto__": {"x": 1}}', { 'content-type': 'application/json' });
  assert.equal(proto.status, 400);
  const huge = await server.api('POST', '/v1/sandboxes', JSON.stringify({ metadata: { a: 'x'.repeat(2 * 1024 * 1024) } }), {
    'content-type': 'application/json',
  });
  assert.equal(huge.status, 413);
});

for (const isolation of ['container', 'gvisor'] as const) {
  describe(`${isolation} tier`, () => {
    test('create, exec (string and argv), files, list, delete', async () => {
      const created = await server.api<Sandbox>('POST', '/v1/sandboxes', {
        template: 'minimal',
        isolation,
        metadata: { suite: 'e2e', tier: isolation },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const sb = created.body;
      assert.equal(sb.state, 'running');
      assert.equal(sb.isolation, isolation);
      assert.match(sb.id, /^[a-z0-9]{20}$/);

      const shell = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'echo hello $((6*7)); echo oops >&2; exit 3' });
      assert.equal(shell.status, 200);
      assert.equal(shell.body.stdout, 'hello 42\n');
      assert.equal(shell.body.stderr, 'oops\n');
      assert.equal(shell.body.exitCode, 3);

      const argv = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: ['/bin/echo', 'a  b', '$HOME'] });
      assert.equal(argv.body.stdout, 'a  b $HOME\n');

      const withEnv = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, {
        cmd: 'echo $FOO; pwd; cat',
        env: { FOO: 'bar' },
        cwd: '/tmp',
        stdin: 'from stdin',
      });
      assert.equal(withEnv.body.stdout, 'bar\n/tmp\nfrom stdin');

      const payload = Buffer.from(Array.from({ length: 70000 }, (_, i) => i % 251));
      const put = await server.api<{ path: string; size: number; type: string }>(
        'PUT',
        `/v1/sandboxes/${sb.id}/files?path=/tmp/data.bin`,
        payload,
        {
          'content-type': 'application/octet-stream',
        },
      );
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal(put.body.size, payload.length);
      const got = await fetch(`${server.url}/v1/sandboxes/${sb.id}/files?path=/tmp/data.bin`, {
        headers: { authorization: `Bearer ${server.key}` },
      });
      assert.equal(got.status, 200);
      assert.deepEqual(Buffer.from(await got.arrayBuffer()), payload);
      const sum = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'wc -c < /tmp/data.bin' });
      assert.equal(sum.body.stdout.trim(), String(payload.length));

      const mk = await server.api<{ type: string }>('POST', `/v1/sandboxes/${sb.id}/files/mkdir`, { path: '/tmp/a/b/c' });
      assert.equal(mk.status, 201);
      assert.equal(mk.body.type, 'dir');
      const mv = await server.api('POST', `/v1/sandboxes/${sb.id}/files/rename`, { from: '/tmp/data.bin', to: '/tmp/a/moved.bin' });
      assert.equal(mv.status, 200);
      const listing = await server.api<{ entries: Array<{ name: string; type: string }> }>(
        'GET',
        `/v1/sandboxes/${sb.id}/files/list?path=/tmp/a`,
      );
      assert.deepEqual(listing.body.entries.map((e) => `${e.name}:${e.type}`).sort(), ['b:dir', 'moved.bin:file']);
      const rm = await server.api('DELETE', `/v1/sandboxes/${sb.id}/files?path=/tmp/a`);
      assert.equal(rm.status, 204);
      const gone = await server.api<{ error: { code: string } }>('GET', `/v1/sandboxes/${sb.id}/files/stat?path=/tmp/a`);
      assert.equal(gone.status, 404);

      const listed = await server.api<{ sandboxes: Sandbox[] }>('GET', `/v1/sandboxes?state=running&metadata.tier=${isolation}`);
      assert.deepEqual(
        listed.body.sandboxes.map((s) => s.id),
        [sb.id],
      );

      const del = await server.api('DELETE', `/v1/sandboxes/${sb.id}`);
      assert.equal(del.status, 204);
      const after = await server.api('GET', `/v1/sandboxes/${sb.id}`);
      assert.equal(after.status, 404);
    });

    test('base template: python3 prints 42 as user "user"', async () => {
      const sb = (await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'base', isolation })).body;
      try {
        const py = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: ['python3', '-c', 'print(6*7)'] });
        assert.equal(py.body.stdout, '42\n', JSON.stringify(py.body));
        const who = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, {
          cmd: 'id -un; echo $HOME; node -e "console.log(1+1)"',
        });
        assert.equal(who.body.stdout, 'user\n/home/user\n2\n');
        const root = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'id -u', user: 'root' });
        assert.equal(root.body.stdout, '0\n');
      } finally {
        await server.api('DELETE', `/v1/sandboxes/${sb.id}`);
      }
    });

    test('exec timeout kills the process and says so', async () => {
      const sb = (await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal', isolation })).body;
      try {
        const res = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'sleep 1000', timeoutMs: 500 });
        assert.equal(res.status, 200);
        assert.equal(res.body.timedOut, true);
        assert.equal(res.body.signal, 'SIGKILL');
        assert.ok(res.body.durationMs < 5000, `took ${res.body.durationMs} ms`);
      } finally {
        await server.api('DELETE', `/v1/sandboxes/${sb.id}`);
      }
    });
  });
}

test('TTL: a sandbox is deleted when its timeout passes, and setTimeout extends it', async () => {
  const sb = (await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal', timeoutSeconds: 2 })).body;
  const keep = (await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal', timeoutSeconds: 2 })).body;
  const extended = await server.api<Sandbox>('POST', `/v1/sandboxes/${keep.id}/timeout`, { timeoutSeconds: 60 });
  assert.equal(extended.status, 200);
  assert.ok(new Date(extended.body.expiresAt!).getTime() > Date.now() + 50_000);
  const deadline = Date.now() + 15_000;
  let status = 200;
  while (Date.now() < deadline && status !== 404) {
    await new Promise((r) => setTimeout(r, 250));
    status = (await server.api('GET', `/v1/sandboxes/${sb.id}`)).status;
  }
  assert.equal(status, 404, 'expired sandbox is gone');
  assert.equal((await server.api('GET', `/v1/sandboxes/${keep.id}`)).status, 200);
  await server.api('DELETE', `/v1/sandboxes/${keep.id}`);
});
