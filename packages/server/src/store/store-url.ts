import { resolve } from 'node:path';

/** Where the store lives: an SQLite file (the embedded default) or a PostgreSQL database. */
export type StoreLocation = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

/**
 * Parses `--store` / `HUTCH_STORE`: `sqlite:///abs/path.db` (or `sqlite://./rel.db`), a plain path
 * (an SQLite file), or `postgres://…` / `postgresql://…` (libpq URL syntax, as `pg` reads it).
 * Errors name the option and never echo a password.
 */
export function parseStoreUrl(text: string, field = '--store'): StoreLocation {
  const value = text.trim();
  if (value === '') throw new Error(`${field}: empty (give sqlite:///path/to/hutch.db or postgres://user:pass@host/db)`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'sqlite', file: resolve(value) };
  if (scheme === 'sqlite') {
    const path = decodeURIComponent(value.slice('sqlite://'.length));
    if (path === '') throw new Error(`${field}: sqlite:// needs a file path (sqlite:///var/lib/hutch/hutch.db)`);
    return { kind: 'sqlite', file: resolve(path) };
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new Error(`${field}: "${redactStoreUrl(value)}" is not a valid PostgreSQL URL`);
    }
    // A socket directory may be given as ?host=/path instead of a host name.
    if (url.hostname === '' && !url.searchParams.has('host'))
      throw new Error(`${field}: "${redactStoreUrl(value)}" names no host (postgres://user:pass@host:5432/db)`);
    if (url.pathname.replace(/^\//, '') === '')
      throw new Error(`${field}: "${redactStoreUrl(value)}" names no database (postgres://user:pass@host:5432/db)`);
    return { kind: 'postgres', url: value };
  }
  throw new Error(`${field}: unsupported scheme "${scheme}://" (sqlite:// or postgres://)`);
}

/** The password in `user:password@` of a store URL (up to the last '@', as redactStoreUrl cuts it), or null. */
export function storeUrlPassword(text: string): string | null {
  const start = text.indexOf('://');
  const at = text.lastIndexOf('@');
  if (start < 0 || at <= start) return null;
  const colon = text.indexOf(':', start + 3);
  return colon >= 0 && colon < at && at > colon + 1 ? text.slice(colon + 1, at) : null;
}

/**
 * The URL with its password (and any `password=` query parameter) replaced by `***`: what logs,
 * errors and /v1/info show.
 */
export function redactStoreUrl(text: string): string {
  let out = text;
  const start = out.indexOf('://');
  const at = out.lastIndexOf('@');
  if (start >= 0 && at > start) {
    // user:password@ — the password may hold unescaped '/', ':' or '@': everything up to the last '@'.
    const colon = out.indexOf(':', start + 3);
    if (colon >= 0 && colon < at) out = `${out.slice(0, colon)}:***${out.slice(at)}`;
  }
  return out.replace(/([?&]password=)[^&#]*/gi, '$1***');
}

/** A store location for humans: the SQLite file, or the redacted PostgreSQL URL. */
export function describeStore(location: StoreLocation): string {
  return location.kind === 'sqlite' ? `sqlite://${location.file}` : redactStoreUrl(location.url);
}
