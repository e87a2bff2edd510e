import type { Hutch } from '@hutch/sdk';
import { bytes, json, relativeTime, table } from '../format.js';

/** `hutch template ls`. */
export async function templateList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const templates = await hutch.templates.list();
  if (opts.json) {
    process.stdout.write(json(templates));
    return 0;
  }
  const rows = [['NAME', 'STATE', 'DEFAULT USER', 'SIZE', 'BUILT', 'DIGEST']];
  for (const t of templates) {
    rows.push([
      t.name,
      t.state ?? '-',
      t.defaultUser ?? '-',
      bytes(t.sizeBytes),
      relativeTime(t.builtAt),
      (t.digest ?? '-').replace(/^sha256:/, '').slice(0, 12),
    ]);
  }
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch template build`: builds missing template layers locally, with progress on stderr. */
export async function templateBuild(opts: { names: string[]; layersDir: string; json: boolean }): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('template build must run as root (it chowns layers into the sandbox uid range)');
  const { buildTemplates } = await import('@hutch/server');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(opts.layersDir, { recursive: true });
  const built = await buildTemplates(opts.layersDir, opts.names, (message) => process.stderr.write(`${message}\n`));
  if (opts.json) process.stdout.write(json(built));
  return 0;
}

/** `hutch template export <name> --oci out.tar`: the image reference on stdout, progress on stderr. */
export async function templateExport(opts: {
  name: string;
  out: string;
  layersDir: string;
  repository?: string;
  agentBinary?: string;
  json: boolean;
}): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('template export must run as root (template layers are readable by root only)');
  const { exportTemplateOci, defaultAgentBinary } = await import('@hutch/server');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(opts.layersDir, { recursive: true });
  const result = await exportTemplateOci({
    layersDir: opts.layersDir,
    name: opts.name,
    out: opts.out,
    agentBinary: opts.agentBinary ?? defaultAgentBinary(),
    ...(opts.repository ? { repository: opts.repository } : {}),
    progress: (message) => process.stderr.write(`${message}\n`),
  });
  if (opts.json) process.stdout.write(json(result));
  else {
    process.stdout.write(`${result.ref}\n`);
    process.stderr.write(`wrote ${result.path}: ${result.layers} layers, ${bytes(result.sizeBytes)}\n`);
  }
  return 0;
}
