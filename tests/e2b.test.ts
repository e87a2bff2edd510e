import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { CommandExitError, Sandbox, type CommandHandle } from 'e2b';
import { Sandbox as LegacySandbox } from 'e2b-v2-14';
import { startServer, type TestServer } from './harness.js';

/**
 * E2B compatibility (issue 5): the published `e2b` npm package, unmodified, against a real Hutch
 * server with real sandboxes — configured only by E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL, as
 * a user would. Every E2B client call exercised is listed in CALLS and counted at the end.
 */
const DOMAIN = 'e2b.hutch.test';
let server: TestServer;
const created: Sandbox[] = [];
const calls = new Set<string>();
const call = <T>(name: string, p: Promise<T>): Promise<T> => {
  calls.add(name);
  return p;
};

before(async () => {
  server = await startServer({ networkPool4: '10.217.0.0/16', networkPool6: 'fd68:7574:636c::/48', domain: DOMAIN });
  process.env.E2B_API_KEY = server.key;
  process.env.E2B_API_URL = server.url;
  process.env.E2B_SANDBOX_URL = server.url;
});
after(async () => {
  for (const sb of created) await Sandbox.kill(sb.sandboxId).catch(() => undefined);
  console.log(`e2b client calls exercised: ${calls.size} (${[...calls].sort().join(', ')})`);
  await server?.stop();
});

async function make(opts: Parameters<typeof Sandbox.create>[0] = {}): Promise<Sandbox> {
  const sb = await call('Sandbox.create', Sandbox.create({ timeoutMs: 300_000, ...opts }));
  created.push(sb);
  return sb;
}

test('GET /v1/info tells a client the E2B URLs and domain', async () => {
  const info = await server.api<{ e2b: { apiUrl: string; sandboxUrl: string; domain: string | null; envdVersion: string } }>(
    'GET',
    '/v1/info',
  );
  assert.deepEqual(info.body.e2b, { apiUrl: server.url, sandboxUrl: server.url, domain: DOMAIN, envdVersion: '0.6.4' });
});

