import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { VolumeService } from '../src/core/volume-service.js';
import { LocalVolumes } from '../src/runtime/local/local-volumes.js';
import { openDatabase } from '../src/store/database.js';
import { SqliteSandboxStore } from '../src/store/sandbox-repo.js';
import { SqliteVolumeStore } from '../src/store/volume-repo.js';

// A crash between writing a volume's files and recording it (files first) leaves files without a
// record: the next create or clone of that name clears them instead of failing (real SQLite store,
// real loop-mounted volume images; needs root, as the server does).

const dir = mkdtempSync('/var/tmp/hutch-volume-leftovers-');
const backend = new LocalVolumes(dir);
after(async () => {
  for (const name of ['left', 'copy']) await backend.remove(name).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

test('a volume whose files outlived their record (a crash) is created and cloned again under its name', async () => {
  const { db, close } = await openDatabase(join(dir, 'hutch.db'));
  try {
    const volumes = new VolumeService(new SqliteVolumeStore(db), new SqliteSandboxStore(db), backend, pino({ level: 'silent' }), []);
    // What a kill -9 right after the backend wrote the files leaves: files, no record.
    await backend.create('left', 16);
    await backend.create('copy', 16);
    assert.ok(existsSync(join(dir, 'volumes', 'left', 'volume.img')));
    await assert.rejects(backend.create('left', 16), 'the backend alone refuses to write over them');
    const made = await volumes.create('default', { name: 'left', sizeMiB: 16 });
    assert.deepEqual([made.name, made.sizeMiB], ['left', 16]);
    const cloned = await volumes.clone('default', 'left', { name: 'copy' });
    assert.equal(cloned.name, 'copy');
    // Recorded now: a second create is the usual conflict, and the files are left alone.
    await assert.rejects(volumes.create('default', { name: 'left', sizeMiB: 16 }), /already exists/);
    assert.ok(existsSync(join(dir, 'volumes', 'left', 'volume.img')));
    for (const name of ['copy', 'left']) await volumes.delete('default', name);
    assert.ok(!existsSync(join(dir, 'volumes', 'left')));
  } finally {
    await close();
  }
});
