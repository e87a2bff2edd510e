import { LocalTemplateCatalog } from './catalog.js';
import type { TemplateInfo } from '../core/templates.js';

/** Builds the named (default: all shipped) templates into a layers dir, reporting progress. */
export async function buildTemplates(
  layersDir: string,
  names: string[] | undefined,
  progress: (message: string) => void,
): Promise<TemplateInfo[]> {
  const catalog = new LocalTemplateCatalog(layersDir, progress);
  const wanted = names && names.length > 0 ? names : catalog.names();
  for (const name of wanted) {
    const before = (await catalog.list()).find((t) => t.name === name);
    if (before?.state === 'ready') {
      progress(`template ${name}: ready (${before.digest.slice(0, 12)})`);
      continue;
    }
    await catalog.build(name);
  }
  return (await catalog.list()).filter((t) => wanted.includes(t.name));
}
