import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { k8sServerForFile, pods, sandboxSelector } from './k8s-lib.js';

/**
 * The TTL backstop: a pod's activeDeadlineSeconds (TTL + --ttl-backstop) ends it through the
 * kubelet when the server is down at its TTL; the restarted server records the sandbox as ended
 * and deletes the pod.
 */
let server: TestServer;
const namespace = k8sServerForFile('hutch-backstop', (s) => (server = s), undefined, { ttlBackstopSeconds: 3 });

test(
  'a pod whose TTL passes while the server is down is ended by the kubelet, and cleaned up at restart',
  { timeout: 240_000 },
  async () => {
    const res = await server.api<{ id: string }>('POST', '/v1/sandboxes', {
      template: 'minimal',
      cpu: 0.25,
      memoryMiB: 128,
      timeoutSeconds: 3,
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.id;
    const [pod] = await pods(namespace, sandboxSelector(id));
    assert.equal(pod?.spec?.activeDeadlineSeconds, 6, 'TTL 3 s + backstop 3 s');
    await server.kill9();
    // The kubelet enforces the deadline on its own (no server): the pod fails with DeadlineExceeded.
    const ended = await waitFor(
      async () => {
        const [p] = await pods(namespace, sandboxSelector(id));
        return p?.status?.phase === 'Failed' ? p.status.reason : undefined;
      },
      120_000,
      500,
    );
    assert.equal(ended, 'DeadlineExceeded');
    await server.restart();
    const record = await server.api<{ state: string; error: string | null }>('GET', `/v1/sandboxes/${id}`);
    assert.equal(record.body.state, 'error', JSON.stringify(record.body));
    const gone = await waitFor(async () => (await pods(namespace, sandboxSelector(id))).length === 0, 15_000, 250);
    assert.ok(gone, 'the ended pod is deleted at restart');
  },
);
