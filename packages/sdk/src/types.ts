/**
 * Wire types of the REST API `/v1` (docs/api.md). They describe what the server sends; the SDK
 * does not reshape them.
 */

/**
 * Lifecycle state of a sandbox: `creating → running ⇄ paused`, `running ⇄ stopped`, then
 * `deleted`; `error` carries a reason in {@link SandboxInfo.error}.
 */
export type SandboxState = 'creating' | 'running' | 'paused' | 'stopped' | 'error' | 'deleted';

/** What happens when a sandbox's TTL or idle timeout runs out. */
export type OnTimeout = 'delete' | 'pause';

/**
 * How a paused sandbox was paused: `memory` keeps its processes and memory (gVisor checkpoint),
 * `filesystem` keeps only its files (its processes ended; resume starts it afresh).
 */
export type PauseMode = 'memory' | 'filesystem';

/** An isolation tier; the server says which ones this host supports in {@link ServerInfo.tiers}. */
export type Isolation = 'container' | 'gvisor' | 'microvm' | (string & {});

/** A sandbox as the server reports it. */
/** Admins: narrow a list to one tenant (other keys always see only their own tenant's). */
export interface TenantScope {
  tenant?: string;
}

export interface SandboxInfo {
  id: string;
  /** The tenant it belongs to. */
  tenant: string;
  state: SandboxState;
  template: string;
  isolation: Isolation;
  cpu: number;
  memoryMiB: number;
  pids: number;
  /** The TTL in seconds; null for a persistent sandbox created without one. */
  timeoutSeconds: number | null;
  env: Record<string, string>;
  metadata: Record<string, string>;
  createdAt: string;
  /**
   * When the server acts on its own: the TTL of a running sandbox, the auto-delete time of a
   * stopped or paused one; null when nothing is scheduled.
   */
  expiresAt: string | null;
  /** The reason when `state` is `error`, else null. */
  error: string | null;
  network: SandboxNetworkSettings;
  /** Disk quota of the sandbox's own filesystem, in MiB. */
  diskMiB: number;
  /** Volumes mounted into the sandbox. */
  volumes: SandboxVolume[];
  lifecycle: SandboxLifecycle;
  /** How it was paused while `state` is `paused`, else null. */
  pauseMode: PauseMode | null;
  /** When the sandbox last entered its current state (null for sandboxes that never changed). */
  stateChangedAt: string | null;
  /** The secrets it is given: references only, never values. */
  secrets: SecretRef[];
  /** In create answers only: whether a warm pool served the create. */
  warm?: boolean;
  [extra: string]: unknown;
}

/** A volume mounted into a sandbox, as the server reports it. */
export interface SandboxVolume {
  name: string;
  /** Absolute mount path inside the sandbox. */
  path: string;
  readOnly: boolean;
}

/** A volume to mount at create time (`volumes` of {@link SandboxCreateParams}). */
export interface VolumeMount {
  /** The name of an existing volume (see `hutch.volumes.create`). */
  name: string;
  /** Absolute mount path inside the sandbox. */
  path: string;
  /** Mount read-only (default false). */
  readOnly?: boolean;
}

/** The lifecycle policy a sandbox was created with. */
export interface SandboxLifecycle {
  /** No forced lifetime; stop/start keep its filesystem. */
  persistent: boolean;
  onTimeout: OnTimeout;
  /** Seconds without API activity after which `onTimeout` applies; null for none. */
  idleTimeoutSeconds: number | null;
  /** Seconds a stopped or paused sandbox is kept before it is deleted; null to keep it. */
  autoDeleteAfterSeconds: number | null;
  /** A call that needs the sandbox running resumes it when it is paused. */
  autoResume: boolean;
}

/** `POST /v1/sandboxes/{id}/pause` and `…/resume`. */
export interface PauseResult {
  id: string;
  state: SandboxState;
  /** The mode the sandbox was (or had been, for resume) paused in. */
  pauseMode: PauseMode | null;
  /** Why the mode is what it is (e.g. the tier cannot keep memory on this host); null otherwise. */
  note: string | null;
  /** How long the server took. */
  durationMs: number;
}

