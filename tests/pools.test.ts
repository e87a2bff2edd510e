import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';
import { assertNoLeftovers, deleteSandbox, run, sleep, waitFor, type ApiError, type Sandbox } from './hostile-lib.js';

/**
 * Issue 6: warm pools (claims, per-request settings, no double hand-out, no carried state,
 * adaptive sizing), admission by capacity and per-key limits, the bounded fair create queue, and
 * a burst of 100 creates. Real runc sandboxes; every sandbox and pool is removed in `after`.
 */
let server: TestServer;
const created = new Set<string>();

interface Created extends Sandbox {
  warm?: boolean;
  env: Record<string, string>;
  metadata: Record<string, string>;
  expiresAt: string | null;
}
interface Pool {
  name: string;
  size: number;
  starting: number;
  desired: number;
  hits: number;
  misses: number;
  demandPerMinute: number;
  refillPerMinute: number;
  lastError: string | null;
}

const SMALL = { template: 'minimal', isolation: 'container', cpu: 0.5, memoryMiB: 64, pids: 64, diskMiB: 256 } as const;

before(async () => {
  // Own network pool: the egress-after-claim test attaches a network.
  server = await startServer({ networkPool4: '10.219.0.0/16', networkPool6: 'fd68:7574:636e::/48' });
});
after(async () => {
  for (const name of ['p-basic', 'p-race', 'p-adapt', 'p-snap']) await server.api('DELETE', `/v1/pools/${name}`).catch(() => undefined);
  for (const id of created) await deleteSandbox(server, id);
  await server?.stop();
});

async function create(s: TestServer, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await s.api<Created & ApiError>('POST', '/v1/sandboxes', { timeoutSeconds: 600, ...body }, headers);
  if (res.status === 201) created.add(res.body.id);
  return res;
}

