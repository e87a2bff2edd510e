/**
 * Merging a Compose override file (compose.preview.yaml) onto the main file, following the
 * Compose Specification's merge rules for the fields Hutch reads (docs: "Merge and override"):
 * - mappings merge recursively, scalars of the override win;
 * - `command`, `entrypoint` and `healthcheck.test` are replaced as a whole;
 * - `environment`, `labels`, `build.args` and `depends_on` merge by key (list forms are
 *   turned into mappings first, so a list can be merged with a mapping);
 * - `ports` and `expose` are unions; `volumes` of a service merge by target path; `env_file`
 *   and `profiles` are appended without duplicates; other sequences are appended.
 * Written by hand (a small table over a generic deep merge): the rules are Compose's own and no
 * npm merge utility knows them.
 */
type Node = unknown;
type Mapping = Record<string, Node>;

const isMapping = (n: Node): n is Mapping => n !== null && typeof n === 'object' && !Array.isArray(n);

/** `["A=1", "B"]` → `{A: "1", B: null}`; a mapping is returned as is. */
export function keyValueMapping(node: Node): Mapping {
  if (isMapping(node)) return node;
  if (!Array.isArray(node)) return {};
  const out: Mapping = {};
  for (const item of node) {
    const text = String(item);
    const eq = text.indexOf('=');
    if (eq === -1) out[text] = null;
    else out[text.slice(0, eq)] = text.slice(eq + 1);
  }
  return out;
}

/** `depends_on: [a, b]` → `{a: {condition: service_started}, …}`. */
export function dependsOnMapping(node: Node): Mapping {
  if (isMapping(node)) return node;
  if (!Array.isArray(node)) return {};
  const out: Mapping = {};
  for (const name of node) out[String(name)] = { condition: 'service_started' };
  return out;
}

/** The target path of a service volume in short (`src:/target[:mode]`) or long form. */
function volumeTarget(entry: Node): string {
  if (isMapping(entry)) return String(entry.target ?? '');
  const parts = String(entry).split(':');
  return parts.length === 1 ? parts[0]! : parts[1]!;
}

const REPLACED = new Set(['command', 'entrypoint']);
const BY_KEY = new Set(['environment', 'labels', 'annotations', 'sysctls']);
const UNION = new Set(['ports', 'expose', 'env_file', 'profiles', 'dns', 'dns_search', 'tmpfs', 'cap_drop']);

function union(base: Node[], override: Node[]): Node[] {
  const seen = new Set(base.map((v) => JSON.stringify(v)));
  return [...base, ...override.filter((v) => !seen.has(JSON.stringify(v)))];
}

function mergeService(base: Mapping, override: Mapping): Mapping {
  const out: Mapping = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    if (current === undefined || REPLACED.has(key)) out[key] = value;
    else if (BY_KEY.has(key)) out[key] = { ...keyValueMapping(current), ...keyValueMapping(value) };
    else if (key === 'depends_on') out[key] = mergeMappings(dependsOnMapping(current), dependsOnMapping(value));
    else if (UNION.has(key)) out[key] = union(toList(current), toList(value));
    else if (key === 'volumes' && Array.isArray(current) && Array.isArray(value)) {
      const byTarget = new Map(current.map((v) => [volumeTarget(v), v]));
      for (const v of value) byTarget.set(volumeTarget(v), v);
      out[key] = [...byTarget.values()];
    } else if (key === 'healthcheck' && isMapping(current) && isMapping(value)) out[key] = { ...current, ...value };
    else if (key === 'build' && isMapping(current) && isMapping(value))
      out[key] = {
        ...current,
        ...value,
        ...(current.args !== undefined || value.args !== undefined
          ? { args: { ...keyValueMapping(current.args), ...keyValueMapping(value.args) } }
          : {}),
      };
    else out[key] = merge(current, value);
  }
  return out;
}

function toList(node: Node): Node[] {
  return Array.isArray(node) ? node : node === undefined || node === null ? [] : [node];
}

function mergeMappings(base: Mapping, override: Mapping): Mapping {
  const out: Mapping = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = key in out ? merge(out[key], value) : value;
  return out;
}

function merge(base: Node, override: Node): Node {
  if (isMapping(base) && isMapping(override)) return mergeMappings(base, override);
  if (Array.isArray(base) && Array.isArray(override)) return [...base, ...override];
  return override;
}

/** Merges a whole override document onto a base document (both already parsed and validated). */
export function mergeComposeDocuments(base: Mapping, override: Mapping): Mapping {
  const out: Mapping = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (key === 'services' && isMapping(out.services) && isMapping(value)) {
      const services: Mapping = { ...out.services };
      for (const [name, service] of Object.entries(value)) {
        const current = services[name];
        services[name] = isMapping(current) && isMapping(service) ? mergeService(current, service) : service;
      }
      out.services = services;
    } else out[key] = key in out ? merge(out[key], value) : value;
  }
  return out;
}
