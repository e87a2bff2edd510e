import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { REPO } from '../tests/harness.js';
import { IMPORT_IMAGE, K8S_LOCAL } from './k8s-lib.js';

/**
 * A Hutch server image for the Helm chart test, made without a container engine: one layer with
 * this machine's node binary and the shared libraries it and better-sqlite3 load (found with
 * ldd), the built SDK, server and CLI with their production dependencies (`npm ls --omit=dev`),
 * and hutch-agent, at the repository's layout under /app. The entrypoint is the `hutch` CLI, as
 * the chart expects of an image. Written as an OCI image layout by k8s-local's lib/oci.sh and
 * imported into the cluster's containerd with its import-image.
 */
export const SERVER_REPOSITORY = 'localhost/hutch/server';

function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  return [...out.matchAll(/(\/[^\s]+\.so[^\s]*)/g)].map((m) => m[1]!);
}

export function buildServerImage(): { ref: string; tag: string; sizeBytes: number } {
  const work = mkdtempSync('/var/tmp/hutch-server-image-');
  try {
    const root = join(work, 'rootfs');
    const app = join(root, 'app');
    const copy = (from: string, to = join(root, from)): void => {
      mkdirSync(dirname(to), { recursive: true });
      // Libraries are symlinks (libc.so.6 -> libc-2.36.so): copied as what they name. Links in
      // the tree stay as they are (relative).
      const library = from.startsWith('/lib') || from.startsWith('/usr/lib');
      cpSync(from, to, library ? { dereference: true } : { recursive: true, verbatimSymlinks: true });
    };
    copy(process.execPath, join(root, 'usr/bin/node'));
    const sqlite = join(REPO, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    for (const lib of new Set([...sharedLibraries(process.execPath), ...sharedLibraries(sqlite)])) copy(lib);
    copy(join(REPO, 'package.json'), join(app, 'package.json'));
    for (const pkg of ['sdk', 'server', 'cli']) {
      copy(join(REPO, 'packages', pkg, 'package.json'), join(app, 'packages', pkg, 'package.json'));
      copy(join(REPO, 'packages', pkg, 'dist'), join(app, 'packages', pkg, 'dist'));
    }
    copy(join(REPO, 'agent/bin/hutch-agent'), join(app, 'agent/bin/hutch-agent'));
    const production = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' })
      .split('\n')
      .filter((p) => p.startsWith(REPO + '/') && p.includes('/node_modules/'));
    for (const dir of production) copy(dir, join(app, relative(REPO, dir)));
    // The workspace packages are symlinks (node_modules/@hutch/x -> ../../packages/x): copied as
    // links, they resolve in /app.
    copy(join(REPO, 'node_modules/@hutch'), join(app, 'node_modules/@hutch'));
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/sbin/nologin\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    for (const dir of ['tmp', 'root', 'var/lib/hutch', 'etc/hutch/keys']) mkdirSync(join(root, dir), { recursive: true });
    const tarball = join(work, 'server.tar');
    execFileSync(
      'bash',
      [
        '-c',
        `. "${K8S_LOCAL}/lib/oci.sh" && oci_archive "$1" "$2" '["/usr/bin/node","/app/packages/cli/dist/main.js"]' null`,
        'oci',
        root,
        tarball,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const sizeBytes = statSync(tarball).size;
    // Tagged by content: the kubelet resolves a tag it has seen once to that image from then on.
    const tag = execFileSync('sha256sum', [tarball], { encoding: 'utf8' }).slice(0, 16);
    const ref = execFileSync(IMPORT_IMAGE, [tarball, `${SERVER_REPOSITORY}:${tag}`], { encoding: 'utf8' }).trim();
    return { ref, tag, sizeBytes };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
