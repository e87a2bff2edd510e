import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SECRETS_KEY_BYTES } from './core/secret-cipher.js';

/**
 * The secrets key: 32 bytes that seal every secret value (core/secret-cipher.ts). It comes from
 * `--secrets-key-file F` (which must exist), or from `<data-dir>/secrets.key`, generated on first
 * start. The file holds 64 hex characters (`openssl rand -hex 32`) or 32 raw bytes, must be a
 * regular file owned by the server's user and readable by it alone (mode 0600 or 0400); anything
 * else refuses the start with a message saying what to fix. A lost key loses every secret.
 */
export class SecretsKeyError extends Error {}

const HEX_KEY = /^[0-9a-fA-F]{64}\r?\n?$/;

export function defaultSecretsKeyFile(dataDir: string): string {
  return join(dataDir, 'secrets.key');
}

/** Creates the key file atomically (a link of a complete temporary file: never half-written, never replaced). */
async function generate(file: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(`${randomBytes(SECRETS_KEY_BYTES).toString('hex')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, file);
  } catch (err) {
    // Another server on the same data dir made it first: that one stands.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Reads (and on first start of a data dir without `explicit`, generates) the secrets key. */
export async function loadSecretsKey(dataDir: string, explicit?: string): Promise<{ key: Buffer; file: string; created: boolean }> {
  const file = explicit ?? defaultSecretsKeyFile(dataDir);
  const flag = explicit ? '--secrets-key-file' : 'the secrets key file';
  let created = false;
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new SecretsKeyError(`${flag} ${file} cannot be read (${code ?? (err as Error).message})`);
    if (explicit)
      throw new SecretsKeyError(`--secrets-key-file ${file} does not exist; create one with: (umask 077; openssl rand -hex 32 > ${file})`);
    await generate(file);
    created = true;
    info = await stat(file);
  }
  if (!info.isFile()) throw new SecretsKeyError(`${flag} ${file} is not a regular file`);
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid)
    throw new SecretsKeyError(`${flag} ${file} is owned by uid ${info.uid}, not by the server's user (uid ${uid}): chown it`);
  if ((info.mode & 0o077) !== 0)
    throw new SecretsKeyError(
      `${flag} ${file} is readable or writable by others (mode 0${(info.mode & 0o777).toString(8)}): chmod 600 ${file}`,
    );
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new SecretsKeyError(`${flag} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const text = bytes.toString('latin1');
  let key: Buffer;
  if (HEX_KEY.test(text)) key = Buffer.from(text.trim(), 'hex');
  else if (bytes.length === SECRETS_KEY_BYTES) key = bytes;
  else
    throw new SecretsKeyError(
      `${flag} ${file} must hold a ${SECRETS_KEY_BYTES}-byte key: 64 hex characters (openssl rand -hex 32) or ${SECRETS_KEY_BYTES} raw bytes; it has ${bytes.length} bytes`,
    );
  return { key, file, created };
}
