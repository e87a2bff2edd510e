import type { ResolvedTemplate, TemplateCatalog, TemplateInfo } from '../core/templates.js';
import { HutchError } from '../core/errors.js';
import { buildLayer, readLayer, type Progress, type TemplateLayer } from './builder.js';
import { recipeDigest, shippedRecipes, type TemplateRecipe } from './recipes.js';

/**
 * The shipped templates over a layers directory. Builds are deduplicated: concurrent resolves of a
 * template that is building wait for the same build.
 */
export class LocalTemplateCatalog implements TemplateCatalog {
  private readonly recipes = new Map<string, TemplateRecipe>(shippedRecipes().map((r) => [r.name, r]));
  private readonly builds = new Map<string, Promise<TemplateLayer>>();
  private readonly failures = new Map<string, string>();

  constructor(
    private readonly layersDir: string,
    private readonly progress: Progress,
  ) {}

  names(): string[] {
    return [...this.recipes.keys()];
  }

  async list(): Promise<TemplateInfo[]> {
    const out: TemplateInfo[] = [];
    for (const recipe of this.recipes.values()) {
      const layer = await readLayer(this.layersDir, recipe);
      const info: TemplateInfo = {
        name: recipe.name,
        description: recipe.description,
        digest: recipeDigest(recipe),
        state: layer ? 'ready' : this.builds.has(recipe.name) ? 'building' : this.failures.has(recipe.name) ? 'error' : 'missing',
        defaultUser: recipe.defaultUser,
        sizeBytes: layer?.sizeBytes ?? null,
        builtAt: layer?.builtAt ?? null,
      };
      const failure = this.failures.get(recipe.name);
      if (failure && !layer) info.error = failure;
      out.push(info);
    }
    return out;
  }

  /** Builds one template (or all) if missing; used at server start and by `hutch template build`. */
  build(name: string): Promise<TemplateLayer> {
    const recipe = this.recipes.get(name);
    if (!recipe) return Promise.reject(new HutchError('not_found', `unknown template "${name}"`));
    let pending = this.builds.get(name);
    if (!pending) {
      pending = buildLayer(this.layersDir, recipe, this.progress)
        .then((layer) => {
          this.failures.delete(name);
          return layer;
        })
        .catch((err: unknown) => {
          this.failures.set(name, (err as Error).message);
          throw err;
        })
        .finally(() => this.builds.delete(name));
      this.builds.set(name, pending);
    }
    return pending;
  }

  async resolve(name: string): Promise<ResolvedTemplate | null> {
    const recipe = this.recipes.get(name);
    if (!recipe) return null;
    // A parent is resolved (built if needed) first: its layers go below this one's.
    const parent = recipe.parent ? await this.resolve(recipe.parent) : null;
    if (recipe.parent && !parent) throw new HutchError('internal', `template ${name}: its parent ${recipe.parent} is unknown`);
    const layer = (await readLayer(this.layersDir, recipe)) ?? (await this.build(name));
    return {
      name,
      digest: layer.digest,
      rootfs: layer.rootfs,
      layers: [layer.rootfs, ...(parent?.layers ?? [])],
      defaultUser: layer.defaultUser,
      ...(recipe.start ? { start: recipe.start } : {}),
    };
  }
}
