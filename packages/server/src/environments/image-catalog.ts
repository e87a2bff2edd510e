import { invalidArgument } from '../core/errors.js';
import type { HealthcheckSpec } from './model.js';

/**
 * The environment image catalog: which Hutch template stands in for an image reference of a
 * Compose file, and the image's runtime contract on it — entrypoint, default command, env, user,
 * working directory, ports, data volumes and a healthcheck — so that a service written for the
 * image behaves the same (POSTGRES_PASSWORD/USER/DB honoured, data under the same path, …).
 *
 * Versions are never changed silently: a reference matches an entry only when its tag names the
 * entry's version (`postgres:15`, `postgres:15.4`, `postgres:15-bookworm`, `python:3.11-slim`); a
 * missing tag, `latest`, another version or a digest is refused, naming what the catalog has. A
 * Compose file can map any image to a template explicitly with x-hutch (then no version check).
 */
export interface ImageContract {
  /** Docker Hub repository (official images without `library/`). */
  repository: string;
  /** The version the template provides, as tags spell it (major, or major.minor for python). */
  version: string;
  /** Other tags meaning the same version (Debian's code name). */
  aliases?: string[];
  template: string;
  /** null: none (the command runs as it is). */
  entrypoint: string[] | null;
  command: string[];
  env: Record<string, string>;
  /** The user processes run as (the image's USER, or the user its entrypoint switches to). */
  user: string;
  workingDir: string | null;
  ports: number[];
  /** Where the image keeps its data (its VOLUME). */
  volumes: string[];
  /** Used for `service_healthy` when the Compose file declares no healthcheck. */
  healthcheck: HealthcheckSpec | null;
}

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const quickCheck = (test: string[]): HealthcheckSpec => ({
  test,
  intervalMs: 1000,
  timeoutMs: 5000,
  retries: 120,
  startPeriodMs: 0,
  startIntervalMs: 1000,
});

export const IMAGE_CATALOG: readonly ImageContract[] = [
  {
    repository: 'postgres',
    version: '15',
    template: 'postgres-15',
    entrypoint: ['/usr/local/bin/hutch-postgres-entrypoint'],
    command: ['postgres'],
    // PGDATA is a directory below the data volume: the volume's own root is not the postgres
    // user's, and initdb needs a directory it owns (the image's documented advice for mounts).
    env: { PATH: `/usr/lib/postgresql/15/bin:${PATH}`, PGDATA: '/var/lib/postgresql/data/pgdata', LANG: 'C.UTF-8' },
    user: 'postgres',
    workingDir: null,
    ports: [5432],
    volumes: ['/var/lib/postgresql/data'],
    // TCP, not the socket: the entrypoint's temporary init server listens on the socket only.
    healthcheck: quickCheck(['/bin/sh', '-c', 'pg_isready -q -h 127.0.0.1 -p 5432']),
  },
  {
    repository: 'redis',
    version: '7',
    template: 'redis-7',
    entrypoint: ['/usr/local/bin/hutch-redis-entrypoint'],
    command: ['redis-server'],
    env: { PATH },
    user: 'redis',
    workingDir: '/data',
    ports: [6379],
    volumes: ['/data'],
    healthcheck: quickCheck(['/bin/sh', '-c', 'redis-cli -h 127.0.0.1 ping | grep -q PONG']),
  },
  // The `base` template (Debian bookworm) has Python 3.11, Node.js 18 and Debian 12 itself.
  {
    repository: 'python',
    version: '3.11',
    template: 'base',
    entrypoint: null,
    command: ['python3'],
    env: { PATH, LANG: 'C.UTF-8' },
    user: 'root',
    workingDir: null,
    ports: [],
    volumes: [],
    healthcheck: null,
  },
  {
    repository: 'node',
    version: '18',
    template: 'base',
    entrypoint: null,
    command: ['node'],
    env: { PATH },
    user: 'root',
    workingDir: null,
    ports: [],
    volumes: [],
    healthcheck: null,
  },
  {
    repository: 'debian',
    version: '12',
    aliases: ['bookworm'],
    template: 'base',
    entrypoint: null,
    command: ['bash'],
    env: { PATH },
    user: 'root',
    workingDir: null,
    ports: [],
    volumes: [],
    healthcheck: null,
  },
];

export interface ImageRef {
  /** Registry host, or null for Docker Hub. */
  registry: string | null;
  /** Repository path; Docker Hub's official images without `library/`. */
  repository: string;
  tag: string | null;
  digest: string | null;
}

/** Splits `[registry/]path[:tag][@digest]`, treating docker.io / index.docker.io and library/ as Docker Hub. */
export function parseImageRef(ref: string): ImageRef {
  let rest = ref.trim();
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  let registry: string | null = null;
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!)) registry = parts.shift()!;
  if (registry === 'docker.io' || registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = null;
  if (registry === null && parts.length === 2 && parts[0] === 'library') parts.shift();
  return { registry, repository: parts.join('/').toLowerCase(), tag, digest };
}

function catalogList(): string {
  return IMAGE_CATALOG.map((c) => `${c.repository}:${c.version} (template ${c.template})`).join(', ');
}

/** Whether a tag names the entry's version: `15`, `15.4`, `15-alpine`, `bookworm`, `3.11-slim-bookworm`. */
function tagMatches(tag: string, entry: ImageContract): boolean {
  const [head] = tag.split('-');
  if (head === undefined) return false;
  if (entry.aliases?.includes(head)) return true;
  return head === entry.version || head.startsWith(`${entry.version}.`);
}

/**
 * The catalog entry for an image reference. `field` names the place in the Compose file for
 * messages (e.g. `services.db.image`).
 */
export function catalogEntryFor(image: string, field: string): ImageContract {
  const ref = parseImageRef(image);
  const candidates = ref.registry === null ? IMAGE_CATALOG.filter((c) => c.repository === ref.repository) : [];
  const hint = `map it to a template with x-hutch (${field.replace(/\.image$/, '')}.x-hutch.template, or x-hutch.templates at the top level)`;
  if (candidates.length === 0) throw invalidArgument(`${field}: "${image}" is not in the template catalog (${catalogList()}); ${hint}`);
  if (ref.digest !== null)
    throw invalidArgument(
      `${field}: "${image}" pins a digest, which no catalog template can match; use a version tag (${candidates.map((c) => `${c.repository}:${c.version}`).join(', ')}) or ${hint}`,
    );
  const entry = ref.tag ? candidates.find((c) => tagMatches(ref.tag!, c)) : undefined;
  if (!entry) {
    const has = candidates.map((c) => `${c.repository}:${c.version} (template ${c.template})`).join(', ');
    const asked = ref.tag ? `version "${ref.tag}"` : 'no version (it would mean "latest")';
    throw invalidArgument(
      `${field}: "${image}" asks for ${asked}, and the catalog has ${has}; Hutch never changes a version silently: name that version, or ${hint}`,
    );
  }
  return entry;
}

/**
 * The contract of an explicitly chosen template (x-hutch): the catalog's entry for that template and
 * the image's repository; else the template's only entry (postgres-15, redis-7 whatever the image
 * is called); else none — a general template (base) runs the service's own command as its default user.
 */
export function contractForTemplate(template: string, image: string | null): ImageContract | null {
  const entries = IMAGE_CATALOG.filter((c) => c.template === template);
  const repository = image === null ? null : parseImageRef(image).repository;
  return entries.find((c) => c.repository === repository) ?? (entries.length === 1 ? entries[0]! : null);
}
