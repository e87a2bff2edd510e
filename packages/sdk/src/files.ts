import type { CallOptions } from './config.js';
import { NotFoundError } from './errors.js';
import type { SandboxScope } from './scope.js';
import type { FileEntry } from './types.js';

/** Options of file calls: the sandbox user whose home relative paths start from, and who owns new files. */
export interface FileOptions extends CallOptions {
  user?: string;
}

export interface ListOptions extends FileOptions {
  /** How many levels to descend (default 1: the directory's own entries). */
  depth?: number;
}

/**
 * `sandbox.files`: the sandbox's filesystem. Paths are absolute or relative to the user's home;
 * they are resolved inside the sandbox, so symlinks there can never reach host files.
 */
export class Files {
  /** @internal */
  constructor(private readonly scope: SandboxScope) {}

  /** Reads a regular file as UTF-8 text. */
  async read(path: string, opts?: FileOptions): Promise<string> {
    const bytes = await this.readBytes(path, opts);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  }

  /** Reads a regular file's bytes exactly. */
  readBytes(path: string, opts: FileOptions = {}): Promise<Uint8Array> {
    return this.scope.transport.bytes({
      method: 'GET',
      path: `${this.scope.path}/files`,
      query: { path, user: opts.user },
      accept: 'application/octet-stream',
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
  }

  /** Writes a file (strings as UTF-8), replacing it if present; parent directories are created. */
  write(path: string, data: string | Uint8Array, opts: FileOptions = {}): Promise<FileEntry> {
    return this.scope.transport.json<FileEntry>({
      method: 'PUT',
      path: `${this.scope.path}/files`,
      query: { path, user: opts.user },
      body: typeof data === 'string' ? Buffer.from(data, 'utf8') : data,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
  }

  /** Lists a directory's entries (recursively down to `depth`). */
  async list(path: string, opts: ListOptions = {}): Promise<FileEntry[]> {
    const res = await this.scope.transport.json<{ entries: FileEntry[] }>({
      method: 'GET',
      path: `${this.scope.path}/files/list`,
      query: { path, depth: opts.depth, user: opts.user },
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
    return res.entries;
  }

  /** Describes one path (a symlink itself, not its target). */
  stat(path: string, opts: FileOptions = {}): Promise<FileEntry> {
    return this.scope.transport.json<FileEntry>({
      method: 'GET',
      path: `${this.scope.path}/files/stat`,
      query: { path, user: opts.user },
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
  }

  /** True when the path exists (of any type). */
  async exists(path: string, opts?: FileOptions): Promise<boolean> {
    try {
      await this.stat(path, opts);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /** Creates a directory and its missing parents. */
  mkdir(path: string, opts: FileOptions = {}): Promise<FileEntry> {
    return this.scope.transport.json<FileEntry>({
      method: 'POST',
      path: `${this.scope.path}/files/mkdir`,
      json: { path, user: opts.user },
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
  }

  /** Removes a file, or a directory recursively. */
  async remove(path: string, opts: FileOptions = {}): Promise<void> {
    await this.scope.transport.bytes({
      method: 'DELETE',
      path: `${this.scope.path}/files`,
      query: { path, user: opts.user },
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
  }

  /** Moves or renames a path. */
  rename(from: string, to: string, opts: FileOptions = {}): Promise<FileEntry> {
    return this.scope.transport.json<FileEntry>({
      method: 'POST',
      path: `${this.scope.path}/files/rename`,
      json: { from, to, user: opts.user },
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
  }
}
