import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiKeyStore } from './core/stores.js';

/**
 * The admin API key: created on first start, stored hashed in the database and in plain text in
 * `<data-dir>/admin.key` (mode 0600) for the operator and local clients.
 */
export function newApiKey(): string {
  return `hutch_${randomBytes(24).toString('hex')}`;
}

/** A key in E2B's shape (`e2b_<hex>`): e2b SDKs before 2.46 refuse keys of any other form. */
export function newE2bShapedKey(): string {
  return `e2b_${randomBytes(20).toString('hex')}`;
}

export async function ensureAdminKey(dataDir: string, keys: ApiKeyStore): Promise<{ key: string; created: boolean }> {
  const file = join(dataDir, 'admin.key');
  if (existsSync(file)) {
    const key = (await readFile(file, 'utf8')).trim();
    await chmod(file, 0o600);
    if (key && (await keys.verify(key))) return { key, created: false };
    if (key) {
      // The file is there but the database does not know the key (e.g. a new database): adopt it.
      await keys.insert(key, { id: randomUUID(), name: 'admin', role: 'admin', createdAt: new Date(), limits: null });
      return { key, created: false };
    }
  }
  const key = newApiKey();
  await keys.insert(key, { id: randomUUID(), name: 'admin', role: 'admin', createdAt: new Date(), limits: null });
  await writeFile(file, key + '\n', { mode: 0o600 });
  return { key, created: true };
}
