import type { CallOptions } from './config.js';
import { ConnectionError, HutchError, TimeoutError, makeError } from './errors.js';
import type { StreamResponse } from './http.js';
import { readNdjson } from './ndjson.js';
import { OutputBuffer } from './output.js';
import type { SandboxScope } from './scope.js';
import type { Command, ProcessEvent, ProcessExit, ProcessInfo, RunOptions } from './types.js';

/** Signals a process can be sent. */
export type Signal = 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP';

/** A process is addressed by its pid, or by `tag:<tag>`. */
export type ProcessSelector = number | `tag:${string}`;

/** Where a process's output goes while it streams. */
export interface ProcessCallbacks {
  /** Stdout as text (UTF-8, decoded across chunk boundaries). */
  onStdout?: (data: string) => void;
  /** Stderr as text (UTF-8, decoded across chunk boundaries). */
  onStderr?: (data: string) => void;
  /** Stdout as the raw bytes received. */
  onStdoutBytes?: (data: Uint8Array) => void;
  /** Stderr as the raw bytes received. */
  onStderrBytes?: (data: Uint8Array) => void;
  /**
   * How many bytes of each stream {@link ProcessHandle.wait} keeps for its result (default
   * 16 MiB; the rest is still delivered to the callbacks).
   */
  maxOutputBytes?: number;
}

export interface ProcessStartOptions extends RunOptions, ProcessCallbacks {
  /**
   * The process's time limit in ms; at the deadline its group is killed (`timedOut: true`).
   * Default: the server's (no limit for streamed processes); 0 means no limit.
   */
  timeoutMs?: number;
  /** A name to address the process by (`tag:<tag>`). */
  tag?: string;
  /** Keep stdin open for {@link ProcessHandle.sendStdin} (default false: stdin is empty). */
  stdin?: boolean;
  /**
   * Aborting stops streaming (the process keeps running) and rejects a pending `start` or `wait`
   * with the signal's reason.
   */
  signal?: AbortSignal;
  /** Deadline for the process to start, in ms (default: the client's `timeoutMs`). */
  startTimeoutMs?: number;
}

export interface ProcessConnectOptions extends ProcessCallbacks {
  signal?: AbortSignal;
  /** Deadline to attach to the stream, in ms (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** How a process ended plus the output received while streaming. */
export interface ProcessResult extends ProcessExit {
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * A running process whose output is being streamed. Closing the stream (`disconnect()`) never
 * kills the process; `kill()` does.
 */
export class ProcessHandle {
  private result: ProcessResult | undefined;
  private failure: unknown;
  private disconnected = false;
  private readonly pumped: Promise<void>;
  private readonly stdout: OutputBuffer;
  private readonly stderr: OutputBuffer;

  /** @internal Use `sandbox.processes.start()` or `.connect()`. */
  constructor(
    private readonly processes: Processes,
    /** The process id inside the sandbox. */
    readonly pid: number,
    private readonly stream: StreamResponse,
    events: AsyncIterator<unknown>,
    callbacks: ProcessCallbacks,
  ) {
    const max = callbacks.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
    this.stdout = new OutputBuffer(max, callbacks.onStdout, callbacks.onStdoutBytes);
    this.stderr = new OutputBuffer(max, callbacks.onStderr, callbacks.onStderrBytes);
    this.pumped = this.pump(events);
  }

  /** True once the exit event arrived. */
  get exited(): boolean {
    return this.result !== undefined;
  }

  /** Writes to the process's stdin (it must have been started with `stdin: true`). */
  sendStdin(data: string | Uint8Array, opts?: CallOptions): Promise<void> {
    return this.processes.sendStdin(this.pid, data, opts);
  }

  /** Closes the process's stdin (the process sees EOF). */
  closeStdin(opts?: CallOptions): Promise<void> {
    return this.processes.closeStdin(this.pid, opts);
  }

  /** Sends a signal to the process (default SIGKILL). */
  kill(signal: Signal = 'SIGKILL', opts?: CallOptions): Promise<void> {
    return this.processes.kill(this.pid, signal, opts);
  }

  /**
   * Resolves when the process exits, with the output received while streaming. A non-zero exit is
   * a result, not an error. After `disconnect()` it asks the server for the exit status instead.
   * `timeoutMs` bounds only this wait (default: none).
   */
  async wait(opts: CallOptions = {}): Promise<ProcessResult> {
    await raceDeadline(this.pumped, opts, `waiting for process ${this.pid}`);
    if (this.failure !== undefined) throw this.failure;
    if (this.result) return this.result;
    const exit = await this.processes.wait(this.pid, opts);
    return this.finish(exit);
  }

  /** Stops streaming; the process keeps running. Idempotent. */
  disconnect(): void {
    this.disconnected = true;
    this.stream.close();
  }

  private async pump(events: AsyncIterator<unknown>): Promise<void> {
    try {
      for (;;) {
        const next = await events.next();
        if (next.done) break;
        const event = next.value as ProcessEvent;
        switch (event.type) {
          case 'stdout':
          case 'pty':
            this.stdout.push(Buffer.from(event.data, 'base64'));
            break;
          case 'stderr':
            this.stderr.push(Buffer.from(event.data, 'base64'));
            break;
          case 'exit':
            this.finish(event);
            return;
          case 'error':
            throw makeError(event.code, event.message);
          default:
            break; // Unknown events are for newer clients.
        }
      }
      if (!this.disconnected) {
        throw new ConnectionError('connection', `the output stream of process ${this.pid} ended before it exited`);
      }
    } catch (err) {
      // After disconnect() the stream is cut mid-flight: whatever it threw is expected.
      if (!this.disconnected) this.failure = err;
    } finally {
      this.stream.close();
    }
  }

