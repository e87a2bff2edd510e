import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, link, lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { HutchError, type ErrorKind } from '../src/core/errors.js';
import { LayerStore, type LayerInfo } from '../src/templates/layer-store.js';

// LayerStore against real files and real overlayfs (root only). A sandbox's life is replayed
// through an overlay mount, its upper dir is captured, and a new overlay stacked on the captured
// layer must show exactly what the first one showed.

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (overlayfs mounts, chown, setcap)';

let tmp = '';
const mounts: string[] = [];

before(async () => {
  if (isRoot) tmp = await mkdtemp(join(tmpdir(), 'hutch-layer-store-'));
});

after(async () => {
  for (const target of mounts.reverse()) await unmount(target);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function mountOverlay(lowers: string[], name: string, extra = ''): Promise<{ merged: string; upper: string }> {
  const base = join(tmp, name);
  const [upper, work, merged] = [join(base, 'upper'), join(base, 'work'), join(base, 'merged')];
  for (const dir of [upper, work, merged]) await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}${extra}`, merged]);
  mounts.push(merged);
  return { merged, upper };
}

async function unmount(target: string): Promise<void> {
  const index = mounts.indexOf(target);
  if (index >= 0) mounts.splice(index, 1);
  await run('umount', [target]).catch(() => run('umount', ['-l', target]).catch(() => undefined));
}

interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  size?: number;
  sha?: string;
  target?: string;
  rdev?: string;
}

/** Every entry under `root` (names as byte strings), without following symlinks. */
async function describeTree(root: string): Promise<Record<string, Entry>> {
  const out: Record<string, Entry> = {};
  const walk = async (rel: Buffer | null): Promise<void> => {
    const abs = rel ? Buffer.concat([Buffer.from(`${root}/`), rel]) : Buffer.from(root);
    const st = await lstat(abs, { bigint: true });
    const type = st.isFile()
      ? 'file'
      : st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isCharacterDevice()
            ? 'char'
            : st.isFIFO()
              ? 'fifo'
              : 'other';
    const entry: Entry = { type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtime: st.mtimeNs.toString() };
    if (st.isFile()) {
      entry.size = Number(st.size);
      entry.sha = createHash('sha256')
        .update(await readFile(abs))
        .digest('hex');
    }
    if (st.isSymbolicLink()) entry.target = (await readlink(abs, { encoding: 'buffer' })).toString('latin1');
    if (st.isCharacterDevice()) entry.rdev = st.rdev.toString();
    out[rel ? rel.toString('latin1') : '.'] = entry;
    if (st.isDirectory()) {
      for (const name of (await readdir(abs, { encoding: 'buffer' })).sort(Buffer.compare)) {
        await walk(rel ? Buffer.concat([rel, Buffer.from('/'), name]) : name);
      }
    }
  };
  await walk(null);
  return out;
}

async function ino(path: string): Promise<bigint> {
  return (await lstat(path, { bigint: true })).ino;
}

async function touch(path: string, time: string): Promise<void> {
  await run('touch', ['-h', '-m', '-d', `@${time}`, path]);
}

async function put(path: string, content: string | Buffer, mtime?: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  if (mtime) await touch(path, mtime);
}

async function objectCount(store: LayerStore): Promise<number> {
  return (await readdir(join(store.root, 'objects'))).length;
}

function rejectsWith(kind: ErrorKind, message: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof HutchError, `expected a HutchError, got ${String(err)}`);
    assert.equal(err.kind, kind);
    assert.match(err.message, message);
    return true;
  };
}

const ODD_NAME = Buffer.from([0x6f, 0x64, 0x64, 0xff, 0x0a, 0x6e, 0x61, 0x6d, 0x65]); // "odd\xff\nname": not UTF-8

describe('LayerStore: a captured upper dir as an overlay lower layer', { skip, timeout: 60_000 }, () => {
  let lower = '';
  let upper = '';
  let store: LayerStore;
  let layer: LayerInfo & { reused: boolean };
  let firstView: Record<string, Entry> = {};
  let upperView: Record<string, Entry> = {};

  before(async () => {
    lower = join(tmp, 'lower');
    await put(join(lower, 'dir1/old.txt'), 'old');
    await put(join(lower, 'dir1/sub/deeper.txt'), 'deeper');
    await put(join(lower, 'gone.txt'), 'bye');
    await put(join(lower, 'keep/k.txt'), 'k');
    await put(join(lower, 'keep/stay.txt'), 'stay');
    await put(join(lower, 'etc/conf'), 'conf');
    await put(join(lower, 'usr/bin/tool'), '#!/bin/sh\n');

    const first = await mountOverlay([lower], 'first');
    upper = first.upper;
    const m = (p: string): string => join(first.merged, p);
    try {
      await put(m('new.txt'), 'hello');
      await chown(m('new.txt'), 100000, 100000);
      await rm(m('gone.txt')); // → whiteout
      await rm(m('keep/k.txt')); // → a second whiteout (overlayfs may hardlink the two)
      await rm(m('dir1'), { recursive: true }); // replaced by a new dir → opaque
      await put(m('dir1/fresh.txt'), 'fresh');
      await symlink('../new.txt', m('keep/link'));
      await put(m('hl/a'), 'linked');
      await link(m('hl/a'), m('hl/b'));
      await put(m('bin/suid'), await readFile('/bin/true'));
      await chown(m('bin/suid'), 100005, 100006);
      await chmod(m('bin/suid'), 0o4755); // after chown, which clears setuid
      await run('setcap', ['cap_net_raw+ep', m('bin/suid')]);
      await chown(m('etc/conf'), 100001, 100001); // copy-up of a lower file, metadata only
      await chmod(m('usr/bin/tool'), 0o700);
      await mkdir(m('home/user'), { recursive: true });
      await chown(m('home/user'), 100002, 100002);
      await chmod(m('home/user'), 0o750);
      await mkdir(m('empty'));
      await put(m('empty-file'), '');
      await run('mkfifo', [m('run-fifo')]);
      const sparse = await open(m('sparse.img'), 'w');
      await sparse.write(Buffer.from('tail'), 0, 4, 16 * 1024 * 1024);
      await sparse.close();
      await writeFile(Buffer.concat([Buffer.from(`${first.merged}/`), ODD_NAME]), 'odd');
      await touch(m('new.txt'), '978307200.123456789');
      await touch(m('keep/link'), '978307201.987654321');
      firstView = await describeTree(first.merged);
    } finally {
      await unmount(first.merged);
    }
    upperView = await describeTree(upper);
    store = new LayerStore(join(tmp, 'store-overlay'));
    layer = await store.capture(upper, 'template-digest');
  });

  test('the upper dir holds what overlayfs needs (the scenario is real)', () => {
    assert.deepEqual(upperView['gone.txt'], { ...upperView['gone.txt'], type: 'char', rdev: '0' });
    assert.equal(upperView['keep/k.txt']?.type, 'char');
    assert.equal(upperView['dir1/old.txt'], undefined);
    assert.equal(firstView['gone.txt'], undefined);
    assert.equal(firstView['dir1/old.txt'], undefined);
  });

  test('capture returns the layer and writes its manifest', async () => {
    assert.match(layer.digest, /^[0-9a-f]{64}$/);
    assert.equal(layer.reused, false);
    assert.equal(layer.parent, 'template-digest');
    assert.equal(layer.rootfs, join(store.root, 'layers', layer.digest, 'rootfs'));
    assert.equal(layer.files, Object.keys(upperView).length - 1);
    const sizes = Object.entries(upperView).filter(([p, e]) => e.type === 'file' && p !== 'hl/b');
    assert.equal(
      layer.sizeBytes,
      sizes.reduce((sum, [, e]) => sum + e.size!, 0),
    );
    const manifest = JSON.parse(await readFile(join(store.root, 'layers', layer.digest, 'layer.json'), 'utf8')) as LayerInfo;
    const { reused: _reused, ...info } = layer;
    assert.deepEqual(manifest, info);
    assert.deepEqual(await store.get(layer.digest), info);
    assert.deepEqual(await store.list(), [info]);
    assert.deepEqual(await readdir(join(store.root, 'staging')), []);
  });

  test('the captured tree equals the upper dir: whiteouts, owners, modes, ns mtimes, links, odd names', async () => {
    assert.deepEqual(await describeTree(layer.rootfs), upperView);
    assert.equal(await ino(join(layer.rootfs, 'hl/a')), await ino(join(layer.rootfs, 'hl/b')));
    const { stdout } = await run('getcap', [join(layer.rootfs, 'bin/suid')]);
    assert.match(stdout, /cap_net_raw[=+]ep/);
    assert.equal(await store.verify(layer.digest), true, 're-reading the layer (xattrs included) gives its digest');
  });

  test('the sparse file stays sparse', async () => {
    const st = await lstat(join(layer.rootfs, 'sparse.img'));
    assert.equal(st.size, 16 * 1024 * 1024 + 4);
    assert.ok(st.blocks * 512 < 1024 * 1024, `${st.blocks} blocks allocated`);
  });

  test('a new overlay on the captured layer shows what the first mount showed', async () => {
    const second = await mountOverlay([layer.rootfs, lower], 'second');
    try {
      const view = await describeTree(second.merged);
      // The merged root's own attributes are those of each mount's (fresh) upper dir.
      const { '.': _a, ...expected } = firstView;
      const { '.': _b, ...actual } = view;
      assert.deepEqual(actual, expected);
      assert.equal(view['gone.txt'], undefined, 'whiteout hides the lower file');
      assert.equal(view['keep/k.txt'], undefined, 'second whiteout hides its lower file');
      assert.equal(view['dir1/old.txt'], undefined, 'opaque dir hides the lower dir content');
      assert.equal(view['dir1/sub'], undefined);
      assert.equal(view['dir1/fresh.txt']?.type, 'file');
      assert.equal(view['keep/stay.txt']?.type, 'file', 'a non-opaque dir still merges');
      assert.deepEqual([view['bin/suid']?.mode, view['bin/suid']?.uid, view['bin/suid']?.gid], [0o4755, 100005, 100006]);
      assert.deepEqual([view['etc/conf']?.uid, view['etc/conf']?.sha], [100001, createHash('sha256').update('conf').digest('hex')]);
      assert.equal(view['keep/link']?.target, '../new.txt');
      assert.equal(view['new.txt']?.mtime, '978307200123456789');
      assert.equal(await readFile(join(second.merged, 'keep/link'), 'utf8'), 'hello');
      assert.equal(await ino(join(second.merged, 'hl/a')), await ino(join(second.merged, 'hl/b')));
      const { stdout } = await run('getcap', [join(second.merged, 'bin/suid')]);
      assert.match(stdout, /cap_net_raw[=+]ep/);
      // Writes land in the new upper; the layer (and the objects it shares) stay untouched.
      await writeFile(join(second.merged, 'hl/a'), 'changed');
      assert.equal(await readFile(join(layer.rootfs, 'hl/a'), 'utf8'), 'linked');
      assert.equal(await store.verify(layer.digest), true);
    } finally {
      await unmount(second.merged);
    }
  });
});

describe('LayerStore: redirect and metacopy xattrs survive (redirect_dir=on,metacopy=on)', { skip, timeout: 60_000 }, () => {
  test('a renamed lower dir and a metadata-only copy-up still resolve through the captured layer', async () => {
    const lower = join(tmp, 'rm-lower');
    const big = randomBytes(256 * 1024);
    await put(join(lower, 'olddir/inside.txt'), 'inside');
    await put(join(lower, 'data.bin'), big);
    const options = ',redirect_dir=on,metacopy=on';
    const first = await mountOverlay([lower], 'rm-first', options);
    let view: Record<string, Entry>;
    try {
      await run('mv', [join(first.merged, 'olddir'), join(first.merged, 'newdir')]); // → trusted.overlay.redirect
      await chown(join(first.merged, 'data.bin'), 100003, 100003); // → trusted.overlay.metacopy, no data in upper
      view = await describeTree(first.merged);
    } finally {
      await unmount(first.merged);
    }
    const upperData = await lstat(join(first.upper, 'data.bin'));
    assert.ok(upperData.blocks * 512 <= 4096, 'the upper copy is metadata only (metacopy): no data blocks');
    const store = new LayerStore(join(tmp, 'rm-store'));
    const layer = await store.capture(first.upper, 'lower');
    const second = await mountOverlay([layer.rootfs, lower], 'rm-second', options);
    try {
      const { '.': _a, ...expected } = view;
      const { '.': _b, ...actual } = await describeTree(second.merged);
      assert.deepEqual(actual, expected);
      assert.equal(await readFile(join(second.merged, 'newdir/inside.txt'), 'utf8'), 'inside');
      assert.equal(actual['olddir'], undefined);
      assert.deepEqual(await readFile(join(second.merged, 'data.bin')), big);
      assert.equal(actual['data.bin']?.uid, 100003);
    } finally {
      await unmount(second.merged);
    }
  });
});

describe('LayerStore: deduplication', { skip, timeout: 60_000 }, () => {
  let store: LayerStore;
  let base = '';
  const T = '1700000000.111111111';

  before(async () => {
    base = join(tmp, 'dedup');
    store = new LayerStore(join(base, 'store'));
    await put(join(base, 'a/shared.bin'), 'the same bytes', T);
    await put(join(base, 'a/only-a.txt'), 'a', T);
    await put(join(base, 'a/copy1.txt'), 'twin', T);
    await put(join(base, 'a/copy2.txt'), 'twin', T);
    await put(join(base, 'b/elsewhere/shared.bin'), 'the same bytes', T);
    await put(join(base, 'b/only-b.txt'), 'b', T);
    await put(join(base, 'b/other-time.bin'), 'the same bytes', '1700000001.0');
  });

  test('capturing the same tree on the same parent twice returns the same layer', async () => {
    const first = await store.capture(join(base, 'a'), 'p');
    const objects = await objectCount(store);
    const again = await store.capture(join(base, 'a'), 'p');
    assert.equal(first.reused, false);
    assert.equal(again.reused, true);
    assert.equal(again.digest, first.digest);
    assert.equal(again.createdAt, first.createdAt);
    assert.equal(await objectCount(store), objects, 'no new objects');
    assert.equal((await store.list()).length, 1);
  });

  test('the same tree on another parent is another layer sharing every file', async () => {
    const onP = await store.capture(join(base, 'a'), 'p');
    const onQ = await store.capture(join(base, 'a'), 'q');
    assert.equal(onQ.reused, false);
    assert.notEqual(onQ.digest, onP.digest);
    for (const name of ['shared.bin', 'only-a.txt', 'copy1.txt']) {
      assert.equal(await ino(join(onQ.rootfs, name)), await ino(join(onP.rootfs, name)), name);
    }
  });

  test('identical files are stored once across layers and within one', async () => {
    const a = await store.capture(join(base, 'a'), 'p');
    const b = await store.capture(join(base, 'b'), 'p');
    assert.equal(await ino(join(b.rootfs, 'elsewhere/shared.bin')), await ino(join(a.rootfs, 'shared.bin')));
    assert.notEqual(await ino(join(b.rootfs, 'only-b.txt')), await ino(join(a.rootfs, 'only-a.txt')));
    // Same bytes, other mtime: a shared inode would carry one mtime, so it is another object.
    assert.notEqual(await ino(join(b.rootfs, 'other-time.bin')), await ino(join(b.rootfs, 'elsewhere/shared.bin')));
    assert.equal((await lstat(join(b.rootfs, 'other-time.bin'), { bigint: true })).mtimeNs, 1700000001000000000n);
    assert.equal(await ino(join(a.rootfs, 'copy1.txt')), await ino(join(a.rootfs, 'copy2.txt')));
    const objects = new Set((await readdir(join(store.root, 'objects'))).map(String));
    assert.equal(objects.size, 5, 'shared, only-a, twin, only-b, other-time: nothing else');
    assert.equal(await store.verify(a.digest), true);
    assert.equal(await store.verify(b.digest), true);
  });

  test('concurrent captures of the same new tree agree and leave one layer', async () => {
    const dir = join(base, 'c');
    for (let i = 0; i < 50; i++) await put(join(dir, `d${i % 5}/f${i}`), randomBytes(2000));
    const results = await Promise.all([1, 2, 3].map(() => store.capture(dir, 'concurrent')));
    assert.equal(new Set(results.map((r) => r.digest)).size, 1);
    assert.equal(results.filter((r) => !r.reused).length, 1);
    assert.equal(await store.verify(results[0]!.digest), true);
    assert.deepEqual(await readdir(join(store.root, 'staging')), []);
  });
});

describe('LayerStore: remove and gc', { skip, timeout: 60_000 }, () => {
  let store: LayerStore;
  let base = '';
  const T = '1700000000.5';

  before(async () => {
    base = join(tmp, 'gc');
    store = new LayerStore(join(base, 'store'));
    await put(join(base, 'a/shared.txt'), 'shared', T);
    await put(join(base, 'a/only-a.txt'), 'only a', T);
    await put(join(base, 'b/shared.txt'), 'shared', T);
    await put(join(base, 'b/only-b.bin'), Buffer.alloc(1000, 7), T);
    await put(join(base, 'c/only-c.txt'), 'only c', T);
  });

  test('remove is idempotent and refuses a layer that is another one’s parent', async () => {
    const parent = await store.capture(join(base, 'c'), null);
    const child = await store.capture(join(base, 'a'), parent.digest);
    await assert.rejects(store.remove(parent.digest), rejectsWith('conflict', /parent of/));
    await store.remove(child.digest);
    assert.equal(await store.get(child.digest), null);
    await store.remove(child.digest);
    await store.remove(parent.digest);
    assert.deepEqual(await store.list(), []);
    // Their objects stay until gc.
    const swept = await store.gc(new Set(), { dryRun: false });
    assert.deepEqual(swept.layers, []);
    assert.equal(swept.objects, 3);
    assert.equal(await objectCount(store), 0);
  });

  test('gc keeps referenced layers and their ancestors, reports first, then removes', async () => {
    const a = await store.capture(join(base, 'a'), null);
    const b = await store.capture(join(base, 'b'), null);
    const c = await store.capture(join(base, 'c'), a.digest);
    // What a capture killed mid-way leaves behind (its pid no longer exists).
    const crashed = join(store.root, 'staging', '99999999-0123abcd');
    await put(join(crashed, 'new/0'), 'half a file');
    const objectsBefore = await objectCount(store);

    const report = await store.gc(new Set([c.digest]), { dryRun: true });
    assert.deepEqual(report, { layers: [b.digest], objects: 1, bytes: 1000, staging: ['99999999-0123abcd'] });
    assert.ok(await store.get(b.digest), 'dry run removes nothing');
    assert.equal(await objectCount(store), objectsBefore);
    assert.deepEqual(await readdir(join(store.root, 'staging')), ['99999999-0123abcd']);

    const done = await store.gc(new Set([c.digest]), { dryRun: false });
    assert.deepEqual(done, report);
    assert.equal(await store.get(b.digest), null);
    assert.ok(await store.get(a.digest), 'the parent of a referenced layer stays');
    assert.equal(await objectCount(store), objectsBefore - 1);
    assert.deepEqual(await readdir(join(store.root, 'staging')), []);
    assert.equal(await readFile(join(a.rootfs, 'shared.txt'), 'utf8'), 'shared');
    assert.equal(await store.verify(a.digest), true);
    assert.equal(await store.verify(c.digest), true);

    const all = await store.gc(new Set(), { dryRun: false });
    assert.deepEqual(all.layers, [a.digest, c.digest].sort());
    assert.equal(all.objects, 3);
    assert.equal(await objectCount(store), 0);
    assert.deepEqual(await readdir(join(store.root, 'layers')), []);
  });
});

describe('LayerStore: a source that changes between scan and copy', { skip, timeout: 60_000 }, () => {
  // A `tar` on PATH that runs $TAMPER just before the copy pass (the one reading a file list),
  // then the real tar: what a sandbox left running could do between the two reads.
  let bin = '';
  let savedPath: string | undefined;

  before(async () => {
    bin = join(tmp, 'tamper-bin');
    await mkdir(bin, { recursive: true });
    const { stdout } = await run('sh', ['-c', 'command -v tar']);
    const script = `#!/bin/sh\ncase "$*" in *--files-from=*) sh -c "$TAMPER" ;; esac\nexec ${stdout.trim()} "$@"\n`;
    await writeFile(join(bin, 'tar'), script, { mode: 0o755 });
    savedPath = process.env.PATH;
  });

  after(() => {
    process.env.PATH = savedPath;
    delete process.env.TAMPER;
  });

  async function captureTampered(name: string, tamper: string): Promise<{ store: LayerStore; error: unknown }> {
    const store = new LayerStore(join(tmp, name, 'store'));
    process.env.PATH = `${bin}:${savedPath}`;
    process.env.TAMPER = tamper;
    try {
      await store.capture(join(tmp, name, 'src'), null);
      return { store, error: null };
    } catch (error) {
      return { store, error };
    } finally {
      process.env.PATH = savedPath;
      delete process.env.TAMPER;
    }
  }

  async function assertNothingKept(store: LayerStore): Promise<void> {
    assert.deepEqual(await store.list(), []);
    assert.equal(await objectCount(store), 0, 'nothing reached the pool');
    assert.deepEqual(await readdir(join(store.root, 'staging')), []);
  }

  test('same size and mtime, other bytes: the content hash catches it', async () => {
    const file = join(tmp, 'tamper1/src/data.txt');
    await put(file, 'AAAA', '1700000000.25');
    const { store, error } = await captureTampered('tamper1', `printf BBBB > ${file} && touch -m -d @1700000000.25 ${file}`);
    assert.ok(error, 'the capture must fail');
    rejectsWith('conflict', /changed during capture at "data\.txt"/)(error);
    await assertNothingKept(store);
  });

  test('a directory swapped for a symlink to a host dir: the host file is not captured', async () => {
    const host = join(tmp, 'tamper2/host-secret');
    await put(join(host, 'key'), 'host secret bytes', '1700000000.5');
    await put(join(tmp, 'tamper2/src/d/key'), 'sandbox bytes!!!!', '1700000000.5');
    const src = join(tmp, 'tamper2/src');
    const { store, error } = await captureTampered('tamper2', `rm -rf ${src}/d && ln -s ${host} ${src}/d`);
    assert.ok(error, 'the capture must fail');
    rejectsWith('conflict', /changed during capture at "d\/key"/)(error);
    await assertNothingKept(store);
  });
});

