import { posix } from 'node:path';
import { HutchError, invalidArgument } from './errors.js';
import type { Caller } from './tenancy.js';
import { type EgressPolicy, parseEgressEntry } from './network.js';

/**
 * The secrets model: a tenant's named values, stored encrypted (core/secret-cipher.ts), never
 * returned by the API, and handed to the sandboxes that ask for them by reference — as an
 * environment variable, as a file on the sandbox's secrets tmpfs, or (egress) as a header the
 * platform's proxy adds to requests to one host. A sandbox's record keeps the references only.
 */

/** 1-64 characters, a letter first: safe in URLs, CLI `NAME=env:VAR` arguments and file names. */
export const SECRET_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** A value's size cap, in UTF-8 bytes. */
export const SECRET_MAX_BYTES = 64 * 1024;
/** Where secret files go inside a sandbox: a tmpfs the platform mounts in every sandbox. */
export const SECRETS_DIR = '/run/secrets';
export const MAX_SECRETS_PER_SANDBOX = 32;
/**
 * The environment values a sandbox's secrets may add up to: the kernel refuses an exec whose
 * environment and arguments pass a few MiB (a quarter of the stack limit), which would leave the
 * sandbox unable to start any process. Large values belong in files.
 */
export const MAX_SECRET_ENV_BYTES = 256 * 1024;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FILE_COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** What the API shows of a secret: never its value. */
export interface SecretRecord {
  tenant: string;
  name: string;
  /** The value's length in UTF-8 bytes. */
  sizeBytes: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A secret as stored: its value sealed with the server's secrets key. */
export interface StoredSecret extends SecretRecord {
  /** 12-byte AES-GCM nonce, fresh for every write. */
  nonce: Buffer;
  /** Ciphertext followed by the 16-byte GCM tag. */
  ciphertext: Buffer;
}

/** The egress proxy adds `header: format-with-{}-replaced-by-the-value` to plain-HTTP requests to `host`. */
export interface HeaderInjection {
  host: string;
  header: string;
  format: string;
}

/** One use of a secret by a sandbox: exactly one target. */
export type SecretRef = { name: string; env: string } | { name: string; file: string } | { name: string; injectHeader: HeaderInjection };

/** What a sandbox gets once the values are read: its env, its files, its proxy headers. */
export interface SecretInjection {
  env: Record<string, string>;
  files: Array<{ path: string; data: Buffer }>;
  headers: Array<{ host: string; header: string; value: string }>;
  /**
   * Every value the sandbox uses — given to it (env, files) or sent for it (headers, which an
   * upstream may echo back into it): what the server's output is redacted of.
   */
  redact: string[];
}

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

export function requireSecretName(name: string, field = 'name'): void {
  if (!SECRET_NAME.test(name))
    throw invalidArgument(`${field}: "${name.slice(0, 70)}" is not a secret name (1-64 of A-Z, a-z, 0-9, "_", "-"; a letter first)`);
}

/** Checks a value before it is stored; errors name the field and never echo the value. */
export function requireSecretValue(value: unknown): asserts value is string {
  if (typeof value !== 'string') throw invalidArgument('value: must be a string');
  if (value.length === 0) throw invalidArgument('value: must not be empty');
  if (value.includes('\0')) throw invalidArgument('value: must not contain NUL (values are used as environment variables)');
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > SECRET_MAX_BYTES) throw invalidArgument(`value: ${bytes} bytes is over the limit of ${SECRET_MAX_BYTES} bytes (UTF-8)`);
}

/**
 * A secret file's path: absolute, normalized, below /run/secrets (the platform's tmpfs: a value
 * never lands on the sandbox's disk, where snapshots would capture it), plain name components.
 */
function checkFilePath(path: string, field: string): string {
  const normalized = posix.normalize(path);
  if (normalized !== path || !path.startsWith(`${SECRETS_DIR}/`))
    throw invalidArgument(
      `${field}: "${path.slice(0, 100)}" must be a normalized path below ${SECRETS_DIR}/ (a tmpfs), e.g. ${SECRETS_DIR}/token`,
    );
  const parts = path.slice(SECRETS_DIR.length + 1).split('/');
  if (parts.length > 4 || !parts.every((p) => FILE_COMPONENT.test(p)))
    throw invalidArgument(
      `${field}: "${path.slice(0, 100)}": at most 4 components below ${SECRETS_DIR}, each 1-128 of A-Z, a-z, 0-9, ".", "_", "-" (not starting with "." or "-")`,
    );
  return path;
}

