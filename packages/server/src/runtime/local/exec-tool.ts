import { execFile, spawn } from 'node:child_process';

/** Runs a host tool (runc, mount, …) and returns stdout; errors carry the tool's stderr. */
export function runTool(
  file: string,
  args: string[],
  options: { timeoutMs?: number; stdio?: number; cwd?: string; input?: string } = {},
): Promise<string> {
  if (options.stdio !== undefined) {
    // Detached start: the child's output goes to a log fd we own, never to a pipe of ours,
    // so the sandbox outlives this server without writing to a closed pipe.
    return new Promise((resolve, reject) => {
      // A session of its own: a Ctrl-C at the server's terminal must not reach the sandboxes.
      const child = spawn(file, args, {
        stdio: ['ignore', options.stdio, options.stdio],
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
  }
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
    // Batched input (nft -f -, ip -batch -): one process for many operations.
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