describe('LayerStore: validation', { skip, timeout: 30_000 }, () => {
  let store: LayerStore;
  let base = '';

  before(async () => {
    base = join(tmp, 'validation');
    store = new LayerStore(join(base, 'store'));
    await put(join(base, 'a-file'), 'x');
  });

  test('capture needs an existing directory by absolute path and a sane parent', async () => {
    await assert.rejects(store.capture('relative/dir', null), rejectsWith('invalid_argument', /absolute path/));
    await assert.rejects(store.capture(join(base, 'missing'), null), rejectsWith('invalid_argument', /does not exist/));
    await assert.rejects(store.capture(join(base, 'a-file'), null), rejectsWith('invalid_argument', /is not a directory/));
    await assert.rejects(store.capture(base, ''), rejectsWith('invalid_argument', /parent/));
    await assert.rejects(store.capture(base, 'a\nb'), rejectsWith('invalid_argument', /parent/));
  });

  test('digests are checked', async () => {
    await assert.rejects(store.get('../etc'), rejectsWith('invalid_argument', /not a layer digest/));
    await assert.rejects(store.remove('ABC'), rejectsWith('invalid_argument', /not a layer digest/));
    assert.equal(await store.get('0'.repeat(64)), null);
    await assert.rejects(store.verify('0'.repeat(64)), rejectsWith('not_found', /not found/));
  });
});

describe('LayerStore: performance', { skip, timeout: 120_000 }, () => {
  test('a 100 MiB snapshot (one 60 MiB file, 320 files of 128 KiB) captures in a few seconds', async (t) => {
    const dir = join(tmp, 'perf/upper');
    const KiB = 1024;
    await put(join(dir, 'big.bin'), randomBytes(60 * KiB * KiB));
    const small = randomBytes(320 * 128 * KiB);
    for (let i = 0; i < 320; i++) await put(join(dir, `pkg${i % 20}/file${i}.bin`), small.subarray(i * 128 * KiB, (i + 1) * 128 * KiB));
    const store = new LayerStore(join(tmp, 'perf/store'));
    let started = performance.now();
    const layer = await store.capture(dir, null);
    const first = performance.now() - started;
    started = performance.now();
    const again = await store.capture(dir, 'other-parent');
    const second = performance.now() - started;
    t.diagnostic(`100 MB capture: ${first.toFixed(0)} ms; same tree on another parent (all objects pooled): ${second.toFixed(0)} ms`);
    assert.equal(layer.sizeBytes, 100 * 1024 * 1024);
    assert.equal(again.reused, false);
    assert.ok(first < 10_000, `capture took ${first.toFixed(0)} ms`);
  });
});
