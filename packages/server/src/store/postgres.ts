import pg from 'pg';
import { Kysely, PostgresDialect } from 'kysely';
import { postgresTextPlugin } from './dialect.js';
import { redactStoreUrl, storeUrlPassword } from './store-url.js';
import type { Schema } from './database.js';

/** Where the store reports connection trouble (a pino logger fits). */
export interface StoreLog {
  warn(obj: object, message: string): void;
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * Result parsing for this store's connections only (pg's global parsers stay as they are):
 * int8 columns (the store's integers: ms timestamps, byte counts; every value below 2^53) and
 * numeric results (SUM of an int8) come back as numbers, as SQLite gives them.
 */
export const storeTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (text: string) => Number(text);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** Connection settings for `url` as every store connection uses them. */
export function connectionConfig(url: string, applicationName = 'hutch'): pg.ClientConfig {
  return { connectionString: url, types: storeTypes, application_name: applicationName, connectionTimeoutMillis: 10_000 };
}

/** An error that talked to PostgreSQL, with the URL's password redacted wherever it appears. */
export function storeError(url: string, what: string, err: unknown): Error {
  const secret = storeUrlPassword(url);
  let message = err instanceof Error ? err.message : String(err);
  if (secret) message = message.split(secret).join('***');
  return new Error(`${what} (${redactStoreUrl(url)}): ${message}`, { cause: err });
}

/** A pool of connections to the PostgreSQL store, checked once before it is used. */
export async function openPostgres(url: string, log?: StoreLog): Promise<{ db: Kysely<Schema>; close: () => Promise<void> }> {
  const pool = new pg.Pool({ ...connectionConfig(url), max: 10, idleTimeoutMillis: 30_000 });
  // An idle connection the server ends (restart, pg_terminate_backend) is reported here; without
  // a listener it would end the process. The pool replaces it on the next query.
  pool.on('error', (err) => log?.warn({ store: redactStoreUrl(url), err: err.message }, 'a store connection failed'));
  try {
    const client = await pool.connect();
    client.release();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw storeError(url, 'cannot connect to the PostgreSQL store', err);
  }
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }), plugins: [postgresTextPlugin()] });
  return { db, close: () => db.destroy() };
}
