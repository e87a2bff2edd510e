import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startServer, type TestServer } from './harness.js';
import {
  assertNoLeftovers,
  cmdlineOf,
  createSandbox,
  deleteSandbox,
  exec,
  getFile,
  hostPids,
  putFile,
  run,
  runtimeCommand,
  runtimeRoot,
  sleep,
  slowHttpServer,
  startProcess,
  TIERS,
  waitFor,
  type ApiError,
  type Sandbox,
} from './hostile-lib.js';

/**
 * Issue 4: persistent sandboxes (stop/start), disk quotas, pause/resume (memory on gVisor, files
 * on the container tier), lifecycle policies, volumes — on real tiers, across a kill -9 of the
 * server. Every loop is bounded; every sandbox and volume is deleted in `after`.
 */
let server: TestServer;
const created: string[] = [];
const volumes: string[] = [];
before(async () => {
  // A pool of its own: this file needs no egress, and must not meet another server's pool.
  server = await startServer({ networkPool4: '10.215.0.0/16', networkPool6: 'fd68:7574:636a::/48' });
});
after(async () => {
  for (const id of created) await deleteSandbox(server, id).catch(() => undefined);
  for (const name of volumes) await server.api('DELETE', `/v1/volumes/${name}`).catch(() => undefined);
  await server?.stop();
});

interface Full extends Sandbox {
  state: string;
  pauseMode: string | null;
  diskMiB: number;
  env: Record<string, string>;
  metadata: Record<string, string>;
  error: string | null;
  lifecycle: { persistent: boolean; onTimeout: string; autoResume: boolean };
  timeoutSeconds: number | null;
  expiresAt: string | null;
}
interface PauseAnswer {
  state: string;
  pauseMode: string;
  note: string | null;
  durationMs: number;
}

async function make(body: Record<string, unknown>): Promise<Full> {
  // Persistent sandboxes are created without a TTL, as a user would.
  const sb = (body.persistent ? await createRaw(body) : await createSandbox(server, body)) as Full;
  created.push(sb.id);
  return sb;
}

