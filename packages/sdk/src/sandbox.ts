import './polyfill.js';
import { fetchSandboxMetrics, type MetricsOptions, type SandboxMetrics } from './observability.js';
import type { CallOptions } from './config.js';
import { NotFoundError } from './errors.js';
import { Files } from './files.js';
import type { Transport } from './http.js';
import { Processes } from './processes.js';
import { Pty } from './pty.js';
import { readNdjson } from './ndjson.js';
import { sandboxScope, type SandboxScope } from './scope.js';
import type {
  Command,
  ExecResult,
  ForkParams,
  ForkResponse,
  PauseResult,
  PortUrl,
  RunOptions,
  SandboxInfo,
  SandboxLogEvent,
  SandboxLogs,
  SandboxNetworkSettings,
  SandboxNetworkState,
  SandboxUsage,
  SnapshotCreateParams,
  SnapshotInfo,
} from './types.js';

export interface ExecOptions extends RunOptions {
  /** Text fed to the command's stdin (then closed). */
  stdin?: string;
  /**
   * The command's time limit in ms (server default 60 000). At the deadline the server kills the
   * process group and the result has `timedOut: true`; the call itself gives up a little later.
   */
  timeoutMs?: number;
  /** How much of stdout and of stderr to keep (server default 1 MiB, max 16 MiB). */
  maxOutputBytes?: number;
  signal?: AbortSignal;
}

export interface SnapshotOptions extends SnapshotCreateParams, CallOptions {}

export interface LogOptions extends CallOptions {
  /** Entries after this seq (a previous answer's `cursor`), oldest first; without it, the newest. */
  after?: number;
  /** Entries from this time on: a Date, an ISO 8601 time, or a duration back from now (`15m`). */
  since?: Date | string;
  /** At most this many entries (default 1000, max 10 000). */
  limit?: number;
}

export interface ForkOptions extends ForkParams, CallOptions {}

/** What `sandbox.fork()` resolves to: the snapshot taken and the sandboxes made from it. */
export interface ForkResult {
  snapshot: SnapshotInfo;
  /** Running sandboxes, as `hutch.sandboxes.create()` returns them. */
  sandboxes: Sandbox[];
}

/** Time the server gets beyond the command's own limit to answer an exec. */
const EXEC_GRACE_MS = 15_000;
const SERVER_EXEC_DEFAULT_MS = 60_000;

/**
 * One sandbox. `info` is the last state the server reported (see `refresh()`); the namespaces
 * `files`, `processes` and `pty` act on this sandbox. `await using` kills it at scope exit.
 */
export class Sandbox implements AsyncDisposable {
  readonly files: Files;
  readonly processes: Processes;
  readonly pty: Pty;
  private readonly scope: SandboxScope;

  /** @internal Use `hutch.sandboxes.create()` or `.get()`. */
  constructor(
    private readonly transport: Transport,
    /** The last sandbox object the server returned. */
    public info: SandboxInfo,
  ) {
    this.scope = sandboxScope(transport, info.id);
    this.files = new Files(this.scope);
    this.processes = new Processes(this.scope);
    this.pty = new Pty(this.scope);
  }

  get id(): string {
    return this.info.id;
  }

  /** Fetches the current state into `info` and returns it. */
  async refresh(opts?: CallOptions): Promise<SandboxInfo> {
    this.info = await this.transport.json<SandboxInfo>({ method: 'GET', path: this.scope.path, ...opts });
    return this.info;
  }

  /**
   * Runs a command to completion and returns its output. A string runs under `/bin/sh -c`, an
   * array runs as argv. A non-zero exit code is a result, not an error.
   */
  exec(cmd: Command, opts: ExecOptions = {}): Promise<ExecResult> {
    const { signal, ...rest } = opts;
    return this.transport.json<ExecResult>({
      method: 'POST',
      path: `${this.scope.path}/exec`,
      json: { cmd, ...rest },
      signal,
      timeoutMs: (opts.timeoutMs ?? SERVER_EXEC_DEFAULT_MS) + EXEC_GRACE_MS,
    });
  }

  /**
   * The URL of a port a process in the sandbox listens on, through the server's ingress. For a
   * private port the URL carries a signed token valid for `expiresInSeconds` (default 3600).
   */
  async getUrl(port: number, opts: CallOptions & { expiresInSeconds?: number } = {}): Promise<string> {
    return (await this.portUrl(port, opts)).url;
  }