  private finish(exit: ProcessExit): ProcessResult {
    this.stdout.flush();
    this.stderr.flush();
    this.result = {
      exitCode: exit.exitCode,
      signal: exit.signal ?? null,
      timedOut: exit.timedOut ?? false,
      stdout: this.stdout.text(),
      stderr: this.stderr.text(),
      stdoutTruncated: this.stdout.truncated,
      stderrTruncated: this.stderr.truncated,
    };
    return this.result;
  }
}

/** `sandbox.processes`: start, attach to and control processes inside one sandbox. */
export class Processes {
  /** @internal */
  constructor(private readonly scope: SandboxScope) {}

  /**
   * Starts a process and streams its output to the callbacks. Resolves once the process has
   * started (its pid is known); `handle.wait()` gives the exit status and collected output.
   * A string runs under `/bin/sh -c`, an array runs as argv.
   */
  async start(cmd: Command, opts: ProcessStartOptions = {}): Promise<ProcessHandle> {
    const body = {
      cmd,
      cwd: opts.cwd,
      env: opts.env,
      user: opts.user,
      timeoutMs: opts.timeoutMs,
      tag: opts.tag,
      stdin: opts.stdin ?? false,
      keepAlive: opts.keepAlive,
    };
    const t = this.scope.transport;
    const timeoutMs = opts.startTimeoutMs ?? t.config.timeoutMs;
    const stream = await t.stream({
      method: 'POST',
      path: `${this.scope.path}/processes`,
      accept: 'application/x-ndjson',
      json: body,
      signal: opts.signal,
      timeoutMs,
    });
    const events = readNdjson(stream.body)[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await raceDeadline(events.next(), { timeoutMs, signal: opts.signal }, 'starting the process');
    } catch (err) {
      stream.close();
      throw err;
    }
    const event = first.value as ProcessEvent | undefined;
    if (first.done || !event || event.type !== 'start') {
      stream.close();
      if (event?.type === 'error') throw makeError(event.code, event.message);
      throw new HutchError('invalid_response', 'the process stream did not begin with a start event');
    }
    return new ProcessHandle(this, event.pid, stream, events, opts);
  }

  /** The processes running in the sandbox. */
  async list(opts?: CallOptions): Promise<ProcessInfo[]> {
    const res = await this.scope.transport.json<{ processes: ProcessInfo[] }>({
      method: 'GET',
      path: `${this.scope.path}/processes`,
      ...opts,
    });
    return res.processes;
  }

  /**
   * Attaches to a running process and streams its output from now on (earlier output is not
   * replayed). For a process that already exited, `wait()` resolves at once.
   */
  async connect(pid: number, opts: ProcessConnectOptions = {}): Promise<ProcessHandle> {
    const stream = await this.scope.transport.stream({
      method: 'GET',
      path: this.processPath(pid, 'stream'),
      accept: 'application/x-ndjson',
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
    });
    return new ProcessHandle(this, pid, stream, readNdjson(stream.body)[Symbol.asyncIterator](), opts);
  }

  /** Sends a signal to a process (default SIGKILL). */
  async kill(pid: ProcessSelector, signal: Signal = 'SIGKILL', opts?: CallOptions): Promise<void> {
    await this.scope.transport.json({ method: 'POST', path: this.processPath(pid, 'signal'), json: { signal }, ...opts });
  }

  /** Writes bytes (strings as UTF-8) to a process's stdin. */
  async sendStdin(pid: ProcessSelector, data: string | Uint8Array, opts?: CallOptions): Promise<void> {
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    await this.scope.transport.bytes({ method: 'POST', path: this.processPath(pid, 'stdin'), body, ...opts });
  }

  /** Closes a process's stdin. */
  async closeStdin(pid: ProcessSelector, opts?: CallOptions): Promise<void> {
    await this.scope.transport.bytes({ method: 'POST', path: this.processPath(pid, 'close-stdin'), ...opts });
  }

  /** Resizes the terminal of a PTY process. */
  async resize(pid: ProcessSelector, size: { cols: number; rows: number }, opts?: CallOptions): Promise<void> {
    await this.scope.transport.bytes({ method: 'POST', path: this.processPath(pid, 'resize'), json: size, ...opts });
  }

  /** Waits for a process to exit (no output). `timeoutMs` defaults to no limit. */
  async wait(pid: ProcessSelector, opts: CallOptions = {}): Promise<ProcessExit> {
    const exit = await this.scope.transport.json<ProcessExit>({
      method: 'GET',
      path: this.processPath(pid, 'wait'),
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? Infinity,
    });
    return { exitCode: exit.exitCode, signal: exit.signal ?? null, timedOut: exit.timedOut ?? false };
  }

  private processPath(pid: ProcessSelector, action: string): string {
    return `${this.scope.path}/processes/${encodeURIComponent(String(pid))}/${action}`;
  }
}

/** Races a promise against `opts.timeoutMs` (if finite) and `opts.signal`. */
function raceDeadline<T>(promise: Promise<T>, opts: CallOptions, what: string): Promise<T> {
  const { timeoutMs, signal } = opts;
  if ((timeoutMs === undefined || !Number.isFinite(timeoutMs)) && !signal) return promise;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer =
      timeoutMs !== undefined && Number.isFinite(timeoutMs)
        ? setTimeout(() => reject(new TimeoutError('timeout', `${what} did not finish within ${timeoutMs} ms`)), timeoutMs)
        : undefined;
    const onAbort = (): void => reject(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    });
  });
}
