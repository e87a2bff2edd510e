import { HutchError } from '../core/errors.js';
import { LocalTemplateCatalog } from './catalog.js';
import { writeOciArchive } from './oci-image.js';

/**
 * `hutch template export <name> --oci out.tar`: the template's layers (built first if missing) and
 * the agent as an OCI image-layout tarball, with the reference the Kubernetes provider expects.
 */
export async function exportTemplateOci(options: {
  layersDir: string;
  name: string;
  out: string;
  agentBinary: string;
  repository?: string;
  progress: (message: string) => void;
}): Promise<{ template: string; digest: string; ref: string; layers: number; sizeBytes: number; path: string }> {
  const catalog = new LocalTemplateCatalog(options.layersDir, options.progress);
  if (!catalog.names().includes(options.name))
    throw new HutchError('not_found', `unknown template "${options.name}" (templates: ${catalog.names().join(', ')})`);
  const template = await catalog.resolve(options.name);
  if (!template) throw new HutchError('not_found', `unknown template "${options.name}"`);
  const written = await writeOciArchive(
    { layers: template.layers, agentBinary: options.agentBinary, defaultUser: template.defaultUser },
    options.out,
    options.repository,
  );
  return { template: options.name, digest: template.digest, path: options.out, ...written };
}