async function createRaw(body: Record<string, unknown>): Promise<Full> {
  const res = await server.api<Full>('POST', '/v1/sandboxes', body);
  assert.equal(res.status, 201, `create ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
  return res.body;
}

async function state(id: string): Promise<Full> {
  return (await server.api<Full>('GET', `/v1/sandboxes/${id}`)).body;
}

const mountinfoMentions = (id: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').includes(id);

const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done';

/** Whether a process with exactly this command line runs in the sandbox (seen from the host: not an API call). */
const runsInSandbox = (id: string, cmdline: string): boolean => hostPids(id).some((pid) => cmdlineOf(pid) === cmdline);

const gone = async (id: string): Promise<boolean> => (await server.api('GET', `/v1/sandboxes/${id}`)).status === 404;

/** Container-tier sandboxes with a 2 s idle timeout (and a TTL far away). */
const IDLE = { template: 'minimal', timeoutSeconds: 600, idleTimeoutSeconds: 2 } as const;

/**
 * Resolves once an idle timeout that starts now has passed, without reading a clock: a control
 * sandbox created now and never called again is deleted by its own 2 s idle timeout.
 */
async function idleTimeoutPassed(): Promise<void> {
  const control = await make({ ...IDLE });
  assert.ok(await waitFor(() => gone(control.id), 20_000, 200), 'the control sandbox (never called) was deleted when idle');
}

for (const tier of TIERS) {
  describe(`${tier} tier: persistence`, () => {
    test(`${tier}: a persistent sandbox stops (processes, memory, mounts freed; files kept) and starts with the same id, files, env and metadata`, async () => {
      const sb = await make({
        template: 'base',
        isolation: tier,
        persistent: true,
        env: { GREETING: 'hello' },
        metadata: { owner: 'tests' },
      });
      assert.equal(sb.timeoutSeconds, null, 'a persistent sandbox has no forced lifetime by default');
      assert.equal(sb.expiresAt, null);
      await run(server, sb.id, 'echo kept > /home/user/notes.txt && echo tmp-kept > /tmp/t.txt');
      await server.api('POST', `/v1/sandboxes/${sb.id}/processes`, { cmd: COUNTER, tag: 'counter' });
      const stopped = await server.api<Full>('POST', `/v1/sandboxes/${sb.id}/stop`);
      assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
      assert.equal(stopped.body.state, 'stopped');
      assert.equal(existsSync(join(runtimeRoot(server, tier), sb.id)), false, 'no runtime state while stopped');
      assert.equal(mountinfoMentions(sb.id), false, 'no mount while stopped (disk and root unmounted)');
      assert.ok(existsSync(join(server.dataDir, 'sandboxes', sb.id, 'disk.img')), 'the disk stays');
      const refused = await exec(server, sb.id, { cmd: 'true' });
      assert.equal(refused.status, 409);
      assert.match(refused.body.error.message, /stopped.*\/start/);
      const started = await server.api<Full>('POST', `/v1/sandboxes/${sb.id}/start`);
      assert.equal(started.status, 200, JSON.stringify(started.body));
      assert.equal(started.body.state, 'running');
      assert.deepEqual(started.body.metadata, { owner: 'tests' });
      const out = await run(
        server,
        sb.id,
        'cat /home/user/notes.txt /tmp/t.txt; echo $GREETING; pgrep -f "sleep 0[.]2" >/dev/null && echo counter-alive || echo counter-gone',
      );
      assert.equal(out.stdout, 'kept\ntmp-kept\nhello\ncounter-gone\n');
    });

    test(`${tier}: the disk quota (diskMiB) ends writes with ENOSPC, in / and in /tmp; usage is reported`, async () => {
      const sb = await make({ template: 'base', isolation: tier, diskMiB: 64 });
      assert.equal(sb.diskMiB, 64);
      for (const path of ['/tmp/fill', '/home/user/fill']) {
        const res = await exec(server, sb.id, { cmd: `dd if=/dev/zero of=${path} bs=1M count=100 2>&1; echo rc=$?`, timeoutMs: 60_000 });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.match(res.body.stdout, /No space left on device/, `${path}: ${res.body.stdout}`);
        assert.match(res.body.stdout, /rc=1/);
        const usage = await server.api<{ disk: { usedBytes: number; sizeBytes: number } }>('GET', `/v1/sandboxes/${sb.id}/usage`);
        assert.ok(usage.body.disk.usedBytes > 40 * 1024 * 1024, `usage shows the fill: ${JSON.stringify(usage.body)}`);
        assert.ok(usage.body.disk.sizeBytes <= 64 * 1024 * 1024);
        await run(server, sb.id, `rm -f ${path}`);
      }
      assert.equal((await run(server, sb.id, 'echo still-writable > /tmp/ok && cat /tmp/ok')).stdout, 'still-writable\n');
    });

    test(`${tier}: pause says its mode; a paused sandbox refuses exec with a hint; resume brings it back`, async () => {
      const sb = await make({ template: 'base', isolation: tier });
      await run(server, sb.id, 'echo before-pause > /home/user/p.txt');
      await server.api('POST', `/v1/sandboxes/${sb.id}/processes`, { cmd: COUNTER, tag: 'counter' });
      await waitFor(async () => Number((await run(server, sb.id, 'cat /tmp/count 2>/dev/null || echo 0')).stdout) >= 3, 5000, 200);
      const before = Number((await run(server, sb.id, 'cat /tmp/count')).stdout);
      const paused = await server.api<PauseAnswer>('POST', `/v1/sandboxes/${sb.id}/pause`);
      assert.equal(paused.status, 200, JSON.stringify(paused.body));
      assert.equal(paused.body.state, 'paused');
      if (tier === 'gvisor') {
        assert.equal(paused.body.pauseMode, 'memory');
      } else {
        assert.equal(paused.body.pauseMode, 'filesystem');
        assert.match(paused.body.note ?? '', /cannot keep memory/);
      }
      assert.equal((await state(sb.id)).pauseMode, paused.body.pauseMode);
      const refused = await exec(server, sb.id, { cmd: 'true' });
      assert.equal(refused.status, 409);
      assert.match(refused.body.error.message, /paused.*resume.*autoResume/);
      const resumed = await server.api<PauseAnswer>('POST', `/v1/sandboxes/${sb.id}/resume`);
      assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
      assert.equal(resumed.body.state, 'running');
      assert.equal((await run(server, sb.id, 'cat /home/user/p.txt')).stdout, 'before-pause\n');
      if (tier === 'gvisor') {
        // Memory kept: the counter process is still running and counts on from where it was.
        const first = Number((await run(server, sb.id, 'cat /tmp/count')).stdout);
        await sleep(1000);
        const second = Number((await run(server, sb.id, 'cat /tmp/count')).stdout);
        assert.ok(first >= before, `the counter did not restart: ${before} before pause, ${first} after resume`);
        assert.ok(second > first, `the counter keeps counting after resume: ${first} → ${second}`);
      } else {
        const alive = await run(server, sb.id, 'pgrep -f "sleep 0[.]2" >/dev/null && echo alive || echo gone');
        assert.equal(alive.stdout, 'gone\n', 'filesystem mode: processes stopped');
      }
    });

    test(`${tier}: autoResume resumes a paused sandbox on the next call`, async () => {
      const sb = await make({ template: 'minimal', isolation: tier, autoResume: true });
      assert.equal((await server.api('POST', `/v1/sandboxes/${sb.id}/pause`)).status, 200);
      const res = await exec(server, sb.id, { cmd: 'echo woke' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.stdout, 'woke\n');
      assert.equal((await state(sb.id)).state, 'running');
    });
  });
}

test('paused and stopped sandboxes survive kill -9 of the server; resume and start bring their files back', async () => {
  const sandboxes: Array<{ sb: Full; how: 'pause' | 'stop' }> = [];
  for (const tier of TIERS) {
    for (const how of ['pause', 'stop'] as const) {
      const sb = await make({ template: 'minimal', isolation: tier, persistent: true });
      await run(server, sb.id, `echo ${how}-${tier} > /root/file`);
      const res = await server.api('POST', `/v1/sandboxes/${sb.id}/${how}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      sandboxes.push({ sb, how });
    }
  }
  await server.kill9();
  await server.restart();
  for (const { sb, how } of sandboxes) {
    const got = await state(sb.id);
    assert.equal(got.state, how === 'pause' ? 'paused' : 'stopped', JSON.stringify(got));
    const res = await server.api('POST', `/v1/sandboxes/${sb.id}/${how === 'pause' ? 'resume' : 'start'}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await run(server, sb.id, 'cat /root/file')).stdout, `${how}-${sb.isolation}\n`);
  }
});

/**
 * A host reboot, simulated without rebooting: the server is killed, then everything a reboot
 * takes away is removed by hand — the sandboxes' processes (runtime delete), every mount under
 * their directories, and the runtime state on /run (runc/runsc roots, sockets, staged agent).
 */
async function simulateReboot(): Promise<void> {
  await server.kill9();
  const stateRoot = dirname(runtimeRoot(server, 'container'));
  // Every sandbox of this server dies, as in a reboot — not only the ones the test looks at.
  for (const tier of TIERS) {
    const [bin, ...pre] = runtimeCommand(tier);
    const listed = spawnSync(bin!, [...pre, '--root', runtimeRoot(server, tier), 'list', '--format', 'json'], { encoding: 'utf8' });
    const containers = (JSON.parse(listed.stdout.trim() || 'null') as Array<{ id: string }> | null) ?? [];
    for (const c of containers)
      spawnSync(bin!, [...pre, '--root', runtimeRoot(server, tier), 'delete', '--force', c.id], { stdio: 'ignore' });
  }
  const prefix = join(server.dataDir, 'sandboxes') + '/';
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(prefix))
    .reverse();
  for (const target of mounts) spawnSync('umount', ['-l', target], { stdio: 'ignore' });
  rmSync(stateRoot, { recursive: true, force: true });
  await server.restart();
}

test('after a host reboot (simulated) persistent sandboxes come back stopped and paused ones paused; both come back with their files', async () => {
  const running: Full[] = [];
  const paused: Full[] = [];
  for (const tier of TIERS) {
    const a = await make({ template: 'minimal', isolation: tier, persistent: true });
    await run(server, a.id, `echo running-${tier} > /root/file`);
    running.push(a);
    const b = await make({ template: 'minimal', isolation: tier, persistent: true });
    await run(server, b.id, `echo paused-${tier} > /root/file`);
    assert.equal((await server.api('POST', `/v1/sandboxes/${b.id}/pause`)).status, 200);
    paused.push(b);
  }
  await simulateReboot();
  for (const sb of running) {
    const got = await state(sb.id);
    assert.equal(got.state, 'stopped', `a persistent sandbox whose processes are gone is stopped: ${JSON.stringify(got)}`);
    assert.equal((await server.api('POST', `/v1/sandboxes/${sb.id}/start`)).status, 200);
    assert.equal((await run(server, sb.id, 'cat /root/file')).stdout, `running-${sb.isolation}\n`);
  }
  for (const sb of paused) {
    assert.equal((await state(sb.id)).state, 'paused');
    const resumed = await server.api('POST', `/v1/sandboxes/${sb.id}/resume`);
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal((await run(server, sb.id, 'cat /root/file')).stdout, `paused-${sb.isolation}\n`);
  }
});

describe('lifecycle policies', () => {
  test('onTimeout "pause" pauses at the TTL; autoDeleteAfterSeconds then deletes, leaving nothing', async () => {
    const sb = await make({ template: 'minimal', timeoutSeconds: 1, onTimeout: 'pause', autoDeleteAfterSeconds: 2 });
    const paused = await waitFor(async () => (await state(sb.id)).state === 'paused', 10_000, 200);
    assert.ok(paused, `paused at its TTL: ${JSON.stringify(await state(sb.id))}`);
    const gone = await waitFor(async () => (await server.api('GET', `/v1/sandboxes/${sb.id}`)).status === 404, 10_000, 200);
    assert.ok(gone, 'deleted after autoDeleteAfterSeconds');
    await assertNoLeftovers(server, 'container', sb.id);
  });

  test('autoDeleteAfterSeconds deletes a stopped persistent sandbox, leaving nothing', async () => {
    const sb = await make({ template: 'minimal', persistent: true, autoDeleteAfterSeconds: 2 });
    await run(server, sb.id, 'echo x > /root/x');
    const stopped = await server.api<Full>('POST', `/v1/sandboxes/${sb.id}/stop`);
    assert.equal(stopped.status, 200, JSON.stringify(stopped.body));
    assert.equal(stopped.body.state, 'stopped');
    assert.notEqual(stopped.body.expiresAt, null, 'the auto-delete time is set when it stops');
    assert.ok(await waitFor(() => gone(sb.id), 20_000, 200), 'deleted after autoDeleteAfterSeconds');
    await assertNoLeftovers(server, 'container', sb.id);
  });

  test('idleTimeoutSeconds: API activity keeps a sandbox; without it the sandbox is deleted', async () => {
    const sb = await make({ template: 'minimal', timeoutSeconds: 600, idleTimeoutSeconds: 2 });
    for (let i = 0; i < 4; i++) {
      assert.equal((await run(server, sb.id, 'true')).exitCode, 0);
      await sleep(1000);
    }
    assert.equal((await state(sb.id)).state, 'running', 'calls every second keep it alive past its idle timeout');
    const gone = await waitFor(async () => (await server.api('GET', `/v1/sandboxes/${sb.id}`)).status === 404, 10_000, 200);
    assert.ok(gone, 'deleted once idle for 2 s');
  });

  test('create validation names the field', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ onTimeout: 'sleep' }, /onTimeout/],
      [{ diskMiB: 1 }, /diskMiB/],
      [{ volumes: [{ name: 'no-such-volume', path: '/data' }] }, /volumes\[0\]\.name.*does not exist/],
      [{ persistent: 'yes' }, /persistent/],
    ];
    for (const [body, message] of cases) {
      const res = await server.api<ApiError>('POST', '/v1/sandboxes', { template: 'minimal', ...body });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(res.body.error.message, message);
    }
  });
});

describe('the idle rule: holds and keepAlive', () => {
  test('onTimeout "pause": a sandbox whose only process is a plain background one pauses when idle (and resumes); a keepAlive process keeps its sandbox running until it ends, with no client attached', async () => {
    const kept = await make({ ...IDLE, onTimeout: 'pause' });
    const plain = await make({ ...IDLE, onTimeout: 'pause' });
    await startProcess(server, kept.id, { cmd: ['sleep', '12'], keepAlive: true });
    // Started after the keepAlive one: the plain sandbox's idle clock starts later than the kept one's.
    await startProcess(server, plain.id, { cmd: ['sleep', '600'] });
    assert.ok(await waitFor(async () => (await state(plain.id)).state === 'paused', 20_000, 200), 'the plain sandbox paused when idle');
    assert.equal((await state(kept.id)).state, 'running', 'a keepAlive process keeps its sandbox past the idle timeout');
    assert.ok(runsInSandbox(kept.id, 'sleep 12'), 'the keepAlive process still runs');
    const ended = await waitFor(
      async () => {
        const alive = runsInSandbox(kept.id, 'sleep 12');
        if (alive) assert.equal((await state(kept.id)).state, 'running', 'running for as long as the keepAlive process runs');
        return !alive;
      },
      30_000,
      200,
    );
    assert.ok(ended, 'the keepAlive process ended');
    assert.ok(
      await waitFor(async () => (await state(kept.id)).state === 'paused', 20_000, 200),
      'once the keepAlive process ended, the idle timeout applied',
    );

    const resumed = await server.api<Full>('POST', `/v1/sandboxes/${plain.id}/resume`);
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.state, 'running');
    assert.equal((await run(server, plain.id, 'echo resumed')).stdout, 'resumed\n');
    assert.equal(runsInSandbox(plain.id, 'sleep 600'), false, 'filesystem pause: the background process did not come back');
  });

  test('a keepAlive process still counts after a kill -9 of the server (the idle check finds it through the agent)', async () => {
    const kept = await make({ ...IDLE });
    const control = await make({ ...IDLE });
    await startProcess(server, kept.id, { cmd: ['sleep', '15'], keepAlive: true });
    await server.restart();
    // Both idle clocks start again at the restarted server's first look; the control is never called.
    assert.ok(await waitFor(() => gone(control.id), 20_000, 200), 'the control sandbox was deleted when idle');
    assert.equal((await state(kept.id)).state, 'running', 'the keepAlive process keeps its sandbox after the restart');
    assert.ok(runsInSandbox(kept.id, 'sleep 15'), 'the keepAlive process still runs');
    assert.ok(await waitFor(() => !runsInSandbox(kept.id, 'sleep 15'), 30_000, 200), 'the keepAlive process ended');
    assert.ok(await waitFor(() => gone(kept.id), 20_000, 200), 'then the idle timeout applied');
  });

  test('an exec, a process output stream and a terminal that outlast the idle timeout keep the sandbox while open; it idles after', async () => {
    const sb = await make({ ...IDLE });

    const buffered = exec(server, sb.id, { cmd: 'sleep 8; echo exec-done', timeoutMs: 60_000 });
    assert.ok(await waitFor(() => runsInSandbox(sb.id, 'sleep 8'), 10_000, 50), 'the exec started');
    await idleTimeoutPassed();
    assert.equal((await state(sb.id)).state, 'running', 'held by the exec in progress');
    const res = await buffered;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.stdout, 'exec-done\n');

    const streamed = await fetch(`${server.url}/v1/sandboxes/${sb.id}/processes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.key}`, 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ cmd: 'sleep 7; echo stream-done' }),
      signal: AbortSignal.timeout(60_000),
    });
    assert.equal(streamed.status, 200);
    await idleTimeoutPassed();
    assert.equal((await state(sb.id)).state, 'running', 'held by the attached output stream');
    const events = (await streamed.text())
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { type: string; data?: string; exitCode?: number });
    assert.equal(events.at(-1)?.type, 'exit', JSON.stringify(events));
    assert.equal(events.at(-1)?.exitCode, 0);
    const out = events.filter((e) => e.type === 'stdout').map((e) => Buffer.from(e.data ?? '', 'base64').toString());
    assert.equal(out.join(''), 'stream-done\n');

    const ws = new WebSocket(
      `${server.url.replace('http:', 'ws:')}/v1/sandboxes/${sb.id}/pty?cmd=${encodeURIComponent('sleep 6; echo pty-done')}`,
      { headers: { authorization: `Bearer ${server.key}` } },
    );
    let terminal = '';
    const messages: Array<{ type?: string; exitCode?: number }> = [];
    ws.on('message', (data: Buffer, binary: boolean) => {
      if (binary) terminal += data.toString();
      else messages.push(JSON.parse(data.toString()) as { type?: string });
    });
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    assert.ok(
      await waitFor(() => messages.some((m) => m.type === 'start'), 10_000, 50),
      `the terminal started: ${JSON.stringify(messages)}`,
    );
    await idleTimeoutPassed();
    assert.equal((await state(sb.id)).state, 'running', 'held by the open terminal');
    await Promise.race([closed, sleep(30_000)]);
    assert.ok(
      messages.some((m) => m.type === 'exit' && m.exitCode === 0),
      `the terminal's command ran to its end: ${JSON.stringify(messages)}`,
    );
    assert.match(terminal, /pty-done/);

    assert.ok(await waitFor(() => gone(sb.id), 20_000, 200), 'with nothing open, the idle timeout applied');
  });

  test('a connection proxied through the ingress (path route) keeps the sandbox while open', async () => {
    const sb = await make({ ...IDLE, template: 'base' });
    // Answers each request 8 s after accepting it; says when it accepted one.
    const slowServer = slowHttpServer(8080, 8);
    await startProcess(server, sb.id, { cmd: ['python3', '-c', slowServer] });
    const ready = async (): Promise<boolean> => (await run(server, sb.id, 'test -e /tmp/ready && echo yes || echo no')).stdout === 'yes\n';
    assert.ok(await waitFor(ready, 15_000, 100), 'the slow server listens');
    const response = fetch(`${server.url}/v1/sandboxes/${sb.id}/ports/8080/`, {
      headers: { authorization: `Bearer ${server.key}` },
      signal: AbortSignal.timeout(60_000),
    });
    const accepted = async (): Promise<boolean> =>
      (await run(server, sb.id, 'test -e /tmp/accepted && echo yes || echo no')).stdout === 'yes\n';
    assert.ok(await waitFor(accepted, 15_000, 100), 'the proxied request reached the sandbox');
    await idleTimeoutPassed();
    assert.equal((await state(sb.id)).state, 'running', 'held by the open proxied connection');
    const answer = await response;
    assert.equal(answer.status, 200);
    assert.equal(await answer.text(), 'slow');
    assert.ok(await waitFor(() => gone(sb.id), 20_000, 200), 'once the connection closed, the idle timeout applied');
  });

  test('files: autoResume resumes a paused sandbox on a files call; without it, files answer 409 saying what to do', async () => {
    const auto = await make({ template: 'minimal', autoResume: true });
    const manual = await make({ template: 'minimal' });
    for (const sb of [auto, manual]) assert.equal((await server.api('POST', `/v1/sandboxes/${sb.id}/pause`)).status, 200);

    const written = await putFile(server, auto.id, '/root/woke.txt', 'woken by a file write\n');
    assert.equal(written.status, 200, JSON.stringify(written.body));
    assert.equal((await state(auto.id)).state, 'running');
    assert.equal((await getFile(server, auto.id, '/root/woke.txt')).text, 'woken by a file write\n');

    const read = await getFile(server, manual.id, '/etc/hostname');
    assert.equal(read.status, 409, read.text);
    assert.match(
      (JSON.parse(read.text) as ApiError).error.message,
      new RegExp(`sandbox ${manual.id} is paused \\(POST /v1/sandboxes/${manual.id}/resume, or create it with autoResume: true\\)`),
    );
    const write = await putFile(server, manual.id, '/root/x.txt', 'x');
    assert.equal(write.status, 409, JSON.stringify(write.body));
    assert.match((write.body as ApiError).error.message, /paused.*resume/);
    assert.equal((await state(manual.id)).state, 'paused', 'a refused call leaves it paused');
  });
});

