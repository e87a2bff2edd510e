import { execFile, spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import type { HelperMount, HostExecutor } from './host-exec.js';

/** The helper that starts tools cheaply (see host-exec.ts); null: spawn from this process. */
let executor: HostExecutor | null = null;

export function useHostExecutor(e: HostExecutor | null): void {
  executor = e;
}

/** Mounts through the helper's mount(2); false when there is no helper (use mount(8) then). */
export async function helperMount(mount: HelperMount): Promise<boolean> {
  if (!executor?.available) return false;
  const r = await executor.run({ op: 'mount', mount });
  if (r.code !== 0) throw new ToolError('mount', [mount.target], r.code, r.signal, r.stderr || r.error || '');
  return true;
}

/** Unmounts (in order; busy ones lazily) through the helper; false when there is no helper. */
export async function helperUnmount(targets: string[]): Promise<boolean> {
  if (!executor?.available) return false;
  const r = await executor.run({ op: 'umount', targets });
  if (r.code !== 0) throw new ToolError('umount', targets, r.code, r.signal, r.stderr || r.error || '');
  return true;
}

export interface ToolOptions {
  timeoutMs?: number;
  cwd?: string;
  /** Batched input (nft -f -, ip -batch -): one process for many operations. */
  input?: string;
  /**
   * Detached start: output is appended to this file (never a pipe of ours, so the sandbox outlives
   * this server without writing to a closed pipe), in a session of its own (a Ctrl-C at the
   * server's terminal must not reach the sandboxes). Resolves with '' on exit 0.
   */
  logFile?: string;
}

/** Runs a host tool (runc, mount, …) and returns stdout; errors carry the tool's stderr. */
export async function runTool(file: string, args: string[], options: ToolOptions = {}): Promise<string> {
  if (executor?.available) {
    const r = await executor.run({
      file,
      args,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.input !== undefined ? { input: options.input } : {}),
      ...(options.logFile ? { logFile: options.logFile } : {}),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
    if (r.code === 0 && !r.error) return r.stdout;
    throw new ToolError(file, args, r.code, r.signal, r.stderr.trim() || r.error || '');
  }
  return options.logFile ? spawnDetached(file, args, options.logFile, options) : spawnCollect(file, args, options);
}

async function spawnDetached(file: string, args: string[], logFile: string, options: ToolOptions): Promise<string> {
  const log = await open(logFile, 'a');
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        stdio: ['ignore', log.fd, log.fd],
        detached: true,
        ...(options.cwd ? { cwd: options.cwd } : {}),
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve('');
        else reject(new ToolError(file, args, code, signal, ''));
      });
    });
  } finally {
    await log.close();
  }
}

function spawnCollect(file: string, args: string[], options: ToolOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, ...(options.cwd ? { cwd: options.cwd } : {}) },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: number | string; signal?: string };
          reject(new ToolError(file, args, typeof e.code === 'number' ? e.code : null, e.signal ?? null, `${stderr}`.trim() || e.message));
        } else resolve(stdout);
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export class ToolError extends Error {
  constructor(
    readonly file: string,
    readonly args: string[],
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stderr: string,
  ) {
    super(`${file} ${args.slice(0, 4).join(' ')} failed (${exitCode ?? signal}): ${stderr.slice(0, 500)}`);
    this.name = 'ToolError';
  }
}
