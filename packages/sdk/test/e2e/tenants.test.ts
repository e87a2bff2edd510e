import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { AuthenticationError, ConflictError, NotFoundError, PermissionDeniedError, RateLimitError } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

describe('tenants and keys', () => {
  test('hutch.tenants (admin) and hutch.keys: create with tenant and role, list, isolation, quotas, revoke', async () => {
    const admin = server.client();
    const name = `sdk-${randomBytes(3).toString('hex')}`;
    const tenant = await admin.tenants.create(name, { quotas: { maxSandboxes: 1 } });
    assert.equal(tenant.name, name);
    assert.deepEqual(tenant.quotas, { maxSandboxes: 1 });
    assert.equal(tenant.usage.sandboxes, 0);
    assert.ok((await admin.tenants.list()).some((t) => t.name === name));
    await assert.rejects(admin.tenants.create(name), ConflictError);

    const member = await admin.keys.create({ tenant: name, role: 'member', name: 'sdk-member' });
    assert.equal(member.tenant, name);
    assert.equal(member.role, 'member');
    assert.match(member.key, /^hutch_/);
    const reader = await admin.keys.create('sdk-reader', { tenant: name, role: 'read-only' });
    assert.equal(reader.name, 'sdk-reader');
    assert.deepEqual((await admin.keys.list({ tenant: name })).map((k) => k.role).sort(), ['member', 'read-only']);

    const asMember = server.client({ apiKey: member.key });
    const asReader = server.client({ apiKey: reader.key });
    await assert.rejects(asMember.tenants.list(), PermissionDeniedError);
    await assert.rejects(asMember.keys.create({ role: 'admin' }), PermissionDeniedError);

    const theirs = await asMember.sandboxes.create({ template: 'minimal', timeoutSeconds: 120 });
    const ours = await admin.sandboxes.create({ template: 'minimal', timeoutSeconds: 120 });
    try {
      assert.equal(theirs.info.tenant, name);
      assert.deepEqual(
        (await asMember.sandboxes.list()).map((s) => s.id),
        [theirs.id],
      );
      assert.deepEqual(
        (await admin.sandboxes.list({ tenant: name })).map((s) => s.id),
        [theirs.id],
      );
      await assert.rejects(asMember.sandboxes.get(ours.id), NotFoundError);
      assert.equal(await asMember.sandboxes.kill(ours.id), false, "another tenant's sandbox does not exist for the key");
      // Its quota: one sandbox.
      await assert.rejects(asMember.sandboxes.create({ template: 'minimal' }), (err: unknown) => {
        assert.ok(err instanceof RateLimitError);
        assert.match(err.message, /maxSandboxes 1/);
        return true;
      });
      // Read-only: reads, never writes.
      assert.equal((await asReader.sandboxes.get(theirs.id)).info.state, 'running');
      const readerHandle = await asReader.sandboxes.get(theirs.id);
      await assert.rejects(readerHandle.exec('true'), PermissionDeniedError);
      const updated = await admin.tenants.setQuotas(name, null);
      assert.equal(updated.quotas, null);
      assert.equal((await admin.tenants.get(name)).usage.sandboxes, 1);
    } finally {
      await theirs.kill();
      await ours.kill();
    }

    const revoked = await admin.keys.revoke(member.id);
    assert.deepEqual([revoked.id, revoked.revoked], [member.id, true]);
    await assert.rejects(asMember.sandboxes.list(), AuthenticationError);
    await assert.rejects(admin.keys.get(member.id), NotFoundError);
    const deleted = await admin.tenants.delete(name);
    assert.equal(deleted.deleted.keys, 1, 'the remaining (read-only) key was revoked with its tenant');
    await assert.rejects(admin.tenants.get(name), NotFoundError);
  });
});