/** Size and use of a filesystem, in bytes. */
export interface DiskUsage {
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/** `GET /v1/sandboxes/{id}/usage`. */
export interface SandboxUsage {
  /** The sandbox's own filesystem; null while it is not mounted (e.g. stopped). */
  disk: DiskUsage | null;
  /** Each mounted volume; the sizes are null when they cannot be measured. */
  volumes: { name: string; path: string; usedBytes: number | null; sizeBytes: number | null }[];
}

/** One entry of a sandbox's log (`GET /v1/sandboxes/{id}/logs`). */
export interface SandboxLogEntry {
  /** Increases with every entry: `after` takes it as a cursor. */
  seq: number;
  /** When the server received the output (ISO 8601). */
  time: string;
  pid: number;
  /** `system`: a note from the server (output not kept, …). */
  stream: 'stdout' | 'stderr' | 'system';
  /** The whole lines that arrived together, with their newlines (a long or unfinished line comes in pieces). */
  text: string;
}

/** What `sandbox.logs()` returns. */
export interface SandboxLogs {
  /** Oldest first. */
  entries: SandboxLogEntry[];
  /** Output dropped by the server's cap (the oldest goes first) or over its rate. */
  dropped: { bytes: number; entries: number };
  /** The last entry's seq (or the `after` given): pass as `after` to get what came since. */
  cursor: number | null;
}

/** A line of `sandbox.followLogs()`. */
export type SandboxLogEvent =
  | ({ type: 'log' } & SandboxLogEntry)
  /** First, when older output was dropped by the cap. */
  | { type: 'dropped'; bytes: number; entries: number }
  /** The reader fell behind and this many entries were skipped. */
  | { type: 'lagged'; entries: number }
  /** The sandbox was deleted (or the server is shutting down): the stream ends. */
  | { type: 'end'; reason: string };

/** A named, quota'd, persistent volume. */
export interface VolumeInfo {
  /** Names are unique per tenant. */
  tenant: string;
  name: string;
  /** The quota. */
  sizeMiB: number;
  labels: Record<string, string>;
  createdAt: string;
  /** Bytes in use, null when it cannot be measured. */
  usedBytes: number | null;
  /** Ids of the sandboxes that mount it (a volume in use cannot be deleted). */
  usedBy: string[];
  [extra: string]: unknown;
}

/** A point-in-time copy of a volume (kubernetes provider: a VolumeSnapshot of its claim). */
export interface VolumeSnapshotInfo {
  tenant: string;
  volume: string;
  name: string;
  createdAt: string;
  /** Whether the copy is complete (the cluster's snapshot controller says so). */
  readyToUse: boolean;
  /** The size a volume restored from it needs, when known. */
  restoreSizeMiB: number | null;
  /** Why the snapshot failed, as the cluster says. */
  error: string | null;
  [extra: string]: unknown;
}

/** Body of `POST /v1/volumes`. */
export interface VolumeCreateParams {
  /** 1–63 of `a-z 0-9 . _ -`, starting with a letter or digit. */
  name: string;
  /** Quota in MiB (64–1 048 576; server default 1024). */
  sizeMiB?: number;
  labels?: Record<string, string>;
}

/**
 * A snapshot: a sandbox's files captured as a read-only layer over the layers it came from. Its
 * `id` is usable as a template (`hutch.sandboxes.create({ template: snapshot.id })`).
 */
export interface SnapshotInfo {
  /** `snap-` and 16 characters of a-z0-9. */
  id: string;
  /** The tenant of the sandbox it was taken from. */
  tenant: string;
  /** The sandbox it was taken from (which may be gone by now). */
  sourceSandbox: string;
  /** The shipped template at the bottom of its layers. */
  template: string;
  /** Layer digests, top (this snapshot's own) first, down to the template's. */
  layers: string[];
  /** The tier of the source sandbox; sandboxes made from it may use either tier. */
  isolation: Isolation;
  /** Always false: snapshots keep files, not memory (pause keeps memory). */
  memory: boolean;
  /** Bytes of the files in its own layer (what the source changed over its base). */
  sizeBytes: number;
  metadata: Record<string, string>;
  createdAt: string;
  /** On create: true when identical content was already stored and its layer was reused. */
  reused?: boolean;
  /** On create: how long the capture took. */
  durationMs?: number;
  [extra: string]: unknown;
}

/** Body of `POST /v1/sandboxes/{id}/snapshots`. */
export interface SnapshotCreateParams {
  metadata?: Record<string, string>;
  /**
   * Keep the memory too (gVisor sandboxes with egress `none`): sandboxes created from the
   * snapshot continue its processes from this moment. Elsewhere the server answers 422.
   */
  memory?: boolean;
}

/** Body of `POST /v1/sandboxes/{id}/fork`. */
export interface ForkParams {
  /** How many sandboxes to create from the fresh snapshot (1–64; default 1). */
  count?: number;
  /** Metadata merged over the source's for the new sandboxes (they also get `hutch.forkOf`). */
  metadata?: Record<string, string>;
  /** Fork with memory (gVisor, egress `none`): the forks continue this sandbox's processes. */
  memory?: boolean;
}

/** `POST /v1/sandboxes/{id}/fork`, as the server sends it. */
export interface ForkResponse {
  snapshot: SnapshotInfo;
  sandboxes: SandboxInfo[];
}

/** `POST /v1/gc`: what was removed, or with `dryRun` what would be. */
export interface GcResult {
  /** Digests of the layers no snapshot references. */
  layers: string[];
  /** Pooled files no remaining layer uses. */
  objects: number;
  /** Their size in bytes. */
  bytes: number;
  /** Leftover work directories of captures that crashed. */
  staging: string[];
  dryRun: boolean;
  [extra: string]: unknown;
}

/**
 * Egress: `none` (no network, the default), `open` (internet via NAT, never the metadata
 * address, the host, private ranges or other sandboxes), or an allowlist of CIDRs, IPs and domain
 * names (`api.example.com`, `*.example.com`) with optional deny entries. Domain entries allow
 * HTTP/HTTPS by name (checked on Host / SNI), not the name's IP addresses.
 */
export type SandboxEgress = 'none' | 'open' | { allow?: string[]; deny?: string[] };

export interface SandboxNetworkSettings {
  egress: SandboxEgress;
  /** Every port reachable through the ingress without a token. */
  public: boolean;
  /** These ports reachable without a token. */
  publicPorts: number[];
}

/** `GET /v1/sandboxes/{id}/network`. */
export interface SandboxNetworkState extends SandboxNetworkSettings {
  ipv4: string | null;
  ipv6: string | null;
  dns: string | null;
  dnsLog: { name: string; type: string; verdict: string; at: string }[];
  /** Connections cut by a change (PUT only). */
  cut?: number;
}

/** `GET /v1/sandboxes/{id}/url`. */
export interface PortUrl {
  url: string;
  port: number;
  public: boolean;
  /** When the signed URL stops working (null for public ports). */
  expiresAt: string | null;
  /** Headers that authorize programmatic requests to a private port. */
  headers: Record<string, string>;
}

/** Body of `POST /v1/sandboxes`; every field optional, defaults are the server's. */
export interface SandboxCreateParams {
  /** Template name (server default: `base`). */
  template?: string;
  /** Isolation tier (server default: `container`). Unsupported tiers fail with `TierUnavailableError`. */
  isolation?: Isolation;
  /** CPU cores, fractional (0.1–64). */
  cpu?: number;
  memoryMiB?: number;
  pids?: number;
  /** Lifetime in seconds from creation (1–86 400; server default 300, none when `persistent`). */
  timeoutSeconds?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  /** A repeated create with the same key returns the first sandbox. */
  idempotencyKey?: string;
  network?: Partial<SandboxNetworkSettings>;
  /** Disk quota of the sandbox's filesystem in MiB (64–1 048 576; server default 2048). */
  diskMiB?: number;
  /** No forced lifetime (`timeoutSeconds` becomes optional and defaults to none); stop/start keep its files. */
  persistent?: boolean;
  /** At the TTL or idle timeout: `delete` (default) or `pause`. */
  onTimeout?: OnTimeout;
  /** Apply `onTimeout` after this many seconds without API activity (1–2 592 000). */
  idleTimeoutSeconds?: number;
  /**
   * Delete a stopped or paused sandbox after this many seconds (1–31 536 000; server default: a
   * day for ephemeral sandboxes, never for persistent ones).
   */
  autoDeleteAfterSeconds?: number;
  /** Resume a paused sandbox when a call needs it running (exec, files, …) instead of a 409. */
  autoResume?: boolean;
  /** Volumes to mount (at most 16); they must exist. */
  volumes?: VolumeMount[];
  /**
   * Secrets of the tenant to give the sandbox (at most 32; see `hutch.secrets`): read when it is
   * created and again whenever it starts; a missing one is an `InvalidArgumentError` naming it.
   */
  secrets?: SecretRef[];
}

/**
 * One use of a secret by a sandbox, exactly one target: `env` (a variable every process sees),
 * `file` (a path below /run/secrets, a tmpfs; mode 0400, owned by the sandbox's default user) or
 * `injectHeader` (the egress proxy adds `header: format` with `{}` replaced by the value to
 * plain-HTTP requests to `host`; the value never enters the sandbox).
 */
export type SecretRef =
  | { name: string; env: string }
  | { name: string; file: string }
  | { name: string; injectHeader: { host: string; header: string; format?: string } };

export interface TierInfo {
  available: boolean;
  runtime?: string;
  version?: string;
  /** Why the tier is unavailable. */
  reason?: string;
  /** What `pause` keeps on this tier on this host (memory, or files only) and why. */
  pause?: { mode: PauseMode; note: string | null };
  [extra: string]: unknown;
}

/** `GET /v1/info`. */
export interface ServerInfo {
  version: string;
  serverId: string;
  dataDir: string;
  /** Where sandboxes run: `local` (this machine) or `kubernetes` (pods). */
  provider?: 'local' | 'kubernetes' | (string & {});
  /** The server's store: `sqlite` (a file in the data dir) or `postgres` (shared by replicas). */
  store?: 'sqlite' | 'postgres' | (string & {});
  /** Whether this replica runs the periodic loops (reaper, pools, usage meter, audit retention). */
  leader?: boolean;
  tiers: Record<string, TierInfo>;
  defaultIsolation: Isolation;
  templates: unknown[];
  posture: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface TemplateInfo {
  name: string;
  description?: string;
  digest: string;
  /** Size of the built layer, null until built. */
  sizeBytes: number | null;
  defaultUser: string;
  builtAt: string | null;
  state: 'ready' | 'building' | 'missing' | 'error' | (string & {});
  /** Why the build failed, when `state` is `error`. */
  error?: string;
  [extra: string]: unknown;
}

/** The result of a buffered exec. A non-zero `exitCode` is a normal result, not an error. */
export interface ExecResult {
  /** The exit code, or -1 when the process was killed by a signal (see `signal`). */
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** True when the process group was killed at `timeoutMs`. */
  timedOut: boolean;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** The signal that killed the process (`"SIGKILL"`), or null. */
  signal?: string | null;
  /** True when the sandbox's memory limit killed it. */
  oomKilled?: boolean;
  pid?: number;
  [extra: string]: unknown;
}

/** A file, directory or symlink inside a sandbox. */
export interface FileEntry {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink' | (string & {});
  size: number;
  mode: number;
  permissions: string;
  owner: string;
  group: string;
  modifiedTime: string | null;
  symlinkTarget: string | null;
  [extra: string]: unknown;
}

/** A running process as listed by `GET …/processes`. */
export interface ProcessInfo {
  pid: number;
  tag: string | null;
  cmd: string;
  args: string[];
  cwd: string | null;
  /** True for terminal processes. */
  pty: boolean;
  [extra: string]: unknown;
}

/** How a process ended. */
export interface ProcessExit {
  /** The exit code, or -1 when killed by a signal. */
  exitCode: number;
  signal: string | null;
  timedOut: boolean;
}

/** One event of an NDJSON process stream. */
export type ProcessEvent =
  | { type: 'start'; pid: number }
  | { type: 'stdout'; data: string }
  | { type: 'stderr'; data: string }
  | { type: 'pty'; data: string }
  | ({ type: 'exit' } & ProcessExit)
  | { type: 'error'; code: string; message: string };

/** What to run: a string runs under `/bin/sh -c`, an array runs as argv (no shell). */
export type Command = string | string[];

/** Options shared by buffered exec and streaming processes. */
export interface RunOptions {
  /** Working directory (default: the user's home). */
  cwd?: string;
  env?: Record<string, string>;
  /** A user name of the sandbox (default: the template's default user). */
  user?: string;
  /**
   * Count the process as activity: the sandbox's idle timeout does not apply while it runs, even
   * with no client attached (default false: a background process alone leaves the sandbox idle).
   * The process sees `HUTCH_KEEP_ALIVE=1`. The sandbox's TTL (`timeoutSeconds`) still applies.
   */
  keepAlive?: boolean;
}
