import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HutchError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { DEFAULT_IMAGE_REPOSITORY, imageRef, writeOciArchive, type OciImageInput } from '../../templates/oci-image.js';

export interface PodImagesOptions {
  agentBinary: string;
  /** Image repository of the references (default localhost/hutch/sandbox). */
  repository?: string;
  /**
   * A command run as `<command...> <oci-tar> <ref>` to make an exported image available to the
   * cluster (k8s-local's `import-image`, a registry push script). Null: the images must already be
   * there (`hutch template export` + an import of the operator's), and a missing one fails the
   * create with a message naming it.
   */
  importCommand: string[] | null;
  /** Where exported tarballs are kept (reused across restarts). */
  cacheDir: string;
  log: Logger;
}

/**
 * Which image a sandbox's pod runs: its layers and the agent as an OCI image whose tag is the
 * digest of both (templates/oci-image.ts). With an import command, an image is exported and
 * imported on first use (once per server process; the tarball is kept), so creates after the
 * first pay nothing.
 */
export class PodImages {
  private readonly ensured = new Map<string, Promise<void>>();
  /** References by layers and user (the agent binary does not change while the server runs). */
  private readonly refs = new Map<string, string>();
  readonly repository: string;

  constructor(private readonly options: PodImagesOptions) {
    this.repository = options.repository ?? DEFAULT_IMAGE_REPOSITORY;
  }

  get importing(): boolean {
    return this.options.importCommand !== null;
  }

  async imageFor(layers: string[], defaultUser: string): Promise<string> {
    const input: OciImageInput = { layers, agentBinary: this.options.agentBinary, defaultUser };
    const key = JSON.stringify([layers, defaultUser]);
    const ref = this.refs.get(key) ?? (await imageRef(input, this.repository));
    this.refs.set(key, ref);
    if (!this.options.importCommand) return ref;
    let pending = this.ensured.get(ref);
    if (!pending) {
      pending = this.exportAndImport(input, ref, this.options.importCommand);
      this.ensured.set(ref, pending);
      // A failed import is tried again by the next create.
      pending.catch(() => this.ensured.delete(ref));
    }
    await pending;
    return ref;
  }

  private async exportAndImport(input: OciImageInput, ref: string, command: string[]): Promise<void> {
    await mkdir(this.options.cacheDir, { recursive: true, mode: 0o700 });
    const tarball = join(this.options.cacheDir, `${ref.slice(ref.lastIndexOf(':') + 1)}.tar`);
    const started = Date.now();
    if (!existsSync(tarball)) await writeOciArchive(input, tarball, this.repository);
    // Tried three times: an import command can fail transiently (k8s-local's import-image checks
    // its result through a pipe that can break under pipefail); importing twice is harmless.
    for (let attempt = 1; ; attempt++) {
      try {
        await run(command[0]!, [...command.slice(1), tarball, ref]);
        break;
      } catch (err) {
        if (attempt >= 3) throw err;
        this.options.log.warn({ image: ref, attempt, err: (err as Error).message }, 'image import failed: trying again');
      }
    }
    this.options.log.info({ image: ref, ms: Date.now() - started }, 'sandbox image imported into the cluster');
  }
}

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4000) stderr += chunk.toString();
    });
    child.once('error', (err) => reject(new HutchError('internal', `image import: cannot run ${file}: ${err.message}`)));
    child.once('close', (code) =>
      code === 0 ? resolve() : reject(new HutchError('internal', `image import: ${file} exited with ${code}: ${stderr.trim()}`)),
    );
  });
}
