import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readBounded } from '../runtime/agent/agent-client.js';
import { HutchError, invalidArgument } from './errors.js';
import type { SandboxService } from './sandbox-service.js';

/**
 * Files inside sandboxes. Every path is resolved by the agent inside the sandbox's own mount
 * namespace; the host never opens a sandbox path itself. This service validates paths, bounds
 * sizes and translates the agent's EntryInfo.
 */
export interface FileEntry {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mode: number;
  permissions: string;
  owner: string;
  group: string;
  modifiedTime: string | null;
  symlinkTarget: string | null;
}

interface AgentEntry {
  name?: string;
  type?: string;
  path?: string;
  size?: string | number;
  mode?: number;
  permissions?: string;
  owner?: string;
  group?: string;
  modifiedTime?: string;
  symlinkTarget?: string;
}

export const MAX_PATH_BYTES = 4096;
export const DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024;

export function validatePath(path: string, field = 'path'): string {
  if (path.length === 0) throw invalidArgument(`${field}: must not be empty`);
  if (path.includes('\0')) throw invalidArgument(`${field}: must not contain NUL`);
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw invalidArgument(`${field}: longer than ${MAX_PATH_BYTES} bytes`);
  return path;
}

function toEntry(e: AgentEntry): FileEntry {
  const type = e.type === 'FILE_TYPE_DIRECTORY' ? 'dir' : e.type === 'FILE_TYPE_SYMLINK' ? 'symlink' : 'file';
  return {
    name: String(e.name ?? ''),
    path: String(e.path ?? ''),
    type,
    size: Number(e.size ?? 0),
    mode: Number(e.mode ?? 0),
    permissions: String(e.permissions ?? ''),
    owner: String(e.owner ?? ''),
    group: String(e.group ?? ''),
    modifiedTime: e.modifiedTime ?? null,
    symlinkTarget: e.symlinkTarget ?? null,
  };
}

function userOption(user: string | undefined): { user?: string } {
  return user !== undefined ? { user } : {};
}

function filesQuery(path: string, user: string | undefined): string {
  const q = new URLSearchParams({ path });
  if (user !== undefined) q.set('username', user);
  return `/files?${q.toString()}`;
}

async function raiseAgentFileError(res: IncomingMessage): Promise<never> {
  const text = await readBounded(res, 64 * 1024).catch(() => '');
  let message = text;
  try {
    message = String((JSON.parse(text) as { message?: unknown }).message ?? text);
  } catch {
    /* plain text */
  }
  const status = res.statusCode ?? 500;
  const kind =
    status === 400
      ? 'invalid_argument'
      : status === 401
        ? 'invalid_argument'
        : status === 404
          ? 'not_found'
          : status === 507
            ? 'resource_exhausted'
            : 'internal';
  throw new HutchError(kind, message.slice(0, 1000) || `agent answered ${status}`);
}

export class FileService {
  constructor(
    private readonly sandboxes: SandboxService,
    private readonly maxFileBytes = DEFAULT_MAX_FILE_BYTES,
  ) {}

  async stat(id: string, path: string, user?: string): Promise<FileEntry> {
    await this.sandboxes.requireRunning(id);
    const reply = await this.sandboxes
      .agent(id)
      .unary<{ entry?: AgentEntry }>('filesystem.Filesystem/Stat', { path: validatePath(path) }, userOption(user));
    return toEntry(reply.entry ?? {});
  }

  async list(id: string, path: string, depth: number, user?: string): Promise<FileEntry[]> {
    await this.sandboxes.requireRunning(id);
    const reply = await this.sandboxes
      .agent(id)
      .unary<{ entries?: AgentEntry[] }>('filesystem.Filesystem/ListDir', { path: validatePath(path), depth }, userOption(user));
    return (reply.entries ?? []).map(toEntry);
  }

  async mkdir(id: string, path: string, user?: string): Promise<FileEntry> {
    await this.sandboxes.requireRunning(id);
    const reply = await this.sandboxes
      .agent(id)
      .unary<{ entry?: AgentEntry }>('filesystem.Filesystem/MakeDir', { path: validatePath(path) }, userOption(user));
    return toEntry(reply.entry ?? {});
  }

  async remove(id: string, path: string, user?: string): Promise<void> {
    await this.sandboxes.requireRunning(id);
    await this.sandboxes.agent(id).unary('filesystem.Filesystem/Remove', { path: validatePath(path) }, userOption(user));
  }

  async rename(id: string, from: string, to: string, user?: string): Promise<FileEntry> {
    await this.sandboxes.requireRunning(id);
    const reply = await this.sandboxes
      .agent(id)
      .unary<{ entry?: AgentEntry }>(
        'filesystem.Filesystem/Move',
        { source: validatePath(from, 'from'), destination: validatePath(to, 'to') },
        userOption(user),
      );
    return toEntry(reply.entry ?? {});
  }

  /** Opens a file for download: its size and a stream of at most maxFileBytes. */
  async read(id: string, path: string, user?: string): Promise<{ size: number; stream: Readable }> {
    const entry = await this.stat(id, path, user);
    if (entry.type === 'dir') throw invalidArgument(`path: ${path} is a directory`);
    if (entry.size > this.maxFileBytes) {
      throw new HutchError('payload_too_large', `path: ${path} is ${entry.size} bytes, over the download limit of ${this.maxFileBytes}`);
    }
    // The sandbox is held active until the download ends (a large file can take a while).
    const hold = this.sandboxes.hold(id, 'file download');
    let res: IncomingMessage;
    try {
      const { req, response } = this.sandboxes.agent(id).request('GET', filesQuery(path, user), {}, userOption(user));
      req.end();
      res = await response;
    } catch (err) {
      hold.release();
      throw err;
    }
    res.once('close', () => hold.release());
    if (res.statusCode !== 200) return raiseAgentFileError(res);
    const declared = Number(res.headers['content-length'] ?? entry.size);
    if (declared > this.maxFileBytes) {
      res.destroy();
      throw new HutchError('payload_too_large', `path: ${path} is over the download limit of ${this.maxFileBytes} bytes`);
    }
    // The file may grow while we stream; cut it at the limit rather than trusting the agent.
    let seen = 0;
    res.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > this.maxFileBytes) res.destroy(new Error('file grew past the download limit'));
    });
    return { size: declared, stream: res };
  }

  /** Writes a file from a byte stream (parents created), returning its entry; holds the sandbox meanwhile. */
  async write(id: string, path: string, body: Readable, user?: string): Promise<FileEntry> {
    await this.sandboxes.requireRunning(id);
    validatePath(path);
    return this.sandboxes.holding(id, 'file upload', () => this.upload(id, path, body, user));
  }

  private async upload(id: string, path: string, body: Readable, user?: string): Promise<FileEntry> {
    const { req, response } = this.sandboxes
      .agent(id)
      .request(
        'POST',
        filesQuery(path, user),
        { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
        userOption(user),
      );
    let written = 0;
    body.on('data', (chunk: Buffer) => {
      written += chunk.length;
      if (written > this.maxFileBytes) body.destroy(new HutchError('payload_too_large', `upload exceeds ${this.maxFileBytes} bytes`));
    });
    try {
      await pipeline(body, req);
    } catch (err) {
      req.destroy();
      if (err instanceof HutchError) throw err;
      throw new HutchError('internal', `upload to the sandbox failed: ${(err as Error).message}`);
    }
    const res = await response;
    if (res.statusCode !== 200) return raiseAgentFileError(res);
    res.resume();
    return this.stat(id, path, user);
  }
}