describe('volumes', () => {
  test('a volume is shared by two sandboxes, read-only where asked, quota-bound, in-use protected, and outlives its users', async () => {
    const name = `vol-${Date.now().toString(36)}`;
    const createdVol = await server.api<{ name: string; sizeMiB: number }>('POST', '/v1/volumes', {
      name,
      sizeMiB: 64,
      labels: { team: 'a' },
    });
    assert.equal(createdVol.status, 201, JSON.stringify(createdVol.body));
    volumes.push(name);
    assert.equal((await server.api('POST', '/v1/volumes', { name })).status, 409, 'names are unique');
    const bad = await server.api<ApiError>('POST', '/v1/sandboxes', { template: 'minimal', volumes: [{ name, path: '/proc/x' }] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /volumes\[0\]\.path/);

    const writer = await make({ template: 'minimal', volumes: [{ name, path: '/data' }] });
    const reader = await make({ template: 'minimal', volumes: [{ name, path: '/mnt/shared', readOnly: true }] });
    await run(server, writer.id, 'echo shared-content > /data/hello.txt');
    assert.equal((await run(server, reader.id, 'cat /mnt/shared/hello.txt')).stdout, 'shared-content\n');
    const ro = await run(server, reader.id, '{ echo x > /mnt/shared/nope; } 2>&1; echo rc=$?');
    assert.match(ro.stdout, /Read-only file system/);
    const fill = await exec(server, writer.id, {
      cmd: 'dd if=/dev/zero of=/data/fill bs=1M count=100 2>&1; echo rc=$?',
      timeoutMs: 60_000,
    });
    assert.match(fill.body.stdout, /No space left on device/);
    const listed = await server.api<{ usedBytes: number; usedBy: string[] }>('GET', `/v1/volumes/${name}`);
    assert.ok(listed.body.usedBytes > 40 * 1024 * 1024, JSON.stringify(listed.body));
    assert.deepEqual([...listed.body.usedBy].sort(), [writer.id, reader.id].sort());
    await run(server, writer.id, 'rm /data/fill');

    const inUse = await server.api<ApiError>('DELETE', `/v1/volumes/${name}`);
    assert.equal(inUse.status, 409);
    assert.match(inUse.body.error.message, /in use/);
    await deleteSandbox(server, writer.id);
    await deleteSandbox(server, reader.id);
    const gvisor = await make({ template: 'minimal', isolation: 'gvisor', volumes: [{ name, path: '/data' }] });
    assert.equal(
      (await run(server, gvisor.id, 'cat /data/hello.txt')).stdout,
      'shared-content\n',
      'contents outlive the sandboxes that wrote them',
    );
    await deleteSandbox(server, gvisor.id);
    assert.equal((await server.api('DELETE', `/v1/volumes/${name}`)).status, 204);
    assert.equal(existsSync(join(server.dataDir, 'volumes', name)), false, 'a deleted volume leaves no files');
    assert.equal(readFileSync('/proc/self/mountinfo', 'utf8').includes(`/volumes/${name}/`), false, 'nor a mount');
  });
  test("two read-write mounters of one volume see each other's writes", async () => {
    const name = `rw-${Date.now().toString(36)}`;
    assert.equal((await server.api('POST', '/v1/volumes', { name, sizeMiB: 64 })).status, 201);
    volumes.push(name);
    const a = await make({ template: 'minimal', volumes: [{ name, path: '/data' }] });
    const b = await make({ template: 'minimal', volumes: [{ name, path: '/shared' }] });
    await run(server, a.id, 'echo from-a > /data/a.txt');
    assert.equal((await run(server, b.id, 'cat /shared/a.txt')).stdout, 'from-a\n');
    await run(server, b.id, 'echo from-b > /shared/b.txt && echo more-from-b >> /shared/a.txt');
    assert.equal((await run(server, a.id, 'cat /data/b.txt /data/a.txt')).stdout, 'from-b\nfrom-a\nmore-from-b\n');
    await run(server, a.id, 'rm /data/b.txt');
    assert.equal((await run(server, b.id, 'test -e /shared/b.txt && echo present || echo removed')).stdout, 'removed\n');
    await deleteSandbox(server, a.id);
    await deleteSandbox(server, b.id);
    assert.equal((await server.api('DELETE', `/v1/volumes/${name}`)).status, 204);
  });

  test('volume contents survive a kill -9 of the server and its restart', async () => {
    const name = `crash-${Date.now().toString(36)}`;
    assert.equal((await server.api('POST', '/v1/volumes', { name, sizeMiB: 64 })).status, 201);
    volumes.push(name);
    const writer = await make({ template: 'minimal', volumes: [{ name, path: '/data' }] });
    await run(
      server,
      writer.id,
      'echo before-crash > /data/kept.txt && dd if=/dev/urandom of=/data/blob bs=1k count=256 2>/dev/null && md5sum /data/blob > /data/blob.md5 && sync',
    );
    await server.restart();
    const listed = await server.api<{ name: string; usedBy: string[] }>('GET', `/v1/volumes/${name}`);
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.usedBy, [writer.id]);
    assert.equal((await run(server, writer.id, 'cat /data/kept.txt')).stdout, 'before-crash\n', 'the running user still sees it');
    await deleteSandbox(server, writer.id);
    const reader = await make({ template: 'minimal', volumes: [{ name, path: '/v' }] });
    assert.equal((await run(server, reader.id, 'cat /v/kept.txt')).stdout, 'before-crash\n');
    assert.equal((await run(server, reader.id, 'cd /v && sed "s#/data/#/v/#" blob.md5 | md5sum -c -')).stdout, '/v/blob: OK\n');
    await deleteSandbox(server, reader.id);
    assert.equal((await server.api('DELETE', `/v1/volumes/${name}`)).status, 204);
  });
});

