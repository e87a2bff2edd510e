import { HutchError, invalidArgument } from './errors.js';
import { KEEP_ALIVE_ENV } from './keep-alive.js';
import { type AgentProcessMessage, type ProcessEvent, toProcessEvent } from './process-events.js';
import type { SandboxService } from './sandbox-service.js';
import type { ProcessOutput, SandboxLogs } from './sandbox-logs.js';
import { secondsSince } from './telemetry.js';

/**
 * Processes inside sandboxes: buffered exec, streamed processes, stdin, signals, PTY. The agent
 * runs them; this service shapes requests, bounds what it keeps in memory, and translates events.
 * An exec and an attached output stream hold their sandbox active (not idle) while they last; a
 * process started with `keepAlive` holds it for as long as the process runs. The stdout and stderr
 * of every process started here (not a PTY's output) also go to the sandbox's log
 * (core/sandbox-logs.ts), until the process exits even when nobody listens any more.
 */
export interface ProcessRequest {
  cmd: string | string[];
  cwd?: string;
  env?: Record<string, string>;
  user?: string;
  timeoutMs?: number;
  tag?: string;
  /** Keep stdin open for later writes. */
  stdin?: boolean;
  pty?: { cols: number; rows: number };
  /**
   * The process is activity: its sandbox is not idle while it runs, attached or not (it gets
   * `HUTCH_KEEP_ALIVE=1` in its environment, which is how the server recognizes it).
   */
  keepAlive?: boolean;
  /**
   * Whether the output goes to the sandbox's log (default true). The server's own plumbing (an
   * environment's healthchecks, copies, log tails) passes false: it is not the workload's output.
   */
  captureOutput?: boolean;
}

export interface ExecRequest extends Omit<ProcessRequest, 'stdin' | 'tag' | 'pty'> {
  stdin?: string;
  maxOutputBytes?: number;
}

export interface ExecResult {
  pid: number;
  exitCode: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  oomKilled: boolean;
  durationMs: number;
}

export interface ProcessInfo {
  pid: number;
  tag: string | null;
  cmd: string;
  args: string[];
  cwd: string | null;
  pty: boolean;
}

export type ProcessSelector = { pid: number } | { tag: string };

export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
/** Extra time the server waits past a process deadline before giving up on the agent. */
const AGENT_GRACE_MS = 5000;

export const SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP'] as const;
export type SignalName = (typeof SIGNALS)[number];

/** Whether a request starts a keepAlive process (the flag, or the marker variable given directly). */
function isKeepAlive(req: Pick<ProcessRequest, 'keepAlive' | 'env'>): boolean {
  return req.keepAlive === true || req.env?.[KEEP_ALIVE_ENV] === '1';
}

function argv(cmd: string | string[]): { cmd: string; args: string[] } {
  if (typeof cmd === 'string') return { cmd: '/bin/sh', args: ['-c', cmd] };
  if (cmd.length === 0) throw invalidArgument('cmd: must not be empty');
  return { cmd: cmd[0]!, args: cmd.slice(1) };
}

/** Accumulates at most `limit` bytes, counting what it drops. */
class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    const room = this.limit - this.size;
    if (room <= 0) {
      this.truncated = this.truncated || chunk.length > 0;
      return;
    }
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (kept.length < chunk.length) this.truncated = true;
    this.chunks.push(kept);
    this.size += kept.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

const ABORTED = Symbol('aborted');

