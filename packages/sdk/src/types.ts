/**
 * Wire types of the REST API `/v1` (docs/api.md). They describe what the server sends; the SDK
 * does not reshape them.
 */

/** Lifecycle state of a sandbox (`paused` arrives with the persistence work). */
export type SandboxState = 'creating' | 'running' | 'paused' | 'stopped' | 'error' | 'deleted';

/** An isolation tier; the server says which ones this host supports in {@link ServerInfo.tiers}. */
export type Isolation = 'container' | 'gvisor' | 'microvm' | (string & {});

/** A sandbox as the server reports it. */
export interface SandboxInfo {
  id: string;
  state: SandboxState;
  template: string;
  isolation: Isolation;
  cpu: number;
  memoryMiB: number;
  pids: number;
  timeoutSeconds: number;
  env: Record<string, string>;
  metadata: Record<string, string>;
  createdAt: string;
  expiresAt: string | null;
  /** The reason when `state` is `error`, else null. */
  error: string | null;
  network: SandboxNetworkSettings;
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
  /** Lifetime in seconds from creation (1–86 400; server default 300). */
  timeoutSeconds?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  /** A repeated create with the same key returns the first sandbox. */
  idempotencyKey?: string;
  network?: Partial<SandboxNetworkSettings>;
}

export interface TierInfo {
  available: boolean;
  runtime?: string;
  version?: string;
  /** Why the tier is unavailable. */
  reason?: string;
  [extra: string]: unknown;
}

/** `GET /v1/info`. */
export interface ServerInfo {
  version: string;
  serverId: string;
  dataDir: string;
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
}
