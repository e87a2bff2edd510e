import type { EgressPolicy } from '../core/network.js';

/**
 * The normalized Hutch environment model: what a Compose project means on Hutch, after
 * interpolation, schema validation, merging of override files and the checks of normalize.ts.
 * Nothing here refers to Compose syntax any more (short/long forms, string/list commands are
 * resolved), so the environment service never looks at YAML.
 */
export type DependencyCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

/** A command as written: a string runs under `/bin/sh -c`, a list is argv. */
export type CommandSpec = { shell: string } | { argv: string[] };

export interface HealthcheckSpec {
  /** argv run inside the service's sandbox (`CMD-SHELL x` is `['/bin/sh', '-c', x]`). */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  startIntervalMs: number;
}

export interface DependencySpec {
  service: string;
  condition: DependencyCondition;
  /** `required: false`: the dependent starts even if this one is not part of the environment. */
  required: boolean;
}

export type MountSpec =
  /** A named volume of the environment (top-level `volumes:`). */
  | { kind: 'volume'; volume: string; target: string; readOnly: boolean }
  /** A repository-relative path (normalized, inside the project), copied into the sandbox. */
  | { kind: 'copy'; source: string; target: string; readOnly: boolean };

export type ServiceSource =
  { kind: 'image'; image: string } | { kind: 'build'; context: string; dockerfile: string; args: Record<string, string> };

export interface ServiceSettings {
  /** `x-hutch.template` (service) or the top-level `x-hutch.templates` mapping: skips the catalog's version check. */
  template: string | null;
  /** Egress beyond the environment's own network (default none). */
  egress: EgressPolicy;
  /** Routes reachable without a token. */
  public: boolean;
  cpu: number | null;
  memoryMiB: number | null;
  diskMiB: number | null;
}

export interface ServiceSpec {
  name: string;
  source: ServiceSource;
  /** null: the image's (catalog entry's) own. */
  entrypoint: CommandSpec | null;
  command: CommandSpec | null;
  /** env_file entries first, then `environment` (which wins); values interpolated. */
  environment: Record<string, string>;
  dependsOn: DependencySpec[];
  /** null: the image's own healthcheck (catalog), if any. `disabled`: `test: ["NONE"]` or `disable: true`. */
  healthcheck: HealthcheckSpec | 'disabled' | null;
  /** Container ports that become routes (from `ports` and `expose`, host ports ignored). */
  routes: number[];
  mounts: MountSpec[];
  /** `restart: "no"`: a job that runs to completion (service_completed_successfully). */
  job: boolean;
  workingDir: string | null;
  user: string | null;
  profiles: string[];
  settings: ServiceSettings;
}

export interface VolumeSpec {
  /** The name in the Compose file. */
  name: string;
  /** `external: true`: an existing volume of the tenant, named `name:` or the key. */
  external: string | null;
  sizeMiB: number | null;
}

export interface EnvironmentSettings {
  /** Image reference → template, overriding the catalog for every service using that image. */
  templates: Record<string, string>;
  /** `x-hutch.ttl`, in ms: null is the server's default, 0 is off. */
  ttl: { idleMs: number | null; deleteMs: number | null };
  /** `x-hutch.seed`: the seed job whose volume becomes a golden snapshot (strategy `snapshot`). */
  seed: { strategy: 'snapshot' | 'job'; volume: string; job: string } | null;
}

export interface EnvironmentModel {
  /** The Compose `name:` (null when absent). */
  name: string | null;
  /** Active services (profiles applied), in an order where every dependency comes first. */
  services: ServiceSpec[];
  /** The active services' names in the order the Compose file lists them. */
  order: string[];
  volumes: VolumeSpec[];
  settings: EnvironmentSettings;
  /** Things accepted but changed or ignored (container_name, udp ports, …), for the user. */
  warnings: string[];
  /** The Compose files read, in merge order (relative to the project directory). */
  files: string[];
}
