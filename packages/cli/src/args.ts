import { constants } from 'node:os';
import type { Command, OnTimeout, ProcessExit, SandboxState, SecretRef, VolumeMount } from '@hutch/sdk';
import type { CopyTarget } from './invocation.js';

/**
 * Pure helpers that turn argument strings into typed values. Each throws `ArgumentError` with a
 * message fit for `hutch: <message>` when the input is malformed.
 */

export class ArgumentError extends Error {}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const STATES: readonly SandboxState[] = ['creating', 'running', 'paused', 'stopped', 'error', 'deleted'];

/** `K=V` → [K, V]; the value may contain `=`; env names must be valid identifiers. */
export function parseKeyValue(text: string, what: 'env' | 'metadata' | 'label' | 'var'): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ArgumentError(`--${what} expects KEY=VALUE, got '${text}'`);
  const key = text.slice(0, eq);
  if ((what === 'env' || what === 'var') && !ENV_NAME.test(key)) {
    throw new ArgumentError(`--${what}: '${key}' is not a valid variable name (letters, digits, _; not starting with a digit)`);
  }
  return [key, text.slice(eq + 1)];
}

/** A number within [min, max]; `integer` rejects fractions. */
export function parseNumber(text: string, flag: string, min: number, max: number, integer: boolean): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new ArgumentError(`${flag} expects ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${text}'`);
  }
  return n;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A point in time for `--since`/`--until`: a duration back from now (`90s`, `15m`, `24h`, `7d`,
 * `2w`), a date (`2025-01-31`, UTC midnight) or an RFC 3339 time. Returned as RFC 3339.
 */
export function parseWhen(text: string, flag: string, now = Date.now()): string {
  const ago = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  if (ago) return new Date(now - Number(ago[1]) * UNIT_MS[ago[2]!]!).toISOString();
  const iso = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text;
  const ms = /^\d{4}-\d{2}-\d{2}[T ]/.test(iso) ? Date.parse(iso) : NaN;
  if (!Number.isFinite(ms))
    throw new ArgumentError(`${flag} expects a duration (30m, 24h, 7d) or a date/time (2025-01-31, 2025-01-31T12:00:00Z), got '${text}'`);
  return new Date(ms).toISOString();
}

/** `running,stopped` → ['running', 'stopped']. */
export function parseStates(text: string): SandboxState[] {
  return text.split(',').map((s) => {
    const state = s.trim() as SandboxState;
    if (!STATES.includes(state)) throw new ArgumentError(`--state: unknown state '${s}' (one of ${STATES.join(', ')})`);
    return state;
  });
}

/** The names `hutch volume create` accepts (the server's rule, checked here for a clear message). */
const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A volume name, or an error naming `flag`. */
export function parseVolumeName(text: string, flag = 'name'): string {
  if (!VOLUME_NAME.test(text)) {
    throw new ArgumentError(`${flag}: '${text}' is not a volume name (1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit)`);
  }
  return text;
}

/** `--volume NAME:/PATH[:ro|:rw]` → a mount; the path must be absolute and not `/`. */
export function parseVolumeMount(text: string): VolumeMount {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ArgumentError(`--volume expects NAME:/PATH[:ro], got '${text}'`);
  const name = parseVolumeName(text.slice(0, colon), '--volume');
  let path = text.slice(colon + 1);
  let readOnly = false;
  const mode = /:(ro|rw)$/.exec(path);
  if (mode) {
    readOnly = mode[1] === 'ro';
    path = path.slice(0, -3);
  }
  if (!path.startsWith('/') || path.length < 2) {
    throw new ArgumentError(`--volume: the mount path must be absolute and not '/' (NAME:/PATH[:ro]), got '${text}'`);
  }
  return readOnly ? { name, path, readOnly: true } : { name, path };
}

/** Sandbox ids: 20 characters of a-z0-9 (never a word like `ls` or `rm`). */
const SANDBOX_ID = /^[a-z0-9]{20}$/;

/**
 * A sandbox id where a word could also be a subcommand (`hutch snapshot <id>` next to `hutch
 * snapshot ls`): anything that is not an id is reported as neither, naming the subcommands.
 */