function checkEnvName(name: string, field: string, env: Record<string, string>): void {
  if (!ENV_NAME.test(name) || name.length > 256)
    throw invalidArgument(`${field}: "${name.slice(0, 70)}" is not an environment variable name`);
  if (name.startsWith('HUTCH_')) throw invalidArgument(`${field}: names starting with HUTCH_ are reserved for the platform`);
  if (Object.hasOwn(env, name)) throw invalidArgument(`${field}: ${name} is also set in env; set it in one place`);
}

/**
 * Validates a create request's `secrets` (shapes come from the API schema; this checks what a
 * schema cannot: reserved and duplicate targets, paths, names) and returns the references to
 * record. `env` is the request's own environment (a variable may come from one place only).
 */
export function normalizeSecretRefs(input: unknown, env: Record<string, string> = {}): SecretRef[] {
  if (input === undefined || input === null) return [];
  if (!Array.isArray(input)) throw invalidArgument('secrets: must be an array of {name, env | file | injectHeader}');
  if (input.length > MAX_SECRETS_PER_SANDBOX) throw invalidArgument(`secrets: at most ${MAX_SECRETS_PER_SANDBOX} entries`);
  const refs: SecretRef[] = [];
  const envNames = new Set<string>();
  const paths = new Set<string>();
  for (const [i, raw] of input.entries()) {
    const field = `secrets[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidArgument(`${field}: must be an object`);
    const entry = raw as Record<string, unknown>;
    if (typeof entry.name !== 'string') throw invalidArgument(`${field}.name: must be a string`);
    requireSecretName(entry.name, `${field}.name`);
    const targets = (['env', 'file', 'injectHeader'] as const).filter((k) => entry[k] !== undefined);
    if (targets.length !== 1) throw invalidArgument(`${field}: give exactly one of env, file or injectHeader`);
    for (const key of Object.keys(entry))
      if (!['name', 'env', 'file', 'injectHeader'].includes(key))
        throw invalidArgument(`${field}.${key.slice(0, 40)}: unknown field (expected name and one of env, file, injectHeader)`);
    if (entry.env !== undefined) {
      if (typeof entry.env !== 'string') throw invalidArgument(`${field}.env: must be a string`);
      checkEnvName(entry.env, `${field}.env`, env);
      if (envNames.has(entry.env)) throw invalidArgument(`${field}.env: ${entry.env} is set by two secrets`);
      envNames.add(entry.env);
      refs.push({ name: entry.name, env: entry.env });
    } else if (entry.file !== undefined) {
      if (typeof entry.file !== 'string') throw invalidArgument(`${field}.file: must be a string`);
      const path = checkFilePath(entry.file, `${field}.file`);
      // A path may not also be a directory of another one (/run/secrets/a and /run/secrets/a/b).
      for (const other of paths)
        if (other === path || other.startsWith(`${path}/`) || path.startsWith(`${other}/`))
          throw invalidArgument(`${field}.file: ${path} collides with ${other}`);
      paths.add(path);
      refs.push({ name: entry.name, file: path });
    } else {
      refs.push({ name: entry.name, injectHeader: normalizeHeaderInjection(entry.injectHeader, `${field}.injectHeader`) });
    }
  }
  return refs;
}

/** Header names a proxy must not let a secret set (they frame the request or route it). */
const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive']);
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/;

function normalizeHeaderInjection(input: unknown, field: string): HeaderInjection {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalidArgument(`${field}: must be {host, header, format}`);
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o))
    if (!['host', 'header', 'format'].includes(key))
      throw invalidArgument(`${field}.${key.slice(0, 40)}: unknown field (expected host, header, format)`);
  if (typeof o.host !== 'string') throw invalidArgument(`${field}.host: must be a host name`);
  const host = o.host.toLowerCase().replace(/\.$/, '');
  if (!HOST_NAME.test(host) || /^[0-9.]+$/.test(host))
    throw invalidArgument(`${field}.host: "${o.host.slice(0, 100)}" must be a DNS name (not an IP address, no port)`);
  if (typeof o.header !== 'string' || !HEADER_NAME.test(o.header))
    throw invalidArgument(`${field}.header: must be an HTTP header name (1-64 token characters)`);
  if (FORBIDDEN_HEADERS.has(o.header.toLowerCase())) throw invalidArgument(`${field}.header: ${o.header} cannot be injected`);
  const format = o.format === undefined ? '{}' : o.format;
  if (typeof format !== 'string' || format.length > 256 || !format.includes('{}') || /[\r\n\0]/.test(format))
    throw invalidArgument(
      `${field}.format: must be a single-line string of at most 256 characters containing {} (the value), e.g. "Bearer {}"`,
    );
  return { host, header: o.header, format };
}

/**
 * What a sandbox gets from its references and their values (`values` by secret name). Values
 * that would break their target (a newline in a header) are refused, naming the reference.
 */
export function planInjection(refs: SecretRef[], values: Map<string, string>): SecretInjection {
  const plan: SecretInjection = { env: {}, files: [], headers: [], redact: [] };
  for (const [i, ref] of refs.entries()) {
    const value = values.get(ref.name);
    if (value === undefined) throw invalidArgument(`secrets[${i}].name: secret "${ref.name}" does not exist`);
    if ('env' in ref) {
      plan.env[ref.env] = value;
      plan.redact.push(value);
    } else if ('file' in ref) {
      plan.files.push({ path: ref.file, data: Buffer.from(value, 'utf8') });
      plan.redact.push(value);
    } else {
      if (/[\r\n]/.test(value))
        throw invalidArgument(`secrets[${i}]: secret "${ref.name}" holds a line break, which an HTTP header cannot carry`);
      plan.headers.push({
        host: ref.injectHeader.host,
        header: ref.injectHeader.header,
        value: ref.injectHeader.format.replaceAll('{}', value),
      });
      plan.redact.push(value);
    }
  }
  const envBytes = Object.values(plan.env).reduce((sum, v) => sum + Buffer.byteLength(v, 'utf8'), 0);
  if (envBytes > MAX_SECRET_ENV_BYTES)
    throw invalidArgument(
      `secrets: the env values add up to ${envBytes} bytes, over ${MAX_SECRET_ENV_BYTES} (every process carries them); give large values as files`,
    );
  return plan;
}

/** Whether a path inside a sandbox is on its secrets tmpfs. */
export function isSecretPath(path: string): boolean {
  const normalized = posix.normalize(`/${path}`);
  return normalized === SECRETS_DIR || normalized.startsWith(`${SECRETS_DIR}/`);
}

/**
 * Read-only keys may read a sandbox's files but not its injected secret files (a read-only key
 * cannot see a secret through the API, and a download is the API). Only the direct path is
 * covered: what a workload copies elsewhere, or links to, is the workload's to expose.
 */
export function requireSecretFileAccess(caller: Caller, path: string): void {
  if (caller.role === 'read-only' && isSecretPath(path))
    throw new HutchError('permission_denied', `path: ${SECRETS_DIR} holds injected secrets; reading it needs a member key`);
}

/**
 * A header is injected by the egress proxy, which sees a sandbox's plain-HTTP requests only when
 * its egress is an allowlist naming the host (by name: `api.example.com` or `*.example.com`); any
 * other policy would make the reference a silent no-op, so it is refused at create.
 */
export function requireInjectableHosts(refs: SecretRef[], egress: EgressPolicy): void {
  for (const [i, ref] of refs.entries()) {
    if (!('injectHeader' in ref)) continue;
    const host = ref.injectHeader.host;
    const field = `secrets[${i}].injectHeader.host`;
    if (typeof egress === 'string')
      throw invalidArgument(
        `${field}: header injection needs network.egress to be an allowlist naming ${host} (egress is "${egress}"), e.g. {"allow": ["${host}"]}`,
      );
    const matches = (list: string[]): boolean =>
      list.some((raw) => {
        const entry = parseEgressEntry(raw, 'network.egress');
        return (
          entry.kind === 'domain' && (entry.wildcard ? entry.pattern === '' || host.endsWith(`.${entry.pattern}`) : entry.pattern === host)
        );
      });
    if (!matches(egress.allow))
      throw invalidArgument(`${field}: ${host} is not in network.egress.allow (header injection needs it there by name)`);
    if (matches(egress.deny)) throw invalidArgument(`${field}: ${host} is denied by network.egress.deny`);
  }
}
