import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { posix } from 'node:path';
import { NotFoundError, type Hutch } from '@hutch/sdk';
import { CliError } from '../fail.js';
import type { CopyTarget } from '../invocation.js';

/**
 * `hutch cp`: copies one regular file between the local machine (or stdin/stdout) and a sandbox,
 * or between two sandboxes. Like `cp`, a destination that is a directory (or ends with `/`)
 * receives the file under the source's name. Bytes are copied exactly.
 */
export async function copy(hutch: Hutch, opts: { src: CopyTarget; dst: CopyTarget }): Promise<number> {
  const data = await readSource(hutch, opts.src);
  await writeDestination(hutch, opts.dst, data, sourceName(opts.src));
  return 0;
}

async function readSource(hutch: Hutch, src: CopyTarget): Promise<Uint8Array> {
  switch (src.kind) {
    case 'stdio': {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    }
    case 'local': {
      const st = await stat(src.path).catch((err: NodeJS.ErrnoException) => {
        throw new CliError(err.code === 'ENOENT' ? `${src.path}: no such file` : `${src.path}: ${err.message}`);
      });
      if (st.isDirectory()) throw new CliError(`${src.path} is a directory; hutch cp copies single files`);
      return readFile(src.path);
    }
    case 'sandbox': {
      const sandbox = await hutch.sandboxes.get(src.id);
      return sandbox.files.readBytes(src.path);
    }
  }
}

async function writeDestination(hutch: Hutch, dst: CopyTarget, data: Uint8Array, name: string | undefined): Promise<void> {
  switch (dst.kind) {
    case 'stdio':
      await new Promise<void>((resolve, reject) => process.stdout.write(data, (err) => (err ? reject(err) : resolve())));
      return;
    case 'local': {
      let path = dst.path;
      const isDir =
        path.endsWith('/') ||
        (await stat(path).then(
          (s) => s.isDirectory(),
          () => false,
        ));
      if (isDir) path = join(path, requireName(name, dst.path));
      await writeFile(path, data);
      return;
    }
    case 'sandbox': {
      const sandbox = await hutch.sandboxes.get(dst.id);
      let path = dst.path;
      let isDir = path.endsWith('/');
      if (!isDir) {
        isDir = await sandbox.files.stat(path).then(
          (e) => e.type === 'dir',
          (err: unknown) => {
            if (err instanceof NotFoundError) return false;
            throw err;
          },
        );
      }
      if (isDir) path = posix.join(path, requireName(name, `${dst.id}:${dst.path}`));
      await sandbox.files.write(path, data);
      return;
    }
  }
}

function sourceName(src: CopyTarget): string | undefined {
  if (src.kind === 'local') return basename(src.path);
  if (src.kind === 'sandbox') return posix.basename(src.path) || undefined;
  return undefined;
}

function requireName(name: string | undefined, dst: string): string {
  if (!name) throw new CliError(`${dst} is a directory; name the destination file`);
  return name;
}
