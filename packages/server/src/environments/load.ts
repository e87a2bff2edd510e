import { readFile, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { parseDocument } from 'yaml';
import { invalidArgument } from '../core/errors.js';
import { mergeComposeDocuments } from './compose-merge.js';
import { validateCompose } from './compose-schema.js';
import { interpolateString, interpolateTree } from './interpolate.js';
import type { EnvironmentModel } from './model.js';
import { normalizeCompose } from './normalize.js';

/**
 * Loads a Compose project from a directory (a checkout or an extracted upload):
 *   1. the main file: compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml (the
 *      first that exists, as `docker compose` picks them), then compose.preview.yaml (or .yml)
 *      when present, merged on top with Compose's merge rules;
 *   2. each file is parsed (YAML 1.2, anchors and merge keys), interpolated and validated against
 *      the Compose Specification schema;
 *   3. the merged document is normalized into the Hutch environment model.
 * Variables come from the caller (the PREVIEW_* values and the request's own) over the project's
 * `.env` file — never from the server's own environment.
 */
export const MAIN_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];
export const PREVIEW_FILES = ['compose.preview.yaml', 'compose.preview.yml'];
const MAX_FILE_BYTES = 1024 * 1024;

export interface LoadOptions {
  /** The project directory. */
  dir: string;
  /**
   * Interpolation variables; they win over the project's .env file. A function gets the names of
   * the services the files declare (before interpolation): per-service values such as
   * PREVIEW_URL_<SERVICE> can be computed for them.
   */
  variables?: Record<string, string> | ((services: string[]) => Record<string, string>);
  /** Compose profiles to enable. */
  profiles?: string[];
}

/** Reads a file inside the project; null when absent. Refuses paths that resolve outside it (symlinks). */
async function readInside(root: string, rel: string): Promise<string | null> {
  let real: string;
  try {
    real = await realpath(join(root, rel));
  } catch {
    return null;
  }
  if (real !== root && !real.startsWith(root + sep)) throw invalidArgument(`${rel}: resolves outside the project directory`);
  const text = await readFile(real).catch(() => null);
  if (text === null) return null;
  if (text.length > MAX_FILE_BYTES) throw invalidArgument(`${rel}: larger than ${MAX_FILE_BYTES / 1024} KiB`);
  return text.toString('utf8');
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function parseYaml(text: string, file: string): Record<string, unknown> {
  const doc = parseDocument(text, { merge: true, prettyErrors: true, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) throw invalidArgument(`${file}: ${error.message.split('\n')[0]}`);
  const value = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(`${file}: must be a YAML mapping`);
  return value as Record<string, unknown>;
}

/** Parses an env file (the .env / env_file format; values are interpolated like Compose does). */
export function envFileParser(variables: ReadonlyMap<string, string>, warnings: string[]) {
  return (text: string, where: string): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(parseDotenv(text))) {
      out[key] = interpolateString(value, {
        variables,
        path: `${where} ${key}`,
        onMissing: (name) => warnings.push(`${where}: variable ${name} is not set; using an empty string`),
      });
    }
    return out;
  };
}

export async function loadComposeProject(options: LoadOptions): Promise<EnvironmentModel> {
  const root = await realpath(options.dir);
  const warnings: string[] = [];
  let main: string | null = null;
  let mainText: string | null = null;
  for (const name of MAIN_FILES) {
    mainText = await readInside(root, name);
    if (mainText !== null) {
      main = name;
      break;
    }
  }
  if (main === null || mainText === null)
    throw invalidArgument(`no Compose file in the project (looked for ${MAIN_FILES.join(', ')} at its root)`);
  const files = [main];
  const texts = [mainText];
  for (const name of PREVIEW_FILES) {
    const text = await readInside(root, name);
    if (text !== null) {
      files.push(name);
      texts.push(text);
      break;
    }
  }

  const parsed = files.map((file, i) => parseYaml(texts[i]!, file));
  const declared = [...new Set(parsed.flatMap((doc) => Object.keys(isMapping(doc.services) ? doc.services : {})))];
  const dotenv = await readInside(root, '.env');
  const variables = new Map<string, string>(Object.entries(dotenv ? parseDotenv(dotenv) : {}));
  const given = typeof options.variables === 'function' ? options.variables(declared) : (options.variables ?? {});
  for (const [k, v] of Object.entries(given)) variables.set(k, v);

  const missing = new Set<string>();
  let document: Record<string, unknown> = {};
  for (const [i, file] of files.entries()) {
    const interpolated = interpolateTree(parsed[i], variables, (name) => missing.add(name)) as Record<string, unknown>;
    validateCompose(interpolated, file);
    document = i === 0 ? interpolated : mergeComposeDocuments(document, interpolated);
  }
  for (const name of missing) warnings.push(`variable ${name} is not set; using an empty string`);

  const model = await normalizeCompose({
    document,
    files,
    profiles: options.profiles ?? [],
    variables,
    readProjectFile: (rel) => readInside(root, rel),
    parseEnvFile: envFileParser(variables, warnings),
  });
  model.warnings.unshift(...warnings);
  return model;
}
