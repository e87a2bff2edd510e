import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the server is and how to authenticate. Every field is optional; see {@link resolveConfig}. */
export interface ConnectionOptions {
  /** Base URL of the server. Default: `HUTCH_URL`, else `http://127.0.0.1:7171`. */
  url?: string;
  /** API key. Default: `HUTCH_API_KEY`, else the admin key file of a local server when readable. */
  apiKey?: string;
  /** Default deadline of each call, in milliseconds (calls may override it). Default 60 000. */
  timeoutMs?: number;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Aborts the call; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Deadline of this call in milliseconds; on expiry the call rejects with `TimeoutError`. */
  timeoutMs?: number;
}

/** A fully resolved connection: what the transport actually uses. */
export interface ResolvedConfig {
  url: string;
  apiKey: string | undefined;
  timeoutMs: number;
}

export const DEFAULT_URL = 'http://127.0.0.1:7171';
export const DEFAULT_DATA_DIR = '/var/lib/hutch';
export const DEFAULT_TIMEOUT_MS = 60_000;

/** Reads a file as text, or returns undefined when it cannot be read. Injectable for tests. */
export type ReadFile = (path: string) => string | undefined;

const readIfReadable: ReadFile = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/**
 * Resolves the connection with the documented precedence: explicit options > environment
 * (`HUTCH_URL`, `HUTCH_API_KEY`, then `${HUTCH_DATA_DIR ?? '/var/lib/hutch'}/admin.key`) > defaults.
 * Empty strings count as unset. The URL loses its trailing slashes.
 */
export function resolveConfig(
  options: ConnectionOptions = {},
  env: Record<string, string | undefined> = process.env,
  readFile: ReadFile = readIfReadable,
): ResolvedConfig {
  const url = nonEmpty(options.url) ?? nonEmpty(env.HUTCH_URL) ?? DEFAULT_URL;
  let apiKey = nonEmpty(options.apiKey) ?? nonEmpty(env.HUTCH_API_KEY);
  if (apiKey === undefined) {
    const dataDir = nonEmpty(env.HUTCH_DATA_DIR) ?? DEFAULT_DATA_DIR;
    apiKey = nonEmpty(readFile(join(dataDir, 'admin.key'))?.trim());
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
  return { url: url.replace(/\/+$/, ''), apiKey, timeoutMs };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
