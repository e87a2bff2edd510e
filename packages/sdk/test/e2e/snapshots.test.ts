import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConflictError, InvalidArgumentError, NotFoundError, Sandbox, type Hutch } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
let hutch: Hutch;
before(async () => {
  server = await startServer();
  hutch = server.client();
});
after(() => server?.stop());

/** Kills the sandboxes, then deletes the snapshots (in that order: a snapshot in use cannot go). */
async function cleanUp(sandboxes: Sandbox[], snapshots: string[]): Promise<void> {
  for (const sb of sandboxes) await sb.kill().catch(() => {});
  for (const id of snapshots) await hutch.snapshots.delete(id).catch(() => {});
}

describe('snapshots, forks and gc', () => {
  test('snapshot → a sandbox created from it sees the files; list, get; delete refused while in use; gc dry run, then real', async () => {
    const sandboxes: Sandbox[] = [];
    const snapshots: string[] = [];
    try {
      const source = await hutch.sandboxes.create({ template: 'minimal', isolation: 'container' });
      sandboxes.push(source);
      const token = randomUUID(); // unique content: its layer and pooled file belong to this test only
      await source.files.write('/root/snap.txt', token);

      const snap = await source.snapshot({ metadata: { suite: 'sdk', token } });
      snapshots.push(snap.id);
      assert.match(snap.id, /^snap-[a-z0-9]{16}$/);
      assert.equal(snap.sourceSandbox, source.id);
      assert.equal(snap.template, 'minimal');
      assert.equal(snap.isolation, 'container');
      assert.equal(snap.memory, false);
      assert.deepEqual(snap.metadata, { suite: 'sdk', token });
      assert.equal(snap.layers.length, 1, 'one layer over the template');
      assert.match(snap.layers[0]!, /^[0-9a-f]{64}$/);
      assert.ok(snap.sizeBytes >= token.length, `sizeBytes ${snap.sizeBytes}`);
      assert.equal(snap.reused, false);
      assert.ok(typeof snap.durationMs === 'number' && snap.durationMs >= 0);
      assert.ok(!Number.isNaN(Date.parse(snap.createdAt)));

      const again = await source.snapshot();
      snapshots.push(again.id);
      assert.notEqual(again.id, snap.id);
      assert.equal(again.reused, true, 'unchanged content is the same layer');
      assert.deepEqual(again.layers, snap.layers);
      assert.deepEqual(again.metadata, {});

      await source.files.write('/root/snap.txt', 'changed after the snapshot');
      const child = await hutch.sandboxes.create({ template: snap.id, isolation: 'container' });
      sandboxes.push(child);
      assert.equal(child.info.state, 'running');
      assert.equal(child.info.template, snap.id);
      assert.equal(await child.files.read('/root/snap.txt'), token, 'the files as they were at the snapshot');

      const listed = await hutch.snapshots.list();
      assert.deepEqual(
        listed
          .filter((s) => s.sourceSandbox === source.id)
          .map((s) => s.id)
          .sort(),
        [snap.id, again.id].sort(),
      );
      const got = await hutch.snapshots.get(snap.id);
      assert.deepEqual({ ...got, reused: snap.reused, durationMs: snap.durationMs }, snap);
      await assert.rejects(hutch.snapshots.get('snap-0000000000000000'), NotFoundError);

      await assert.rejects(
        hutch.snapshots.delete(snap.id),
        (err: unknown) => err instanceof ConflictError && err.message.includes(child.id),
      );
      for (const sb of sandboxes.splice(0)) await sb.kill();
      assert.equal(await hutch.snapshots.delete(snap.id), true);
      assert.equal(await hutch.snapshots.delete(again.id), true);
      snapshots.length = 0;
      assert.equal(await hutch.snapshots.delete(snap.id), false, 'deleting again is a no-op');
      await assert.rejects(hutch.snapshots.get(snap.id), NotFoundError);

      const layer = snap.layers[0]!;
      const dry = await hutch.gc({ dryRun: true });
      assert.equal(dry.dryRun, true);
      assert.ok(dry.layers.includes(layer), `dry run lists the unreferenced layer: ${JSON.stringify(dry)}`);
      assert.ok(dry.objects >= 1 && dry.bytes >= token.length, JSON.stringify(dry));
      assert.ok(Array.isArray(dry.staging));
      assert.ok((await hutch.gc({ dryRun: true })).layers.includes(layer), 'a dry run removes nothing');

      const real = await hutch.gc();
      assert.equal(real.dryRun, false);
      assert.ok(real.layers.includes(layer), JSON.stringify(real));
      assert.ok(real.objects >= 1);
      assert.equal((await hutch.gc({ dryRun: true })).layers.includes(layer), false, 'gone after a real gc');
    } finally {
      await cleanUp(sandboxes, snapshots);
    }
  });

  test('fork count 2: two running sandboxes from a fresh snapshot, with the source settings and files, independent of each other', async () => {
    const sandboxes: Sandbox[] = [];
    const snapshots: string[] = [];
    try {
      const source = await hutch.sandboxes.create({
        template: 'minimal',
        isolation: 'container',
        env: { ROLE: 'worker' },
        metadata: { suite: 'sdk-fork' },
        memoryMiB: 256,
      });
      sandboxes.push(source);
      await source.files.write('/root/state.txt', 'at-fork\n');

      const forked = await source.fork({ count: 2, metadata: { branch: 'b' } });
      snapshots.push(forked.snapshot.id);
      sandboxes.push(...forked.sandboxes);
      assert.equal(forked.snapshot.sourceSandbox, source.id);
      assert.equal(forked.sandboxes.length, 2);
      assert.notEqual(forked.sandboxes[0]!.id, forked.sandboxes[1]!.id);
      for (const child of forked.sandboxes) {
        assert.ok(child instanceof Sandbox);
        assert.equal(child.info.state, 'running');
        assert.equal(child.info.template, forked.snapshot.id);
        assert.equal(child.info.memoryMiB, 256);
        assert.deepEqual(child.info.metadata, { suite: 'sdk-fork', branch: 'b', 'hutch.forkOf': source.id });
        assert.equal((await child.exec('cat /root/state.txt; echo $ROLE')).stdout, 'at-fork\nworker\n');
      }
      await forked.sandboxes[0]!.files.write('/root/state.txt', 'only in the first fork\n');
      assert.equal(await forked.sandboxes[1]!.files.read('/root/state.txt'), 'at-fork\n');
      await assert.rejects(
        source.fork({ count: 65 }),
        (err: unknown) => err instanceof InvalidArgumentError && /^count: /.test(err.message),
      );
    } finally {
      await cleanUp(sandboxes, snapshots);
    }
  });
});
