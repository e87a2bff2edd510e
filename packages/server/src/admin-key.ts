import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { newApiKey } from './core/key-service.js';
import type { ApiKeyRecord, ApiKeyStore } from './core/stores.js';
import { DEFAULT_TENANT } from './core/tenancy.js';

/**
 * The admin API key: created on first start (role admin, default tenant), stored hashed in the
 * database and in plain text in `<data-dir>/admin.key` (mode 0600) for the operator and local
 * clients. A key in the file that was revoked is never brought back; when no admin key is left at
 * all, a new one replaces it (the operator's way back in, with access to the data dir).
 */
const adminRecord = (): ApiKeyRecord => ({
  id: randomUUID(),
  name: 'admin',
  tenant: DEFAULT_TENANT,
  role: 'admin',
  createdAt: new Date(),
  lastUsedAt: null,
  limits: null,
});

export async function ensureAdminKey(
  dataDir: string,
  keys: ApiKeyStore,
  warn: (message: string) => void = () => undefined,
): Promise<{ key: string; created: boolean }> {
  const file = join(dataDir, 'admin.key');
  if (existsSync(file)) {
    const key = (await readFile(file, 'utf8')).trim();
    await chmod(file, 0o600);
    if (key && (await keys.verify(key))) return { key, created: false };
    if (key && (await keys.isRevoked(key))) {
      if ((await keys.countAdmins()) > 0) {
        warn(`${file} holds a revoked key; use another admin key (or delete the file and restart for a new one)`);
        return { key, created: false };
      }
    } else if (key) {
      // The file is there but the database does not know the key (e.g. a new database): adopt it.
      await keys.insert(key, adminRecord());
      return { key, created: false };
    }
  }
  const key = newApiKey();
  await keys.insert(key, adminRecord());
  await writeFile(file, key + '\n', { mode: 0o600 });
  return { key, created: true };
}

/**
 * `--admin-key-file F`: the admin key given by the operator in a file the server only reads (a
 * mounted Kubernetes Secret is read-only and owned by the kubelet's choice). A key the database
 * does not know is adopted as an admin key of the default tenant; a revoked one is refused (the
 * operator rotates it by writing a new key to the file). The file is never written.
 */
export async function adoptAdminKey(file: string, keys: ApiKeyStore): Promise<{ key: string; created: boolean }> {
  let key: string;
  try {
    key = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new Error(`--admin-key-file ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (key.length < 16) throw new Error(`--admin-key-file ${file} holds no key of at least 16 characters`);
  if (await keys.verify(key)) return { key, created: false };
  if (await keys.isRevoked(key)) throw new Error(`--admin-key-file ${file} holds a revoked key: write a new key to it`);
  await keys.insert(key, adminRecord());
  return { key, created: false };
}