describe('e2b SDK: sandbox lifecycle', () => {
  test('create with metadata, envs and timeout; getInfo; list with a metadata filter; kill twice; isRunning after kill', async () => {
    const tag = `t${Date.now().toString(36)}`;
    const sb = await make({ metadata: { suite: tag, role: 'a' }, envs: { GREETING: 'hello' }, timeoutMs: 120_000 });
    const info = await call('sandbox.getInfo', sb.getInfo());
    assert.equal(info.sandboxId, sb.sandboxId);
    assert.equal(info.templateId, 'base');
    assert.deepEqual(info.metadata, { suite: tag, role: 'a' });
    assert.equal(info.state, 'running');
    const ttl = info.endAt.getTime() - Date.now();
    assert.ok(ttl > 100_000 && ttl <= 121_000, `endAt reflects timeoutMs: ${ttl} ms`);
    assert.equal((await call('commands.run', sb.commands.run('echo $GREETING'))).stdout, 'hello\n');

    const other = await make({ metadata: { suite: tag, role: 'b' } });
    const page = await call('Sandbox.list', Promise.resolve(Sandbox.list({ query: { metadata: { suite: tag } } })));
    const items = await call('paginator.nextItems', page.nextItems());
    assert.deepEqual(items.map((i) => i.sandboxId).sort(), [sb.sandboxId, other.sandboxId].sort());
    const onlyB = await Sandbox.list({ query: { metadata: { suite: tag, role: 'b' } } }).nextItems();
    assert.deepEqual(
      onlyB.map((i) => i.sandboxId),
      [other.sandboxId],
    );

    assert.equal(await call('sandbox.isRunning', sb.isRunning()), true);
    assert.equal(await call('sandbox.kill', sb.kill()), true);
    assert.equal(await call('Sandbox.kill', Sandbox.kill(sb.sandboxId)), false, 'killing a killed sandbox answers false');
    assert.equal(await sb.isRunning(), false);
    await other.kill();
  });

  test('list paginates with limit and nextToken', async () => {
    const tag = `p${Date.now().toString(36)}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await make({ template: 'minimal', metadata: { page: tag } })).sandboxId);
    const paginator = Sandbox.list({ query: { metadata: { page: tag } }, limit: 2 });
    const first = await paginator.nextItems();
    assert.equal(first.length, 2);
    assert.equal(paginator.hasNext, true);
    const second = await paginator.nextItems();
    assert.equal(second.length, 1);
    assert.equal(paginator.hasNext, false);
    assert.deepEqual([...first, ...second].map((s) => s.sandboxId).sort(), [...ids].sort());
    for (const id of ids) await Sandbox.kill(id);
  });

  test('setTimeout shortens and extends; connect only extends', async () => {
    const sb = await make({ timeoutMs: 600_000 });
    await call('sandbox.setTimeout', sb.setTimeout(30_000));
    let end = (await sb.getInfo()).endAt.getTime() - Date.now();
    assert.ok(end <= 31_000 && end > 20_000, `shortened to 30 s: ${end}`);
    await sb.setTimeout(200_000);
    end = (await sb.getInfo()).endAt.getTime() - Date.now();
    assert.ok(end > 190_000, `extended to 200 s: ${end}`);
    const again = await call('Sandbox.connect', Sandbox.connect(sb.sandboxId, { timeoutMs: 10_000 }));
    end = (await again.getInfo()).endAt.getTime() - Date.now();
    assert.ok(end > 190_000, `connect with a shorter timeout does not shorten: ${end}`);
    assert.equal((await again.commands.run('echo via-connect')).stdout, 'via-connect\n');
  });

  test('pause, then connect resumes it with its files', async () => {
    const sb = await make({ template: 'minimal' });
    await call('files.write', sb.files.write('/root/state.txt', 'kept'));
    assert.equal(await call('sandbox.pause', sb.pause()), true);
    assert.equal((await sb.getInfo()).state, 'paused');
    assert.equal(await sb.isRunning(), false, 'a paused sandbox is not running');
    assert.equal(await sb.pause(), false, 'pausing a paused sandbox answers false');
    const pausedOnes = await Sandbox.list({ query: { state: ['paused'] } }).nextItems();
    assert.ok(
      pausedOnes.some((i) => i.sandboxId === sb.sandboxId && i.state === 'paused'),
      'listed under state=paused',
    );
    const runningOnes = await Sandbox.list({ query: { state: ['running'] } }).nextItems();
    assert.ok(!runningOnes.some((i) => i.sandboxId === sb.sandboxId), 'and not under state=running');
    const back = await Sandbox.connect(sb.sandboxId);
    assert.equal((await back.getInfo()).state, 'running');
    assert.equal(await call('files.read', back.files.read('/root/state.txt')), 'kept');
  });
});

/** A GET to the server with a Host header (what wildcard DNS for the domain would send). */
function getViaHost(host: string, path = '/'): Promise<{ status: number; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('e2b SDK: snapshots and fork', () => {
  test('createSnapshot is a template for Sandbox.create; listSnapshots; fork; deleteSnapshot', async () => {
    const sb = await make({ template: 'minimal' });
    await sb.files.write('/root/snap.txt', 'in the snapshot');
    const snap = await call('sandbox.createSnapshot', sb.createSnapshot({ name: 'e2b-test-snap' }));
    assert.match(snap.snapshotId, /^snap-/);
    assert.deepEqual(snap.names, ['e2b-test-snap']);
    await sb.files.write('/root/snap.txt', 'changed later');
    const child = await make({ template: snap.snapshotId } as Parameters<typeof Sandbox.create>[0]);
    assert.equal(await child.files.read('/root/snap.txt'), 'in the snapshot');
    const listed = await call('Sandbox.listSnapshots', Promise.resolve(Sandbox.listSnapshots({ sandboxId: sb.sandboxId })));
    const items = await listed.nextItems();
    assert.ok(
      items.some((i) => i.snapshotId === snap.snapshotId && i.names.includes('e2b-test-snap')),
      JSON.stringify(items),
    );
    const forks = await call('sandbox.fork', sb.fork({ count: 2 }));
    assert.equal(forks.length, 2);
    for (const f of forks) {
      assert.ok(!(f instanceof Error), String(f));
      const fork = f as Sandbox;
      created.push(fork);
      assert.equal(await fork.files.read('/root/snap.txt'), 'changed later');
      await fork.kill();
    }
    await assert.rejects(Sandbox.deleteSnapshot(snap.snapshotId), /in use|template of sandbox/, 'a snapshot a sandbox was made from stays');
    await child.kill();
    assert.equal(await call('Sandbox.deleteSnapshot', Sandbox.deleteSnapshot(snap.snapshotId)), true);
    assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId), false, 'deleting it again answers false');
  });
});

describe('e2b SDK: hosts and metrics', () => {
  test('getHost(port) reaches a server started in the sandbox (host routing through the ingress)', async () => {
    const sb = await make();
    await sb.files.write('/home/user/site/index.html', 'served from the sandbox');
    await sb.commands.run('cd /home/user/site && python3 -m http.server 8000', { background: true });
    const host = sb.getHost(8000);
    calls.add('sandbox.getHost');
    assert.equal(host, `8000-${sb.sandboxId}.${DOMAIN}`);
    let answer = { status: 0, body: '' };
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      answer = await getViaHost(host, '/index.html');
      if (answer.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.body, 'served from the sandbox');
    // The envd port by host: what the SDK uses without E2B_SANDBOX_URL.
    assert.equal((await getViaHost(`49983-${sb.sandboxId}.${DOMAIN}`, '/health')).status, 401, 'envd by host needs the access token');
  });

  test('the httpbin template answers on port 8080 as soon as Sandbox.create returns', async () => {
    const sb = await make({ template: 'httpbin' } as Parameters<typeof Sandbox.create>[0]);
    const answer = await getViaHost(sb.getHost(8080), '/anything/echo?x=1');
    assert.equal(answer.status, 200, answer.body);
    const echoed = JSON.parse(answer.body) as { method: string; url: string; args: Record<string, string> };
    assert.equal(echoed.method, 'GET');
    assert.equal(echoed.url, '/anything/echo?x=1');
    assert.deepEqual(echoed.args, { x: '1' });
    assert.equal((await getViaHost(sb.getHost(8080), '/status/418')).status, 418);
    const inside = await sb.commands.run('curl -s -X POST -d hello http://127.0.0.1:8080/post');
    assert.equal((JSON.parse(inside.stdout) as { data: string }).data, 'hello');
  });

  test('getMetrics reports cpu, memory and disk', async () => {
    const sb = await make({ template: 'minimal' });
    const metrics = await call('sandbox.getMetrics', sb.getMetrics());
    assert.equal(metrics.length, 1);
    const m = metrics[0]!;
    assert.ok(m.memUsed > 0 && m.memUsed < m.memTotal, JSON.stringify(m));
    assert.equal(m.memTotal, 512 * 1024 * 1024);
    assert.ok(m.diskTotal > 1024 * 1024 * 1024 && m.diskUsed >= 0, JSON.stringify(m));
    assert.ok(m.cpuUsedPct >= 0 && m.cpuUsedPct <= 100);
    assert.equal(m.cpuCount, 1);
    assert.ok(m.timestamp instanceof Date && !Number.isNaN(m.timestamp.getTime()));
  });
});

describe('e2b SDK: commands', () => {
  let sb: Sandbox;
  before(async () => {
    sb = await make();
  });

  test('foreground: stdout, stderr, exit code, env, cwd, user', async () => {
    const r = await sb.commands.run('echo out; echo err >&2; pwd; whoami; echo $X', { envs: { X: 'from-env' }, cwd: '/tmp' });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'out\n/tmp\nuser\nfrom-env\n');
    assert.equal(r.stderr, 'err\n');
    const root = await sb.commands.run('whoami', { user: 'root' });
    assert.equal(root.stdout, 'root\n');
    const py = await sb.commands.run('python3 -c "print(6*7)"');
    assert.equal(py.stdout, '42\n');
  });

  test('timeoutMs (Connect-Timeout-Ms) ends a command at its deadline', async () => {
    const started = Date.now();
    await assert.rejects(sb.commands.run('sleep 30', { timeoutMs: 1500 }));
    assert.ok(Date.now() - started < 10_000, `ended by the deadline (${Date.now() - started} ms)`);
    // The deadline is the agent's too (Connect-Timeout-Ms): the process goes, not only the stream.
    let left = '';
    for (let i = 0; i < 20 && left !== 'none\n'; i++) {
      left = (await sb.commands.run('pgrep -x sleep || echo none')).stdout;
      if (left !== 'none\n') await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(left, 'none\n', 'the process was killed, not only detached');
  });

  test('a failing command throws CommandExitError with its output', async () => {
    await assert.rejects(sb.commands.run('echo partial; exit 3'), (err: unknown) => {
      assert.ok(err instanceof CommandExitError);
      assert.equal(err.exitCode, 3);
      assert.equal(err.stdout, 'partial\n');
      return true;
    });
  });

  test('background with streaming callbacks; list; connect to it; kill', async () => {
    const seen: string[] = [];
    const handle: CommandHandle = await sb.commands.run('for i in 1 2 3; do echo tick$i; sleep 0.3; done; sleep 30', {
      background: true,
      onStdout: (d) => void seen.push(d.trim()),
    });
    const deadline = Date.now() + 10_000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen.slice(0, 3), ['tick1', 'tick2', 'tick3']);
    const listed = await call('commands.list', sb.commands.list());
    assert.ok(
      listed.some((p) => p.pid === handle.pid),
      'the background process is listed',
    );
    const again = await call('commands.connect', sb.commands.connect(handle.pid));
    assert.equal(again.pid, handle.pid);
    assert.equal(await call('commands.kill', sb.commands.kill(handle.pid)), true);
    await assert.rejects(handle.wait(), (err: unknown) => err instanceof CommandExitError);
    assert.equal(await sb.commands.kill(handle.pid), false, 'killing a finished process answers false');
  });

  test('stdin: sendStdin reaches a background process', async () => {
    const handle = await sb.commands.run('head -n 1', { background: true, stdin: true });
    await call('commands.sendStdin', sb.commands.sendStdin(handle.pid, 'piped line\n'));
    const result = await handle.wait();
    assert.equal(result.stdout, 'piped line\n');
  });

  test('pty: create, input, resize, kill', async () => {
    let output = '';
    const pty = await call(
      'pty.create',
      sb.pty.create({ cols: 80, rows: 24, onData: (d) => void (output += Buffer.from(d).toString('utf8')), timeoutMs: 30_000 }),
    );
    await call('pty.sendInput', sb.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\n')));
    const deadline = Date.now() + 10_000;
    while (!output.includes('pty-42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(output, /24 80/);
    assert.match(output, /pty-42/);
    await call('pty.resize', sb.pty.resize(pty.pid, { cols: 100, rows: 30 }));
    await sb.pty.sendInput(pty.pid, new TextEncoder().encode('stty size\n'));
    const until = Date.now() + 10_000;
    while (!output.includes('30 100') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.match(output, /30 100/);
    assert.equal(await call('pty.kill', sb.pty.kill(pty.pid)), true);
  });
});

describe('e2b SDK: files', () => {
  let sb: Sandbox;
  before(async () => {
    sb = await make();
  });

  test('write and read text and bytes; exists; getInfo for file, dir and symlink', async () => {
    await sb.files.write('/home/user/t.txt', 'text ✓');
    assert.equal(await sb.files.read('/home/user/t.txt'), 'text ✓');
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await sb.files.write('/home/user/b.bin', bytes.buffer);
    const back = await sb.files.read('/home/user/b.bin', { format: 'bytes' });
    assert.deepEqual([...back], [...bytes]);
    assert.equal(await call('files.exists', sb.files.exists('/home/user/t.txt')), true);
    assert.equal(await sb.files.exists('/home/user/nope'), false);
    await sb.commands.run('ln -s /home/user/t.txt /home/user/link');
    const file = await call('files.getInfo', sb.files.getInfo('/home/user/t.txt'));
    assert.equal(file.type, 'file');
    assert.equal(file.size, Buffer.byteLength('text ✓'));
    assert.equal((await sb.files.getInfo('/home/user')).type, 'dir');
    const link = await sb.files.getInfo('/home/user/link');
    assert.equal(link.symlinkTarget, '/home/user/t.txt');
  });

  test('makeDir, list with depth, rename, remove', async () => {
    assert.equal(await call('files.makeDir', sb.files.makeDir('/home/user/d/e/f')), true);
    assert.equal(await sb.files.makeDir('/home/user/d/e/f'), false, 'an existing dir answers false');
    await sb.files.write('/home/user/d/e/f/deep.txt', 'deep');
    const shallow = await call('files.list', sb.files.list('/home/user/d'));
    assert.deepEqual(
      shallow.map((e) => e.name),
      ['e'],
    );
    const deep = await sb.files.list('/home/user/d', { depth: 3 });
    assert.ok(
      deep.some((e) => e.path === '/home/user/d/e/f/deep.txt'),
      JSON.stringify(deep.map((e) => e.path)),
    );
    const moved = await call('files.rename', sb.files.rename('/home/user/d/e/f/deep.txt', '/home/user/moved.txt'));
    assert.equal(moved.path, '/home/user/moved.txt');
    assert.equal(await sb.files.read('/home/user/moved.txt'), 'deep');
    await call('files.remove', sb.files.remove('/home/user/d'));
    assert.equal(await sb.files.exists('/home/user/d'), false);
  });

  test('gzip both ways, octet-stream upload, and file metadata', async () => {
    const big = 'compressible line\n'.repeat(5000);
    await sb.files.write('/home/user/gz.txt', big, { gzip: true });
    assert.equal(await sb.files.read('/home/user/gz.txt', { gzip: true }), big);
    await sb.files.write('/home/user/octet.txt', 'octet', { useOctetStream: true });
    assert.equal(await sb.files.read('/home/user/octet.txt'), 'octet');
    const written = await sb.files.write('/home/user/meta.txt', 'm', { metadata: { owner: 'agent-7', step: '3' } });
    assert.deepEqual(written.metadata, { owner: 'agent-7', step: '3' });
    const info = await sb.files.getInfo('/home/user/meta.txt');
    assert.deepEqual(info.metadata, { owner: 'agent-7', step: '3' });
  });

  test('upload and download URLs work without headers; an expired one is refused', async () => {
    const up = await call('sandbox.uploadUrl', sb.uploadUrl('/home/user/via-url.txt'));
    const form = new FormData();
    form.append('file', new Blob(['uploaded by URL']), '/home/user/via-url.txt');
    const put = await fetch(up, { method: 'POST', body: form });
    assert.equal(put.status, 200, await put.text());
    const down = await call('sandbox.downloadUrl', sb.downloadUrl('/home/user/via-url.txt', { useSignatureExpiration: 60 }));
    const got = await fetch(down);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'uploaded by URL');
    const tampered = new URL(down);
    tampered.searchParams.set('path', '/etc/shadow');
    assert.equal((await fetch(tampered)).status, 401, 'a signature covers its path');
    const expired = new URL(down);
    expired.searchParams.set('signature_expiration', String(Math.floor(Date.now() / 1000) - 10));
    assert.equal((await fetch(expired)).status, 401, 'an expired URL is refused');
  });

  test('watchDir reports writes, recursively', async () => {
    await sb.files.makeDir('/home/user/w/sub');
    const events: string[] = [];
    const watcher = await call(
      'files.watchDir',
      sb.files.watchDir('/home/user/w', (e) => void events.push(`${e.type}:${e.name}`), { recursive: true }),
    );
    await sb.files.write('/home/user/w/sub/new.txt', 'x');
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.includes('new.txt')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await watcher.stop();
    assert.ok(
      events.some((e) => e.includes('sub/new.txt') || e.endsWith(':new.txt')),
      `events: ${events.join(', ')}`,
    );
  });
});

describe('e2b 2.14 (the v1 create path) with an e2b-shaped key', () => {
  test('create, commands, files, list, kill', async () => {
    const made = await server.api<{ key: string }>('POST', '/v1/keys', { name: 'legacy-sdk', e2b: true });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const apiKey = made.body.key;
    assert.match(apiKey, /^e2b_[0-9a-f]+$/);
    const opts = { apiKey, apiUrl: server.url, sandboxUrl: server.url };
    const sb = await LegacySandbox.create({ ...opts, metadata: { sdk: '2.14' }, envs: { OLD: 'yes' }, timeoutMs: 120_000 });
    try {
      const r = await sb.commands.run('echo legacy $OLD; whoami');
      assert.equal(r.stdout, 'legacy yes\nuser\n');
      await sb.files.write('/home/user/legacy.txt', 'v1 path');
      assert.equal(await sb.files.read('/home/user/legacy.txt'), 'v1 path');
      assert.ok((await sb.files.list('/home/user')).some((e) => e.name === 'legacy.txt'));
      const listed = await LegacySandbox.list({ ...opts, query: { metadata: { sdk: '2.14' } } }).nextItems();
      assert.deepEqual(
        listed.map((i) => i.sandboxId),
        [sb.sandboxId],
      );
    } finally {
      await sb.kill(); // 2.14's kill() resolves to nothing
    }
    assert.equal(await sb.isRunning(), false);
    const keys = await server.api<{ keys: Array<{ name: string; lastUsedAt: string | null }> }>('GET', '/v1/keys');
    assert.ok(
      keys.body.keys.some((k) => k.name === 'legacy-sdk' && k.lastUsedAt !== null),
      'the key is listed, with its last use',
    );
  });
});
