import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConflictError, NotFoundError, type Hutch, type Sandbox } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
let hutch: Hutch;
before(async () => {
  server = await startServer();
  hutch = server.client();
});
after(() => server?.stop());

/** Polls (bounded) until the sandbox is gone (404). */
async function goneWithin(sb: Sandbox, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await sb.refresh();
    } catch (err) {
      if (err instanceof NotFoundError) return true;
      throw err;
    }
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('sandbox lifecycle: pause, resume, stop, start, usage', () => {
  test('a persistent minimal container sandbox keeps its files through pause/resume and stop/start', async () => {
    const sb = await hutch.sandboxes.create({ template: 'minimal', isolation: 'container', persistent: true, diskMiB: 128 });
    try {
      assert.equal(sb.info.state, 'running');
      assert.equal(sb.info.timeoutSeconds, null, 'persistent: no TTL unless asked');
      assert.equal(sb.info.expiresAt, null);
      assert.equal(sb.info.diskMiB, 128);
      assert.deepEqual(sb.info.volumes, []);
      assert.equal(sb.info.lifecycle.persistent, true);
      assert.equal(sb.info.lifecycle.autoResume, false);
      assert.equal(sb.info.pauseMode, null);
      await sb.files.write('/root/kept.txt', 'kept\n');

      const usage = await sb.usage();
      assert.ok(usage.disk, 'a running sandbox has its disk mounted');
      assert.ok(usage.disk.sizeBytes <= 128 * 1024 * 1024 && usage.disk.sizeBytes > 64 * 1024 * 1024, JSON.stringify(usage));
      assert.ok(usage.disk.usedBytes > 0 && usage.disk.availableBytes > 0);
      assert.deepEqual(usage.volumes, []);

      const paused = await sb.pause();
      assert.equal(paused.id, sb.id);
      assert.equal(paused.state, 'paused');
      assert.equal(paused.pauseMode, 'filesystem', 'the container tier keeps files only');
      assert.match(paused.note ?? '', /memory/, 'the note says why memory was not kept');
      assert.ok(paused.durationMs >= 0);
      assert.equal(sb.info.state, 'paused');
      assert.equal(sb.info.pauseMode, 'filesystem');
      assert.equal((await sb.pause()).state, 'paused', 'pausing a paused sandbox is a no-op');
      await assert.rejects(sb.exec('true'), (err: unknown) => err instanceof ConflictError && /paused.*resume/.test(err.message));
      await assert.rejects(sb.start(), ConflictError, 'a paused sandbox is resumed, not started');
      const listed = await hutch.sandboxes.list({ state: 'paused' });
      assert.ok(listed.some((s) => s.id === sb.id && s.pauseMode === 'filesystem'));

      const resumed = await sb.resume();
      assert.equal(resumed.state, 'running');
      assert.equal(resumed.pauseMode, 'filesystem', 'resume reports the mode it was paused in');
      assert.equal(sb.info.state, 'running');
      assert.equal(sb.info.pauseMode, null);
      assert.equal(await sb.files.read('/root/kept.txt'), 'kept\n');

      const stopped = await sb.stop();
      assert.equal(stopped.state, 'stopped');
      assert.strictEqual(sb.info, stopped);
      assert.ok(stopped.stateChangedAt && !Number.isNaN(Date.parse(stopped.stateChangedAt)));
      assert.equal((await sb.stop()).state, 'stopped', 'stopping a stopped sandbox is a no-op');
      assert.equal((await sb.usage()).disk, null, 'no disk mounted while stopped');
      await assert.rejects(sb.pause(), ConflictError);
      await assert.rejects(sb.resume(), ConflictError);
      await assert.rejects(sb.exec('true'), (err: unknown) => err instanceof ConflictError && /stopped.*start/.test(err.message));

      const started = await sb.start();
      assert.equal(started.state, 'running');
      assert.equal(sb.info.state, 'running');
      assert.equal((await sb.exec('cat /root/kept.txt')).stdout, 'kept\n');
    } finally {
      await sb.kill();
    }
  });

  test('create options reach the server: onTimeout, idle timeout, auto-delete, auto-resume', async () => {
    const sb = await hutch.sandboxes.create({
      template: 'minimal',
      timeoutSeconds: 600,
      onTimeout: 'pause',
      idleTimeoutSeconds: 300,
      autoDeleteAfterSeconds: 3600,
      autoResume: true,
    });
    try {
      assert.equal(sb.info.timeoutSeconds, 600);
      assert.deepEqual(sb.info.lifecycle, {
        persistent: false,
        onTimeout: 'pause',
        idleTimeoutSeconds: 300,
        autoDeleteAfterSeconds: 3600,
        autoResume: true,
      });
      assert.equal((await sb.pause()).state, 'paused');
      // autoResume: the next call that needs it running resumes it.
      assert.equal((await sb.exec('echo woke')).stdout, 'woke\n');
      assert.equal((await sb.refresh()).state, 'running');
    } finally {
      await sb.kill();
    }
  });

  test('keepAlive reaches the server: the process is marked, and holds its idle sandbox after the stream is closed', async () => {
    const idle = { template: 'minimal', timeoutSeconds: 600, idleTimeoutSeconds: 2 } as const;
    const sb = await hutch.sandboxes.create(idle);
    let control: Sandbox | undefined;
    try {
      assert.equal((await sb.exec('echo ${HUTCH_KEEP_ALIVE:-unset}', { keepAlive: true })).stdout, '1\n');
      assert.equal((await sb.exec('echo ${HUTCH_KEEP_ALIVE:-unset}')).stdout, 'unset\n');
      const handle = await sb.processes.start(['sleep', '30'], { keepAlive: true, tag: 'kept' });
      handle.disconnect();
      // A sandbox created now and never called is deleted by its idle timeout: once it is gone, an
      // idle timeout that started after the keepAlive process did has passed.
      control = await hutch.sandboxes.create(idle);
      assert.ok(await goneWithin(control, 20_000), 'the control sandbox went idle');
      assert.equal((await sb.refresh()).state, 'running', 'held by the keepAlive process with no client attached');
      await sb.processes.kill('tag:kept');
      assert.ok(await goneWithin(sb, 20_000), 'idle once the keepAlive process ended');
    } finally {
      await sb.kill().catch(() => undefined);
      await control?.kill().catch(() => undefined);
    }
  });
});

