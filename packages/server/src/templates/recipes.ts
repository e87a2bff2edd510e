import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Recipes of the templates that ship. A template's layer is addressed by the digest of its
 * recipe's inputs (the recipe itself plus the bytes of any host file it copies), so a layer is
 * rebuilt exactly when its recipe changes.
 */
export interface TemplateRecipe {
  name: string;
  description: string;
  /** User processes run as when the caller names none. */
  defaultUser: string;
  /** Everything that determines the layer's content. Bump `revision` when the build code changes. */
  inputs: Record<string, unknown>;
  /** A template whose layers sit below this one's (this layer then holds only what it adds). */
  parent?: string;
  /** Files added to the layer: where each comes from (its digest and mode are in `inputs.files`). */
  files?: Record<string, string>;
  /** Started in the background when a sandbox starts; `readyPort` is awaited before it is `running`. */
  start?: { cmd: string; readyPort?: number };
}

/** Files a template adds on top of its parent: path in the sandbox → source file in this package. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HTTPBIN_SCRIPT = join(PACKAGE_ROOT, 'src/templates/files/hutch-httpbin.py');
export const POSTGRES_ENTRYPOINT = join(PACKAGE_ROOT, 'src/templates/files/hutch-postgres-entrypoint.sh');
export const REDIS_ENTRYPOINT = join(PACKAGE_ROOT, 'src/templates/files/hutch-redis-entrypoint.sh');

export const BASE_PACKAGES = ['bash', 'coreutils', 'python3', 'nodejs', 'git', 'curl', 'ca-certificates', 'procps'];

export const BUSYBOX_PATH = '/bin/busybox';

/**
 * A Debian bookworm template (debootstrap, minbase) with `packages`, files added from this
 * package, and `setup` commands run in a chroot afterwards (as root, before ownership is shifted
 * into the sandbox range), e.g. creating the directories a service's user must own.
 */
function debianService(options: {
  name: string;
  description: string;
  defaultUser: string;
  packages: string[];
  files: Record<string, string>;
  setup: string[];
}): TemplateRecipe {
  const files: Record<string, { digest: string; mode: number }> = {};
  for (const [dest, source] of Object.entries(options.files)) files[dest] = { digest: fileDigest(source), mode: 0o755 };
  return {
    name: options.name,
    description: options.description,
    defaultUser: options.defaultUser,
    inputs: {
      revision: 1,
      kind: 'debootstrap',
      suite: 'bookworm',
      variant: 'minbase',
      packages: options.packages,
      files,
      setup: options.setup,
    },
    files: options.files,
  };
}

function fileDigest(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'missing';
  }
}

export function shippedRecipes(): TemplateRecipe[] {
  const base: TemplateRecipe = {
    name: 'base',
    description: 'Debian bookworm with bash, coreutils, python3, nodejs, git, curl, ca-certificates, procps; user "user" (uid 1000)',
    defaultUser: 'user',
    inputs: {
      revision: 1,
      kind: 'debootstrap',
      suite: 'bookworm',
      variant: 'minbase',
      packages: BASE_PACKAGES,
      user: { name: 'user', uid: 1000 },
    },
  };
  return [
    {
      name: 'minimal',
      description: 'busybox (static); for tests and tiny jobs',
      defaultUser: 'root',
      inputs: { revision: 1, kind: 'busybox', busybox: fileDigest(BUSYBOX_PATH) },
    },
    base,
    {
      name: 'httpbin',
      description: 'base plus an httpbin-style HTTP echo server started on port 8080 (/anything, /get, /post, /status/<code>, /headers)',
      defaultUser: 'user',
      parent: 'base',
      inputs: {
        revision: 1,
        kind: 'files',
        parent: recipeDigest(base),
        files: { '/usr/local/bin/hutch-httpbin': { digest: fileDigest(HTTPBIN_SCRIPT), mode: 0o755 } },
      },
      files: { '/usr/local/bin/hutch-httpbin': HTTPBIN_SCRIPT },
      start: { cmd: 'exec /usr/local/bin/hutch-httpbin 8080', readyPort: 8080 },
    },
    // Templates behind the environment image catalog (environments/image-catalog.ts), which holds
    // their runtime contract (entrypoint, env, user, ports, volumes, healthcheck).
    debianService({
      name: 'postgres-15',
      description: "PostgreSQL 15 (Debian bookworm's postgresql-15) with the postgres image's entrypoint contract; user postgres",
      defaultUser: 'postgres',
      packages: ['postgresql-15'],
      files: { '/usr/local/bin/hutch-postgres-entrypoint': POSTGRES_ENTRYPOINT },
      setup: [
        // No cluster of Debian's own: the entrypoint runs initdb on first start, as the image does.
        'rm -rf /var/lib/postgresql/15/main /etc/postgresql/15/main',
        'install -d -o postgres -g postgres -m 0755 /var/lib/postgresql/data /docker-entrypoint-initdb.d',
        'install -d -o postgres -g postgres -m 2775 /run/postgresql',
      ],
    }),
    debianService({
      name: 'redis-7',
      description: "Redis 7.0 (Debian bookworm's redis-server) with the redis image's entrypoint contract; user redis, data in /data",
      defaultUser: 'redis',
      packages: ['redis-server'],
      files: { '/usr/local/bin/hutch-redis-entrypoint': REDIS_ENTRYPOINT },
      setup: ['install -d -o redis -g redis -m 0755 /data'],
    }),
  ];
}

export function recipeDigest(recipe: TemplateRecipe): string {
  const canonical = JSON.stringify({ name: recipe.name, defaultUser: recipe.defaultUser, inputs: recipe.inputs });
  return createHash('sha256').update(canonical).digest('hex');
}
