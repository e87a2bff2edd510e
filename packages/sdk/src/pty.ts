import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import type { CallOptions } from './config.js';
import { ConnectionError, TimeoutError, connectionError, errorFromResponse, makeError } from './errors.js';
import { Processes, type Signal } from './processes.js';
import type { SandboxScope } from './scope.js';

export interface PtyCreateOptions extends CallOptions {
  /** Terminal width (default 80). */
  cols?: number;
  /** Terminal height (default 24). */
  rows?: number;
  /** A shell command line to run (by `/bin/sh -c`); default: the user's login shell (`bash -l`, else `sh -l`). */
  cmd?: string;
  user?: string;
  cwd?: string;
  /** Terminal output, as the raw bytes received. */
  onData: (data: Uint8Array) => void;
}

/** How a PTY process ended. */
export interface PtyExit {
  /** The exit code, or -1 when killed by a signal. */
  exitCode: number;
  /** The signal that killed it, when one did. */
  signal?: string | null;
}

/**
 * An interactive terminal in a sandbox, over one WebSocket: binary frames carry terminal bytes
 * both ways, text frames carry control messages (resize; start and exit from the server).
 */
export class PtyHandle {
  private exit: PtyExit | undefined;
  private closedByUs = false;
  private readonly ended: Promise<void>;

  /** @internal Use `sandbox.pty.create()`. */
  constructor(
    private readonly ws: WebSocket,
    private readonly processes: Processes,
    /** The pid of the terminal's process inside the sandbox. */
    readonly pid: number,
    ended: Promise<PtyExit | undefined>,
  ) {
    this.ended = ended.then((exit) => {
      this.exit = exit;
    });
    this.ended.catch(() => {});
  }

  /** Sends keyboard input (strings as UTF-8). Ignored once the terminal has closed. */
  write(data: string | Uint8Array): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(typeof data === 'string' ? Buffer.from(data, 'utf8') : data, { binary: true });
  }

  /** Changes the terminal size. */
  resize(cols: number, rows: number): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  /** Sends a signal to the terminal's process (default SIGKILL). */
  kill(signal: Signal = 'SIGKILL', opts?: CallOptions): Promise<void> {
    return this.processes.kill(this.pid, signal, opts);
  }

  /**
   * Resolves when the terminal's process exits. If the connection was closed with `close()`
   * first, asks the server for the exit status instead.
   */
  async wait(opts: CallOptions = {}): Promise<PtyExit> {
    await this.ended;
    if (this.exit) return this.exit;
    if (this.closedByUs) {
      const exit = await this.processes.wait(this.pid, opts);
      return { exitCode: exit.exitCode, signal: exit.signal };
    }
    throw new ConnectionError('connection', `the terminal connection closed before process ${this.pid} exited`);
  }

  /** Closes the connection (the server hangs up the terminal's process, as closing an ssh window does). Idempotent. */
  close(): void {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
  }
}

/** `sandbox.pty`: interactive terminals. */
export class Pty {
  private readonly processes: Processes;

  /** @internal */
  constructor(private readonly scope: SandboxScope) {
    this.processes = new Processes(scope);
  }

  /** Opens a terminal; resolves once its process has started. */
  create(opts: PtyCreateOptions): Promise<PtyHandle> {
    const t = this.scope.transport;
    const url = t.url(`${this.scope.path}/pty`, {
      cols: opts.cols ?? 80,
      rows: opts.rows ?? 24,
      cmd: opts.cmd,
      user: opts.user,
      cwd: opts.cwd,
    });
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url, { headers: t.authHeaders(), perMessageDeflate: false });
    const timeoutMs = opts.timeoutMs ?? t.config.timeoutMs;

    let settleEnd!: (exit: PtyExit | undefined) => void;
    const ended = new Promise<PtyExit | undefined>((resolve) => {
      settleEnd = resolve;
    });

    return new Promise<PtyHandle>((resolve, reject) => {
      let handle: PtyHandle | undefined;
      let exit: PtyExit | undefined;
      const fail = (err: unknown): void => {
        cleanup();
        if (!handle) reject(err);
        ws.terminate();
      };
      const timer = setTimeout(
        () => fail(new TimeoutError('timeout', `opening a terminal did not finish within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onAbort = (): void => {
        if (handle) handle.close();
        else fail(opts.signal?.reason);
      };
      if (opts.signal?.aborted) return fail(opts.signal.reason);
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => clearTimeout(timer);

      ws.on('unexpected-response', (req, res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const retryAfter = res.headers['retry-after'];
          fail(errorFromResponse(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'), retryAfter as string));
          req.destroy();
        });
        res.on('error', (err) => fail(connectionError(t.config.url, err)));
      });
      ws.on('error', (err) => {
        if (!handle) fail(connectionError(t.config.url, err));
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          opts.onData(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          return;
        }
        let msg: { type?: string; pid?: number; exitCode?: number; signal?: string | null; code?: unknown; message?: unknown };
        try {
          msg = JSON.parse(data.toString('utf8'));
        } catch {
          return; // Not a control message we understand.
        }
        if (msg.type === 'start' && !handle && typeof msg.pid === 'number') {
          cleanup();
          handle = new PtyHandle(ws, this.processes, msg.pid, ended);
          resolve(handle);
        } else if (msg.type === 'exit') {
          exit = { exitCode: typeof msg.exitCode === 'number' ? msg.exitCode : -1, signal: msg.signal ?? null };
        } else if (msg.type === 'error' && !handle) {
          fail(makeError(String(msg.code ?? 'internal'), String(msg.message ?? 'the terminal failed to start')));
        }
      });
      ws.on('close', (code, reason) => {
        cleanup();
        opts.signal?.removeEventListener('abort', onAbort);
        if (!handle) {
          const why = reason.length ? `: ${reason.toString()}` : '';
          reject(new ConnectionError('connection', `the terminal connection closed before it started (code ${code}${why})`));
        }
        settleEnd(exit);
      });
    });
  }
}
