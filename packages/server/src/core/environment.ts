import type { DependencySpec, HealthcheckSpec } from '../environments/model.js';

/**
 * The environment model shared by the environment service, the store and the API: a Compose
 * project brought up as a set of sandboxes on their own private network (a peer group), with
 * volumes it owns. The normalized project itself (environments/model.ts) is not stored: it is
 * derived from the source again when needed.
 */
/**
 * `sleeping`: its idle TTL passed, its service sandboxes are stopped; the next request through one
 * of its URLs wakes it (`waking`: services starting again in dependency order).
 */
export const ENVIRONMENT_STATES = ['creating', 'running', 'error', 'sleeping', 'waking', 'deleting', 'deleted'] as const;
export type EnvironmentState = (typeof ENVIRONMENT_STATES)[number];

/**
 * A service's progress: `pending` (waiting for its dependencies), `building` (its image, from its
 * `build:` section; reused when unchanged), `creating` (its sandbox),
 * `starting` (its process runs; not healthy yet), `running` (started; no healthcheck to pass),
 * `healthy`, `completed` (a job that exited 0), `failed` (a job that exited non-zero, or a
 * service that could not be created or never became healthy), `exited` (a long-running
 * service's process ended), `lost` (its sandbox is gone), `stopped` (its sandbox is stopped while
 * the environment sleeps).
 */
export const SERVICE_STATES = [
  'pending',
  'building',
  'creating',
  'starting',
  'running',
  'healthy',
  'completed',
  'failed',
  'exited',
  'lost',
  'stopped',
] as const;
export type ServiceState = (typeof SERVICE_STATES)[number];

export interface ServiceRoute {
  port: number;
  url: string;
}

export interface ServiceRecord {
  name: string;
  /** Chosen before the sandbox exists (its URLs are handed to every service up front). */
  sandboxId: string;
  /** The template or snapshot it runs on (`(build)` until a `build:` image is built). */
  template: string;
  job: boolean;
  state: ServiceState;
  /** The main process (while it runs or after it ended). */
  pid: number | null;
  exitCode: number | null;
  error: string | null;
  routes: ServiceRoute[];
  /** A remark on its state: `from seed snapshot` (a seed job skipped: its volume was cloned from a seeded one). */
  note?: string;
  /** How to run it again (a wake): absent on records made before sleeping existed (they do not sleep). */
  run?: ServiceRun;
}

/** What starting a service's main process again takes, recorded at create. */
export interface ServiceRun {
  /** argv of the main process (its output to the service log). */
  cmd: string[];
  user: string | null;
  cwd: string | null;
  healthcheck: HealthcheckSpec | null;
  dependsOn: DependencySpec[];
}

export interface EnvironmentVolume {
  /** The name in the Compose file. */
  name: string;
  /** The Hutch volume (the tenant's). */
  volume: string;
  /** Created for the environment (removed with it), or an existing one (`external: true`, kept). */
  owned: boolean;
}

export type EnvironmentSource = { kind: 'archive' } | { kind: 'git'; url: string; ref: string };

export interface EnvironmentRecord {
  id: string;
  tenant: string;
  /** The API key that created it. */
  owner: string | null;
  /** Given by the request, else the Compose file's `name:`, else null. */
  name: string | null;
  state: EnvironmentState;
  error: string | null;
  source: EnvironmentSource;
  gitSha: string | null;
  prNumber: number | null;
  profiles: string[];
  /** Interpolation variables given by the request. */
  variables: Record<string, string>;
  /** The main URL (PREVIEW_URL): the first route of the first service (in the Compose file) that has one. */
  url: string | null;
  services: ServiceRecord[];
  volumes: EnvironmentVolume[];
  warnings: string[];
  createdAt: Date;
  updatedAt: Date;
  /** Pinned: no TTL applies, no janitor removes it. */
  keep: boolean;
  /**
   * TTL overrides in ms (null: the server's default; 0: off), from `x-hutch.ttl` at create, then
   * from `PATCH /v1/environments/{id}`.
   */
  ttl: { idleMs: number | null; deleteMs: number | null };
  /** Last deploy, redeploy, wake or request through its URLs: the TTLs count from here. */
  activeAt: Date;
  /** When it went to sleep (null while awake). */
  sleptAt: Date | null;
  /** The DNS label part of its per-service hosts (`{service}--{slug}.{preview-domain}`). */
  slug: string;
  /** What it is a preview of (the seed snapshot's key): the repository or project, and its base branch. */
  project: string | null;
  baseRef: string | null;
}

export type EnvironmentPatch = Partial<
  Pick<
    EnvironmentRecord,
    'state' | 'error' | 'services' | 'volumes' | 'warnings' | 'url' | 'gitSha' | 'name' | 'keep' | 'ttl' | 'activeAt' | 'sleptAt'
  >
>;

export interface EnvironmentStore {
  insert(record: EnvironmentRecord): Promise<void>;
  get(id: string): Promise<EnvironmentRecord | null>;
  update(id: string, patch: EnvironmentPatch): Promise<void>;
  /** Not deleted ones of one tenant, or (null) every tenant's; in the given states when set. */
  list(tenant: string | null, states?: EnvironmentState[]): Promise<EnvironmentRecord[]>;
  /** The live (not deleted) environment with this host slug, if any. */
  bySlug(slug: string): Promise<EnvironmentRecord | null>;
}
