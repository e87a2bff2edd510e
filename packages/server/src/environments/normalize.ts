import { posix } from 'node:path';
import { invalidArgument } from '../core/errors.js';
import { dependsOnMapping, keyValueMapping } from './compose-merge.js';
import type {
  CommandSpec,
  DependencyCondition,
  DependencySpec,
  EnvironmentModel,
  HealthcheckSpec,
  MountSpec,
  ServiceSource,
  ServiceSpec,
  VolumeSpec,
} from './model.js';
import { parseEnvironmentXHutch, parseServiceXHutch } from './x-hutch.js';

/**
 * From a merged, interpolated, schema-valid Compose document to the Hutch environment model.
 * Everything that cannot be honoured safely is refused here with the service and field named;
 * what is accepted but ignored or changed becomes a warning.
 */
type Mapping = Record<string, unknown>;

/** Reads a file of the project (env_file), relative to the project root; null when it does not exist. */
export type ProjectReader = (relativePath: string) => Promise<string | null>;

export interface NormalizeInput {
  document: Mapping;
  files: string[];
  /** Profiles to enable (services without profiles are always active). */
  profiles: string[];
  /** Variables for env_file interpolation and for `environment` entries without a value. */
  variables: ReadonlyMap<string, string>;
  readProjectFile: ProjectReader;
  parseEnvFile: (text: string, path: string) => Record<string, string>;
}

/** Fields that would break the isolation between a service and the host or other sandboxes. */
const REJECTED: Record<string, string> = {
  privileged: 'privileged containers are not supported: sandboxes never get host privileges',
  cap_add: 'adding capabilities is not supported: sandbox processes run without capabilities',
  devices: 'host devices cannot be passed into a sandbox',
  pid: 'sharing a PID namespace is not supported: each service is its own sandbox',
  ipc: 'sharing an IPC namespace is not supported: each service is its own sandbox',
  network_mode: 'network_mode is not supported: every service is on the environment’s own private network',
  volumes_from: 'volumes_from is not supported: share a named volume instead',
  userns_mode: 'userns_mode is not supported: every sandbox has its own user namespace',
  cgroup_parent: 'cgroup_parent is not supported',
  extends: 'extends is not supported yet: inline the service’s fields',
  security_opt: 'security_opt is not supported: the sandbox’s profile is fixed by its isolation tier',
  runtime: 'runtime is not supported: choose the isolation tier in x-hutch instead',
};

/** Accepted and ignored (the message says what the environment does instead). */
const IGNORED: Record<string, string> = {
  container_name: 'ignored: fixed container names would collide between parallel environments; the service name is its DNS name',
  networks: 'ignored: every service is on the environment’s one private network, reachable by its service name',
  links: 'ignored: every service is reachable by its service name',
  external_links: 'ignored: only the environment’s own services are reachable by name',
  hostname: 'ignored: the service is reachable by its service name',
  extra_hosts: 'ignored: names resolve through the environment’s resolver',
  dns: 'ignored: names resolve through the environment’s resolver',
  dns_search: 'ignored',
  secrets: 'not supported yet: ignored',
  configs: 'not supported yet: ignored',
  tmpfs: 'ignored: the sandbox’s own filesystem is used',
  deploy: 'ignored: use x-hutch cpu / memoryMiB',
  ulimits: 'ignored: the sandbox’s limits apply',
  sysctls: 'ignored: the sandbox’s kernel settings are fixed',
  read_only: 'ignored: the root filesystem is writable (a quota’d disk)',
  scale: 'ignored: one sandbox per service',
  stop_signal: 'ignored: services are stopped with SIGKILL',
  post_start: 'not supported yet: ignored',
  pre_stop: 'not supported yet: ignored',
  develop: 'ignored',
};

const TOP_LEVEL_REJECTED: Record<string, string> = {
  include: 'include is not supported yet: put the services in one file (plus compose.preview.yaml)',
};

