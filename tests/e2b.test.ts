import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CommandExitError, Sandbox, type CommandHandle, type SandboxListOpts, type SandboxOpts } from 'e2b';
import { CommandExitError as LegacyCommandExitError, Sandbox as LegacySandbox } from 'e2b-v2-14';
import { REPO, startServer, type TestServer } from './harness.js';

/**
 * E2B compatibility (issue 5): the published `e2b` npm package, unmodified, against a real Hutch
 * server with real sandboxes — configured only by E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL, as
 * a user would. Every E2B client call goes through `call` (or `callRejects`), which records it under
 * its SDK version; the suite prints how many distinct calls it covered and how many passed.
 */
const DOMAIN = 'e2b.hutch.test';
const versionOf = (pkg: string): string =>
  (JSON.parse(readFileSync(join(REPO, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
/** The pinned current SDK and the older 2.x line (v1 create path). */
const SDK = versionOf('e2b');
const LEGACY = versionOf('e2b-v2-14');

let server: TestServer;
const created: Sandbox[] = [];

/**
 * One E2B client call as the suite made it. It passed when it answered as the test expected (resolved,
 * or rejected where a rejection was expected) and the test that made it passed; a failing test fails
 * every call it made.
 */
interface Invocation {
  sdk: string;
  name: string;
  ok: boolean;
}
const invocations: Invocation[] = [];
/** The calls of the test running now (tests in this file run one at a time). */
let inTest: Invocation[] | null = null;

function record(name: string, sdk: string): Invocation {
  const made: Invocation = { sdk, name, ok: true };
  invocations.push(made);
  inTest?.push(made);
  return made;
}

/** Makes one E2B client call (a method, a getter) and records whether it answered. */
async function call<T>(name: string, run: () => T | PromiseLike<T>, sdk = SDK): Promise<T> {
  const made = record(name, sdk);
  try {
    return await run();
  } catch (err) {
    made.ok = false;
    throw err;
  }
}

/** Makes one E2B client call that must reject with an error `check` accepts; returns that error. */
async function callRejects(name: string, run: () => PromiseLike<unknown>, check: (err: unknown) => boolean, sdk = SDK): Promise<unknown> {
  const made = record(name, sdk);
  let rejected = false;
  let error: unknown;
  try {
    await run();
  } catch (err) {
    rejected = true;
    error = err;
  }
  try {
    assert.ok(rejected, `${sdk} ${name} resolved; it should have rejected`);
    assert.ok(check(error), `${sdk} ${name} rejected with an unexpected error: ${String(error)}`);
  } catch (err) {
    made.ok = false;
    throw err;
  }
  return error;
}

/** A test whose failure fails every E2B call it made. */
function sdkTest(name: string, body: () => Promise<void>): void {
  test(name, async () => {
    const mine: Invocation[] = [];
    inTest = mine;
    try {
      await body();
    } catch (err) {
      for (const made of mine) made.ok = false;
      throw err;
    } finally {
      inTest = null;
    }
  });
}

/** The report: distinct calls per SDK version, and how many of them passed every time they were made. */
function callReport(): string[] {
  const byCall = new Map<string, { sdk: string; name: string; made: number; failed: number }>();
  for (const i of invocations) {
    const key = `${i.sdk} ${i.name}`;
    const entry = byCall.get(key) ?? { sdk: i.sdk, name: i.name, made: 0, failed: 0 };
    entry.made++;
    if (!i.ok) entry.failed++;
    byCall.set(key, entry);
  }
  const all = [...byCall.values()];
  const failed = all.filter((c) => c.failed > 0);
  const perSdk = [SDK, LEGACY].map((v) => `${v}: ${all.filter((c) => c.sdk === v).length}`).join(', ');
  const lines = [
    `e2b client calls: ${all.length} distinct (${perSdk}), ${all.length - failed.length} passed, ${failed.length} failed (${invocations.length} made)`,
  ];
  for (const v of [SDK, LEGACY]) {
    const names = all.filter((c) => c.sdk === v).map((c) => `${c.name}×${c.made}`);
    lines.push(`  e2b ${v}: ${names.sort().join(', ')}`);
  }
  if (failed.length > 0) lines.push(`  failed: ${failed.map((c) => `${c.sdk} ${c.name} (${c.failed}/${c.made})`).join(', ')}`);
  return lines;
}

before(async () => {
  server = await startServer({ networkPool4: '10.217.0.0/16', networkPool6: 'fd68:7574:636c::/48', domain: DOMAIN });
  process.env.E2B_API_KEY = server.key;
  process.env.E2B_API_URL = server.url;
  process.env.E2B_SANDBOX_URL = server.url;
});
after(async () => {
  for (const sb of created) await call('Sandbox.kill', () => Sandbox.kill(sb.sandboxId)).catch(() => undefined);
  for (const line of callReport()) console.log(line);
  await server?.stop();
});

async function make(opts: SandboxOpts = {}): Promise<Sandbox> {
  const sb = await call('Sandbox.create', () => Sandbox.create({ timeoutMs: 300_000, ...opts }));
  created.push(sb);
  return sb;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const idsOf = (items: Array<{ sandboxId: string }>): string[] => items.map((i) => i.sandboxId);

test('GET /v1/info tells a client the E2B URLs and domain', async () => {
  const info = await server.api<{ e2b: { apiUrl: string; sandboxUrl: string; domain: string | null; envdVersion: string } }>(
    'GET',
    '/v1/info',
  );
  assert.deepEqual(info.body.e2b, { apiUrl: server.url, sandboxUrl: server.url, domain: DOMAIN, envdVersion: '0.6.4' });
});

describe('e2b SDK: sandbox lifecycle', () => {
  sdkTest('create with metadata, envs and timeout; getInfo; list with a metadata filter; kill twice; isRunning after kill', async () => {
    const tag = `t${Date.now().toString(36)}`;
    const sb = await make({ metadata: { suite: tag, role: 'a' }, envs: { GREETING: 'hello' }, timeoutMs: 120_000 });
    const info = await call('sandbox.getInfo', () => sb.getInfo());
    assert.equal(info.sandboxId, sb.sandboxId);
    assert.equal(info.templateId, 'base');
    assert.deepEqual(info.metadata, { suite: tag, role: 'a' });
    assert.equal(info.state, 'running');
    const ttl = info.endAt.getTime() - Date.now();
    assert.ok(ttl > 100_000 && ttl <= 121_000, `endAt reflects timeoutMs: ${ttl} ms`);
    assert.equal((await call('commands.run', () => sb.commands.run('echo $GREETING'))).stdout, 'hello\n');

    const other = await make({ metadata: { suite: tag, role: 'b' } });
    const page = await call('Sandbox.list', () => Sandbox.list({ query: { metadata: { suite: tag } } }));
    const items = await call('SandboxPaginator.nextItems', () => page.nextItems());
    assert.deepEqual(idsOf(items).sort(), [sb.sandboxId, other.sandboxId].sort());
    const onlyB = await call('Sandbox.list', () => Sandbox.list({ query: { metadata: { suite: tag, role: 'b' } } }));
    assert.deepEqual(idsOf(await call('SandboxPaginator.nextItems', () => onlyB.nextItems())), [other.sandboxId]);

    assert.equal(await call('sandbox.isRunning', () => sb.isRunning()), true);
    assert.equal(await call('sandbox.kill', () => sb.kill()), true);
    assert.equal(await call('Sandbox.kill', () => Sandbox.kill(sb.sandboxId)), false, 'killing a killed sandbox answers false');
    assert.equal(await call('sandbox.isRunning', () => sb.isRunning()), false);
    await call('sandbox.kill', () => other.kill());
  });

  sdkTest('list paginates with limit and nextToken', async () => {
    const tag = `p${Date.now().toString(36)}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await make({ template: 'minimal', metadata: { page: tag } })).sandboxId);
    const paginator = await call('Sandbox.list', () => Sandbox.list({ query: { metadata: { page: tag } }, limit: 2 }));
    assert.equal(await call('SandboxPaginator.hasNext', () => paginator.hasNext), true, 'a fresh paginator has a first page');
    const first = await call('SandboxPaginator.nextItems', () => paginator.nextItems());
    assert.equal(first.length, 2);
    assert.equal(await call('SandboxPaginator.hasNext', () => paginator.hasNext), true);
    const second = await call('SandboxPaginator.nextItems', () => paginator.nextItems());
    assert.equal(second.length, 1);
    assert.equal(await call('SandboxPaginator.hasNext', () => paginator.hasNext), false);
    assert.deepEqual(idsOf([...first, ...second]).sort(), [...ids].sort());
    for (const id of ids) await call('Sandbox.kill', () => Sandbox.kill(id));
  });

  sdkTest('list filters by template and startedAfter, and orders by start time across pages', async () => {
    const tag = `f${Date.now().toString(36)}`;
    const metadata = { filters: tag };
    // Made one after another: a (minimal), b (base), c (minimal), each started later than the last.
    const a = await make({ template: 'minimal', metadata });
    const b = await make({ metadata });
    const odd = { 'odd key/é': 'R&D = 100%+' };
    const c = await make({ template: 'minimal', metadata: { ...metadata, ...odd } });
    const list = async (opts: SandboxListOpts): Promise<string[]> => {
      const paginator = await call('Sandbox.list', () => Sandbox.list(opts));
      const ids: string[] = [];
      while (await call('SandboxPaginator.hasNext', () => paginator.hasNext))
        ids.push(...idsOf(await call('SandboxPaginator.nextItems', () => paginator.nextItems())));
      return ids;
    };
    const started = new Map<string, Date>();
    const everyOne = await call('Sandbox.list', () => Sandbox.list({ query: { metadata } }));
    for (const info of await call('SandboxPaginator.nextItems', () => everyOne.nextItems())) started.set(info.sandboxId, info.startedAt);
    const at = (sb: Sandbox): Date => started.get(sb.sandboxId)!;
    assert.ok(at(a) < at(b) && at(b) < at(c), `start times increase: ${[a, b, c].map((s) => at(s).toISOString()).join(' ')}`);

    assert.deepEqual((await list({ query: { metadata, template: 'minimal' } })).sort(), [a.sandboxId, c.sandboxId].sort());
    assert.deepEqual(await list({ query: { metadata, template: 'base' } }), [b.sandboxId]);
    assert.deepEqual(await list({ query: { metadata, template: 'no-such-template' } }), []);
    // Metadata keys and values with characters that need encoding (the SDK encodes them twice).
    assert.deepEqual(await list({ query: { metadata: { ...metadata, ...odd } } }), [c.sandboxId]);

    assert.deepEqual((await list({ query: { metadata, startedAfter: at(b) } })).sort(), [b.sandboxId, c.sandboxId].sort(), 'at or after');
    assert.deepEqual(await list({ query: { metadata, startedAfter: new Date(at(b).getTime() + 1) } }), [c.sandboxId]);
    assert.deepEqual(await list({ query: { metadata, startedAfter: new Date(Date.now() + 60_000) } }), []);

    const ascending = [a.sandboxId, b.sandboxId, c.sandboxId];
    assert.deepEqual(await list({ query: { metadata }, order: 'asc' }), ascending);
    assert.deepEqual(await list({ query: { metadata }, order: 'desc' }), [...ascending].reverse());
    assert.deepEqual(await list({ query: { metadata } }), [...ascending].reverse(), 'newest first by default');
    // The order holds across the whole result set, one item per page.
    assert.deepEqual(await list({ query: { metadata }, order: 'asc', limit: 1 }), ascending);
    assert.deepEqual(await list({ query: { metadata }, order: 'desc', limit: 2 }), [...ascending].reverse());

    // Filters combine (AND) with each other and with the order.
    assert.deepEqual(await list({ query: { metadata, template: 'minimal', startedAfter: at(b) }, order: 'asc' }), [c.sandboxId]);
    assert.deepEqual(await list({ query: { metadata, template: 'minimal' }, order: 'asc', limit: 1 }), [a.sandboxId, c.sandboxId]);
    for (const sb of [a, b, c]) await call('sandbox.kill', () => sb.kill());
  });

  sdkTest('setTimeout shortens and extends; connect only extends', async () => {
    const sb = await make({ timeoutMs: 600_000 });
    await call('sandbox.setTimeout', () => sb.setTimeout(30_000));
    let end = (await call('sandbox.getInfo', () => sb.getInfo())).endAt.getTime() - Date.now();
    assert.ok(end <= 31_000 && end > 20_000, `shortened to 30 s: ${end}`);
    await call('sandbox.setTimeout', () => sb.setTimeout(200_000));
    end = (await call('sandbox.getInfo', () => sb.getInfo())).endAt.getTime() - Date.now();
    assert.ok(end > 190_000, `extended to 200 s: ${end}`);
    const again = await call('Sandbox.connect', () => Sandbox.connect(sb.sandboxId, { timeoutMs: 10_000 }));
    end = (await call('sandbox.getInfo', () => again.getInfo())).endAt.getTime() - Date.now();
    assert.ok(end > 190_000, `connect with a shorter timeout does not shorten: ${end}`);
    assert.equal((await call('commands.run', () => again.commands.run('echo via-connect'))).stdout, 'via-connect\n');
  });

  sdkTest('pause, then connect resumes it with its files', async () => {
    const sb = await make({ template: 'minimal' });
    await call('files.write', () => sb.files.write('/root/state.txt', 'kept'));
    assert.equal(await call('sandbox.pause', () => sb.pause()), true);
    assert.equal((await call('sandbox.getInfo', () => sb.getInfo())).state, 'paused');
    assert.equal(await call('sandbox.isRunning', () => sb.isRunning()), false, 'a paused sandbox is not running');
    assert.equal(await call('sandbox.pause', () => sb.pause()), false, 'pausing a paused sandbox answers false');
    const listIds = async (opts: SandboxListOpts) => {
      const paginator = await call('Sandbox.list', () => Sandbox.list(opts));
      return call('SandboxPaginator.nextItems', () => paginator.nextItems());
    };
    const pausedOnes = await listIds({ query: { state: ['paused'] } });
    assert.ok(
      pausedOnes.some((i) => i.sandboxId === sb.sandboxId && i.state === 'paused'),
      'listed under state=paused',
    );
    const runningOnes = await listIds({ query: { state: ['running'] } });
    assert.ok(!runningOnes.some((i) => i.sandboxId === sb.sandboxId), 'and not under state=running');
    const byDefault = await listIds({});
    assert.ok(
      byDefault.some((i) => i.sandboxId === sb.sandboxId && i.state === 'paused'),
      'Sandbox.list() without a state lists paused sandboxes too (the SDK documents running and paused)',
    );
    // On the wire: a repeated `state` (how generated clients such as the Python SDK's send a list)
    // works as the comma form does; the v1 list is of running sandboxes.
    const rawIds = async (path: string): Promise<string[]> => {
      const res = await fetch(`${server.url}${path}`, { headers: { 'X-API-KEY': server.key } });
      assert.equal(res.status, 200, path);
      return ((await res.json()) as Array<{ sandboxID: string }>).map((s) => s.sandboxID);
    };
    assert.ok((await rawIds('/v2/sandboxes?state=running&state=paused')).includes(sb.sandboxId));
    assert.ok(!(await rawIds('/sandboxes')).includes(sb.sandboxId));
    const back = await call('Sandbox.connect', () => Sandbox.connect(sb.sandboxId));
    assert.equal((await call('sandbox.getInfo', () => back.getInfo())).state, 'running');
    assert.equal(await call('files.read', () => back.files.read('/root/state.txt')), 'kept');
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
  sdkTest('createSnapshot is a template for Sandbox.create; listSnapshots; fork; deleteSnapshot', async () => {
    const sb = await make({ template: 'minimal' });
    await call('files.write', () => sb.files.write('/root/snap.txt', 'in the snapshot'));
    const snap = await call('sandbox.createSnapshot', () => sb.createSnapshot({ name: 'e2b-test-snap' }));
    assert.match(snap.snapshotId, /^snap-/);
    assert.deepEqual(snap.names, ['e2b-test-snap']);
    await call('files.write', () => sb.files.write('/root/snap.txt', 'changed later'));
    const child = await make({ template: snap.snapshotId });
    assert.equal(await call('files.read', () => child.files.read('/root/snap.txt')), 'in the snapshot');
    const listed = await call('Sandbox.listSnapshots', () => Sandbox.listSnapshots({ sandboxId: sb.sandboxId }));
    const items = await call('SnapshotPaginator.nextItems', () => listed.nextItems());
    assert.ok(
      items.some((i) => i.snapshotId === snap.snapshotId && i.names.includes('e2b-test-snap')),
      JSON.stringify(items),
    );
    const forks = await call('sandbox.fork', () => sb.fork({ count: 2 }));
    assert.equal(forks.length, 2);
    for (const f of forks) {
      assert.ok(!(f instanceof Error), String(f));
      const fork = f as Sandbox;
      created.push(fork);
      assert.equal(await call('files.read', () => fork.files.read('/root/snap.txt')), 'changed later');
      await call('sandbox.kill', () => fork.kill());
    }
    await callRejects(
      'Sandbox.deleteSnapshot',
      () => Sandbox.deleteSnapshot(snap.snapshotId),
      (err) => /in use|template of sandbox/.test(String(err)),
    ); // a snapshot a sandbox was made from stays
    await call('sandbox.kill', () => child.kill());
    assert.equal(await call('Sandbox.deleteSnapshot', () => Sandbox.deleteSnapshot(snap.snapshotId)), true);
    assert.equal(
      await call('Sandbox.deleteSnapshot', () => Sandbox.deleteSnapshot(snap.snapshotId)),
      false,
      'deleting it again answers false',
    );
  });
});

describe('e2b SDK: hosts, health and metrics', () => {
  sdkTest('getHost(port) reaches a server started in the sandbox (host routing through the ingress)', async () => {
    const sb = await make();
    await call('files.write', () => sb.files.write('/home/user/site/index.html', 'served from the sandbox'));
    await call('commands.run', () => sb.commands.run('cd /home/user/site && python3 -m http.server 8000', { background: true }));
    const host = await call('sandbox.getHost', () => sb.getHost(8000));
    assert.equal(host, `8000-${sb.sandboxId}.${DOMAIN}`);
    let answer = { status: 0, body: '' };
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      answer = await getViaHost(host, '/index.html');
      if (answer.status === 200) break;
      await pause(200);
    }
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.body, 'served from the sandbox');
    // The envd port by host: what the SDK uses without E2B_SANDBOX_URL.
    assert.equal((await getViaHost(`49983-${sb.sandboxId}.${DOMAIN}`, '/health')).status, 401, 'envd by host needs the access token');
  });

  sdkTest('the httpbin template answers on port 8080 as soon as Sandbox.create returns', async () => {
    const sb = await make({ template: 'httpbin' });
    const host = await call('sandbox.getHost', () => sb.getHost(8080));
    const answer = await getViaHost(host, '/anything/echo?x=1');
    assert.equal(answer.status, 200, answer.body);
    const echoed = JSON.parse(answer.body) as { method: string; url: string; args: Record<string, string> };
    assert.equal(echoed.method, 'GET');
    assert.equal(echoed.url, '/anything/echo?x=1');
    assert.deepEqual(echoed.args, { x: '1' });
    assert.equal((await getViaHost(host, '/status/418')).status, 418);
    const inside = await call('commands.run', () => sb.commands.run('curl -s -X POST -d hello http://127.0.0.1:8080/post'));
    assert.equal((JSON.parse(inside.stdout) as { data: string }).data, 'hello');
  });

  sdkTest('/health on the data plane: 204 for a running sandbox, the 502 JSON for an unknown or killed one', async () => {
    const info = await server.api<{ e2b: { apiUrl: string; sandboxUrl: string } }>('GET', '/v1/info');
    const { apiUrl, sandboxUrl } = info.body.e2b;
    const sb = await make({ template: 'minimal' });
    // The envd access token, as the control plane hands it to a client.
    const detail = (await (await fetch(`${apiUrl}/sandboxes/${sb.sandboxId}`, { headers: { 'X-API-KEY': server.key } })).json()) as {
      envdAccessToken: string;
    };
    const health = (id: string) =>
      fetch(`${sandboxUrl}/health`, {
        headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '49983', 'X-Access-Token': detail.envdAccessToken },
      });
    const running = await health(sb.sandboxId);
    assert.equal(running.status, 204);
    assert.equal(await running.text(), '');

    const unknownId = 'zzzzzzzzzzzzzzzzzzzz';
    const unknown = await health(unknownId);
    assert.equal(unknown.status, 502);
    assert.match(unknown.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await unknown.json(), { message: 'The sandbox was not found', sandboxId: unknownId, code: 502 });

    assert.equal(await call('sandbox.kill', () => sb.kill()), true);
    const killed = await health(sb.sandboxId);
    assert.equal(killed.status, 502);
    assert.deepEqual(await killed.json(), { message: 'The sandbox was not found', sandboxId: sb.sandboxId, code: 502 });
  });

  sdkTest('getMetrics reports cpu, memory and disk', async () => {
    const sb = await make({ template: 'minimal' });
    const metrics = await call('sandbox.getMetrics', () => sb.getMetrics());
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

  sdkTest('the base template: user `user` in /home/user by default, bash -l, python3 and node', async () => {
    const r = await call('commands.run', () =>
      sb.commands.run('pwd; whoami; echo $HOME; node --version; shopt -q login_shell && echo login'),
    );
    assert.match(r.stdout, /^\/home\/user\nuser\n\/home\/user\nv\d+\.\d+\.\d+\nlogin\n$/, r.stdout);
    const node = await call('commands.run', () => sb.commands.run(`node -e "console.log(process.cwd(), 6 * 7)"`));
    assert.equal(node.stdout, '/home/user 42\n');
    const py = await call('commands.run', () => sb.commands.run('python3 -c "print(6*7)"'));
    assert.equal(py.stdout, '42\n');
  });

  sdkTest('foreground: stdout, stderr, exit code, env, cwd, user', async () => {
    const r = await call('commands.run', () =>
      sb.commands.run('echo out; echo err >&2; pwd; whoami; echo $X', { envs: { X: 'from-env' }, cwd: '/tmp' }),
    );
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'out\n/tmp\nuser\nfrom-env\n');
    assert.equal(r.stderr, 'err\n');
    const root = await call('commands.run', () => sb.commands.run('whoami', { user: 'root' }));
    assert.equal(root.stdout, 'root\n');
  });

  sdkTest('timeoutMs (Connect-Timeout-Ms) ends a command at its deadline', async () => {
    const started = Date.now();
    await callRejects(
      'commands.run',
      () => sb.commands.run('sleep 30', { timeoutMs: 1500 }),
      () => true,
    );
    assert.ok(Date.now() - started < 10_000, `ended by the deadline (${Date.now() - started} ms)`);
    // The deadline is the agent's too (Connect-Timeout-Ms): the process goes, not only the stream.
    let left = '';
    for (let i = 0; i < 20 && left !== 'none\n'; i++) {
      left = (await call('commands.run', () => sb.commands.run('pgrep -x sleep || echo none'))).stdout;
      if (left !== 'none\n') await pause(250);
    }
    assert.equal(left, 'none\n', 'the process was killed, not only detached');
  });

  sdkTest('a failing command throws CommandExitError with its output', async () => {
    await callRejects(
      'commands.run',
      () => sb.commands.run('echo partial; exit 3'),
      (err) => err instanceof CommandExitError && err.exitCode === 3 && err.stdout === 'partial\n',
    );
  });

  sdkTest('background with streaming callbacks; list; kill', async () => {
    const seen: string[] = [];
    const handle: CommandHandle = await call('commands.run', () =>
      sb.commands.run('for i in 1 2 3; do echo tick$i; sleep 0.3; done; sleep 30', {
        background: true,
        onStdout: (d) => void seen.push(d.trim()),
      }),
    );
    const deadline = Date.now() + 10_000;
    while (seen.length < 3 && Date.now() < deadline) await pause(100);
    assert.deepEqual(seen.slice(0, 3), ['tick1', 'tick2', 'tick3']);
    const listed = await call('commands.list', () => sb.commands.list());
    assert.ok(
      listed.some((p) => p.pid === handle.pid),
      'the background process is listed',
    );
    assert.equal(await call('commands.kill', () => sb.commands.kill(handle.pid)), true);
    await callRejects(
      'CommandHandle.wait',
      () => handle.wait(),
      (err) => err instanceof CommandExitError,
    );
    assert.equal(await call('commands.kill', () => sb.commands.kill(handle.pid)), false, 'killing a finished process answers false');
    const other = await call('commands.run', () => sb.commands.run('sleep 30', { background: true }));
    assert.equal(await call('CommandHandle.kill', () => other.kill()), true);
    await callRejects(
      'CommandHandle.wait',
      () => other.wait(),
      (err) => err instanceof CommandExitError,
    );
  });

  sdkTest('connect to a running process: output after connecting reaches onStdout/onStderr, and wait() returns its exit', async () => {
    const flag = '/home/user/connect-go';
    const started = await call('commands.run', () =>
      sb.commands.run(`echo before; while [ ! -e ${flag} ]; do sleep 0.05; done; echo after-connect; echo err-after >&2; exit 0`, {
        background: true,
      }),
    );
    // The first client lets go; a second one attaches to the running process by pid.
    await call('CommandHandle.disconnect', () => started.disconnect());
    let out = '';
    let err = '';
    const attached = await call('commands.connect', () =>
      sb.commands.connect(started.pid, { onStdout: (d) => void (out += d), onStderr: (d) => void (err += d) }),
    );
    assert.equal(attached.pid, started.pid);
    assert.ok(
      (await call('commands.list', () => sb.commands.list())).some((p) => p.pid === started.pid),
      'still running while attached',
    );
    await call('files.write', () => sb.files.write(flag, ''));
    const result = await call('CommandHandle.wait', () => attached.wait());
    assert.equal(result.exitCode, 0);
    assert.match(out, /after-connect\n/, 'stdout produced after connecting reached onStdout');
    assert.match(err, /err-after\n/, 'and stderr reached onStderr');
    assert.match(result.stdout, /after-connect\n$/);
    // A process that fails after the client attached: wait() rejects with its exit code.
    const failing = await call('commands.run', () =>
      sb.commands.run(`while [ ! -e ${flag}-2 ]; do sleep 0.05; done; echo bye; exit 7`, { background: true }),
    );
    await call('CommandHandle.disconnect', () => failing.disconnect());
    const again = await call('commands.connect', () => sb.commands.connect(failing.pid));
    await call('files.write', () => sb.files.write(`${flag}-2`, ''));
    await callRejects(
      'CommandHandle.wait',
      () => again.wait(),
      (e) => e instanceof CommandExitError && e.exitCode === 7 && e.stdout.endsWith('bye\n'),
    );
  });

  sdkTest('stdin: sendStdin reaches a background process; closeStdin ends its input', async () => {
    const handle = await call('commands.run', () => sb.commands.run('head -n 1', { background: true, stdin: true }));
    await call('commands.sendStdin', () => sb.commands.sendStdin(handle.pid, 'piped line\n'));
    const result = await call('CommandHandle.wait', () => handle.wait());
    assert.equal(result.stdout, 'piped line\n');
    const counting = await call('commands.run', () => sb.commands.run('wc -l', { background: true, stdin: true }));
    await call('commands.sendStdin', () => sb.commands.sendStdin(counting.pid, 'one\ntwo\n'));
    await call('commands.closeStdin', () => sb.commands.closeStdin(counting.pid));
    assert.equal((await call('CommandHandle.wait', () => counting.wait())).stdout.trim(), '2');
  });

  sdkTest('pty: create, input, resize, kill', async () => {
    let output = '';
    const pty = await call('pty.create', () =>
      sb.pty.create({ cols: 80, rows: 24, onData: (d) => void (output += Buffer.from(d).toString('utf8')), timeoutMs: 30_000 }),
    );
    await call('pty.sendInput', () => sb.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\n')));
    const deadline = Date.now() + 10_000;
    while (!output.includes('pty-42') && Date.now() < deadline) await pause(100);
    assert.match(output, /24 80/);
    assert.match(output, /pty-42/);
    await call('pty.resize', () => sb.pty.resize(pty.pid, { cols: 100, rows: 30 }));
    await call('pty.sendInput', () => sb.pty.sendInput(pty.pid, new TextEncoder().encode('stty size\n')));
    const until = Date.now() + 10_000;
    while (!output.includes('30 100') && Date.now() < until) await pause(100);
    assert.match(output, /30 100/);
    assert.equal(await call('pty.kill', () => sb.pty.kill(pty.pid)), true);
  });
});

describe('e2b SDK: files', () => {
  let sb: Sandbox;
  before(async () => {
    sb = await make();
  });

  sdkTest('write and read text and bytes; exists; getInfo for file, dir and symlink', async () => {
    await call('files.write', () => sb.files.write('/home/user/t.txt', 'text ✓'));
    assert.equal(await call('files.read', () => sb.files.read('/home/user/t.txt')), 'text ✓');
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await call('files.write', () => sb.files.write('/home/user/b.bin', bytes.buffer));
    const back = await call('files.read', () => sb.files.read('/home/user/b.bin', { format: 'bytes' }));
    assert.deepEqual([...back], [...bytes]);
    assert.equal(await call('files.exists', () => sb.files.exists('/home/user/t.txt')), true);
    assert.equal(await call('files.exists', () => sb.files.exists('/home/user/nope')), false);
    await call('commands.run', () => sb.commands.run('ln -s /home/user/t.txt /home/user/link'));
    const file = await call('files.getInfo', () => sb.files.getInfo('/home/user/t.txt'));
    assert.equal(file.type, 'file');
    assert.equal(file.size, Buffer.byteLength('text ✓'));
    assert.equal((await call('files.getInfo', () => sb.files.getInfo('/home/user'))).type, 'dir');
    const link = await call('files.getInfo', () => sb.files.getInfo('/home/user/link'));
    assert.equal(link.symlinkTarget, '/home/user/t.txt');
  });

  sdkTest('makeDir, list with depth, rename, remove', async () => {
    assert.equal(await call('files.makeDir', () => sb.files.makeDir('/home/user/d/e/f')), true);
    assert.equal(await call('files.makeDir', () => sb.files.makeDir('/home/user/d/e/f')), false, 'an existing dir answers false');
    await call('files.write', () => sb.files.write('/home/user/d/e/f/deep.txt', 'deep'));
    const shallow = await call('files.list', () => sb.files.list('/home/user/d'));
    assert.deepEqual(
      shallow.map((e) => e.name),
      ['e'],
    );
    const deep = await call('files.list', () => sb.files.list('/home/user/d', { depth: 3 }));
    assert.ok(
      deep.some((e) => e.path === '/home/user/d/e/f/deep.txt'),
      JSON.stringify(deep.map((e) => e.path)),
    );
    const moved = await call('files.rename', () => sb.files.rename('/home/user/d/e/f/deep.txt', '/home/user/moved.txt'));
    assert.equal(moved.path, '/home/user/moved.txt');
    assert.equal(await call('files.read', () => sb.files.read('/home/user/moved.txt')), 'deep');
    await call('files.remove', () => sb.files.remove('/home/user/d'));
    assert.equal(await call('files.exists', () => sb.files.exists('/home/user/d')), false);
  });

  sdkTest('gzip both ways, octet-stream upload, and file metadata', async () => {
    const big = 'compressible line\n'.repeat(5000);
    await call('files.write', () => sb.files.write('/home/user/gz.txt', big, { gzip: true }));
    assert.equal(await call('files.read', () => sb.files.read('/home/user/gz.txt', { gzip: true })), big);
    await call('files.write', () => sb.files.write('/home/user/octet.txt', 'octet', { useOctetStream: true }));
    assert.equal(await call('files.read', () => sb.files.read('/home/user/octet.txt')), 'octet');
    const written = await call('files.write', () =>
      sb.files.write('/home/user/meta.txt', 'm', { metadata: { owner: 'agent-7', step: '3' } }),
    );
    assert.deepEqual(written.metadata, { owner: 'agent-7', step: '3' });
    const info = await call('files.getInfo', () => sb.files.getInfo('/home/user/meta.txt'));
    assert.deepEqual(info.metadata, { owner: 'agent-7', step: '3' });
  });

  sdkTest('upload and download URLs, with and without expiry, work without headers; tampered and expired ones are refused', async () => {
    const upload = async (url: string, content: string): Promise<Response> => {
      const form = new FormData();
      form.append('file', new Blob([content]), new URL(url).searchParams.get('path') ?? '');
      return fetch(url, { method: 'POST', body: form });
    };
    // Upload without expiry, download with expiry.
    const up = await call('sandbox.uploadUrl', () => sb.uploadUrl('/home/user/via-url.txt'));
    assert.equal(new URL(up).searchParams.has('signature_expiration'), false);
    const put = await upload(up, 'uploaded by URL');
    assert.equal(put.status, 200, await put.text());
    const down = await call('sandbox.downloadUrl', () => sb.downloadUrl('/home/user/via-url.txt', { useSignatureExpiration: 60 }));
    assert.ok(Number(new URL(down).searchParams.get('signature_expiration')) > Date.now() / 1000);
    const got = await fetch(down);
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'uploaded by URL');

    // Upload with expiry, download without expiry.
    const upExpiring = await call('sandbox.uploadUrl', () => sb.uploadUrl('/home/user/via-url-2.txt', { useSignatureExpiration: 60 }));
    assert.ok(Number(new URL(upExpiring).searchParams.get('signature_expiration')) > Date.now() / 1000);
    const put2 = await upload(upExpiring, 'uploaded by an expiring URL');
    assert.equal(put2.status, 200, await put2.text());
    assert.equal(await call('files.read', () => sb.files.read('/home/user/via-url-2.txt')), 'uploaded by an expiring URL');
    const downForever = await call('sandbox.downloadUrl', () => sb.downloadUrl('/home/user/via-url-2.txt'));
    assert.equal(new URL(downForever).searchParams.has('signature_expiration'), false);
    const got2 = await fetch(downForever);
    assert.equal(got2.status, 200);
    assert.equal(await got2.text(), 'uploaded by an expiring URL');

    const tampered = new URL(down);
    tampered.searchParams.set('path', '/etc/shadow');
    assert.equal((await fetch(tampered)).status, 401, 'a signature covers its path');
    const tamperedUp = new URL(up);
    tamperedUp.searchParams.set('path', '/home/user/elsewhere.txt');
    assert.equal((await upload(tamperedUp.toString(), 'no')).status, 401, 'an upload signature covers its path');
    assert.equal((await fetch(up)).status, 401, 'an upload signature does not allow a download');
    const past = String(Math.floor(Date.now() / 1000) - 10);
    const expired = new URL(down);
    expired.searchParams.set('signature_expiration', past);
    assert.equal((await fetch(expired)).status, 401, 'an expired download URL is refused');
    const expiredUp = new URL(upExpiring);
    expiredUp.searchParams.set('signature_expiration', past);
    assert.equal((await upload(expiredUp.toString(), 'late')).status, 401, 'an expired upload URL is refused');
    assert.equal(await call('files.read', () => sb.files.read('/home/user/via-url-2.txt')), 'uploaded by an expiring URL');
  });

  sdkTest('watchDir reports writes, recursively', async () => {
    await call('files.makeDir', () => sb.files.makeDir('/home/user/w/sub'));
    const events: string[] = [];
    const watcher = await call('files.watchDir', () =>
      sb.files.watchDir('/home/user/w', (e) => void events.push(`${e.type}:${e.name}`), { recursive: true }),
    );
    await call('files.write', () => sb.files.write('/home/user/w/sub/new.txt', 'x'));
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.includes('new.txt')) && Date.now() < deadline) await pause(100);
    await call('WatchHandle.stop', () => watcher.stop());
    assert.ok(
      events.some((e) => e.includes('sub/new.txt') || e.endsWith(':new.txt')),
      `events: ${events.join(', ')}`,
    );
    // Stopped: later writes are not reported.
    const seen = events.length;
    await call('files.write', () => sb.files.write('/home/user/w/after-stop.txt', 'x'));
    await pause(500);
    assert.equal(events.length, seen, `no events after stop: ${events.slice(seen).join(', ')}`);
  });
});

describe(`e2b ${LEGACY} (the v1 create path) with an e2b-shaped key`, () => {
  sdkTest('create, commands (foreground, background with onStdout, exit error), files, list, kill', async () => {
    const made = await server.api<{ key: string }>('POST', '/v1/keys', { name: 'legacy-sdk', e2b: true });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const apiKey = made.body.key;
    assert.match(apiKey, /^e2b_[0-9a-f]+$/);
    const opts = { apiKey, apiUrl: server.url, sandboxUrl: server.url };
    const sb = await call(
      'Sandbox.create',
      () => LegacySandbox.create({ ...opts, metadata: { sdk: LEGACY }, envs: { OLD: 'yes' }, timeoutMs: 120_000 }),
      LEGACY,
    );
    try {
      const r = await call('commands.run', () => sb.commands.run('echo legacy $OLD; whoami'), LEGACY);
      assert.equal(r.stdout, 'legacy yes\nuser\n');

      let streamed = '';
      const bg = await call(
        'commands.run',
        () =>
          sb.commands.run('for i in 1 2 3; do echo old$i; sleep 0.1; done', { background: true, onStdout: (d) => void (streamed += d) }),
        LEGACY,
      );
      const done = await call('CommandHandle.wait', () => bg.wait(), LEGACY);
      assert.equal(done.exitCode, 0);
      assert.equal(streamed, 'old1\nold2\nold3\n', 'onStdout saw every line');
      assert.equal(done.stdout, 'old1\nold2\nold3\n');

      await callRejects(
        'commands.run',
        () => sb.commands.run('echo partial; echo bad >&2; exit 3'),
        (err) => err instanceof LegacyCommandExitError && err.exitCode === 3 && err.stdout === 'partial\n' && err.stderr === 'bad\n',
        LEGACY,
      );

      await call('files.write', () => sb.files.write('/home/user/legacy.txt', 'v1 path'), LEGACY);
      assert.equal(await call('files.read', () => sb.files.read('/home/user/legacy.txt'), LEGACY), 'v1 path');
      assert.ok((await call('files.list', () => sb.files.list('/home/user'), LEGACY)).some((e) => e.name === 'legacy.txt'));
      const paginator = await call('Sandbox.list', () => LegacySandbox.list({ ...opts, query: { metadata: { sdk: LEGACY } } }), LEGACY);
      assert.deepEqual(idsOf(await call('SandboxPaginator.nextItems', () => paginator.nextItems(), LEGACY)), [sb.sandboxId]);
    } finally {
      await call('sandbox.kill', () => sb.kill(), LEGACY); // 2.14's kill() resolves to nothing
    }
    assert.equal(await call('sandbox.isRunning', () => sb.isRunning(), LEGACY), false);
    const keys = await server.api<{ keys: Array<{ name: string; lastUsedAt: string | null }> }>('GET', '/v1/keys');
    assert.ok(
      keys.body.keys.some((k) => k.name === 'legacy-sdk' && k.lastUsedAt !== null),
      'the key is listed, with its last use',
    );
  });
});
