import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';

/**
 * `hutch server --admin-key-file F` (the Helm chart mounts a Secret there): the key in F is
 * adopted as an admin key, the file is never written, the banner does not print the key; a key
 * revoked through the API or too short refuses the next start, saying why.
 */
const tmp = mkdtempSync('/var/tmp/hutch-admin-key-');
let server: TestServer | undefined;
after(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('an operator-given admin key is adopted, never printed, and refused once revoked or too short', { timeout: 180_000 }, async () => {
  const key = `hk_${randomBytes(24).toString('hex')}`;
  const file = join(tmp, 'admin.key');
  writeFileSync(file, `${key}\n`, { mode: 0o400 });
  // The harness talks with the key it finds in the data dir: the same one.
  const dataDir = mkdtempSync('/var/tmp/hutch-test-');
  writeFileSync(join(dataDir, 'admin.key'), `${key}\n`, { mode: 0o600 });
  server = await startServer({ adminKeyFile: file }, { dataDir });
  const info = await server.api<{ version: string }>('GET', '/v1/info');
  assert.equal(info.status, 200, 'the given key is an admin key of the server');
  const keys = await server.api<{ keys: Array<{ id: string; role: string; name: string }> }>('GET', '/v1/keys');
  const admins = keys.body.keys.filter((k) => k.role === 'admin');
  assert.equal(admins.length, 1, 'no other admin key was generated');
  assert.match(server.output(), /admin key: from .*admin\.key/);
  assert.ok(!server.output().includes(key), 'the key is not printed');

  // Revoked through the API (with another admin key), the file's key refuses the next start.
  const other = await server.api<{ key: string }>('POST', '/v1/keys', { role: 'admin', name: 'second' });
  assert.equal(other.status, 201, JSON.stringify(other.body));
  const revoke = await fetch(`${server.url}/v1/keys/${admins[0]!.id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${other.body.key}` },
  });
  assert.equal(revoke.status, 200);
  await assert.rejects(server.restart(), /--admin-key-file .* holds a revoked key: write a new key to it/);

  writeFileSync(file, 'short\n');
  await assert.rejects(server.restart(), /--admin-key-file .* holds no key of at least 16 characters/);
});
