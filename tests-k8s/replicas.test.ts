import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { startPostgres, type PgCluster } from '../tests/pg-fixture.js';
import { IMPORT_IMAGE, kubeconfigPath, pods, removeNamespace, sandboxSelector, uniqueNamespace } from './k8s-lib.js';

/**
 * Several replicas in kubernetes mode (issue 9): two servers on one PostgreSQL store and one
 * namespace serve the same sandboxes — created through one, used and deleted through the other —
 * and when the leader dies, the other takes over the periodic loops and keeps serving what the
 * dead one created. A private PostgreSQL cluster (tests/pg-fixture.ts), real pods.
 */
interface SandboxBody {
  id: string;
  state: string;
}
interface ExecBody {
  exitCode: number;
  stdout: string;
}
const SMALL = { template: 'minimal', cpu: 0.25, memoryMiB: 128 };
const RETRY_MS = 500;

let pg: PgCluster;
let store: string;
const namespace = uniqueNamespace('hutch-replicas');
let first: TestServer;
let second: TestServer;

const start = (): Promise<TestServer> =>
  startServer({
    provider: 'kubernetes',
    kubernetes: { kubeconfig: kubeconfigPath(), namespace, imageImport: [IMPORT_IMAGE] },
    store,
    leaderRetryMs: RETRY_MS,
  });

async function leader(s: TestServer): Promise<boolean> {
  return ((await (await fetch(`${s.url}/healthz`)).json()) as { leader: boolean }).leader;
}

async function exec(s: TestServer, id: string, cmd: string): Promise<ExecBody> {
  const res = await s.api<ExecBody>('POST', `/v1/sandboxes/${id}/exec`, { cmd });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

before(async () => {
  pg = await startPostgres();
  store = await pg.createDatabase('replicas');
  first = await start();
  second = await start();
});

after(async () => {
  await second?.stop();
  await first?.stop();
  const left = await pods(namespace).catch(() => []);
  await removeNamespace(namespace);
  pg?.stop();
  assert.deepEqual(
    left.map((p) => p.metadata?.name),
    [],
    'no sandbox pod is left after the replicas deleted their sandboxes',
  );
});

describe('two kubernetes-mode replicas on one PostgreSQL store', () => {
  test('one leads; a sandbox made through the follower is used and deleted through the leader', async () => {
    assert.equal(await leader(first), true);
    assert.equal(await leader(second), false);
    const made = await second.api<SandboxBody>('POST', '/v1/sandboxes', SMALL);
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id;
    assert.equal((await exec(first, id, 'echo via-leader')).stdout, 'via-leader\n');
    assert.equal((await exec(second, id, 'echo via-follower')).stdout, 'via-follower\n');
    // Files written through one replica are read through the other (the same pod).
    const put = await first.api('PUT', `/v1/sandboxes/${id}/files?path=/tmp/shared.txt`, 'one pod, two replicas\n');
    assert.ok(put.status === 200 || put.status === 204, `write: ${put.status}`);
    const got = await second.api<string>('GET', `/v1/sandboxes/${id}/files?path=/tmp/shared.txt`);
    assert.equal(got.status, 200);
    assert.equal(got.body, 'one pod, two replicas\n');
    const listed = await first.api<{ sandboxes: SandboxBody[] }>('GET', '/v1/sandboxes');
    assert.ok(
      listed.body.sandboxes.some((s) => s.id === id && s.state === 'running'),
      JSON.stringify(listed.body),
    );
    assert.equal((await first.api('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    const gone = await waitFor(async () => (await pods(namespace, sandboxSelector(id))).length === 0, 60_000, 500);
    assert.ok(gone, `the pod of ${id} is deleted`);
    assert.equal((await second.api('GET', `/v1/sandboxes/${id}`)).status, 404, 'the other replica no longer knows it');
  });

  test("the leader's death hands over the loops; its sandbox stays usable through the other", async () => {
    const made = await first.api<SandboxBody>('POST', '/v1/sandboxes', SMALL);
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const id = made.body.id;
    assert.equal((await exec(first, id, 'echo before')).stdout, 'before\n');
    await first.kill9();
    const took = await waitFor(() => leader(second), 15_000, 200);
    assert.equal(took, true, 'the surviving replica leads within 15 s');
    assert.equal((await exec(second, id, 'echo after')).stdout, 'after\n');
    // The sandbox lives on: a few seconds later it has not been reaped or marked lost.
    await new Promise((r) => setTimeout(r, 3 * RETRY_MS));
    const state = await second.api<SandboxBody>('GET', `/v1/sandboxes/${id}`);
    assert.equal(state.body.state, 'running', JSON.stringify(state.body));
    assert.equal((await second.api('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    const gone = await waitFor(async () => (await pods(namespace, sandboxSelector(id))).length === 0, 60_000, 500);
    assert.ok(gone, `the pod of ${id} is deleted`);
    // Back as a follower (same data dir, same store): the other keeps leading.
    await first.restart();
    assert.equal(await leader(first), false);
    assert.equal(await leader(second), true);
  });
});