export function parseSandboxIdOrVerb(text: string, command: string, verbs: readonly string[]): string {
  if (!SANDBOX_ID.test(text)) {
    throw new ArgumentError(
      `${command}: '${text}' is neither a sandbox id (20 characters of a-z, 0-9) nor a subcommand (${verbs.join(', ')})`,
    );
  }
  return text;
}

/** `--on-timeout delete|pause`. */
export function parseOnTimeout(text: string): OnTimeout {
  if (text !== 'delete' && text !== 'pause') throw new ArgumentError(`--on-timeout: '${text}' is not delete or pause`);
  return text;
}

/** The words after `--`: one word is a shell command line, several are argv. */
export function commandFromWords(words: string[]): Command {
  if (words.length === 0) throw new ArgumentError('no command given; put it after --, e.g. `-- ls -la`');
  return words.length === 1 ? words[0]! : words;
}

/**
 * One side of `hutch cp`: `-` is stdin/stdout, `<id>:<path>` is inside a sandbox (the part before
 * the first `:` has no `/`, like `docker cp`), anything else is a local path (write `./a:b` for a
 * local name containing a colon).
 */
export function parseCopyTarget(text: string): CopyTarget {
  if (text === '-') return { kind: 'stdio' };
  const colon = text.indexOf(':');
  if (colon > 0) {
    const id = text.slice(0, colon);
    if (/^[A-Za-z0-9_-]+$/.test(id)) {
      const path = text.slice(colon + 1);
      if (path === '') throw new ArgumentError(`'${text}': missing path after '${id}:'`);
      return { kind: 'sandbox', id, path };
    }
  }
  if (text === '') throw new ArgumentError('empty path');
  return { kind: 'local', path: text };
}

/** The exit status the CLI reports for a process: its code, 128+n for a signal, 124 on timeout. */
export function exitStatus(exit: ProcessExit): number {
  if (exit.timedOut) return 124;
  if (exit.signal) {
    const n = (constants.signals as Record<string, number>)[exit.signal];
    return 128 + (n ?? 15);
  }
  if (exit.exitCode < 0) return 1;
  return exit.exitCode > 255 ? 255 : exit.exitCode;
}

/** The secret names the server accepts (checked here for a clear message). */
const SECRET_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** A secret name, or an error naming `flag`. */
export function parseSecretName(text: string, flag = 'name'): string {
  if (!SECRET_NAME.test(text))
    throw new ArgumentError(`${flag}: '${text}' is not a secret name (1-64 of A-Z, a-z, 0-9, '_', '-'; a letter first)`);
  return text;
}

/**
 * `--secret NAME=env:VAR`, `NAME=file:/run/secrets/x`, `NAME=header:HOST[:HEADER[:FORMAT]]`
 * (header Authorization and format `Bearer {}` by default), or just `NAME` (env:NAME).
 */
export function parseSecretRef(text: string): SecretRef {
  const eq = text.indexOf('=');
  const name = parseSecretName(eq < 0 ? text : text.slice(0, eq), '--secret');
  if (eq < 0) {
    if (!ENV_NAME.test(name)) throw new ArgumentError(`--secret: '${name}' is not a variable name; say where it goes: ${name}=env:VAR`);
    return { name, env: name };
  }
  const target = text.slice(eq + 1);
  const colon = target.indexOf(':');
  const kind = colon < 0 ? target : target.slice(0, colon);
  const rest = colon < 0 ? '' : target.slice(colon + 1);
  if (kind === 'env' && ENV_NAME.test(rest)) return { name, env: rest };
  if (kind === 'file' && rest.startsWith('/')) return { name, file: rest };
  if (kind === 'header' && rest !== '') {
    const [host, header, ...format] = rest.split(':');
    return {
      name,
      injectHeader: { host: host!, header: header || 'Authorization', format: format.length > 0 ? format.join(':') : 'Bearer {}' },
    };
  }
  throw new ArgumentError(
    `--secret expects NAME=env:VAR, NAME=file:/run/secrets/PATH or NAME=header:HOST[:HEADER[:FORMAT]], got '${text}'`,
  );
}
