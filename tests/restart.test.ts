import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { startServer, type TestServer } from './harness.js';
import { runtimeCommand, runtimeRoot, waitFor } from './hostile-lib.js';

/** The server is not the parent of sandboxes: SIGKILL it, restart, and nothing is lost or leaked. */
interface Sandbox {
  id: string;
  state: string;
  error: string | null;
}
interface Exec {
  exitCode: number;
  stdout: string;
}

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const mounts = (): string => readFileSync('/proc/self/mountinfo', 'utf8');

test('running sandboxes and their background processes survive kill -9 of the server', async () => {
  const ids: string[] = [];
  for (const isolation of ['container', 'gvisor']) {
    const sb = await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal', isolation, timeoutSeconds: 600 });
    assert.equal(sb.status, 201, JSON.stringify(sb.body));
    ids.push(sb.body.id);
    const bg = await server.api<{ pid: number }>('POST', `/v1/sandboxes/${sb.body.id}/processes`, {
      cmd: 'i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done',
      tag: 'counter',
    });
    assert.equal(bg.status, 201, JSON.stringify(bg.body));
  }
  await new Promise((r) => setTimeout(r, 500));
  await server.kill9();
  await new Promise((r) => setTimeout(r, 500));
  await server.restart();
  for (const id of ids) {
    const got = await server.api<Sandbox>('GET', `/v1/sandboxes/${id}`);
    assert.equal(got.body.state, 'running', JSON.stringify(got.body));
    const first = await server.api<Exec>('POST', `/v1/sandboxes/${id}/exec`, { cmd: 'cat /tmp/counter' });
    await new Promise((r) => setTimeout(r, 400));
    const second = await server.api<Exec>('POST', `/v1/sandboxes/${id}/exec`, { cmd: 'cat /tmp/counter' });
    assert.ok(
      Number(second.body.stdout) > Number(first.body.stdout),
      `counter advances in ${id}: ${first.body.stdout.trim()} → ${second.body.stdout.trim()}`,
    );
    const procs = await server.api<{ processes: Array<{ tag: string | null }> }>('GET', `/v1/sandboxes/${id}/processes`);
    assert.ok(
      procs.body.processes.some((p) => p.tag === 'counter'),
      'the tagged background process is listed',
    );
    assert.equal((await server.api('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    // The teardown finishes after the answer (bounded).
    assert.ok(await waitFor(() => !mounts().includes(id), 5000), 'no mount left after delete');
  }
});

test('orphans (runtime has it, store does not) are reaped at start; half-created ones are cleaned', async () => {
  const keep = (await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal' })).body;
  const orphan = (await server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal' })).body;
  await server.kill9();
  const db = new Database(join(server.dataDir, 'hutch.db'));
  db.prepare('DELETE FROM sandboxes WHERE id = ?').run(orphan.id);
  db.close();
  await server.restart();
  assert.ok(!existsSync(join(server.dataDir, 'sandboxes', orphan.id)), 'orphan directory removed');
  assert.ok(!mounts().includes(orphan.id), 'orphan rootfs unmounted');
  const [bin, ...pre] = runtimeCommand('container');
  const listed = spawnSync(bin!, [...pre, '--root', runtimeRoot(server, 'container'), 'list', '--format', 'json'], { encoding: 'utf8' });
  assert.ok(!listed.stdout.includes(orphan.id), 'orphan container deleted');
  assert.equal((await server.api<Sandbox>('GET', `/v1/sandboxes/${keep.id}`)).body.state, 'running');

  // Kill the server in the middle of a create: afterwards the sandbox is either running or
  // cleaned (state error, no resources) — never half there.
  const pending = server.api<Sandbox>('POST', '/v1/sandboxes', { template: 'minimal', isolation: 'gvisor' }).catch(() => null);
  await new Promise((r) => setTimeout(r, 60));
  await server.kill9();
  await pending;
  await server.restart();
  const all = (await server.api<{ sandboxes: Sandbox[] }>('GET', '/v1/sandboxes')).body.sandboxes;
  for (const sb of all) {
    if (sb.state === 'error') {
      assert.ok(!existsSync(join(server.dataDir, 'sandboxes', sb.id)), `errored ${sb.id} has no directory`);
      assert.ok(!mounts().includes(sb.id), `errored ${sb.id} has no mount`);
    } else {
      assert.equal(sb.state, 'running');
      const ok = await server.api<Exec>('POST', `/v1/sandboxes/${sb.id}/exec`, { cmd: 'echo ok' });
      assert.equal(ok.body.stdout, 'ok\n');
    }
  }
});