  /** Like {@link getUrl}, with the expiry and the headers that authorize programmatic requests. */
  async portUrl(port: number, opts: CallOptions & { expiresInSeconds?: number } = {}): Promise<PortUrl> {
    const { expiresInSeconds, ...call } = opts;
    const query = new URLSearchParams({ port: String(port) });
    if (expiresInSeconds !== undefined) query.set('expiresIn', String(expiresInSeconds));
    return this.transport.json<PortUrl>({ method: 'GET', path: `${this.scope.path}/url?${query.toString()}`, ...call });
  }

  /**
   * The sandbox's log: stdout and stderr of the processes started through the API (exec,
   * background and streamed processes, E2B commands; not PTYs), kept by the server up to a cap per
   * sandbox (the oldest output goes first; `dropped` says how much). Deleted with the sandbox.
   */
  async logs(opts: LogOptions = {}): Promise<SandboxLogs> {
    const { signal, timeoutMs, ...q } = opts;
    return this.transport.json<SandboxLogs>({ method: 'GET', path: `${this.scope.path}/logs`, query: logQuery(q), signal, timeoutMs });
  }

  /**
   * Follows the log: the entries `logs(opts)` would return, then new ones as they are made, until
   * the sandbox is deleted (an `end` event) or `signal` aborts. The deadline covers only the wait
   * for the stream to open.
   */
  async *followLogs(opts: LogOptions = {}): AsyncGenerator<SandboxLogEvent> {
    const { signal, timeoutMs, ...q } = opts;
    const stream = await this.transport.stream({
      method: 'GET',
      path: `${this.scope.path}/logs`,
      query: { ...logQuery(q), follow: 1 },
      accept: 'application/x-ndjson',
      signal,
      timeoutMs,
    });
    try {
      for await (const event of readNdjson(stream.body)) yield event as SandboxLogEvent;
    } finally {
      stream.close();
    }
  }

  /** Egress policy, addresses and recent DNS queries. */
  async network(opts?: CallOptions): Promise<SandboxNetworkState> {
    return this.transport.json<SandboxNetworkState>({ method: 'GET', path: `${this.scope.path}/network`, ...opts });
  }

  /** Changes the egress policy live (forbidden connections are cut) and/or the public ports. */
  async setNetwork(settings: Partial<SandboxNetworkSettings>, opts?: CallOptions): Promise<SandboxNetworkState> {
    const state = await this.transport.json<SandboxNetworkState>({
      method: 'PUT',
      path: `${this.scope.path}/network`,
      json: settings,
      ...opts,
    });
    this.info = { ...this.info, network: { egress: state.egress, public: state.public, publicPorts: state.publicPorts } };
    return state;
  }

  /** Makes the sandbox expire `seconds` from now (replacing its previous deadline). */
  async setTimeout(seconds: number, opts?: CallOptions): Promise<SandboxInfo> {
    this.info = await this.transport.json<SandboxInfo>({
      method: 'POST',
      path: `${this.scope.path}/timeout`,
      json: { timeoutSeconds: seconds },
      ...opts,
    });
    return this.info;
  }

  /**
   * Pauses a running sandbox. Where the tier can (gVisor) its memory and processes are kept and
   * resume continues them (`pauseMode: 'memory'`); elsewhere only its files are kept
   * (`'filesystem'`) and `note` says why. Pausing a paused sandbox is a no-op; any other state is a
   * `ConflictError`. Updates `info.state` and `info.pauseMode` (other fields: `refresh()`).
   */
  async pause(opts?: CallOptions): Promise<PauseResult> {
    const result = await this.transport.json<PauseResult>({ method: 'POST', path: `${this.scope.path}/pause`, ...opts });
    this.info = { ...this.info, state: result.state, pauseMode: result.pauseMode };
    return result;
  }

  /**
   * Resumes a paused sandbox (`pauseMode` in the result is the mode it was paused in). Resuming a
   * running sandbox is a no-op; any other state is a `ConflictError`. Updates `info.state` and
   * `info.pauseMode` (other fields: `refresh()`).
   */
  async resume(opts?: CallOptions): Promise<PauseResult> {
    const result = await this.transport.json<PauseResult>({ method: 'POST', path: `${this.scope.path}/resume`, ...opts });
    this.info = { ...this.info, state: result.state, pauseMode: result.state === 'paused' ? result.pauseMode : null };
    return result;
  }

