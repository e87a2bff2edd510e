import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface TimedRun {
  /** Wall time from just before spawn() to the child's exit, in ms. */
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const OUTPUT_CAP = 64 * 1024;

/** Runs a command to completion (stdin /dev/null), timing it; killed after `timeoutMs`. */
export function timedRun(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outSize = 0;
    let errSize = 0;
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    let exitedAt = 0;
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.stdout.on('data', (c: Buffer) => {
      if (outSize < OUTPUT_CAP) out.push(c);
      outSize += c.length;
    });
    child.stderr.on('data', (c: Buffer) => {
      if (errSize < OUTPUT_CAP) err.push(c);
      errSize += c.length;
    });
    child.once('exit', () => {
      exitedAt = performance.now();
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'close' comes after 'exit' once stdio is drained; the time is taken at 'exit'.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        ms: (exitedAt || performance.now()) - t0,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
  });
}