/** The read, or ABORTED as soon as `signal` aborts (the read stays in flight). */
function untilAborted<T>(read: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    read.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export class ProcessService {
  /**
   * Deadlines of processes started with a timeout, by sandbox and pid, so that `wait` and
   * `connect` can say a SIGKILL was the deadline (the agent's end event does not). Bounded.
   */
  private readonly deadlines = new Map<string, number>();

  constructor(
    private readonly sandboxes: SandboxService,
    /** Where process output is kept (none: not kept). */
    private readonly logs: SandboxLogs | null = null,
  ) {}

  private rememberDeadline(id: string, pid: number, timeoutMs: number, started: number): void {
    if (timeoutMs <= 0) return;
    if (this.deadlines.size >= 10_000) this.deadlines.delete(this.deadlines.keys().next().value!);
    this.deadlines.set(`${id}/${pid}`, started + timeoutMs);
  }

  private pastDeadline(id: string, selector: ProcessSelector): boolean {
    if (!('pid' in selector)) return false;
    const deadline = this.deadlines.get(`${id}/${selector.pid}`);
    return deadline !== undefined && performance.now() >= deadline - 50;
  }

  private startBody(req: ProcessRequest): Record<string, unknown> {
    if (req.cwd !== undefined && /^\/proc(\/|$)/.test(req.cwd)) throw invalidArgument('cwd: must not be under /proc');
    const envs = isKeepAlive(req) ? { ...req.env, [KEEP_ALIVE_ENV]: '1' } : (req.env ?? {});
    const process: Record<string, unknown> = { ...argv(req.cmd), envs };
    if (req.cwd !== undefined) process.cwd = req.cwd;
    const body: Record<string, unknown> = { process, stdin: req.stdin === true };
    if (req.tag !== undefined) body.tag = req.tag;
    if (req.pty) body.pty = { size: { cols: req.pty.cols, rows: req.pty.rows } };
    return body;
  }

  /** Runs a command to completion, keeping at most maxOutputBytes of each stream; holds the sandbox meanwhile. */
  async exec(id: string, req: ExecRequest): Promise<ExecResult> {
    const record = await this.sandboxes.requireRunning(id);
    const telemetry = this.sandboxes.telemetry;
    const span = telemetry.tracer.startSpan('sandbox.exec', {
      'hutch.sandbox_id': id,
      'hutch.tier': record.isolation,
      'hutch.tenant': record.tenant,
    });
    const started = performance.now();
    try {
      const result = await this.sandboxes.holding(id, 'exec', () => this.execHeld(id, req));
      const outcome = result.timedOut ? 'timeout' : result.exitCode === 0 ? 'ok' : 'nonzero';
      span.setAttributes({ 'hutch.exit_code': result.exitCode, 'hutch.timed_out': result.timedOut });
      span.end();
      telemetry.execFinished({ tier: record.isolation, outcome, seconds: secondsSince(started) });
      return result;
    } catch (err) {
      span.end(err);
      telemetry.execFinished({ tier: record.isolation, outcome: 'error', seconds: secondsSince(started) });
      throw err;
    }
  }

  private async execHeld(id: string, req: ExecRequest): Promise<ExecResult> {
    const agent = this.sandboxes.agent(id);
    const timeoutMs = req.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const limit = req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const stdout = new CappedBuffer(limit);
    const stderr = new CappedBuffer(limit);
    // Read in parallel with starting the process (it is only compared once the process ended).
    const oomBeforeRead = this.sandboxes.oomKills(id);
    const started = performance.now();
    const elapsed = (): number => performance.now() - started;
    const abort = AbortSignal.timeout(timeoutMs + AGENT_GRACE_MS);
    const stream = agent.stream<AgentProcessMessage>('process.Process/Start', this.startBody({ ...req, stdin: req.stdin !== undefined }), {
      ...(req.user !== undefined ? { user: req.user } : {}),
      connectTimeoutMs: timeoutMs,
      signal: abort,
    });
    let pid = 0;
    let output: ProcessOutput | null = null;
    const result = (exitCode: number, signal: string | null, timedOut: boolean, oomKilled: boolean): ExecResult => ({
      pid,
      exitCode,
      signal,
      stdout: stdout.text(),
      stderr: stderr.text(),
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
      timedOut,
      oomKilled,
      durationMs: Math.round(elapsed()),
    });
    try {
      for await (const message of stream) {
        const event = toProcessEvent(message, () => elapsed() >= timeoutMs - 50);
        if (!event) continue;
        if (event.type === 'start') {
          pid = event.pid;
          output = req.captureOutput === false ? null : (this.logs?.open(id, pid) ?? null);
          if (isKeepAlive(req)) this.sandboxes.keepAlive.follow(id, pid);
          if (req.stdin !== undefined) {
            if (req.stdin.length > 0) await this.sendStdin(id, { pid }, Buffer.from(req.stdin));
            await this.closeStdin(id, { pid });
          }
        } else if (event.type === 'stdout' || event.type === 'stderr') {
          const data = Buffer.from(event.data, 'base64');
          (event.type === 'stdout' ? stdout : stderr).push(data);
          output?.write(event.type, data);
        } else if (event.type === 'exit') {
          const oomBefore = await oomBeforeRead;
          const oomAfter = event.signal === 'SIGKILL' ? await this.sandboxes.oomKills(id) : oomBefore;
          const oomKilled = oomBefore !== null && oomAfter !== null && oomAfter > oomBefore && event.signal === 'SIGKILL';
          return result(event.exitCode, event.signal, event.timedOut, oomKilled);
        }
      }
    } catch (err) {
      // The agent went away mid-command: if the whole sandbox was OOM-killed (gVisor's sentry is
      // one host process), answer like a killed process and let the sandbox say it is gone.
      if (err instanceof HutchError && err.kind !== 'unavailable' && err.kind !== 'internal') throw err;
      const oomBefore = await oomBeforeRead;
      if (pid === 0) {
        // No start event yet: the kill may have come first (a command that allocates at once), or
        // the agent never answered (frozen, gone). Only a new OOM kill is worth the liveness check
        // (which waits for an unresponsive agent); anything else is the error it is, at once.
        const oomNow = await this.sandboxes.oomKills(id);
        if (oomBefore === null || oomNow === null || oomNow <= oomBefore) throw err;
      }
      const health = await this.sandboxes.checkAlive(id, oomBefore);
      if (health.alive) throw err;
      return result(-1, 'SIGKILL', false, health.oomKilled);
    } finally {
      output?.end();
    }
    throw invalidArgument('the process stream ended without an exit event');
  }

  /**
   * Starts a process and yields its events until it exits. Stopping the iteration (or aborting
   * `signal`) only detaches: the process keeps running, and its output keeps going to the
   * sandbox's log until it exits. The sandbox is held while the events are read.
   */
  async *start(id: string, req: ProcessRequest, signal?: AbortSignal): AsyncGenerator<ProcessEvent> {
    await this.sandboxes.requireRunning(id);
    const timeoutMs = req.timeoutMs ?? 0;
    const started = performance.now();
    const hold = this.sandboxes.hold(id, req.pty ? 'terminal' : 'process stream');
    // PTY output is not kept (see core/sandbox-logs.ts); other output outlives the caller's interest.
    const capture = !req.pty && req.captureOutput !== false && this.logs?.enabled === true;
    // When output is kept, the agent stream is ours to close (the caller's signal only detaches the caller).
    const own = new AbortController();
    const streamSignal = capture ? own.signal : signal;
    let output: ProcessOutput | null = null;
    let pending: Promise<IteratorResult<AgentProcessMessage>> | null = null;
    let finished = false;
    const stream = this.sandboxes.agent(id).stream<AgentProcessMessage>('process.Process/Start', this.startBody(req), {
      ...(req.user !== undefined ? { user: req.user } : {}),
      connectTimeoutMs: timeoutMs,
      ...(streamSignal ? { signal: streamSignal } : {}),
    });
    const messages = stream[Symbol.asyncIterator]();
    try {
      for (;;) {
        pending = messages.next();
        const result = capture && signal ? await untilAborted(pending, signal) : await pending;
        if (result === ABORTED) return;
        pending = null;
        if (result.done) {
          finished = true;
          return;
        }
        const event = toProcessEvent(result.value, () => timeoutMs > 0 && performance.now() - started >= timeoutMs - 50);
        if (event?.type === 'start') {
          this.rememberDeadline(id, event.pid, timeoutMs, started);
          if (isKeepAlive(req)) this.sandboxes.keepAlive.follow(id, event.pid);
          if (capture) output = this.logs!.open(id, event.pid);
        } else if (event?.type === 'stdout' || event?.type === 'stderr') output?.write(event.type, Buffer.from(event.data, 'base64'));
        else if (event?.type === 'exit') finished = true;
        if (event) yield event;
      }
    } catch (err) {
      finished = true; // the stream failed: nothing left to follow
      throw err;
    } finally {
      hold.release();
      // Detached before the exit: the log follows the rest of the stream.
      const adopted = !finished && output !== null && this.logs!.adopt(output, messages, pending, () => own.abort());
      if (!adopted) {
        output?.end();
        if (pending) {
          // A read in flight (the caller left while waiting): only closing the stream ends it.
          own.abort();
          pending.catch(() => undefined);
        } else await messages.return?.(undefined)?.catch(() => undefined);
      }
    }
  }

  /** Starts a process in the background; resolves with its pid once it started. */
  async startDetached(id: string, req: ProcessRequest): Promise<{ pid: number }> {
    const events = this.start(id, req);
    for await (const event of events) {
      if (event.type === 'start') {
        // Closing our stream detaches; the agent keeps the process, the sandbox log its output.
        await events.return(undefined);
        return { pid: event.pid };
      }
    }
    throw invalidArgument('the process ended before it started');
  }

  /** Attaches to a running (or recently exited) process's output from now on; holds the sandbox meanwhile. */
  async *connect(id: string, selector: ProcessSelector, signal?: AbortSignal): AsyncGenerator<ProcessEvent> {
    await this.sandboxes.requireRunning(id);
    const hold = this.sandboxes.hold(id, 'process stream');
    try {
      const stream = this.sandboxes
        .agent(id)
        .stream<AgentProcessMessage>('process.Process/Connect', { process: selector }, signal ? { signal } : {});
      for await (const message of stream) {
        const event = toProcessEvent(message, () => this.pastDeadline(id, selector));
        if (event && event.type !== 'start') yield event;
      }
    } finally {
      hold.release();
    }
  }

  async wait(
    id: string,
    selector: ProcessSelector,
    signal?: AbortSignal,
  ): Promise<{ exitCode: number; signal: string | null; timedOut: boolean }> {
    for await (const event of this.connect(id, selector, signal)) {
      if (event.type === 'exit') return { exitCode: event.exitCode, signal: event.signal, timedOut: event.timedOut };
    }
    throw invalidArgument('the process stream ended without an exit event');
  }

  async list(id: string): Promise<ProcessInfo[]> {
    await this.sandboxes.requireRunning(id);
    const reply = await this.sandboxes.agent(id).unary<{
      processes?: Array<{ pid?: number; tag?: string; config?: { cmd?: string; args?: string[]; cwd?: string }; pty?: boolean }>;
    }>('process.Process/List', {});
    return (reply.processes ?? []).map((p) => ({
      pid: Number(p.pid ?? 0),
      tag: p.tag ?? null,
      cmd: p.config?.cmd ?? '',
      args: p.config?.args ?? [],
      cwd: p.config?.cwd ?? null,
      pty: p.pty === true,
    }));
  }

  async sendStdin(id: string, selector: ProcessSelector, data: Buffer, pty = false): Promise<void> {
    await this.sandboxes.requireRunning(id);
    const input = pty ? { pty: data.toString('base64') } : { stdin: data.toString('base64') };
    await this.sandboxes.agent(id).unary('process.Process/SendInput', { process: selector, input });
  }

  async closeStdin(id: string, selector: ProcessSelector): Promise<void> {
    await this.sandboxes.requireRunning(id);
    await this.sandboxes.agent(id).unary('process.Process/CloseStdin', { process: selector });
  }

  async signal(id: string, selector: ProcessSelector, signal: SignalName): Promise<void> {
    await this.sandboxes.requireRunning(id);
    await this.sandboxes.agent(id).unary('process.Process/SendSignal', { process: selector, signal: `SIGNAL_${signal}` });
  }

  async resize(id: string, selector: ProcessSelector, cols: number, rows: number): Promise<void> {
    await this.sandboxes.requireRunning(id);
    await this.sandboxes.agent(id).unary('process.Process/Update', { process: selector, pty: { size: { cols, rows } } });
  }
}
