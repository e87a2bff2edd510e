import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HutchError } from '../core/errors.js';
import { AGENT_BINARY_PATH, ID_MAP_BASE, ID_MAP_SIZE } from '../runtime/local/oci-spec.js';

/**
 * A sandbox root filesystem as an OCI image (image-layout tarball), for runtimes that take images
 * rather than overlay lower dirs: the Kubernetes provider. One uncompressed tar layer per template
 * layer (bottom first), then a layer holding the hutch-agent binary, which is the entrypoint,
 * serving its API on TCP (the pod network; requests carry a per-sandbox token).
 *
 * Layers on disk are shifted into the local provider's sandbox uid range (100000 + uid): the image
 * gets the unshifted owners back (GNU tar --owner-map/--group-map), since a pod's runtime maps
 * nothing. File capabilities and other xattrs are not carried (the templates that ship have none),
 * nor overlay whiteouts (snapshot layers, which this export does not take).
 *
 * Written by hand over GNU tar (Essential on Debian) and sha256: no npm library writes OCI
 * image layouts from directories without a container engine, and the format is three JSON files.
 */

/** The agent's TCP port inside a pod (envd's port, so E2B-style tooling recognises it). */
export const AGENT_TCP_PORT = 49983;
/** Where the images go unless configured (`localhost/...` is never pulled from a registry). */
export const DEFAULT_IMAGE_REPOSITORY = 'localhost/hutch/sandbox';

export interface OciImageInput {
  /** Layer dirs, top first (ResolvedTemplate.layers): each `<store>/<digest>/rootfs`. */
  layers: string[];
  agentBinary: string;
  defaultUser: string;
}

/** The agent's command line in an image: TCP on every address of the pod's network namespace. */
export function agentCommand(defaultUser: string, extra: string[] = []): string[] {
  return [AGENT_BINARY_PATH, '--listen', `tcp:0.0.0.0:${AGENT_TCP_PORT}`, '--default-user', defaultUser, ...extra];
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * The image reference for a set of layers and an agent: the tag is a digest of what goes into the
 * image (layer digests, agent bytes, default user), so a changed template or agent is a new tag
 * and an image already on a node is never stale.
 */
export async function imageRef(input: OciImageInput, repository = DEFAULT_IMAGE_REPOSITORY): Promise<string> {
  const layerDigests = input.layers.map((l) => basename(dirname(l)));
  const canonical = JSON.stringify({
    format: 'hutch-oci-v1',
    layers: layerDigests,
    agent: await fileSha256(input.agentBinary),
    user: input.defaultUser,
  });
  return `${repository}:${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}`;
}

/**
 * The same tree gives the same bytes (so the same tag always names the same image): sorted
 * entries, numeric owners, no atime/ctime in the pax headers.
 */
const REPRODUCIBLE = [
  '--format=posix',
  '--numeric-owner',
  '--sort=name',
  '--pax-option=delete=ctime,delete=atime,exthdr.name=%d/PaxHeaders/%f',
];

interface Blob {
  digest: string;
  size: number;
}

function ociArchitecture(): string {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x' };
  return arch[process.arch] ?? process.arch;
}

/** Runs tar; resolves when it exited 0. `stdout` (if given) receives its output. */
async function runTar(args: string[], stdout?: (out: NodeJS.ReadableStream) => Promise<void>): Promise<void> {
  const child = spawn('tar', args, { stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 4000) stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (stdout && child.stdout) await stdout(child.stdout);
  const code = await exited;
  if (code !== 0) throw new HutchError('internal', `tar failed (exit ${code}): ${stderr.trim()}`);
}

/** Runs tar with `args` writing to stdout; the output becomes a blob under `blobs`. */
async function tarBlob(blobs: string, args: string[]): Promise<Blob> {
  const tmp = join(blobs, `.tmp-${randomBytes(6).toString('hex')}`);
  const hash = createHash('sha256');
  let size = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await runTar(args, (out) => pipeline(out, tee, createWriteStream(tmp)));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const digest = hash.digest('hex');
  await rename(tmp, join(blobs, digest));
  return { digest: `sha256:${digest}`, size };
}

async function jsonBlob(blobs: string, value: unknown): Promise<Blob> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(blobs, digest), bytes);
  return { digest: `sha256:${digest}`, size: bytes.length };
}

/**
 * Writes the image as an OCI image-layout tarball at `out` (atomically: a temporary name, then a
 * rename). Returns its reference and size.
 */
export async function writeOciArchive(
  input: OciImageInput,
  out: string,
  repository = DEFAULT_IMAGE_REPOSITORY,
): Promise<{ ref: string; layers: number; sizeBytes: number }> {
  const ref = await imageRef(input, repository);
  const staging = `${out}.staging-${process.pid}-${randomBytes(4).toString('hex')}`;
  const blobs = join(staging, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  try {
    // Sandbox uid/gid 100000+n back to n (every id of the mapped range, so none is missed).
    const idMap = join(staging, 'id-map');
    const lines: string[] = [];
    for (let id = 0; id < ID_MAP_SIZE; id++) lines.push(`+${ID_MAP_BASE + id} u:${id}`);
    await writeFile(idMap, lines.join('\n') + '\n');
    const layers: Blob[] = [];
    for (const rootfs of [...input.layers].reverse()) {
      layers.push(
        await tarBlob(blobs, [
          '-C',
          rootfs,
          '--create',
          '--file=-',
          ...REPRODUCIBLE,
          `--owner-map=${idMap}`,
          `--group-map=${idMap}`,
          '--one-file-system',
          '.',
        ]),
      );
    }
    const agentRoot = join(staging, 'agent-layer');
    const agentPath = join(agentRoot, AGENT_BINARY_PATH);
    await mkdir(dirname(agentPath), { recursive: true, mode: 0o755 });
    await copyFile(input.agentBinary, agentPath);
    await chmod(agentPath, 0o755);
    const agentTop = AGENT_BINARY_PATH.split('/')[1]!;
    layers.push(
      await tarBlob(blobs, ['-C', agentRoot, '--create', '--file=-', ...REPRODUCIBLE, '--owner=0', '--group=0', '--mtime=@0', agentTop]),
    );
    const tag = ref.slice(ref.lastIndexOf(':') + 1);
    const config = await jsonBlob(blobs, {
      architecture: ociArchitecture(),
      os: 'linux',
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'],
        Entrypoint: agentCommand(input.defaultUser),
        WorkingDir: '/',
        ExposedPorts: { [`${AGENT_TCP_PORT}/tcp`]: {} },
        Labels: { 'dev.hutch.image': tag },
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    });
    const manifest = await jsonBlob(blobs, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    });
    await writeFile(
      join(staging, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...manifest,
            platform: { architecture: ociArchitecture(), os: 'linux' },
            annotations: { 'org.opencontainers.image.ref.name': tag, 'io.containerd.image.name': ref },
          },
        ],
      }),
    );
    await writeFile(join(staging, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const tmpOut = `${out}.tmp-${process.pid}`;
    await runTar([
      '-C',
      staging,
      '--create',
      `--file=${tmpOut}`,
      ...REPRODUCIBLE,
      '--owner=0',
      '--group=0',
      '--mtime=@0',
      'oci-layout',
      'index.json',
      'blobs',
    ]);
    await rename(tmpOut, out);
    return { ref, layers: layers.length, sizeBytes: (await stat(out)).size };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
