import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { InvalidArgumentError, NotFoundError, type AuditEntry, type SandboxLogEvent } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

describe('audit and sandbox logs', () => {
  test('hutch.audit: list with filters and cursor, iterate, export (JSON lines, oldest first); tenants see their own', async () => {
    const admin = server.client();
    const name = `sdk-audit-${randomBytes(3).toString('hex')}`;
    await admin.tenants.create(name);
    const member = await admin.keys.create({ tenant: name, role: 'member', name: 'sdk-audit-member' });
    const hutch = server.client({ apiKey: member.key });
    const sb = await hutch.sandboxes.create({ template: 'minimal', timeoutSeconds: 120 });
    try {
      await sb.exec('echo one');
      await sb.exec('echo two');
      await sb.files.write('/tmp/a.txt', 'a');
    } finally {
      await sb.kill();
    }
    const page = await hutch.audit.list({ key: member.id });
    assert.deepEqual(
      page.entries.map((e) => e.action),
      ['sandbox.delete', 'file.write', 'sandbox.exec', 'sandbox.exec', 'sandbox.create'],
    );
    assert.ok(page.entries.every((e) => e.tenant === name && e.keyId === member.id && e.status < 400));
    assert.equal(page.nextCursor, null);
    const execs = await hutch.audit.list({ action: 'sandbox.exec', since: new Date(Date.now() - 60_000), outcome: 'ok' });
    assert.equal(execs.entries.length, 2);
    const first = await hutch.audit.list({ limit: 2 });
    assert.equal(first.entries.length, 2);
    assert.ok(first.nextCursor);
    const second = await hutch.audit.list({ limit: 2, cursor: first.nextCursor! });
    assert.ok(second.entries[0]!.id < first.entries[1]!.id);
    const all: AuditEntry[] = [];
    for await (const e of hutch.audit.iterate({ pageSize: 2 })) all.push(e);
    assert.deepEqual(all, page.entries, 'iterate walks every page');
    const exported: AuditEntry[] = [];
    for await (const e of hutch.audit.export()) exported.push(e);
    assert.deepEqual(exported, [...page.entries].reverse());
    await assert.rejects(hutch.audit.list({ tenant: 'default' }), NotFoundError);
    await assert.rejects(hutch.audit.list({ since: 'not a time' }), InvalidArgumentError);
    assert.ok((await admin.audit.list({ tenant: name })).entries.length >= 5);
  });

  test('sandbox.logs and sandbox.followLogs', async () => {
    const hutch = server.client();
    const sb = await hutch.sandboxes.create({ template: 'minimal', timeoutSeconds: 120 });
    try {
      const { pid } = await sb.exec('echo hello; sleep 0.2; echo oops >&2');
      const logs = await sb.logs();
      assert.deepEqual(
        logs.entries.map((e) => [e.pid, e.stream, e.text]),
        [
          [pid, 'stdout', 'hello\n'],
          [pid, 'stderr', 'oops\n'],
        ],
      );
      assert.deepEqual(logs.dropped, { bytes: 0, entries: 0 });
      assert.deepEqual(
        (await sb.logs({ after: logs.entries[0]!.seq })).entries.map((e) => e.text),
        ['oops\n'],
      );
      const controller = new AbortController();
      const seen: SandboxLogEvent[] = [];
      const following = (async () => {
        for await (const event of sb.followLogs({ after: logs.cursor!, signal: controller.signal })) {
          seen.push(event);
          if (event.type === 'log' && event.text === 'later\n') return;
        }
      })();
      await sb.exec('echo later');
      await following;
      controller.abort();
      assert.deepEqual(
        seen.map((e) => (e.type === 'log' ? e.text : e.type)),
        ['later\n'],
      );
    } finally {
      await sb.kill();
    }
    await assert.rejects(sb.logs(), NotFoundError);
  });
});
