import { invalidArgument } from '../core/errors.js';

/**
 * Compose variable interpolation (the Compose Specification's "Interpolation" section), applied to
 * every string value of a parsed Compose file (never to keys) before it is validated:
 *
 *   $VAR  ${VAR}              the value, or "" (with a warning) when unset
 *   ${VAR:-default}           default when unset or empty;  ${VAR-default}: only when unset
 *   ${VAR:?message}           an error when unset or empty; ${VAR?message}: only when unset
 *   ${VAR:+replacement}       replacement when set and non-empty; ${VAR+replacement}: when set
 *   $$                        a literal $
 *
 * Defaults, messages and replacements are themselves interpolated (`${A:-${B}}`). Written by
 * hand: the npm expanders we know (dotenv-expand, envsub) do not implement Compose's `?`, `+`,
 * `$$` and unset-versus-empty rules, and the result must match `docker compose config`.
 */
export type Variables = ReadonlyMap<string, string>;

export interface InterpolationContext {
  variables: Variables;
  /** Where the string is (e.g. `services.db.environment.PGPASSWORD`), for messages. */
  path: string;
  /** Called once per variable that was unset and had no default. */
  onMissing: (name: string, path: string) => void;
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

export function interpolateString(text: string, ctx: InterpolationContext): string {
  if (!text.includes('$')) return text;
  const [value, end] = parse(text, 0, ctx, null);
  if (end !== text.length) throw invalidArgument(`${ctx.path}: invalid interpolation format in "${text}"`);
  return value;
}

/**
 * Parses from `start` until the end of the text or, inside a `${…}` modifier, its closing `}`
 * (`closer`). Returns the expanded text and the index just past what was consumed.
 */
function parse(text: string, start: number, ctx: InterpolationContext, closer: '}' | null): [string, number] {
  let out = '';
  let i = start;
  while (i < text.length) {
    const ch = text[i]!;
    if (closer && ch === '}') return [out, i];
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '{') {
      const [value, end] = braced(text, i + 2, ctx);
      out += value;
      i = end;
    } else if (next !== undefined && NAME_START.test(next)) {
      let j = i + 1;
      while (j < text.length && NAME_CHAR.test(text[j]!)) j++;
      out += lookup(text.slice(i + 1, j), ctx);
      i = j;
    } else {
      // A lone `$` (end of string, before a space or punctuation) stays as written, as Compose does.
      out += '$';
      i++;
    }
  }
  if (closer) throw invalidArgument(`${ctx.path}: invalid interpolation format in "${text}": a "\${" is not closed`);
  return [out, i];
}

/** `${NAME…}` starting just after the `${`; returns the value and the index past the `}`. */
function braced(text: string, start: number, ctx: InterpolationContext): [string, number] {
  let j = start;
  if (!NAME_START.test(text[j] ?? '')) throw invalidArgument(`${ctx.path}: invalid interpolation format in "${text}": bad variable name`);
  while (j < text.length && NAME_CHAR.test(text[j]!)) j++;
  const name = text.slice(start, j);
  const set = ctx.variables.has(name);
  const value = ctx.variables.get(name) ?? '';
  if (text[j] === '}') return [lookup(name, ctx), j + 1];
  const colon = text[j] === ':';
  const op = text[colon ? j + 1 : j];
  if (op !== '-' && op !== '?' && op !== '+')
    throw invalidArgument(`${ctx.path}: invalid interpolation format in "${text}": unknown modifier after \${${name}`);
  const argStart = j + (colon ? 2 : 1);
  // The argument is interpolated lazily: a default is only expanded when it is used.
  const argument = (): [string, number] => parse(text, argStart, ctx, '}');
  const present = colon ? set && value !== '' : set;
  let result: string;
  let end: number;
  if (op === '-') {
    if (present) {
      end = skipArgument(text, argStart, ctx);
      result = value;
    } else [result, end] = argument();
  } else if (op === '+') {
    if (present) [result, end] = argument();
    else {
      end = skipArgument(text, argStart, ctx);
      result = '';
    }
  } else {
    if (!present) {
      const [message] = argument();
      throw invalidArgument(`${ctx.path}: required variable ${name} is missing a value${message ? `: ${message}` : ''}`);
    }
    end = skipArgument(text, argStart, ctx);
    result = value;
  }
  return [result, end + 1];
}

/** Finds the `}` closing a modifier argument without expanding it (nested `${…}` counted). */
function skipArgument(text: string, start: number, ctx: InterpolationContext): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (ch === '$' && text[i + 1] === '$') i++;
    else if (ch === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (ch === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  throw invalidArgument(`${ctx.path}: invalid interpolation format in "${text}": a "\${" is not closed`);
}

function lookup(name: string, ctx: InterpolationContext): string {
  const value = ctx.variables.get(name);
  if (value === undefined) {
    ctx.onMissing(name, ctx.path);
    return '';
  }
  return value;
}

/**
 * Interpolates every string value of a parsed YAML tree (keys are left alone, as in Compose).
 * Extension fields (`x-…`) are interpolated too: Compose does, and `x-hutch` settings may use
 * variables such as PREVIEW_PR_NUMBER.
 */
export function interpolateTree(node: unknown, variables: Variables, onMissing: (name: string, path: string) => void, path = ''): unknown {
  if (typeof node === 'string') return interpolateString(node, { variables, path: path || '(root)', onMissing });
  if (Array.isArray(node)) return node.map((item, i) => interpolateTree(item, variables, onMissing, `${path}[${i}]`));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = interpolateTree(value, variables, onMissing, path ? `${path}.${key}` : key);
    return out;
  }
  return node;
}