test("GET /v1/info says what pause keeps per tier; the container tier's note comes from probing CRIU on this host", async () => {
  const info = await server.api<{ tiers: Record<string, { available: boolean; pause?: { mode: string; note: string | null } }> }>(
    'GET',
    '/v1/info',
  );
  assert.equal(info.status, 200);
  const container = info.body.tiers.container!;
  assert.equal(container.pause?.mode, 'filesystem');
  const note = container.pause?.note ?? '';
  assert.match(note, /cannot keep memory.*processes stop, files stay/);
  const criu = spawnSync('criu', ['check'], { encoding: 'utf8', timeout: 20_000 });
  if (criu.error) assert.match(note, /CRIU, which container runtimes checkpoint with, is not installed/, note);
  else if (criu.status !== 0) {
    const first = `${criu.stderr}\n${criu.stdout}`
      .split('\n')
      .map((line) => line.replace(/^Error \([^)]*\):\s*/, '').trim())
      .find(Boolean);
    assert.match(note, /`criu check` fails on this kernel/, note);
    assert.ok(note.includes(first ?? '-'), `the note names criu's first error (${first}): ${note}`);
  } else assert.match(note, /passes `criu check` here, but Hutch does not checkpoint containers/, note);
  if (info.body.tiers.gvisor?.available) assert.equal(info.body.tiers.gvisor.pause?.mode, 'memory');
  // The same note is what a pause answers.
  const sb = await make({ template: 'minimal' });
  const paused = await server.api<PauseAnswer>('POST', `/v1/sandboxes/${sb.id}/pause`);
  assert.equal(paused.body.note, note);
});

