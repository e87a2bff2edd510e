import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HutchError } from '../core/errors.js';
import { ID_MAP_BASE } from '../runtime/local/oci-spec.js';
import { debianMirror } from './debian-mirror.js';
import { BUSYBOX_PATH, recipeDigest, type TemplateRecipe } from './recipes.js';
import { shiftOwnership, treeSize } from './shift-ownership.js';

/** A built, read-only template layer: `<layersDir>/<digest>/rootfs` plus a manifest. */
export interface TemplateLayer {
  name: string;
  digest: string;
  rootfs: string;
  defaultUser: string;
  sizeBytes: number;
  builtAt: string;
}

export type Progress = (message: string) => void;

export function layerPaths(layersDir: string, digest: string): { dir: string; rootfs: string; manifest: string } {
  const dir = join(layersDir, digest);
  return { dir, rootfs: join(dir, 'rootfs'), manifest: join(dir, 'manifest.json') };
}

export async function readLayer(layersDir: string, recipe: TemplateRecipe): Promise<TemplateLayer | null> {
  const paths = layerPaths(layersDir, recipeDigest(recipe));
  try {
    return JSON.parse(await readFile(paths.manifest, 'utf8')) as TemplateLayer;
  } catch {
    return null;
  }
}

/** Builds the recipe's layer unless it exists. Safe against a concurrent build of the same digest. */
export async function buildLayer(layersDir: string, recipe: TemplateRecipe, progress: Progress): Promise<TemplateLayer> {
  const existing = await readLayer(layersDir, recipe);
  if (existing) return existing;
  const digest = recipeDigest(recipe);
  const final = layerPaths(layersDir, digest);
  const staging = join(layersDir, `.build-${digest.slice(0, 16)}-${process.pid}-${Date.now()}`);
  const rootfs = join(staging, 'rootfs');
  await mkdir(rootfs, { recursive: true });
  const started = Date.now();
  try {
    progress(`template ${recipe.name}: building layer ${digest.slice(0, 12)}`);
    if (recipe.inputs.kind === 'busybox') await buildBusybox(rootfs);
    else if (recipe.inputs.kind === 'debootstrap') await buildDebian(rootfs, recipe, progress);
    else if (recipe.inputs.kind !== 'files') throw new HutchError('internal', `unknown recipe kind ${String(recipe.inputs.kind)}`);
    await addFiles(rootfs, recipe);
    for (const command of (recipe.inputs.setup ?? []) as string[]) {
      progress(`template ${recipe.name}: ${command}`);
      await runLogged('/usr/sbin/chroot', [rootfs, '/bin/sh', '-c', command], progress);
    }
    // A 'files' layer sits on its parent's, which has the common files already.
    if (recipe.inputs.kind !== 'files') await writeCommonFiles(rootfs);
    progress(`template ${recipe.name}: shifting ownership into the sandbox uid range`);
    await shiftOwnership(rootfs, ID_MAP_BASE);
    const layer: TemplateLayer = {
      name: recipe.name,
      digest,
      rootfs: final.rootfs,
      defaultUser: recipe.defaultUser,
      sizeBytes: await treeSize(rootfs),
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(staging, 'manifest.json'), JSON.stringify(layer, null, 2));
    try {
      await rename(staging, final.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another process finished the same layer first; theirs is identical by construction.
    }
    progress(`template ${recipe.name}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return (await readLayer(layersDir, recipe)) ?? layer;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Files a recipe adds (e.g. httpbin's server script over its parent's layers, an entrypoint). */
async function addFiles(rootfs: string, recipe: TemplateRecipe): Promise<void> {
  const modes = (recipe.inputs.files ?? {}) as Record<string, { mode: number }>;
  for (const [dest, source] of Object.entries(recipe.files ?? {})) {
    const target = join(rootfs, dest);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    await copyFile(source, target);
    await chmod(target, modes[dest]?.mode ?? 0o644);
  }
}

async function buildBusybox(rootfs: string): Promise<void> {
  if (!existsSync(BUSYBOX_PATH)) throw new HutchError('internal', `${BUSYBOX_PATH} is missing (apt-get install busybox-static)`);
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await copyFile(BUSYBOX_PATH, join(rootfs, 'bin/busybox'));
  await chmod(join(rootfs, 'bin/busybox'), 0o755);
  const list = await capture(BUSYBOX_PATH, ['--list-full']);
  for (const rel of list
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)) {
    if (rel === 'bin/busybox') continue;
    const target = join(rootfs, rel);
    await mkdir(dirname(target), { recursive: true });
    if (!existsSync(target)) await symlink('/bin/busybox', target);
  }
  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(
    join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n');
  await mkdir(join(rootfs, 'home/user'), { recursive: true });
  await chown(join(rootfs, 'home/user'), 1000, 1000);
  await mkdir(join(rootfs, 'root'), { recursive: true, mode: 0o700 });
}

async function buildDebian(rootfs: string, recipe: TemplateRecipe, progress: Progress): Promise<void> {
  const mirror = debianMirror();
  if (!mirror) throw new HutchError('internal', 'no Debian mirror found in /etc/apt (set HUTCH_DEBIAN_MIRROR)');
  if (!existsSync('/usr/sbin/debootstrap')) throw new HutchError('internal', 'debootstrap is missing (apt-get install debootstrap)');
  const packages = recipe.inputs.packages as string[];
  progress(`template ${recipe.name}: debootstrap bookworm (${packages.join(', ')}) — a minute or more`);
  await runLogged('/usr/sbin/debootstrap', ['--variant=minbase', `--include=${packages.join(',')}`, 'bookworm', rootfs, mirror], progress);
  const user = recipe.inputs.user as { name: string; uid: number } | undefined;
  if (user) {
    progress(`template ${recipe.name}: adding user "${user.name}" (uid ${user.uid})`);
    await runLogged(
      '/usr/sbin/chroot',
      [rootfs, '/usr/sbin/useradd', '--create-home', '--uid', String(user.uid), '--user-group', '--shell', '/bin/bash', user.name],
      progress,
    );
  }
  for (const dir of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    await rm(join(rootfs, dir), { recursive: true, force: true });
    await mkdir(join(rootfs, dir, 'partial'), { recursive: true });
  }
}

/** Files every template gets: mount points, hosts, an empty resolv.conf (no egress yet). */
async function writeCommonFiles(rootfs: string): Promise<void> {
  for (const dir of ['proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', '.hutch', 'run/hutch']) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await chmod(join(rootfs, 'var/tmp'), 0o1777);
  await writeFile(join(rootfs, 'etc/hosts'), '127.0.0.1\tlocalhost hutch\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  await rm(join(rootfs, 'etc/resolv.conf'), { force: true });
  await writeFile(join(rootfs, 'etc/resolv.conf'), '');
  await writeFile(join(rootfs, 'etc/hostname'), 'hutch\n');
}

function capture(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} exited ${code}`))));
  });
}

/** Runs a long build step, passing its output lines to progress (debootstrap's I: lines). */
function runLogged(file: string, args: string[], progress: Progress): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    const tail: string[] = [];
    const onData = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        if (/^I: (Retrieving|Validating|Installing|Configuring|Base system)/.test(line) && !/Retrieving|Validating/.test(line))
          progress(`  ${line}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new HutchError('internal', `${file} failed (exit ${code}): ${tail.slice(-5).join(' | ')}`)),
    );
  });
}
