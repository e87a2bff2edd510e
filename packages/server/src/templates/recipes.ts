import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

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
}

export const BASE_PACKAGES = ['bash', 'coreutils', 'python3', 'nodejs', 'git', 'curl', 'ca-certificates', 'procps'];

export const BUSYBOX_PATH = '/bin/busybox';

function fileDigest(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'missing';
  }
}

export function shippedRecipes(): TemplateRecipe[] {
  return [
    {
      name: 'minimal',
      description: 'busybox (static); for tests and tiny jobs',
      defaultUser: 'root',
      inputs: { revision: 1, kind: 'busybox', busybox: fileDigest(BUSYBOX_PATH) },
    },
    {
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
    },
  ];
}

export function recipeDigest(recipe: TemplateRecipe): string {
  const canonical = JSON.stringify({ name: recipe.name, defaultUser: recipe.defaultUser, inputs: recipe.inputs });
  return createHash('sha256').update(canonical).digest('hex');
}