test('H22: a deleted ephemeral sandbox leaves no directory, disk, loop device, cgroup or mount behind', async () => {
  for (const tier of TIERS) {
    const sb = await make({ template: 'minimal', isolation: tier });
    await run(server, sb.id, 'dd if=/dev/zero of=/tmp/x bs=1M count=5 2>/dev/null; echo ok');
    assert.equal((await server.api('DELETE', `/v1/sandboxes/${sb.id}`)).status, 204);
    await assertNoLeftovers(server, tier, sb.id);
  }
});

describe('snapshots and forks', () => {
  interface Snap {
    id: string;
    layers: string[];
    reused?: boolean;
    sizeBytes: number;
  }
  const snapshots: string[] = [];
  after(async () => {
    for (const id of snapshots) await server.api('DELETE', `/v1/snapshots/${id}`).catch(() => undefined);
  });

  test('a snapshot is a template: sandboxes made from it see its files (deletions included) and not later changes; identical content is one layer; in-use snapshots stay; gc collects the rest', async () => {
    const source = await make({ template: 'minimal' });
    await run(server, source.id, 'echo v1 > /root/a.txt && mkdir -p /opt/app && echo code > /opt/app/main.sh && rm /etc/profile');
    const taken = await server.api<Snap>('POST', `/v1/sandboxes/${source.id}/snapshots`, { metadata: { step: '1' } });
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    snapshots.push(taken.body.id);
    assert.match(taken.body.id, /^snap-[a-z0-9]{16}$/);
    assert.equal(taken.body.reused, false);
    const again = await server.api<Snap>('POST', `/v1/sandboxes/${source.id}/snapshots`);
    assert.equal(again.status, 201, JSON.stringify(again.body));
    snapshots.push(again.body.id);
    assert.equal(again.body.reused, true, 'the same content is the same layer');
    assert.equal(again.body.layers[0], taken.body.layers[0]);
    await run(server, source.id, 'echo v2 > /root/a.txt');

    for (const tier of TIERS) {
      const child = await make({ template: taken.body.id, isolation: tier });
      const out = await run(
        server,
        child.id,
        'cat /root/a.txt /opt/app/main.sh; test -e /etc/profile && echo profile-present || echo profile-deleted',
      );
      assert.equal(out.stdout, 'v1\ncode\nprofile-deleted\n', `${tier} child of the snapshot`);
      await run(server, child.id, 'echo child > /root/a.txt');
      assert.equal((await run(server, source.id, 'cat /root/a.txt')).stdout, 'v2\n', 'children do not write into the source');
      const inUse = await server.api<ApiError>('DELETE', `/v1/snapshots/${taken.body.id}`);
      assert.equal(inUse.status, 409);
      assert.match(inUse.body.error.message, new RegExp(child.id));
      await deleteSandbox(server, child.id);
    }

    const listed = await server.api<{ snapshots: Snap[] }>('GET', '/v1/snapshots');
    assert.ok(listed.body.snapshots.some((s) => s.id === taken.body.id));
    const layerDir = join(server.dataDir, 'snapshots', 'layers', taken.body.layers[0]!);
    assert.ok(existsSync(layerDir), 'the layer is stored under the data dir');
    for (const id of [taken.body.id, again.body.id]) assert.equal((await server.api('DELETE', `/v1/snapshots/${id}`)).status, 204);
    const dry = await server.api<{ layers: string[]; dryRun: boolean }>('POST', '/v1/gc?dryRun=true');
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.ok(dry.body.layers.includes(taken.body.layers[0]!), `dry run lists the unreferenced layer: ${JSON.stringify(dry.body)}`);
    assert.ok(existsSync(layerDir), 'a dry run removes nothing');
    const real = await server.api<{ layers: string[] }>('POST', '/v1/gc');
    assert.ok(real.body.layers.includes(taken.body.layers[0]!));
    assert.equal(existsSync(layerDir), false, 'gc removed the layer');
  });

  test('fork creates N sandboxes from a fresh snapshot of a running sandbox, with its settings', async () => {
    const source = await make({ template: 'minimal', env: { ROLE: 'worker' }, metadata: { job: 'j1' } });
    await run(server, source.id, 'echo state-at-fork > /root/s.txt');
    const forked = await server.api<{ snapshot: Snap; sandboxes: Full[] }>('POST', `/v1/sandboxes/${source.id}/fork`, { count: 2 });
    assert.equal(forked.status, 201, JSON.stringify(forked.body));
    snapshots.push(forked.body.snapshot.id);
    assert.equal(forked.body.sandboxes.length, 2);
    for (const child of forked.body.sandboxes) {
      created.push(child.id);
      assert.equal(child.metadata['hutch.forkOf'], source.id);
      assert.equal(child.metadata.job, 'j1');
      assert.equal((await run(server, child.id, 'cat /root/s.txt; echo $ROLE')).stdout, 'state-at-fork\nworker\n');
    }
  });

  test('a stopped sandbox can be snapshotted; memory snapshots are refused with a reason', async () => {
    const sb = await make({ template: 'minimal', persistent: true });
    await run(server, sb.id, 'echo offline > /root/o.txt');
    assert.equal((await server.api('POST', `/v1/sandboxes/${sb.id}/stop`)).status, 200);
    const snap = await server.api<Snap>('POST', `/v1/sandboxes/${sb.id}/snapshots`);
    assert.equal(snap.status, 201, JSON.stringify(snap.body));
    snapshots.push(snap.body.id);
    assert.equal(mountinfoMentions(sb.id), false, 'the disk is unmounted again after the snapshot');
    const child = await make({ template: snap.body.id });
    assert.equal((await run(server, child.id, 'cat /root/o.txt')).stdout, 'offline\n');
    const memory = await server.api<ApiError>('POST', `/v1/sandboxes/${sb.id}/snapshots`, { memory: true });
    assert.equal(memory.status, 422);
    assert.match(memory.body.error.message, /memory/);
  });
});

