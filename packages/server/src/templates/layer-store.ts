import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, type BigIntStats } from 'node:fs';
import { link, lstat, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { conflict, HutchError, internal, invalidArgument, notFound } from '../core/errors.js';
import { byteOrder, END_OF_ARCHIVE, padding, printable, TarParser, type EntryType, type TarMember } from './tar-stream.js';

/**
 * Content-addressed store of read-only overlayfs layers captured from sandbox upper dirs
 * (snapshots). A layer is `layers/<digest>/rootfs` plus `layers/<digest>/layer.json`; its regular
 * files are hardlinks into `objects/<key>`, so identical files are stored once across layers.
 *
 * Layout under the root: `layers/`, `objects/`, `staging/` (work in progress and crash leftovers).
 *
 * How the tree is copied, and why GNU tar: a captured upper dir becomes a *lower* layer, so every
 * piece of overlayfs state must survive: whiteouts (0/0 char devices), `trusted.overlay.*` xattrs
 * (opaque, redirect, metacopy, origin), `security.capability` (which a chown clears, so it must be
 * written after the owner), mapped uids, setuid bits (also cleared by chown), nanosecond mtimes,
 * symlinks, fifos, holes. Node has no xattr API and its utimes loses nanoseconds, and getfattr is
 * in the optional `attr` package; GNU tar (Essential on Debian) reads and restores all of it:
 * `--xattrs --xattrs-include=*` as root carries every namespace, pax headers carry ns times,
 * `--sparse` (SEEK_DATA) reads and recreates only data extents. `cp -a` would copy correctly too,
 * but it cannot show us the xattrs we must hash, nor copy only the files the pool lacks.
 *
 * A capture is three steps:
 *   1. scan: `tar -c` of the source is parsed here; every regular file is hashed while it streams
 *      (one read), the layer digest and per-file object keys are computed, and the non-regular
 *      entries (dirs, symlinks, devices, fifos) are kept as a small tar of their own. Nothing is
 *      copied: if the digest already exists, the capture ends here (`reused`).
 *   2. assemble: directories are made in a staging tree and files already in the pool are
 *      hardlinked into place. Only files whose object is missing are read again
 *      (`tar -c -T list`), checked against the scan (metadata and content hash: a source that
 *      changed, or a path swapped for a symlink to a host file, fails the capture instead of
 *      poisoning the pool) and extracted in place by `tar -x`, which sets their exact metadata;
 *      then they are linked into `objects/`.
 *   3. finish: the saved tar of non-regular entries is extracted over the tree — last, so
 *      directory mtimes, modes and xattrs are the source's, not those left by our own links.
 *      Then `rename` publishes the layer.
 *
 * The source must not change during a capture (pause the sandbox); a change is detected and fails
 * the capture rather than producing a mixed layer.
 */

/** A captured layer. `rootfs` is ready to be an overlay lowerdir above its parent's layers. */
export interface LayerInfo {
  /** sha256 hex of the canonical listing of the tree (paths, metadata, contents) and the parent. */
  digest: string;
  /** Absolute path of the layer's tree. */
  rootfs: string;
  /** The layer this one sits on (an opaque string of the caller's; null for none). */
  parent: string | null;
  /** Apparent bytes of regular-file content (a hardlinked file counts once). */
  sizeBytes: number;
  /** Entries in the tree, its root excluded. */
  files: number;
  createdAt: string;
}

export type CapturedLayer = LayerInfo & { reused: boolean };

export interface GcResult {
  /** Digests of layers removed (or that would be, with dryRun). */
  layers: string[];
  /** Pool objects removed (or that would be): those no layer links any more. */
  objects: number;
  /** Their apparent size. */
  bytes: number;
  /** Leftover staging dirs of captures that crashed (their process is gone). */
  staging: string[];
}

const LAYER_FORMAT = 'hutch-layer-v1';
const OBJECT_FORMAT = 'hutch-object-v1';
const DIGEST = /^[0-9a-f]{64}$/;
const LINK_CONCURRENCY = 32;

/**
 * What tar records and restores. `--numeric-owner`: the mapped uids (100000+) have no names on the
 * host. `--atime-preserve=system`: reading must not touch the sandbox's files. ctime and atime are
 * dropped from the pax headers: not part of a layer's identity, and the archive stays reproducible.
 */
const TAR_COMMON = ['--format=posix', '--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls'];
const TAR_CREATE = [
  '--create',
  '--file=-',
  ...TAR_COMMON,
  '--sparse',
  '--sparse-version=1.0',
  '--one-file-system',
  '--atime-preserve=system',
  '--pax-option=delete=ctime,delete=atime',
];
const TAR_EXTRACT = ['--extract', ...TAR_COMMON, '--same-owner', '--same-permissions'];

/** Staging dirs of captures and removals running in this process (gc must not touch them). */
const ACTIVE_STAGING = new Set<string>();

export class LayerStore {
  readonly root: string;
  private readonly layersDir: string;
  private readonly objectsDir: string;
  private readonly stagingDir: string;

  /**
   * Opens (creating if needed) a store under `root`. The dirs are 0700: layers hold setuid
   * binaries owned by sandbox uids, which no host user should be able to reach.
   */
  constructor(root: string) {
    this.root = resolve(root);
    this.layersDir = join(this.root, 'layers');
    this.objectsDir = join(this.root, 'objects');
    this.stagingDir = join(this.root, 'staging');
    for (const dir of [this.root, this.layersDir, this.objectsDir, this.stagingDir]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /**
   * Captures `sourceDir` (a sandbox's upper dir, quiescent) as a layer on `parent`. Capturing a
   * tree identical to a stored one on the same parent returns that layer with `reused: true`.
   * Safe against concurrent captures (of the same content too) and concurrent gc.
   */
  async capture(sourceDir: string, parent: string | null): Promise<CapturedLayer> {
    await checkSource(sourceDir);
    checkParent(parent);
    const staging = await this.openStaging();
    try {
      const skeletonPath = join(staging, 'skeleton.tar');
      const scan = await scanTree(sourceDir, skeletonPath);
      const digest = layerDigest(scan.inodes, parent);
      const existing = await this.get(digest);
      if (existing) return { ...existing, reused: true };

      const layerDir = join(staging, 'layer');
      const rootfs = join(layerDir, 'rootfs');
      await mkdir(layerDir);
      await this.assemble(sourceDir, scan, staging, rootfs, skeletonPath);
      const final = join(this.layersDir, digest);
      const info: LayerInfo = {
        digest,
        rootfs: join(final, 'rootfs'),
        parent,
        sizeBytes: scan.inodes.reduce((sum, n) => sum + (n.type === 'file' ? n.size : 0), 0),
        files: scan.inodes.reduce((sum, n) => sum + n.paths.length, 0) - 1,
        createdAt: new Date().toISOString(),
      };
      await writeFile(join(layerDir, 'layer.json'), JSON.stringify(info, null, 2) + '\n');
      try {
        await rename(layerDir, final);
      } catch (err) {
        const code = errno(err);
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        // A concurrent capture of the same tree published first; the two are identical by digest.
        const winner = await this.get(digest);
        if (!winner) throw internal(`layer ${digest} appeared and vanished during capture`);
        return { ...winner, reused: true };
      }
      return { ...info, reused: false };
    } finally {
      await this.closeStaging(staging);
    }
  }

  /** The layer with this digest, or null. */
  async get(digest: string): Promise<LayerInfo | null> {
    checkDigest(digest);
    let text: string;
    try {
      text = await readFile(join(this.layersDir, digest, 'layer.json'), 'utf8');
    } catch (err) {
      if (errno(err) === 'ENOENT') return null;
      throw err;
    }
    let info: LayerInfo;
    try {
      info = JSON.parse(text) as LayerInfo;
    } catch (err) {
      throw internal(`layer ${digest}: unreadable layer.json`, err);
    }
    // The path is derived, not trusted from the manifest: the store may have moved.
    return { ...info, digest, rootfs: join(this.layersDir, digest, 'rootfs') };
  }

  /** All layers, oldest first. */
  async list(): Promise<LayerInfo[]> {
    const layers: LayerInfo[] = [];
    for (const name of await readdir(this.layersDir)) {
      if (!DIGEST.test(name)) continue;
      const layer = await this.get(name);
      if (layer) layers.push(layer);
    }
    return layers.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.digest.localeCompare(b.digest));
  }

  /**
   * Removes a layer; a missing one is not an error. Refuses (conflict) while another stored layer
   * sits on it. Its pool objects stay until gc. The caller must not remove a layer that a mounted
   * overlay uses.
   */
  async remove(digest: string): Promise<void> {
    checkDigest(digest);
    const children = (await this.list()).filter((l) => l.parent === digest);
    if (children.length > 0) {
      throw conflict(`layer ${digest} is the parent of ${children.map((c) => c.digest.slice(0, 12)).join(', ')}; remove those first`);
    }
    await this.discard(join(this.layersDir, digest));
  }

  /**
   * Removes layers not in `referenced` (the ancestors of referenced layers are kept too: a sandbox
   * on a layer mounts its parents), then pool objects that no layer links any more (link count 1),
   * then staging dirs of crashed captures. With dryRun, reports the same and changes nothing.
   * A layer captured after the caller built `referenced` is not in it: run gc under the same lock
   * as snapshot creation. Objects are safe against a concurrent capture (it pins what it links).
   */
  async gc(referenced: Set<string>, options: { dryRun: boolean }): Promise<GcResult> {
    const all = await this.list();
    const byDigest = new Map(all.map((l) => [l.digest, l]));
    const keep = new Set<string>();
    const pending = [...referenced];
    while (pending.length > 0) {
      const digest = pending.pop()!;
      if (keep.has(digest)) continue;
      keep.add(digest);
      const parent = byDigest.get(digest)?.parent;
      if (parent) pending.push(parent);
    }
    // By directory name, not manifest: a layer dir without a manifest (never made by a capture,
    // which renames a complete dir) goes too. Names that are not digests are not ours to touch.
    const doomed = (await readdir(this.layersDir)).filter((name) => DIGEST.test(name) && !keep.has(name)).sort();
    const stale = await this.staleStaging();
    const result: GcResult = { layers: doomed, objects: 0, bytes: 0, staging: stale };

    if (options.dryRun) {
      // An object goes when its links outside the pool all lie in trees that would go.
      const doomedLinks = new Map<bigint, number>();
      for (const dir of [...doomed.map((d) => join(this.layersDir, d)), ...stale.map((s) => join(this.stagingDir, s))]) {
        await countLinks(dir, doomedLinks);
      }
      await this.sweepObjects((st) => Number(st.nlink) - (doomedLinks.get(st.ino) ?? 0) <= 1, false, result);
      return result;
    }
    for (const name of doomed) await this.discard(join(this.layersDir, name));
    for (const name of stale) await rm(join(this.stagingDir, name), { recursive: true, force: true });
    await this.sweepObjects((st) => st.nlink === 1n, true, result);
    return result;
  }

  /**
   * Re-reads a stored layer and checks it still hashes to its digest (an integrity check: a copy
   * that lost an xattr, a mode or a byte would not).
   */
  async verify(digest: string): Promise<boolean> {
    const layer = await this.get(digest);
    if (!layer) throw notFound(`layer ${digest} not found`);
    const scan = await scanTree(layer.rootfs, null);
    return layerDigest(scan.inodes, layer.parent) === digest;
  }

  private async assemble(sourceDir: string, scan: Scan, staging: string, rootfs: string, skeletonPath: string): Promise<void> {
    // Directories first, a level at a time; the skeleton sets their metadata at the end.
    const levels = new Map<number, string[]>();
    for (const node of scan.inodes) {
      if (node.type !== 'dir') continue;
      for (const path of node.paths) {
        const depth = path === '' ? 0 : path.split('/').length;
        levels.set(depth, [...(levels.get(depth) ?? []), path]);
      }
    }
    for (const depth of [...levels.keys()].sort((a, b) => a - b)) {
      await forEachLimit(levels.get(depth)!, LINK_CONCURRENCY, (dir) => mkdir(fsPath(rootfs, dir)));
    }

    // Regular files grouped by object key: a tree's hardlinks share an inode and therefore a key;
    // separate identical files (same bytes and metadata) become one inode too.
    const groups = new Map<string, Inode[]>();
    for (const node of scan.inodes) {
      if (node.type !== 'file') continue;
      const key = objectKey(node);
      const group = groups.get(key);
      if (group) group.push(node);
      else groups.set(key, [node]);
    }
    // Linking an existing object into our tree also pins it: gc only takes objects with one link.
    const missing: Array<{ key: string; group: Inode[] }> = [];
    await forEachLimit([...groups], LINK_CONCURRENCY, async ([key, group]) => {
      const [first, ...rest] = group.flatMap((n) => n.paths);
      try {
        await link(join(this.objectsDir, key), fsPath(rootfs, first!));
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err;
        missing.push({ key, group });
        return;
      }
      for (const path of rest) await link(fsPath(rootfs, first!), fsPath(rootfs, path));
    });
    if (missing.length === 0) return extractArchive(skeletonPath, rootfs);

    // The rest are read again and extracted in place (tar sets their exact metadata), then pooled.
    const order = new Map(scan.inodes.map((n, i) => [n, i]));
    missing.sort((a, b) => order.get(a.group[0]!)! - order.get(b.group[0]!)!); // tar's reading order
    await copyFiles(
      sourceDir,
      missing.map((m) => m.group[0]!),
      rootfs,
      join(staging, 'files.list'),
    );
    await forEachLimit(missing, LINK_CONCURRENCY, async ({ key, group }, index) => {
      const [first, ...rest] = group.flatMap((n) => n.paths);
      const copied = fsPath(rootfs, first!);
      const object = join(this.objectsDir, key);
      try {
        await link(copied, object);
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
        // A concurrent capture pooled the same object first: take theirs instead of our copy.
        // (Replacing a tree entry touches its directory; the skeleton below resets that.)
        const temp = join(staging, `dedup-${index}`);
        try {
          await link(object, temp);
          await rename(temp, copied);
        } catch (err2) {
          if (errno(err2) !== 'ENOENT') throw err2; // gc took theirs meanwhile: keep ours
        }
      }
      for (const path of rest) await link(copied, fsPath(rootfs, path));
    });
    // Last: the root's, the directories' and the other entries' own metadata.
    await extractArchive(skeletonPath, rootfs);
  }

  private async sweepObjects(
    removable: (st: { nlink: bigint; ino: bigint; size: bigint }) => boolean,
    remove: boolean,
    result: GcResult,
  ): Promise<void> {
    for (const name of await readdir(this.objectsDir)) {
      const path = join(this.objectsDir, name);
      const st = await lstatIfExists(path);
      if (!st || !removable(st)) continue;
      if (remove) {
        try {
          await unlink(path);
        } catch (err) {
          if (errno(err) === 'ENOENT') continue;
          throw err;
        }
      }
      result.objects++;
      result.bytes += Number(st.size);
    }
  }

  /** Moves a tree into staging (one atomic step out of `layers/`), then deletes it. */
  private async discard(dir: string): Promise<void> {
    const trash = await this.openStaging();
    try {
      await rename(dir, join(trash, 'trash'));
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
    } finally {
      await this.closeStaging(trash);
    }
  }

  private async openStaging(): Promise<string> {
    const dir = join(this.stagingDir, `${process.pid}-${randomBytes(6).toString('hex')}`);
    ACTIVE_STAGING.add(dir);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  private async closeStaging(dir: string): Promise<void> {
    try {
      await rm(dir, { recursive: true, force: true });
    } finally {
      ACTIVE_STAGING.delete(dir);
    }
  }

  /** Staging dirs whose owner process is gone (named `<pid>-<random>`), or unknown names. */
  private async staleStaging(): Promise<string[]> {
    const stale: string[] = [];
    for (const name of await readdir(this.stagingDir)) {
      const pid = Number(/^(\d+)-[0-9a-f]+$/.exec(name)?.[1] ?? NaN);
      const live = pid === process.pid ? ACTIVE_STAGING.has(join(this.stagingDir, name)) : Number.isInteger(pid) && processAlive(pid);
      if (!live) stale.push(name);
    }
    return stale.sort();
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

async function checkSource(sourceDir: string): Promise<void> {
  if (typeof sourceDir !== 'string' || !isAbsolute(sourceDir)) {
    throw invalidArgument(`snapshot source must be an absolute path, got ${JSON.stringify(sourceDir)}`);
  }
  let st;
  try {
    st = await stat(sourceDir);
  } catch (err) {
    if (errno(err) === 'ENOENT') throw invalidArgument(`snapshot source ${sourceDir} does not exist`);
    throw invalidArgument(`snapshot source ${sourceDir} cannot be read: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw invalidArgument(`snapshot source ${sourceDir} is not a directory`);
}

function checkParent(parent: string | null): void {
  // eslint-disable-next-line no-control-regex
  if (parent !== null && (typeof parent !== 'string' || parent.length === 0 || parent.length > 512 || /[\u0000-\u001f]/.test(parent))) {
    throw invalidArgument('layer parent must be null or a non-empty string of at most 512 characters without control characters');
  }
}

function checkDigest(digest: string): void {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) {
    throw invalidArgument(`${JSON.stringify(digest)} is not a layer digest (64 lowercase hex characters)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scan: the tree as tar sees it, hashed

/** One inode of the scanned tree, with every path that names it. Paths are byte strings (latin1). */
interface Inode {
  type: EntryType;
  paths: string[];
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, decimal. */
  mtime: string;
  /** `xattr.<name>` and `acl.<access|default>` → base64 value, sorted by name. */
  attrs: Array<[string, string]>;
  /** Logical size of a regular file. */
  size: number;
  sparse: boolean;
  /** sha256 of a regular file's content as tar carries it (see scanTree). */
  content: string;
  target: string;
  devMajor: number;
  devMinor: number;
}

interface Scan {
  inodes: Inode[];
}

/**
 * Parses `tar -c` of `dir`: hashes regular files as they stream and, when `skeletonPath` is given,
 * writes the non-regular entries (and hardlinks between them) there as a tar of their own. A file
 * tar stores as sparse is hashed over its hole map and data extents (with its logical size), not
 * over its expanded bytes, so a mostly-hole file costs what its data costs; a dense copy of the
 * same bytes hashes differently, which only means it is not deduplicated with the sparse one.
 */
async function scanTree(dir: string, skeletonPath: string | null): Promise<Scan> {
  const inodes: Inode[] = [];
  const byPath = new Map<string, Inode>();
  const skeleton = skeletonPath === null ? null : createWriteStream(skeletonPath, { mode: 0o600 });
  const skeletonDone = skeleton ? new Promise<void>((res, rej) => skeleton.once('finish', res).once('error', rej)) : null;
  skeletonDone?.catch(() => undefined); // awaited below; an early failure must not go unhandled
  const parser = new TarParser((m) => {
    if (m.type === 'hardlink') {
      const target = byPath.get(m.linkTarget);
      if (!target) throw internal(`tar: ${printable(m.path)} links to unknown ${printable(m.linkTarget)}`);
      target.paths.push(m.path);
      byPath.set(m.path, target);
      if (target.type !== 'file') skeleton?.write(m.raw);
      return null;
    }
    if (m.dataSize > 0 && m.type !== 'file') throw internal(`tar: unexpected data for ${m.type} ${printable(m.path)}`);
    const node: Inode = {
      type: m.type,
      paths: [m.path],
      mode: m.mode,
      uid: m.uid,
      gid: m.gid,
      mtime: m.mtime,
      attrs: m.attrs,
      size: m.size,
      sparse: m.sparse,
      content: '',
      target: m.type === 'symlink' ? m.linkTarget : '',
      devMajor: m.devMajor,
      devMinor: m.devMinor,
    };
    inodes.push(node);
    byPath.set(m.path, node);
    if (m.type !== 'file') {
      skeleton?.write(m.raw);
      return null;
    }
    const hash = contentHash(m);
    return { data: (chunk) => hash.update(chunk), end: () => (node.content = hash.digest('hex')) };
  });
  const creator = startTar([...TAR_CREATE, `--directory=${dir}`, '.'], 'read', 'produces');
  try {
    await pump(creator.child.stdout!, parser, skeleton ? [skeleton] : []);
    await creator.exit;
    parser.finish();
    if (skeleton) {
      skeleton.end(END_OF_ARCHIVE);
      await skeletonDone;
    }
  } catch (err) {
    creator.child.kill('SIGKILL');
    skeleton?.destroy();
    await creator.exit.catch(() => undefined);
    throw err;
  }
  if (inodes[0]?.paths[0] !== '' || inodes[0].type !== 'dir') throw internal(`tar: ${dir} produced no root directory`);
  return { inodes };
}

/**
 * Reads `files` (paths from the scan) from the source again and extracts them at the same paths
 * under `dest`, refusing any that differ from what the scan saw.
 */
async function copyFiles(sourceDir: string, files: Inode[], dest: string, listPath: string): Promise<void> {
  await writeFile(listPath, Buffer.concat(files.map((n) => Buffer.from(`./${n.paths[0]!}\0`, 'latin1'))), { mode: 0o600 });
  let index = 0;
  const creator = startTar(
    [
      ...TAR_CREATE,
      `--directory=${sourceDir}`,
      '--no-recursion',
      '--null',
      '--verbatim-files-from',
      '--no-unquote',
      `--files-from=${listPath}`,
    ],
    'read',
    'produces',
  );
  const extractor = startTar([...TAR_EXTRACT, '--file=-', `--directory=${dest}`], 'copy', 'consumes');
  const out = extractor.child.stdin!;
  const parser = new TarParser((m) => {
    const expected = files[index++];
    if (!expected || m.path !== expected.paths[0] || m.type !== 'file' || describeMeta(m) !== describeMeta(expected)) {
      throw conflict(`snapshot source changed during capture at ${printable(m.path)} (pause the sandbox before capturing)`);
    }
    const hash = contentHash(m);
    out.write(m.raw);
    return {
      data: (chunk) => {
        hash.update(chunk);
        out.write(chunk);
      },
      end: () => {
        out.write(Buffer.alloc(padding(m.dataSize)));
        if (hash.digest('hex') !== expected.content) {
          throw conflict(`snapshot source changed during capture at ${printable(m.path)} (pause the sandbox before capturing)`);
        }
      },
    };
  });
  try {
    await pump(creator.child.stdout!, parser, [out]);
    await creator.exit;
    parser.finish();
    if (index !== files.length) throw conflict(`snapshot source changed during capture: ${files.length - index} files vanished`);
    out.end(END_OF_ARCHIVE);
    await extractor.exit;
  } catch (err) {
    creator.child.kill('SIGKILL');
    extractor.child.kill('SIGKILL');
    await Promise.allSettled([creator.exit, extractor.exit]);
    throw err;
  }
}

async function extractArchive(archive: string, dest: string): Promise<void> {
  await startTar([...TAR_EXTRACT, `--file=${archive}`, `--directory=${dest}`], 'assemble', 'none').exit;
}

function contentHash(m: TarMember): ReturnType<typeof createHash> {
  const hash = createHash('sha256');
  if (m.sparse) hash.update(`sparse ${m.size}\n`);
  return hash;
}

/** Metadata that must match between the scan and the copy (and that an object key covers). */
function describeMeta(n: { mode: number; uid: number; gid: number; mtime: string; size: number; sparse: boolean; attrs: unknown }): string {
  return JSON.stringify([n.mode, n.uid, n.gid, n.mtime, n.size, n.sparse, n.attrs]);
}

/**
 * The layer digest: sha256 over a versioned header, the parent, and one JSON line per path in
 * byte order. Hardlink structure is not listed: in the store, files with equal content and
 * metadata share an inode whatever the source did, so the listing already determines it.
 */
function layerDigest(inodes: Inode[], parent: string | null): string {
  const rows: Array<[string, string]> = [];
  for (const n of inodes) {
    const specific =
      n.type === 'file'
        ? [n.size, n.content]
        : n.type === 'symlink'
          ? [n.target]
          : n.type === 'char' || n.type === 'block'
            ? [n.devMajor, n.devMinor]
            : [];
    for (const path of n.paths) rows.push([path, JSON.stringify([path, n.type, n.mode, n.uid, n.gid, n.mtime, n.attrs, ...specific])]);
  }
  rows.sort((a, b) => byteOrder(a[0], b[0]));
  const hash = createHash('sha256').update(`${LAYER_FORMAT}\n${JSON.stringify(parent)}\n`);
  for (const [, row] of rows) hash.update(row + '\n');
  return hash.digest('hex');
}

/**
 * The pool name of a regular file: its content and every piece of inode metadata, mtime included
 * (layers share the inode, so they can only share it when all of that is equal). Re-captures of a
 * sandbox's upper, whose unchanged files keep their mtimes, therefore share all unchanged files.
 */
function objectKey(n: Inode): string {
  return createHash('sha256')
    .update(JSON.stringify([OBJECT_FORMAT, n.content, n.sparse, n.size, n.mode, n.uid, n.gid, n.mtime, n.attrs]))
    .digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Processes and streams

interface TarProcess {
  child: ChildProcess;
  exit: Promise<void>;
}

/**
 * Runs GNU tar in the C locale (file names pass as raw bytes). `produces`: the caller reads the
 * archive from stdout; `consumes`: the caller writes one to stdin. The exit rejects with stderr.
 */
function startTar(args: string[], step: 'read' | 'copy' | 'assemble', io: 'produces' | 'consumes' | 'none'): TarProcess {
  const child = spawn('tar', args, {
    stdio: [io === 'consumes' ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  child.stdin?.on('error', () => undefined); // reported through the exit status
  if (io !== 'produces') child.stdout!.resume();
  const exit = new Promise<void>((resolvePromise, reject) => {
    child.once('error', (err) =>
      reject(new HutchError('internal', `cannot run GNU tar (${(err as Error).message}); install the tar package`, { cause: err })),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolvePromise();
      const detail = stderr.trim().split('\n').slice(-3).join(' | ');
      // tar's exit status 1: a file changed while it was read.
      if (code === 1 && step === 'read') reject(conflict(`snapshot source changed during capture (pause the sandbox first): ${detail}`));
      else reject(internal(`layer ${step}: tar failed (${code ?? signal}): ${detail}`));
    });
  });
  exit.catch(() => undefined); // awaited by the caller; an early failure must not go unhandled
  return { child, exit };
}

/** Feeds `input` to the parser, holding back while any output is over its buffer. */
async function pump(input: Readable, parser: TarParser, outputs: Writable[]): Promise<void> {
  for await (const chunk of input) {
    parser.push(chunk as Buffer);
    for (const out of outputs) if (out.writableNeedDrain) await drained(out);
  }
}

function drained(stream: Writable): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const done = (err?: Error): void => {
      stream.off('drain', onDrain).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolvePromise();
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(internal('layer copy: tar stopped reading'));
    stream.on('drain', onDrain).on('error', onError).on('close', onClose);
  });
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/** lstat (bigint), or null when the entry vanished meanwhile. */
async function lstatIfExists(path: string | Buffer): Promise<BigIntStats | null> {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if (errno(err) === 'ENOENT') return null;
    throw err;
  }
}

/** Adds, per inode, the links that regular files under `dir` hold (files with other links only). */
async function countLinks(dir: string, counts: Map<bigint, number>): Promise<void> {
  const stack = [Buffer.from(dir)];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const st = await lstatIfExists(path);
    if (!st) continue;
    if (st.isDirectory()) {
      for (const name of await readdir(path, { encoding: 'buffer' })) stack.push(Buffer.concat([path, Buffer.from('/'), name]));
    } else if (st.isFile() && st.nlink > 1n) {
      counts.set(st.ino, (counts.get(st.ino) ?? 0) + 1);
    }
  }
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A path under `base` for a tree-relative byte-string path (file names need not be UTF-8). */
function fsPath(base: string, rel: string): Buffer {
  return rel === '' ? Buffer.from(base) : Buffer.concat([Buffer.from(base + '/'), Buffer.from(rel, 'latin1')]);
}

/** Byte order for latin1 byte strings (one char per byte). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errno(err) === 'EPERM';
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}