export const MAX_ROUTES_PER_SERVICE = 64;

const DURATION = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };

/** A Compose duration (`1m30s`, `10s`, `500ms`) in milliseconds. */
export function parseDuration(text: unknown, field: string): number {
  const s = String(text).trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(DURATION)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed += m[0].length;
  }
  if (s.length === 0 || consumed !== s.length) throw invalidArgument(`${field}: "${s}" is not a duration (like 10s, 1m30s, 500ms)`);
  return Math.round(total);
}

function integer(value: unknown, field: string, min: number, max: number): number {
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  if (!Number.isInteger(n) || n < min || n > max) throw invalidArgument(`${field}: must be an integer from ${min} to ${max}`);
  return n;
}

function command(value: unknown, field: string): CommandSpec | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return { shell: value };
  if (Array.isArray(value)) {
    if (value.length === 0) return null;
    return { argv: value.map((v) => String(v)) };
  }
  throw invalidArgument(`${field}: must be a string or a list of strings`);
}

function healthcheck(value: unknown, field: string): HealthcheckSpec | 'disabled' | null {
  if (value === undefined || value === null) return null;
  const h = value as Mapping;
  if (h.disable === true || h.disable === 'true') return 'disabled';
  let test: string[] | null = null;
  if (typeof h.test === 'string') test = ['/bin/sh', '-c', h.test];
  else if (Array.isArray(h.test)) {
    const [kind, ...rest] = h.test.map(String);
    if (kind === 'NONE') return 'disabled';
    if (kind === 'CMD' && rest.length > 0) test = rest;
    else if (kind === 'CMD-SHELL' && rest.length === 1) test = ['/bin/sh', '-c', rest[0]!];
    else throw invalidArgument(`${field}.test: must be ["CMD", args...], ["CMD-SHELL", "command"], ["NONE"] or a string`);
  }
  if (!test) {
    // Only timings given: they apply to the image's own healthcheck, which the catalog supplies.
    if (h.interval === undefined && h.timeout === undefined && h.retries === undefined && h.start_period === undefined) return null;
    throw invalidArgument(`${field}.test: a healthcheck without a test is not supported (the catalog's images bring their own)`);
  }
  return {
    test,
    intervalMs: h.interval === undefined ? 30_000 : parseDuration(h.interval, `${field}.interval`),
    timeoutMs: h.timeout === undefined ? 30_000 : parseDuration(h.timeout, `${field}.timeout`),
    retries: h.retries === undefined ? 3 : integer(h.retries, `${field}.retries`, 0, 10_000),
    startPeriodMs: h.start_period === undefined ? 0 : parseDuration(h.start_period, `${field}.start_period`),
    startIntervalMs: h.start_interval === undefined ? 5000 : parseDuration(h.start_interval, `${field}.start_interval`),
  };
}

/** Container ports of `ports` entries (short or long form); host ports and IPs are ignored. */
function portRoutes(value: unknown, field: string, warnings: string[]): number[] {
  if (!Array.isArray(value)) return [];
  const out: number[] = [];
  value.forEach((entry, i) => {
    const where = `${field}[${i}]`;
    let target: string;
    let protocol = 'tcp';
    if (typeof entry === 'number') target = String(entry);
    else if (typeof entry === 'string') {
      const [spec, proto] = entry.split('/');
      protocol = proto ?? 'tcp';
      // [ip:][host:]container — an IPv6 host IP is bracketed, so the container part is after the last ':'.
      target = spec!.slice(spec!.lastIndexOf(':') + 1);
    } else {
      const m = entry as Mapping;
      target = String(m.target ?? '');
      protocol = String(m.protocol ?? 'tcp');
    }
    if (protocol !== 'tcp') {
      warnings.push(`${where}: ${protocol} ports are not routed (routes are HTTP/TCP through the server); ignored`);
      return;
    }
    out.push(...portRange(target, where));
  });
  return out;
}