test("gVisor memory snapshot: forks continue the source's running processes from the snapshot's moment; the source keeps running", async () => {
  const source = await make({ template: 'minimal', isolation: 'gvisor' });
  await run(server, source.id, 'echo at-snapshot > /root/f');
  await server.api('POST', `/v1/sandboxes/${source.id}/processes`, { cmd: COUNTER, tag: 'counter' });
  await waitFor(async () => Number((await run(server, source.id, 'cat /tmp/count 2>/dev/null || echo 0')).stdout) >= 3, 5000, 200);
  const before = Number((await run(server, source.id, 'cat /tmp/count')).stdout);
  const forked = await server.api<{ snapshot: { id: string; memory: boolean }; sandboxes: Full[] }>(
    'POST',
    `/v1/sandboxes/${source.id}/fork`,
    {
      count: 2,
      memory: true,
    },
  );
  assert.equal(forked.status, 201, JSON.stringify(forked.body));
  assert.equal(forked.body.snapshot.memory, true);
  const memoryDir = join(server.dataDir, 'snapshots', 'memory', forked.body.snapshot.id);
  assert.ok(existsSync(memoryDir), 'the memory image is kept with the snapshot');
  assert.equal((await state(source.id)).state, 'running', 'the source was resumed');
  for (const child of forked.body.sandboxes) {
    created.push(child.id);
    const first = Number((await run(server, child.id, 'cat /tmp/count')).stdout);
    await sleep(1000);
    const second = Number((await run(server, child.id, 'cat /tmp/count')).stdout);
    assert.ok(first >= before, `the fork's counter continues from the snapshot (${before}), not from 0: ${first}`);
    assert.ok(second > first, `and keeps counting: ${first} → ${second}`);
    assert.equal((await run(server, child.id, 'cat /root/f')).stdout, 'at-snapshot\n');
  }
  const [a, b] = forked.body.sandboxes;
  await run(server, a!.id, 'echo only-a > /root/mine');
  assert.equal((await run(server, b!.id, 'test -e /root/mine && echo shared || echo separate')).stdout, 'separate\n');
  // The memory holds a sandbox without a network: a create from it with egress is refused.
  const withNet = await server.api<ApiError>('POST', '/v1/sandboxes', {
    template: forked.body.snapshot.id,
    isolation: 'gvisor',
    network: { egress: 'open' },
  });
  assert.equal(withNet.status, 400, JSON.stringify(withNet.body));
  assert.match(withNet.body.error.message, /network\.egress: .*holds memory/);
  const s1 = Number((await run(server, source.id, 'cat /tmp/count')).stdout);
  await sleep(600);
  assert.ok(Number((await run(server, source.id, 'cat /tmp/count')).stdout) > s1, 'the source keeps counting too');
  for (const child of forked.body.sandboxes) await deleteSandbox(server, child.id);
  assert.equal((await server.api('DELETE', `/v1/snapshots/${forked.body.snapshot.id}`)).status, 204);
  assert.equal(existsSync(memoryDir), false, 'deleting the snapshot removes its memory image');
});