describe('volumes', () => {
  test('create, list, get; mount read-write in one sandbox and read-only in another; delete refused while in use', async () => {
    const name = `sdk-${randomUUID().slice(0, 8)}`;
    const sandboxes: Sandbox[] = [];
    try {
      const created = await hutch.volumes.create(name, { sizeMiB: 64, labels: { suite: 'sdk' } });
      assert.equal(created.name, name);
      assert.equal(created.sizeMiB, 64);
      assert.deepEqual(created.labels, { suite: 'sdk' });
      assert.deepEqual(created.usedBy, []);
      assert.ok(!Number.isNaN(Date.parse(created.createdAt)));
      await assert.rejects(hutch.volumes.create(name), ConflictError, 'names are unique');

      assert.ok((await hutch.volumes.list()).some((v) => v.name === name && v.sizeMiB === 64));
      assert.equal((await hutch.volumes.get(name)).name, name);
      await assert.rejects(hutch.volumes.get(`${name}-missing`), NotFoundError);

      const writer = await hutch.sandboxes.create({ template: 'minimal', volumes: [{ name, path: '/data' }] });
      sandboxes.push(writer);
      assert.deepEqual(writer.info.volumes, [{ name, path: '/data', readOnly: false }]);
      await writer.files.write('/data/hello.txt', 'from the writer\n');

      const reader = await hutch.sandboxes.create({ template: 'minimal', volumes: [{ name, path: '/mnt/shared', readOnly: true }] });
      sandboxes.push(reader);
      assert.equal(await reader.files.read('/mnt/shared/hello.txt'), 'from the writer\n');
      const denied = await reader.exec('echo x > /mnt/shared/other.txt');
      assert.notEqual(denied.exitCode, 0, 'a read-only mount refuses writes');

      const usage = await reader.usage();
      assert.equal(usage.volumes.length, 1);
      assert.equal(usage.volumes[0]!.name, name);
      assert.equal(usage.volumes[0]!.path, '/mnt/shared');

      const inUse = await hutch.volumes.get(name);
      assert.deepEqual([...inUse.usedBy].sort(), [writer.id, reader.id].sort());
      await assert.rejects(hutch.volumes.delete(name), (err: unknown) => err instanceof ConflictError && err.message.includes(writer.id));

      for (const sb of sandboxes.splice(0)) await sb.kill();
      // The data outlives the sandboxes: a new one sees it.
      const later = await hutch.sandboxes.create({ template: 'minimal', volumes: [{ name, path: '/data' }] });
      sandboxes.push(later);
      assert.equal((await later.exec('cat /data/hello.txt')).stdout, 'from the writer\n');
      await later.kill();
      sandboxes.length = 0;

      assert.equal(await hutch.volumes.delete(name), true);
      await assert.rejects(hutch.volumes.get(name), NotFoundError);
      assert.equal(await hutch.volumes.delete(name), false, 'deleting again is a no-op');
    } finally {
      for (const sb of sandboxes) await sb.kill().catch(() => {});
      await hutch.volumes.delete(name).catch(() => {});
    }
  });
});
