import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * The server's tool runner: one long-lived `hutch-agent host-exec` process that starts host tools
 * (runc, mount, nft, …) for us and answers over JSON lines. A child spawned by this (large) Node
 * process costs it a fork of its whole address space, about 3 ms of cpu each and several per
 * sandbox create and delete; the Go helper starts children for a fraction of that. Node has no
 * vfork/posix_spawn, so this is hand-written (agent/internal/hostexec is the other half).
 *
 * If the helper cannot be started or dies, callers fall back to spawning directly (runTool).
 */
/** A mount(2) done by the helper (no mount(8) process; see agent/internal/hostexec/mount.go). */
export interface HelperMount {
  source?: string;
  target: string;
  fstype: string;
  flags?: Array<'nosuid' | 'nodev' | 'noexec' | 'noatime' | 'ro'>;
  data?: string;
  /** Relative paths in `data` resolve against this directory. */
  cwd?: string;
  /** An image file to attach to a free loop device (auto-cleared on unmount) and mount. */
  loop?: string;
}

export type HostExecRequest = HostToolRequest | { op: 'mount'; mount: HelperMount } | { op: 'umount'; targets: string[] };

export interface HostToolRequest {
  file: string;
  args: string[];
  cwd?: string;
  input?: string;
  timeoutMs?: number;
  /** Output appended to this file, in a session of its own (detached starts). */
  logFile?: string;
}

export interface HostExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Could not be started, timed out, or produced too much output. */
  error: string | null;
}

interface Wire {
  id: number;
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
  error?: string;
}

export class HostExecutor {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: HostExecResult) => void; reject: (e: Error) => void }>();
  private closed = false;

  constructor(private readonly helperBinary: string) {}

  /** Starts the helper; false (and direct spawning from then on) when it cannot run. */
  async start(): Promise<boolean> {
    try {
      this.spawnHelper();
      const probe = await this.run({ file: '/bin/true', args: [], timeoutMs: 5000 });
      return probe.code === 0;
    } catch {
      this.close();
      return false;
    }
  }

  get available(): boolean {
    return this.child !== null && !this.closed;
  }

  run(req: HostExecRequest): Promise<HostExecResult> {
    const child = this.child;
    if (!child || this.closed || !child.stdin?.writable) return Promise.reject(new Error('host-exec helper is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.stdin!.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }

  close(): void {
    this.closed = true;
    this.child?.stdin?.end();
    this.child = null;
    this.failAll(new Error('host-exec helper closed'));
  }

  private spawnHelper(): void {
    // A session of its own: a Ctrl-C at the server's terminal must not end the tools it runs.
    const child = spawn(this.helperBinary, ['host-exec'], { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    this.child = child;
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let msg: Wire;
      try {
        msg = JSON.parse(line) as Wire;
      } catch {
        return;
      }
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      waiter.resolve({
        code: msg.code,
        signal: msg.signal ?? null,
        stdout: msg.stdout,
        stderr: msg.stderr,
        error: msg.error ?? null,
      });
    });
    child.once('exit', () => {
      if (this.child === child) this.child = null;
      this.failAll(new Error('host-exec helper exited'));
    });
    child.once('error', () => {
      if (this.child === child) this.child = null;
      this.failAll(new Error('host-exec helper failed'));
    });
  }

  private failAll(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}