function portRange(text: string, field: string): number[] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw invalidArgument(`${field}: "${text}" is not a container port or range`);
  const from = integer(m[1], field, 1, 65535);
  const to = m[2] === undefined ? from : integer(m[2], field, from, 65535);
  if (to - from >= MAX_ROUTES_PER_SERVICE) throw invalidArgument(`${field}: at most ${MAX_ROUTES_PER_SERVICE} ports per service`);
  return Array.from({ length: to - from + 1 }, (_, k) => from + k);
}

/** A path relative to the project root, refused when it leaves the project. */
export function projectPath(raw: string, field: string): string {
  if (raw.startsWith('/') || raw.startsWith('~'))
    throw invalidArgument(`${field}: "${raw}" is a host path; only paths inside the project (./…) can be used`);
  const normalized = posix.normalize(raw);
  if (normalized === '..' || normalized.startsWith('../')) throw invalidArgument(`${field}: "${raw}" is outside the project directory`);
  return normalized === '.' ? '' : normalized.replace(/\/+$/, '');
}

function mounts(value: unknown, field: string, declared: Set<string>, warnings: string[]): MountSpec[] {
  if (!Array.isArray(value)) return [];
  const out: MountSpec[] = [];
  value.forEach((entry, i) => {
    const where = `${field}[${i}]`;
    let type: string;
    let source: string | undefined;
    let target: string;
    let readOnly = false;
    if (typeof entry === 'string') {
      const parts = entry.split(':');
      if (parts.length === 1) {
        type = 'volume';
        target = parts[0]!;
      } else {
        source = parts[0]!;
        target = parts[1]!;
        const mode = parts.slice(2).join(':');
        readOnly = mode.split(',').includes('ro');
        type = /^[./~]/.test(source) ? 'bind' : 'volume';
      }
    } else {
      const m = entry as Mapping;
      type = String(m.type);
      source = m.source === undefined ? undefined : String(m.source);
      target = String(m.target ?? '');
      readOnly = m.read_only === true || m.read_only === 'true';
    }
    if (!target.startsWith('/')) throw invalidArgument(`${where}: the target "${target}" must be an absolute path in the container`);
    const normalizedTarget = posix.normalize(target).replace(/\/+$/, '') || '/';
    if (normalizedTarget === '/') throw invalidArgument(`${where}: cannot mount over /`);
    if (type === 'tmpfs') {
      warnings.push(`${where}: tmpfs mounts are ignored (the sandbox's own filesystem is used)`);
    } else if (type === 'volume') {
      if (source === undefined || source === '') {
        warnings.push(`${where}: an anonymous volume is part of the sandbox's own filesystem (not kept)`);
        return;
      }
      if (!declared.has(source)) throw invalidArgument(`${where}: volume "${source}" is not declared in the top-level volumes section`);
      out.push({ kind: 'volume', volume: source, target: normalizedTarget, readOnly });
    } else if (type === 'bind') {
      if (source === undefined) throw invalidArgument(`${where}: a bind mount needs a source`);
      out.push({ kind: 'copy', source: projectPath(source, where), target: normalizedTarget, readOnly });
    } else {
      throw invalidArgument(`${where}: mount type "${type}" is not supported (volume, bind or tmpfs)`);
    }
  });
  return out;
}

function source(service: Mapping, field: string): ServiceSource {
  if (service.build !== undefined) {
    const build = typeof service.build === 'string' ? { context: service.build } : (service.build as Mapping);
    const args: Record<string, string> = {};
    for (const [k, v] of Object.entries(keyValueMapping(build.args))) if (v !== null && v !== undefined) args[k] = String(v);
    return {
      kind: 'build',
      context: projectPath(String(build.context ?? '.'), `${field}.build.context`),
      dockerfile: String(build.dockerfile ?? 'Dockerfile'),
      args,
    };
  }
  if (typeof service.image === 'string' && service.image.trim() !== '') return { kind: 'image', image: service.image.trim() };
  throw invalidArgument(`${field}: needs an image or a build section`);
}

