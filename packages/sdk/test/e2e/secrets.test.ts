import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

describe('secrets', () => {
  test('hutch.secrets put/get/list/delete (metadata only) and the secrets create option (env and file)', async () => {
    const admin = server.client();
    const value = `sdk-${randomBytes(12).toString('hex')}`;
    const name = `sdk-${randomBytes(3).toString('hex')}`;
    const created = await admin.secrets.put(name, value);
    assert.equal(created.created, true);
    assert.equal(created.name, name);
    assert.equal(created.sizeBytes, value.length);
    assert.equal(JSON.stringify(created).includes(value), false);
    const replaced = await admin.secrets.put(name, `${value}!`);
    assert.equal(replaced.created, false);
    assert.equal(replaced.sizeBytes, value.length + 1);
    await admin.secrets.put(name, value);
    assert.deepEqual(await admin.secrets.get(name), { ...(await admin.secrets.list()).find((s) => s.name === name) });
    await assert.rejects(admin.secrets.get('no-such-secret'), NotFoundError);
    await assert.rejects(admin.secrets.put('bad name', 'x'), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /name/);
      return true;
    });

    const sb = await admin.sandboxes.create({
      template: 'minimal',
      timeoutSeconds: 120,
      secrets: [
        { name, env: 'SDK_TOKEN' },
        { name, file: '/run/secrets/sdk' },
      ],
    });
    try {
      assert.deepEqual(sb.info.secrets, [
        { name, env: 'SDK_TOKEN' },
        { name, file: '/run/secrets/sdk' },
      ]);
      assert.equal((await sb.exec('printf %s "$SDK_TOKEN"')).stdout, value);
      assert.equal((await sb.exec('cat /run/secrets/sdk; stat -c %a /run/secrets/sdk')).stdout, `${value}400\n`);
      assert.equal(JSON.stringify(await admin.sandboxes.get(sb.id).then((h) => h.info)).includes(value), false);
    } finally {
      await sb.kill();
    }
    await assert.rejects(admin.sandboxes.create({ template: 'minimal', secrets: [{ name: 'missing-one', env: 'X' }] }), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError);
      assert.match(err.message, /secrets\[0\]\.name: secret "missing-one" does not exist/);
      return true;
    });

    // Another tenant: its own namespace; read-only keys cannot write.
    const tenant = `sdk-${randomBytes(3).toString('hex')}`;
    await admin.tenants.create(tenant);
    const reader = server.client({ apiKey: (await admin.keys.create({ tenant, role: 'read-only' })).key });
    const member = server.client({ apiKey: (await admin.keys.create({ tenant, role: 'member' })).key });
    await assert.rejects(member.secrets.get(name), NotFoundError);
    assert.deepEqual(await member.secrets.list(), []);
    assert.equal((await admin.secrets.put('theirs', value, { tenant })).tenant, tenant);
    assert.deepEqual(
      (await reader.secrets.list()).map((s) => s.name),
      ['theirs'],
    );
    await assert.rejects(reader.secrets.put('theirs', 'new!'), PermissionDeniedError);
    assert.equal(await member.secrets.delete('theirs'), true);
    assert.equal(await member.secrets.delete('theirs'), false);
    assert.equal(await admin.secrets.delete(name), true);
    await admin.tenants.delete(tenant);
  });
});
