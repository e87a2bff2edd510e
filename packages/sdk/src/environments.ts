import type { CallOptions } from './config.js';
import { HutchError, NotFoundError, TimeoutError } from './errors.js';
import type { Transport } from './http.js';
import type { TenantScope } from './types.js';

/** Where an environment's Compose project comes from. */
export type EnvironmentSource =
  /** A tar or tar.gz of the project directory (the SDK sends it base64-encoded). */
  | { archive: Uint8Array }
  /** A git repository and a branch, tag or commit, fetched by the server. */
  | { git: { url: string; ref: string } };

export interface EnvironmentCreateParams {
  source: EnvironmentSource;
  /** Shown in listings (default: the Compose file's `name:`). */
  name?: string;
  /** Interpolation variables (`${NAME}` in the Compose files); they win over the project's .env. */
  variables?: Record<string, string>;
  /** Compose profiles to enable. */
  profiles?: string[];
  /** The pull request the environment is for (PREVIEW_PR_NUMBER). */
  prNumber?: number;
  /** The commit of an uploaded archive (PREVIEW_GIT_SHA); a git source knows its own. */
  gitSha?: string;
  /** Pinned from the start: no TTL, no janitor. */
  keep?: boolean;
  /** What it is a preview of (default: the git URL's repository name, else the Compose name); names PR hosts and seed snapshots. */
  project?: string;
  /** The base branch (default: the git ref when it is not a pull request's); keys seed snapshots. */
  baseRef?: string;
}

/** A TTL: a duration (`30m`, `72h`, `3d`), `off` or 0, or null (back to the server's default). */
export type EnvironmentTtl = string | number | null;

export interface EnvironmentUpdateParams {
  /** Pin (no TTL, no janitor) or unpin. */
  keep?: boolean;
  /** Idle → sleep; delete → destroy. Counted from the last deploy, wake or request. */
  ttl?: { idle?: EnvironmentTtl; delete?: EnvironmentTtl };
}

export type EnvironmentState = 'creating' | 'running' | 'error' | 'sleeping' | 'waking' | 'deleting' | 'deleted';
export type EnvironmentServiceState =
  'pending' | 'building' | 'creating' | 'starting' | 'running' | 'healthy' | 'completed' | 'failed' | 'exited' | 'lost' | 'stopped';

export interface EnvironmentServiceInfo {
  name: string;
  state: EnvironmentServiceState;
  /** `restart: "no"`: runs to completion. */
  job: boolean;
  sandboxId: string;
  template: string;
  /** The first route's URL (null without routes). */
  url: string | null;
  routes: Array<{ port: number; url: string }>;
  exitCode: number | null;
  error: string | null;
  /** `from seed snapshot`: a seed job skipped because its volume was cloned from a seeded one. */
  note: string | null;
}

/** A golden seed snapshot: a project's base branch's seeded volume (`x-hutch.seed`). */
export interface EnvironmentSeedInfo {
  tenant: string;
  project: string;
  baseRef: string;
  /** The Compose volume. */
  volume: string;
  inputsHash: string;
  /** The tenant's volume holding the copy. */
  snapshotVolume: string;
  environment: string | null;
  createdAt: string;
}

export interface EnvironmentInfo {
  id: string;
  tenant: string;
  name: string | null;
  state: EnvironmentState;
  error: string | null;
  /** PREVIEW_URL: the first route of the first service (in the Compose file) that has one. */
  url: string | null;
  source: { kind: 'archive' } | { kind: 'git'; url: string; ref: string };
  gitSha: string | null;
  prNumber: number | null;
  profiles: string[];
  services: EnvironmentServiceInfo[];
  volumes: Array<{ name: string; volume: string; owned: boolean }>;
  warnings: string[];
  createdAt: string;
  updatedAt: string;
  /** Pinned: no TTL, no janitor. */
  keep: boolean;
  /** The TTLs in effect, in seconds (0: off). */
  ttl: { idleSeconds: number; deleteSeconds: number };
  /** Last deploy, wake or request through its URLs (the TTLs count from here). */
  activeAt: string;
  /** When it goes to sleep / is destroyed (null: it does not). */
  sleepsAt: string | null;
  deletesAt: string | null;
  sleptAt: string | null;
  /** The DNS label part of its per-service hosts (`{service}--{slug}.{preview-domain}`). */
  slug: string;
  project: string | null;
  baseRef: string | null;
  [extra: string]: unknown;
}

export interface EnvironmentWaitOptions extends CallOptions {
  /** Give up after this long (default 10 minutes): a `TimeoutError`. */
  waitMs?: number;
  /** Called with each state seen while waiting (progress output). */
  onProgress?: (env: EnvironmentInfo) => void;
}