async function pool(name: string): Promise<Pool> {
  const res = await server.api<Pool>('GET', `/v1/pools/${name}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function waitPoolSize(name: string, size: number, withinMs = 30_000): Promise<Pool> {
  let last: Pool | null = null;
  await waitFor(async () => {
    last = await pool(name);
    return last.size >= size;
  }, withinMs);
  assert.ok(last && (last as Pool).size >= size, `pool ${name} reached ${size} ready: ${JSON.stringify(last)}`);
  return last!;
}

describe('warm pools', () => {
  test('a matching create claims a ready sandbox (warm) with its own env, metadata and TTL; others go cold', async () => {
    const put = await server.api<Pool & ApiError>('PUT', '/v1/pools/p-basic', { ...SMALL, min: 1, target: 2, max: 4 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await waitPoolSize('p-basic', 2);

    const warm = await create(server, { ...SMALL, env: { GREETING: 'hello-warm' }, metadata: { job: 'w1' }, timeoutSeconds: 120 });
    assert.equal(warm.status, 201, JSON.stringify(warm.body));
    assert.equal(warm.body.warm, true, 'served by the pool');
    assert.deepEqual(warm.body.metadata, { job: 'w1' });
    assert.deepEqual(warm.body.env, { GREETING: 'hello-warm' });
    const ttl = new Date(warm.body.expiresAt!).getTime() - Date.now();
    assert.ok(ttl > 100_000 && ttl <= 120_000, `the TTL is the request's (${ttl} ms left)`);
    const out = await run(server, warm.body.id, 'echo "$GREETING"');
    assert.equal(out.stdout, 'hello-warm\n', "later processes see the create's env");
    const got = await server.api<Created>('GET', `/v1/sandboxes/${warm.body.id}`);
    assert.equal(got.body.state, 'running');
    const listed = await server.api<{ sandboxes: Created[] }>('GET', '/v1/sandboxes?metadata.job=w1');
    assert.deepEqual(
      listed.body.sandboxes.map((s) => s.id),
      [warm.body.id],
      'the claimed sandbox is listed like any other (pool members are not)',
    );

    const cold = await create(server, { ...SMALL, memoryMiB: 96 });
    assert.equal(cold.status, 201, JSON.stringify(cold.body));
    assert.equal(cold.body.warm, false, 'different memory: no pool matches');
    const p = await pool('p-basic');
    assert.equal(p.hits, 1);
    assert.ok(p.demandPerMinute >= 1);
    // The claimed member is replaced.
    await waitPoolSize('p-basic', 2);
  });

  test('egress requested on a warm create is applied to the claimed sandbox', async () => {
    await waitPoolSize('p-basic', 1);
    const res = await create(server, { ...SMALL, network: { egress: { allow: ['198.18.0.0/15'] } } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.warm, true);
    const net = await server.api<{ ipv4: string | null; egress: unknown }>('GET', `/v1/sandboxes/${res.body.id}/network`);
    assert.equal(net.status, 200, JSON.stringify(net.body));
    assert.ok(net.body.ipv4, `the sandbox got an address: ${JSON.stringify(net.body)}`);
    assert.deepEqual(net.body.egress, { allow: ['198.18.0.0/15'], deny: [] });
  });

  test('H22: a claimed sandbox carries nothing from an earlier user; concurrent claims never share one', async () => {
    const put = await server.api('PUT', '/v1/pools/p-race', { ...SMALL, pids: 96, min: 0, target: 4, max: 4 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await waitPoolSize('p-race', 4);
    const first = await create(server, { ...SMALL, pids: 96 });
    assert.equal(first.body.warm, true);
    await run(server, first.body.id, 'echo secret > /tmp/left-behind; echo root-secret > /root/mine; sleep 600 >/dev/null 2>&1 & true');
    await deleteSandbox(server, first.body.id);
    created.delete(first.body.id);

    const answers = await Promise.all(Array.from({ length: 6 }, () => create(server, { ...SMALL, pids: 96 })));
    for (const a of answers) assert.equal(a.status, 201, JSON.stringify(a.body));
    const ids = answers.map((a) => a.body.id);
    assert.equal(new Set(ids).size, 6, `six different sandboxes: ${ids.join(' ')}`);
    assert.ok(!ids.includes(first.body.id), 'a deleted sandbox never comes back from a pool');
    const warmCount = answers.filter((a) => a.body.warm).length;
    assert.ok(warmCount >= 1 && warmCount <= 4, `at most the 4 ready ones were warm (got ${warmCount})`);
    for (const id of ids) {
      const out = await run(server, id, 'ls /tmp/left-behind /root/mine 2>&1; ps -o args | grep -c "[s]leep 600"');
      assert.match(out.stdout, /No such file[\s\S]*No such file[\s\S]*\n0\n$/, `sandbox ${id} is clean: ${out.stdout}`);
    }
    const p = await pool('p-race');
    assert.equal(p.hits + p.misses, 7, JSON.stringify(p));
  });

  test('pool sizing follows demand: a burst of matching creates raises what the pool aims for', async () => {
    const put = await server.api('PUT', '/v1/pools/p-adapt', { ...SMALL, pids: 80, min: 0, target: 1, max: 6 });
    assert.equal(put.status, 200);
    await waitPoolSize('p-adapt', 1);
    assert.equal((await pool('p-adapt')).desired, 1);
    const burst = await Promise.all(Array.from({ length: 8 }, () => create(server, { ...SMALL, pids: 80 })));
    for (const a of burst) assert.equal(a.status, 201, JSON.stringify(a.body));
    const after = await pool('p-adapt');
    assert.ok(after.desired > 1, `desired grew after the burst: ${JSON.stringify(after)}`);
    assert.ok(after.desired <= 6, 'never above max');
    const grown = await waitPoolSize('p-adapt', 2, 40_000);
    assert.ok(grown.size + grown.starting > 1, `the pool refills beyond its target: ${JSON.stringify(grown)}`);
    for (const a of burst) {
      await deleteSandbox(server, a.body.id);
      created.delete(a.body.id);
    }
  });

  test('a pool on a snapshot hands out its files; when the snapshot is deleted its members go too', async () => {
    const source = await create(server, { ...SMALL });
    assert.equal(source.status, 201);
    const w = await run(server, source.body.id, 'echo from-snapshot > /srv-marker');
    assert.equal(w.exitCode, 0, JSON.stringify(w));
    const snap = await server.api<{ id: string }>('POST', `/v1/sandboxes/${source.body.id}/snapshots`, {});
    assert.equal(snap.status, 201, JSON.stringify(snap.body));
    const put = await server.api('PUT', '/v1/pools/p-snap', { ...SMALL, template: snap.body.id, min: 1, target: 1, max: 2 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await waitPoolSize('p-snap', 1);
    const claimed = await create(server, { ...SMALL, template: snap.body.id });
    assert.equal(claimed.status, 201);
    assert.equal(claimed.body.warm, true);
    assert.equal((await run(server, claimed.body.id, 'cat /srv-marker')).stdout, 'from-snapshot\n');
    await deleteSandbox(server, claimed.body.id);
    await deleteSandbox(server, source.body.id);
    await waitPoolSize('p-snap', 1);
    // Nothing with a record uses the snapshot any more: it may go, and its pool members with it.
    assert.equal((await server.api('DELETE', `/v1/snapshots/${snap.body.id}`)).status, 204);
    let last: Pool | null = null;
    await waitFor(async () => {
      last = await pool('p-snap');
      return last.size === 0 && last.starting === 0;
    }, 10_000);
    assert.equal(last!.size, 0, JSON.stringify(last));
    assert.match(last!.lastError ?? '', /no longer exists/);
    assert.equal((await server.api('DELETE', '/v1/pools/p-snap')).status, 204);
  });

  test('deleting a pool destroys its ready sandboxes; bad definitions are refused naming the field', async () => {
    const before = await pool('p-adapt');
    assert.ok(before.size > 0);
    const bad = await server.api<ApiError>('PUT', '/v1/pools/p-bad', { ...SMALL, min: 3, target: 1, max: 2 });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /min|target/);
    const unknown = await server.api<ApiError>('PUT', '/v1/pools/p-bad', { ...SMALL, template: 'nope', min: 0, target: 1, max: 1 });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error.message, /template/);
    assert.equal((await server.api('DELETE', '/v1/pools/p-adapt')).status, 204);
    assert.equal((await server.api('GET', '/v1/pools/p-adapt')).status, 404);
    const list = await server.api<{ pools: Pool[] }>('GET', '/v1/pools');
    assert.ok(!list.body.pools.some((p) => p.name === 'p-adapt'));
  });
});

test('an idle pool drains to its min; demand brings it back to target', { timeout: 120_000 }, async () => {
  const idle = await startServer({ networkPool4: '10.222.0.0/16', networkPool6: 'fd68:7574:6371::/48', poolIdleDrainMs: 3000 });
  const ids: string[] = [];
  try {
    const put = await idle.api('PUT', '/v1/pools/p-idle', { ...SMALL, pids: 72, min: 1, target: 3, max: 3 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const view = async (): Promise<Pool> => (await idle.api<Pool>('GET', '/v1/pools/p-idle')).body;
    assert.ok(await waitFor(async () => (await view()).size === 3, 30_000), `filled to target: ${JSON.stringify(await view())}`);
    // No matching create for longer than the drain time: down to min, the surplus destroyed.
    assert.ok(await waitFor(async () => (await view()).size === 1, 15_000), `drained to min: ${JSON.stringify(await view())}`);
    assert.equal((await view()).desired, 1);
    const res = await idle.api<Created>('POST', '/v1/sandboxes', { ...SMALL, pids: 72, timeoutSeconds: 300 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    ids.push(res.body.id);
    assert.equal(res.body.warm, true, 'the min member served it');
    assert.ok(await waitFor(async () => (await view()).size === 3, 30_000), `back to target with demand: ${JSON.stringify(await view())}`);
    assert.equal((await idle.api('DELETE', '/v1/pools/p-idle')).status, 204);
  } finally {
    for (const id of ids) await deleteSandbox(idle, id);
    await idle.stop();
  }
});

describe('admission and the create queue', () => {
  let small: TestServer;
  before(async () => {
    // About 480 MiB of memory to allocate, one cold create at a time, four waiting at most.
    small = await startServer({
      networkPool4: '10.220.0.0/16',
      networkPool6: 'fd68:7574:636f::/48',
      overcommit: { memoryMiB: 0.02 },
      createConcurrency: 1,
      createQueue: 4,
    });
  });
  after(async () => {
    const listed = await small?.api<{ sandboxes: Sandbox[] }>('GET', '/v1/sandboxes');
    for (const s of listed?.body.sandboxes ?? []) await deleteSandbox(small, s.id);
    await small?.stop();
  });

  test('a create that does not fit is refused at once with 503, Retry-After and the resource named', async () => {
    const started = Date.now();
    const res = await small.api<ApiError>('POST', '/v1/sandboxes', { ...SMALL, memoryMiB: 4096 });
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'unavailable');
    assert.match(res.body.error.message, /memory/);
    assert.ok(Number(res.headers.get('retry-after')) > 0, 'Retry-After is set');
    assert.ok(Date.now() - started < 2000, 'refused at once');
    const info = await small.api<{ capacity: { allocatable: { memoryMiB: number }; allocated: { memoryMiB: number } } }>('GET', '/v1/info');
    assert.ok(info.body.capacity.allocatable.memoryMiB < 1024, JSON.stringify(info.body.capacity));
  });

  test('per-key limits: sandboxes, memory and creates per minute, each refused with 429 naming the limit', async () => {
    const key = await small.api<{ id: string; key: string }>('POST', '/v1/keys', {
      name: 'limited',
      limits: { maxSandboxes: 2, memoryMiB: 100, createsPerMinute: 3 },
    });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const auth = { authorization: `Bearer ${key.body.key}` };
    const a = await create(small, SMALL, auth);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const overMemory = await create(small, SMALL, auth);
    assert.equal(overMemory.status, 429);
    assert.match(overMemory.body.error.message, /memoryMiB 100/);
    assert.ok(Number(overMemory.headers.get('retry-after')) > 0);
    const b = await create(small, { ...SMALL, memoryMiB: 32 }, auth);
    assert.equal(b.status, 201, JSON.stringify(b.body));
    const overCount = await create(small, { ...SMALL, memoryMiB: 16 }, auth);
    assert.equal(overCount.status, 429);
    assert.match(overCount.body.error.message, /maxSandboxes 2/);
    await deleteSandbox(small, a.body.id);
    await deleteSandbox(small, b.body.id);
    // Refused creates do not count: a, b and c are the three of this minute, a fourth is refused.
    const c = await create(small, { ...SMALL, memoryMiB: 16 }, auth);
    assert.equal(c.status, 201, JSON.stringify(c.body));
    await deleteSandbox(small, c.body.id);
    const overRate = await create(small, { ...SMALL, memoryMiB: 16 }, auth);
    assert.equal(overRate.status, 429);
    assert.match(overRate.body.error.message, /createsPerMinute 3/);
    // Limits can be lifted.
    const lifted = await small.api('PUT', `/v1/keys/${key.body.id}/limits`, null);
    assert.equal(lifted.status, 200);
    const d = await create(small, { ...SMALL, memoryMiB: 16 }, auth);
    assert.equal(d.status, 201, JSON.stringify(d.body));
    await deleteSandbox(small, d.body.id);
  });

  test('the queue is bounded (429 with Retry-After beyond it) and serves callers in turn', async () => {
    const other = await small.api<{ key: string }>('POST', '/v1/keys', { name: 'other' });
    const done: Array<{ who: string; at: number; status: number; id?: string; retryAfter: string | null }> = [];
    const fire = (who: string, headers: Record<string, string> = {}) =>
      create(small, { ...SMALL, memoryMiB: 16 }, headers).then((r) => {
        done.push({ who, at: performance.now(), status: r.status, id: r.body.id, retryAfter: r.headers.get('retry-after') });
      });
    // Seven from the admin key at once: one runs, four wait, two are refused.
    const first = Array.from({ length: 7 }, () => fire('admin'));
    await sleep(5);
    // Then one from another key; the queue is full, so it is refused too...
    const refusedOther = fire('other', { authorization: `Bearer ${other.body.key}` });
    await Promise.all([...first, refusedOther]);
    const refused = done.filter((d) => d.status === 429);
    assert.equal(refused.length, 3, JSON.stringify(done));
    for (const r of refused) assert.ok(Number(r.retryAfter) >= 1, 'Retry-After on every 429');
    assert.equal(done.filter((d) => d.status === 201).length, 5);
    for (const d of done) if (d.id) await deleteSandbox(small, d.id);

    // Fairness: admin queues three behind a running one; other's single create is served in turn
    // (after admin's running and next one), not behind all of admin's.
    done.length = 0;
    const admin = Array.from({ length: 4 }, () => fire('admin'));
    await sleep(5);
    const mine = fire('other', { authorization: `Bearer ${other.body.key}` });
    await Promise.all([...admin, mine]);
    assert.equal(done.filter((d) => d.status === 201).length, 5, JSON.stringify(done));
    const order = done.map((d) => d.who);
    assert.ok(order.indexOf('other') <= 2, `the other key's create was not kept behind all of admin's: ${order.join(',')}`);
    for (const d of done) if (d.id) await deleteSandbox(small, d.id);
  });

  test('burst: 100 creates at once each succeed or get 429 with Retry-After; nothing leaks afterwards', { timeout: 180_000 }, async () => {
    const burst = await startServer({ networkPool4: '10.221.0.0/16', networkPool6: 'fd68:7574:6370::/48', createQueue: 32 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 100 }, () => burst.api<Sandbox & ApiError>('POST', '/v1/sandboxes', { ...SMALL, timeoutSeconds: 300 })),
      );
      const ok = answers.filter((a) => a.status === 201);
      const refused = answers.filter((a) => a.status === 429);
      const others = answers.filter((a) => a.status !== 201 && a.status !== 429);
      assert.equal(ok.length + refused.length, 100, `only 201 or 429: ${JSON.stringify(others.map((a) => a.body)).slice(0, 800)}`);
      assert.ok(ok.length >= 32, `the queue's worth succeeded (${ok.length})`);
      for (const r of refused) assert.ok(Number(r.headers.get('retry-after')) >= 1);
      const check = await Promise.all(ok.slice(0, 5).map((a) => run(burst, a.body.id, 'echo ok')));
      for (const c of check) assert.equal(c.stdout, 'ok\n');
      for (const a of ok) await deleteSandbox(burst, a.body.id);
      for (const a of ok) await assertNoLeftovers(burst, 'container', a.body.id);
    } finally {
      await burst.stop();
    }
  });
});