async function environment(service: Mapping, field: string, input: NormalizeInput): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const envFiles = service.env_file === undefined ? [] : Array.isArray(service.env_file) ? service.env_file : [service.env_file];
  for (const [i, entry] of envFiles.entries()) {
    const where = `${field}.env_file${Array.isArray(service.env_file) ? `[${i}]` : ''}`;
    const spec = typeof entry === 'string' ? { path: entry, required: true } : (entry as { path: string; required?: boolean });
    const path = projectPath(String(spec.path), where);
    const text = await input.readProjectFile(path);
    if (text === null) {
      if (spec.required === false) continue;
      throw invalidArgument(`${where}: the file "${spec.path}" does not exist in the project`);
    }
    Object.assign(out, input.parseEnvFile(text, where));
  }
  for (const [key, value] of Object.entries(keyValueMapping(service.environment))) {
    if (value === null || value === undefined) {
      // `- NAME` / `NAME:` without a value: taken from the variables, or left unset.
      const fromVariables = input.variables.get(key);
      if (fromVariables !== undefined) out[key] = fromVariables;
      else delete out[key];
    } else out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

function dependencies(service: Mapping): DependencySpec[] {
  return Object.entries(dependsOnMapping(service.depends_on)).map(([name, spec]) => {
    const s = (spec ?? {}) as Mapping;
    return {
      service: name,
      condition: (s.condition as DependencyCondition | undefined) ?? 'service_started',
      required: s.required !== false && s.required !== 'false',
    };
  });
}

/** Services in an order where each comes after everything it depends on; cycles are refused. */
function dependencyOrder(services: ServiceSpec[]): ServiceSpec[] {
  const byName = new Map(services.map((s) => [s.name, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const out: ServiceSpec[] = [];
  const visit = (s: ServiceSpec, path: string[]): void => {
    const st = state.get(s.name);
    if (st === 'done') return;
    if (st === 'visiting') throw invalidArgument(`services.${s.name}.depends_on: dependency cycle ${[...path, s.name].join(' → ')}`);
    state.set(s.name, 'visiting');
    for (const d of s.dependsOn) {
      const dep = byName.get(d.service);
      if (dep) visit(dep, [...path, s.name]);
    }
    state.set(s.name, 'done');
    out.push(s);
  };
  // Sorted by name first, so the order does not depend on the file's key order beyond dependencies.
  for (const s of [...services].sort((a, b) => a.name.localeCompare(b.name))) visit(s, []);
  return out;
}

/** DNS names: service names become host names on the environment's network. */
const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export async function normalizeCompose(input: NormalizeInput): Promise<EnvironmentModel> {
  const doc = input.document;
  const warnings: string[] = [];
  for (const [key, why] of Object.entries(TOP_LEVEL_REJECTED)) if (doc[key] !== undefined) throw invalidArgument(`${key}: ${why}`);
  if (doc.networks !== undefined) warnings.push('networks: ignored: all services share the environment’s one private network');
  if (doc.secrets !== undefined || doc.configs !== undefined) warnings.push('secrets, configs: not supported yet: ignored');
  const settings = parseEnvironmentXHutch(doc['x-hutch']);

  const volumes: VolumeSpec[] = [];
  for (const [name, raw] of Object.entries((doc.volumes ?? {}) as Mapping)) {
    const v = (raw ?? {}) as Mapping;
    if (v.driver !== undefined && v.driver !== 'local') throw invalidArgument(`volumes.${name}.driver: only the local driver is supported`);
    if (v.driver_opts !== undefined) throw invalidArgument(`volumes.${name}.driver_opts: not supported`);
    const external = v.external === true || v.external === 'true' ? String(v.name ?? name) : null;
    const size = (v['x-hutch'] as Mapping | undefined)?.sizeMiB;
    volumes.push({ name, external, sizeMiB: size === undefined ? null : integer(size, `volumes.${name}.x-hutch.sizeMiB`, 16, 1_048_576) });
  }
  const declared = new Set(volumes.map((v) => v.name));

  const all: ServiceSpec[] = [];
  for (const [name, raw] of Object.entries((doc.services ?? {}) as Mapping)) {
    const field = `services.${name}`;
    if (!SERVICE_NAME.test(name))
      throw invalidArgument(`${field}: the service name must be a DNS label (a-z, 0-9, "-"; at most 63) to be reachable by name`);
    const service = (raw ?? {}) as Mapping;
    for (const [key, why] of Object.entries(REJECTED)) {
      const value = service[key];
      if (value === undefined || value === null || value === false || (Array.isArray(value) && value.length === 0)) continue;
      throw invalidArgument(`${field}.${key}: ${why}`);
    }
    for (const [key, why] of Object.entries(IGNORED)) if (service[key] !== undefined) warnings.push(`${field}.${key}: ${why}`);
    const x = parseServiceXHutch(service['x-hutch'], name);
    const restart = service.restart === undefined ? null : String(service.restart);
    const routes = [...portRoutes(service.ports, `${field}.ports`, warnings)];
    if (Array.isArray(service.expose))
      service.expose.forEach((e, i) => routes.push(...portRange(String(e).split('/')[0]!, `${field}.expose[${i}]`)));
    const uniqueRoutes = [...new Set(x.routes ?? routes)].sort((a, b) => a - b);
    if (uniqueRoutes.length > MAX_ROUTES_PER_SERVICE)
      throw invalidArgument(`${field}.ports: at most ${MAX_ROUTES_PER_SERVICE} routes per service`);
    all.push({
      name,
      source: source(service, field),
      entrypoint: command(service.entrypoint, `${field}.entrypoint`),
      command: command(service.command, `${field}.command`),
      environment: await environment(service, field, input),
      dependsOn: dependencies(service),
      healthcheck: healthcheck(service.healthcheck, `${field}.healthcheck`),
      routes: uniqueRoutes,
      mounts: mounts(service.volumes, `${field}.volumes`, declared, warnings),
      job: restart === 'no',
      workingDir: service.working_dir === undefined ? null : String(service.working_dir),
      user: service.user === undefined ? null : String(service.user),
      profiles: Array.isArray(service.profiles) ? service.profiles.map(String) : [],
      settings: {
        template: x.template ?? null,
        egress: x.egress ?? 'none',
        public: x.public ?? false,
        cpu: x.cpu ?? null,
        memoryMiB: x.memoryMiB ?? null,
        diskMiB: x.diskMiB ?? null,
      },
    });
  }
  if (all.length === 0) throw invalidArgument('services: the project defines no services');

  const enabled = new Set(input.profiles);
  const active = all.filter((s) => s.profiles.length === 0 || s.profiles.some((p) => enabled.has(p)));
  if (active.length === 0) throw invalidArgument(`services: no service is active with profiles [${input.profiles.join(', ')}]`);
  const activeNames = new Set(active.map((s) => s.name));
  const allNames = new Set(all.map((s) => s.name));
  for (const s of active) {
    s.dependsOn = s.dependsOn.filter((d) => {
      if (activeNames.has(d.service)) return true;
      if (!d.required) return false;
      const why = allNames.has(d.service)
        ? `is not active (enable its profile: ${all.find((a) => a.name === d.service)!.profiles.join(', ')})`
        : 'is not defined';
      throw invalidArgument(`services.${s.name}.depends_on.${d.service}: service "${d.service}" ${why}`);
    });
  }
  return {
    name: typeof doc.name === 'string' ? doc.name : null,
    services: dependencyOrder(active),
    order: active.map((s) => s.name),
    volumes: volumes.filter((v) => active.some((s) => s.mounts.some((m) => m.kind === 'volume' && m.volume === v.name))),
    settings,
    warnings,
    files: input.files,
  };
}
