import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { k8sServerForFile, pods, sandboxSelector } from './k8s-lib.js';

/**
 * Warm pools on the kubernetes provider: members are pre-created pods (labelled like any sandbox
 * pod, with no record until claimed); a matching create claims one through its agent (env, egress
 * policy), and deleting the pool deletes its remaining pods.
 */
interface PoolBody {
  size: number;
  hits: number;
}
interface Created {
  id: string;
  warm?: boolean;
}
const SMALL = { template: 'minimal', cpu: 0.25, memoryMiB: 128 };

let server: TestServer;
const namespace = k8sServerForFile(
  'hutch-pools',
  (s) => (server = s),
  (s) => s.api('DELETE', '/v1/pools/k8s-pool'),
);

test('a pool keeps ready pods; a matching create claims one warm; deleting the pool deletes the rest', { timeout: 240_000 }, async () => {
  const put = await server.api('PUT', '/v1/pools/k8s-pool', { ...SMALL, min: 1, target: 2, max: 2 });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const ready = await waitFor(async () => (await server.api<PoolBody>('GET', '/v1/pools/k8s-pool')).body.size >= 2, 120_000, 250);
  assert.ok(ready, 'the pool filled');
  const members = await pods(namespace);
  assert.equal(members.length, 2, 'two pre-created pods');
  assert.ok(
    members.every((p) => p.spec?.activeDeadlineSeconds === undefined),
    'members have no deadline before they are claimed',
  );
  assert.ok(members.every((p) => p.status?.phase === 'Running'));

  const res = await server.api<Created>('POST', '/v1/sandboxes', {
    ...SMALL,
    env: { GREETING: 'warm pod' },
    network: { egress: { allow: ['203.0.113.0/24'], deny: [] } },
    timeoutSeconds: 600,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.warm, true, 'served by the pool');
  assert.ok(
    members.some((p) => p.metadata?.labels?.['hutch.dev/sandbox'] === res.body.id),
    'the claimed sandbox is one of the pre-created pods',
  );
  const out = await server.api<{ stdout: string }>('POST', `/v1/sandboxes/${res.body.id}/exec`, { cmd: 'echo $GREETING' });
  assert.equal(out.body.stdout, 'warm pod\n', "the create's env reaches later processes");
  const [claimed] = await pods(namespace, sandboxSelector(res.body.id));
  assert.equal(claimed?.metadata?.labels?.['hutch.dev/tenant'], 'default');
  const deadline = claimed?.spec?.activeDeadlineSeconds ?? 0;
  assert.ok(
    deadline >= 600 + 3600 && deadline < 600 + 3600 + 180,
    `the claimed pod gets its TTL backstop, counted from its start (${deadline} s)`,
  );

  assert.equal((await server.api('DELETE', `/v1/sandboxes/${res.body.id}`)).status, 204);
  assert.equal((await server.api('DELETE', '/v1/pools/k8s-pool')).status, 204);
  const gone = await waitFor(async () => (await pods(namespace)).length === 0, 60_000, 250);
  assert.ok(gone, 'no pod is left once the pool is deleted');
});