  /**
   * Stops the sandbox: its processes end and its memory and cpu are freed; its files and volumes
   * stay for `start()`. Stopping a stopped sandbox is a no-op; a paused one can be stopped too.
   */
  async stop(opts?: CallOptions): Promise<SandboxInfo> {
    this.info = await this.transport.json<SandboxInfo>({ method: 'POST', path: `${this.scope.path}/stop`, ...opts });
    return this.info;
  }

  /** Starts a stopped sandbox again: same id, files, env and metadata; no processes. */
  async start(opts?: CallOptions): Promise<SandboxInfo> {
    this.info = await this.transport.json<SandboxInfo>({ method: 'POST', path: `${this.scope.path}/start`, ...opts });
    return this.info;
  }

  /** Disk use of the sandbox's own filesystem (null while it is not mounted) and of its volumes. */
  async usage(opts?: CallOptions): Promise<SandboxUsage> {
    return this.transport.json<SandboxUsage>({ method: 'GET', path: `${this.scope.path}/usage`, ...opts });
  }

  /**
   * Its samples (cpu, memory, pids, disk, network), taken by the server every few seconds and
   * kept for its metrics window (default: the whole window; `start`/`end` narrow it).
   */
  async metrics(opts: MetricsOptions = {}): Promise<SandboxMetrics> {
    return fetchSandboxMetrics(this.transport, this.scope.path, opts);
  }

  /**
   * Captures the sandbox's files (and, with `memory: true` on gVisor, its memory) as a snapshot,
   * usable as a template:
   * `hutch.sandboxes.create({ template: snapshot.id })` sees the files as they are now. A running
   * sandbox is frozen for the capture so the snapshot is consistent; paused and stopped sandboxes
   * can be snapshotted too, any other state is a `ConflictError`. Content already stored is
   * reused (`reused: true`).
   */
  async snapshot(opts: SnapshotOptions = {}): Promise<SnapshotInfo> {
    const { signal, timeoutMs, ...params } = opts;
    const body: SnapshotCreateParams = params;
    return this.transport.json<SnapshotInfo>({ method: 'POST', path: `${this.scope.path}/snapshots`, json: body, signal, timeoutMs });
  }

  /**
   * Snapshots the sandbox and creates `count` sandboxes (default 1, at most 64) from that
   * snapshot with this one's resources, env, metadata (plus `opts.metadata` and `hutch.forkOf`),
   * network, lifecycle and volumes. The snapshot cannot be deleted while they exist. The call's
   * deadline covers the snapshot and every create: give a large `count` a longer `timeoutMs`.
   */
  async fork(opts: ForkOptions = {}): Promise<ForkResult> {
    const { signal, timeoutMs, ...params } = opts;
    const body: ForkParams = params;
    const res = await this.transport.json<ForkResponse>({ method: 'POST', path: `${this.scope.path}/fork`, json: body, signal, timeoutMs });
    return { snapshot: res.snapshot, sandboxes: res.sandboxes.map((info) => new Sandbox(this.transport, info)) };
  }

  /**
   * Deletes the sandbox: kills its processes and removes everything it used. Idempotent: resolves
   * `true` when this call deleted it, `false` when it was already gone.
   */
  async kill(opts?: CallOptions): Promise<boolean> {
    const deleted = await deleteSandbox(this.transport, this.id, opts);
    this.info = { ...this.info, state: 'deleted' };
    return deleted;
  }

  /** Kills the sandbox (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

function logQuery(q: Omit<LogOptions, keyof CallOptions>): Record<string, string | number | undefined> {
  return { after: q.after, since: q.since instanceof Date ? q.since.toISOString() : q.since, limit: q.limit };
}

/** DELETE a sandbox; `true` when this call deleted it, `false` when it did not exist (404). */
export async function deleteSandbox(transport: Transport, id: string, opts?: CallOptions): Promise<boolean> {
  try {
    await transport.bytes({ method: 'DELETE', path: sandboxScope(transport, id).path, ...opts });
    return true;
  } catch (err) {
    if (err instanceof NotFoundError) return false;
    throw err;
  }
}