/**
 * `hutch.environments`: Compose projects brought up as sets of sandboxes on a private network of
 * their own. `create` answers once the project is validated; services come up in the background
 * (`waitUntilReady`).
 */
export class Environments {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  async create(params: EnvironmentCreateParams, opts: CallOptions = {}): Promise<EnvironmentInfo> {
    const { source, ...rest } = params;
    const wire =
      'archive' in source
        ? { archive: Buffer.from(source.archive.buffer, source.archive.byteOffset, source.archive.byteLength).toString('base64') }
        : { git: source.git };
    return this.transport.json<EnvironmentInfo>({ method: 'POST', path: '/v1/environments', json: { ...rest, source: wire }, ...opts });
  }

  /** The key's tenant's environments (an admin's: every tenant's, or `tenant`'s). */
  async list(opts: CallOptions & TenantScope = {}): Promise<EnvironmentInfo[]> {
    const { tenant, ...call } = opts;
    const res = await this.transport.json<{ environments: EnvironmentInfo[] }>({
      method: 'GET',
      path: '/v1/environments',
      query: { tenant },
      ...call,
    });
    return res.environments;
  }

  async get(id: string, opts?: CallOptions): Promise<EnvironmentInfo> {
    return this.transport.json<EnvironmentInfo>({ method: 'GET', path: environmentPath(id), ...opts });
  }

  /** Sets `keep` and TTL overrides; answers the environment as it is now. */
  async update(id: string, params: EnvironmentUpdateParams, opts?: CallOptions): Promise<EnvironmentInfo> {
    return this.transport.json<EnvironmentInfo>({ method: 'PATCH', path: environmentPath(id), json: params, ...opts });
  }

  /** The golden seed snapshots of the tenant's projects. */
  async seeds(opts: CallOptions & TenantScope = {}): Promise<EnvironmentSeedInfo[]> {
    const { tenant, ...call } = opts;
    const res = await this.transport.json<{ seeds: EnvironmentSeedInfo[] }>({
      method: 'GET',
      path: '/v1/environment-seeds',
      query: { tenant },
      ...call,
    });
    return res.seeds;
  }

  /** Forgets a project's seed snapshots (one base branch, or all); answers those removed. */
  async refreshSeeds(project: string, baseRef?: string, opts?: CallOptions): Promise<EnvironmentSeedInfo[]> {
    const res = await this.transport.json<{ seeds: EnvironmentSeedInfo[] }>({
      method: 'POST',
      path: '/v1/environment-seeds/refresh',
      json: { project, ...(baseRef !== undefined ? { baseRef } : {}) },
      ...opts,
    });
    return res.seeds;
  }

  /** Pins the environment (`on` false: unpins it). */
  async keep(id: string, on = true, opts?: CallOptions): Promise<EnvironmentInfo> {
    return this.update(id, { keep: on }, opts);
  }

  /**
   * Polls until the environment is no longer `creating`; resolves with it when `running`, rejects
   * with a `HutchError` (code `environment_failed`) carrying its error otherwise.
   */
  async waitUntilReady(id: string, opts: EnvironmentWaitOptions = {}): Promise<EnvironmentInfo> {
    const { waitMs = 600_000, onProgress, ...call } = opts;
    const deadline = Date.now() + waitMs;
    for (;;) {
      const env = await this.get(id, call);
      onProgress?.(env);
      if (env.state === 'running') return env;
      if (env.state !== 'creating')
        throw new HutchError('environment_failed', `environment ${id} is ${env.state}: ${env.error ?? 'no reason given'}`);
      if (Date.now() > deadline)
        throw new TimeoutError('timeout', `environment ${id} was still creating after ${Math.round(waitMs / 1000)} s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * Destroys the environment (sandboxes, the volumes it created, its network). Resolves `true`
   * when it existed (deleting it again is fine), `false` when there is no such environment.
   */
  async delete(id: string, opts?: CallOptions): Promise<boolean> {
    try {
      await this.transport.bytes({ method: 'DELETE', path: environmentPath(id), ...opts });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /** The last `tail` lines (default 200) of each service's output, or of one service's. */
  async logs(id: string, opts: CallOptions & { service?: string; tail?: number } = {}): Promise<Array<{ service: string; text: string }>> {
    const { service, tail, ...call } = opts;
    const res = await this.transport.json<{ logs: Array<{ service: string; text: string }> }>({
      method: 'GET',
      path: `${environmentPath(id)}/logs`,
      query: { service, tail },
      ...call,
    });
    return res.logs;
  }
}

function environmentPath(id: string): string {
  return `/v1/environments/${encodeURIComponent(id)}`;
}
