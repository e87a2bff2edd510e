import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestServer } from '../tests/harness.js';
import { rbacServerForFile } from './k8s-lib.js';

/**
 * deploy/kubernetes/rbac.yaml is enough: a server holding only those permissions (a
 * ServiceAccount token, as in a pod) creates, runs and deletes sandboxes with egress policies,
 * makes and deletes volume claims, and reconciles after a restart.
 */
let server: TestServer;
rbacServerForFile('hutch-rbac', (s) => (server = s));

test(
  'a server with only the documented permissions runs sandboxes, policies, volume claims and restarts',
  { timeout: 240_000 },
  async () => {
    const s = server;
    const info = await s.api<{ tiers: Record<string, { available: boolean }>; capacity: { node: { cpu: number } } }>('GET', '/v1/info');
    assert.equal(info.body.tiers.gvisor!.available, true, 'the RuntimeClass could be read');
    assert.ok(
      info.body.capacity.node.cpu > 0 && info.body.capacity.node.cpu < 1024,
      'the nodes could be listed (capacity from the cluster)',
    );

    const sb = await s.api<{ id: string }>('POST', '/v1/sandboxes', {
      template: 'minimal',
      cpu: 0.25,
      memoryMiB: 128,
      network: { egress: { allow: ['203.0.113.0/24'], deny: [] } },
    });
    assert.equal(sb.status, 201, JSON.stringify(sb.body));
    const run = await s.api<{ stdout: string }>('POST', `/v1/sandboxes/${sb.body.id}/exec`, { cmd: 'echo limited' });
    assert.equal(run.body.stdout, 'limited\n');
    const put = await s.api('PUT', `/v1/sandboxes/${sb.body.id}/network`, { egress: 'open' });
    assert.equal(put.status, 200, JSON.stringify(put.body));

    const volume = await s.api('POST', '/v1/volumes', { name: 'claims', sizeMiB: 64 });
    assert.equal(volume.status, 201, JSON.stringify(volume.body));
    assert.equal((await s.api('DELETE', '/v1/volumes/claims')).status, 204);

    await s.restart();
    const again = await s.api<{ stdout: string }>('POST', `/v1/sandboxes/${sb.body.id}/exec`, { cmd: 'echo after restart' });
    assert.equal(again.body.stdout, 'after restart\n', 'reattached after the restart');
    assert.equal((await s.api('DELETE', `/v1/sandboxes/${sb.body.id}`)).status, 204);
    assert.doesNotMatch(s.output(), /forbidden/i, 'no permission was refused');
  },
);
