import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LeaderDuties, SoleLeadership } from '../packages/server/src/core/leadership.js';
import { PostgresLeadership } from '../packages/server/src/store/pg-leader.js';
import { startServer, type TestServer } from './harness.js';
import { startPostgres, type PgCluster } from './pg-fixture.js';

/**
 * Leader election on a real PostgreSQL store: two electors (then two real servers) on one
 * database; exactly one leads, and killing the leader's session or stopping it hands leadership
 * to the other within a bounded time. Never both at once.
 */
const RETRY_MS = 300;
const SMALL = { template: 'minimal', isolation: 'container', cpu: 0.25, memoryMiB: 48, pids: 64, diskMiB: 128, timeoutSeconds: 120 };
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

let cluster: PgCluster;
before(async () => {
  cluster = await startPostgres();
});
after(() => cluster?.stop());

async function until(what: string, check: () => boolean | Promise<boolean>, withinMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < withinMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what}: not within ${withinMs} ms`);
}

/** Samples the electors every 10 ms; fails the test if two ever lead at once. */
function watchOverlap(electors: Array<{ leader: boolean }>): { stop(): void; samples(): number } {
  let samples = 0;
  let overlap = false;
  const timer = setInterval(() => {
    samples++;
    if (electors.filter((e) => e.leader).length > 1) overlap = true;
  }, 10);
  return {
    stop() {
      clearInterval(timer);
      assert.equal(overlap, false, 'two electors led at the same time');
    },
    samples: () => samples,
  };
}

describe('PostgreSQL advisory-lock leadership', () => {
  let url: string;
  before(async () => {
    url = await cluster.createDatabase('leader');
  });

  test('exactly one of two electors leads; a killed session and a stop each hand over within bounds', async () => {
    const a = new PostgresLeadership(url, quiet, { retryMs: RETRY_MS, applicationName: 'elector-a' });
    const b = new PostgresLeadership(url, quiet, { retryMs: RETRY_MS, applicationName: 'elector-b' });
    const changes: string[] = [];
    a.onChange((l) => changes.push(`a:${l}`));
    b.onChange((l) => changes.push(`b:${l}`));
    const watch = watchOverlap([a, b]);
    try {
      await a.start();
      await b.start();
      assert.equal(a.leader, true, 'the first elector leads after its first attempt');
      assert.equal(b.leader, false);
      // The lock is visible in the database, held by a's session.
      const holders = await cluster.query<{ application_name: string }>(
        `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid`,
        [0x68757463],
        'leader',
      );
      assert.deepEqual(
        holders.map((h) => h.application_name),
        ['elector-a'],
      );
      // b keeps trying and keeps failing while a holds it.
      await new Promise((r) => setTimeout(r, RETRY_MS * 3));
      assert.equal(b.leader, false);

      // Kill the leader's session from the database side.
      const pid = a.sessionPid;
      assert.ok(pid, 'a has a session');
      const killedAt = Date.now();
      await cluster.query('SELECT pg_terminate_backend($1)', [pid], 'leader');
      const lost = await until('a notices it lost its session', () => !a.leader, 3 * RETRY_MS + 2000);
      const taken = await until('b takes over', () => b.leader, 4 * RETRY_MS + 2000);
      assert.ok(Date.now() - killedAt < 4 * RETRY_MS + 2000, `handover took ${Date.now() - killedAt} ms`);
      // The replica that lost stays a follower while b leads (it retries, and fails).
      await new Promise((r) => setTimeout(r, RETRY_MS * 4));
      assert.equal(a.leader, false);
      assert.equal(b.leader, true);

      // Stopping the leader gives the lock up at once: a takes over within a retry or two.
      const stoppedAt = Date.now();
      await b.close();
      assert.equal(b.leader, false);
      await until('a takes over after b stops', () => a.leader, 3 * RETRY_MS + 2000);
      const handover = Date.now() - stoppedAt;
      assert.ok(handover < 3 * RETRY_MS + 2000, `handover took ${handover} ms`);
      assert.deepEqual(changes, ['a:true', 'a:false', 'b:true', 'b:false', 'a:true']);
      console.log(`lost after ${lost} ms, taken over ${taken} ms later, handover after a stop ${handover} ms`);
    } finally {
      watch.stop();
      await a.close();
      await b.close();
    }
    assert.ok(watch.samples() > 50, 'the overlap watch ran');
  });

  test('duties run only while leading, and stop when leadership is lost', async () => {
    const a = new PostgresLeadership(url, quiet, { retryMs: RETRY_MS });
    const b = new PostgresLeadership(url, quiet, { retryMs: RETRY_MS });
    const running = { a: 0, b: 0 };
    const duty = (who: 'a' | 'b') => ({
      name: `loop-${who}`,
      start: () => {
        running[who]++;
      },
      stop: () => {
        running[who]--;
      },
    });
    await a.start();
    await b.start();
    const dutiesA = new LeaderDuties(a, [duty('a')], quiet);
    const dutiesB = new LeaderDuties(b, [duty('b')], quiet);
    try {
      await until('a runs its duty', () => running.a === 1 && dutiesA.active, 2000);
      assert.equal(running.b, 0);
      await cluster.query('SELECT pg_terminate_backend($1)', [a.sessionPid], 'leader');
      await until('a stops its duty', () => running.a === 0, 3000);
      await until('b runs its duty', () => running.b === 1, 4 * RETRY_MS + 2000);
      assert.equal(dutiesA.active, false);
      // A shutdown stops the duties and ignores later changes.
      await dutiesB.close();
      assert.equal(running.b, 0);
      await b.close();
      await until('a leads again', () => a.leader, 3 * RETRY_MS + 2000);
      await until('a runs its duty again', () => running.a === 1, 2000);
      assert.equal(running.b, 0, 'closed duties never restart');
    } finally {
      await dutiesA.close();
      await dutiesB.close();
      await a.close();
      await b.close();
    }
    assert.equal(running.a, 0);
  });

  test('an unreachable store: not the leader, and a clear error without the password', async () => {
    const warnings: string[] = [];
    const bad = url.replace(cluster.password, 'wrong-password-xyz');
    const e = new PostgresLeadership(bad, { info: () => undefined, warn: (o) => warnings.push(JSON.stringify(o)) }, { retryMs: RETRY_MS });
    await e.start();
    await e.close();
    assert.equal(e.leader, false);
    assert.ok(
      warnings.some((w) => /password authentication failed/.test(w)),
      warnings.join('\n'),
    );
    assert.ok(!warnings.some((w) => w.includes('wrong-password-xyz')));
  });
});

test('SQLite: a sole server always leads', async () => {
  const sole = new SoleLeadership();
  const seen: boolean[] = [];
  sole.onChange((l) => seen.push(l));
  await sole.start();
  assert.equal(sole.leader, true);
  await sole.close();
  assert.deepEqual(seen, [true, false]);
});

describe('two real servers on one PostgreSQL store', () => {
  let first: TestServer;
  let second: TestServer;
  before(async () => {
    const store = await cluster.createDatabase('replicas');
    // Each with its own data dir and address pools; the store (and its lock) is shared.
    first = await startServer({
      store,
      networkPool4: '10.233.0.0/16',
      networkPool6: 'fd68:7574:63e9::/48',
      leaderRetryMs: RETRY_MS,
      logLevel: 'info',
      sampleIntervalSeconds: 1,
    });
    second = await startServer({
      store,
      networkPool4: '10.234.0.0/16',
      networkPool6: 'fd68:7574:63ea::/48',
      leaderRetryMs: RETRY_MS,
      logLevel: 'info',
      sampleIntervalSeconds: 1,
    });
  });
  after(async () => {
    await second?.stop();
    await first?.stop();
  });

  const health = async (s: TestServer): Promise<{ ok: boolean; leader: boolean }> =>
    (await (await fetch(`${s.url}/healthz`)).json()) as { ok: boolean; leader: boolean };
  const leaderMetric = async (s: TestServer): Promise<string | undefined> => {
    const res = await s.api<string>('GET', '/metrics');
    return /^hutch_leader (\d)$/m.exec(res.body)?.[1];
  };

  test('one leads (healthz, info, metric); killing it hands the loops to the other', async () => {
    assert.deepEqual(await health(first), { ok: true, leader: true });
    assert.deepEqual(await health(second), { ok: true, leader: false });
    assert.equal((await first.api<{ leader: boolean }>('GET', '/v1/info')).body.leader, true);
    assert.equal((await second.api<{ leader: boolean }>('GET', '/v1/info')).body.leader, false);
    assert.equal(await leaderMetric(first), '1');
    assert.equal(await leaderMetric(second), '0');
    assert.match(second.output(), /another replica leads: not reconciling/);
    // Both serve the API from the shared store: a tenant made on one is seen by the other.
    assert.equal((await first.api('POST', '/v1/admin/tenants', { name: 'shared' })).status, 201);
    const tenants = await second.api<{ tenants: Array<{ name: string }> }>('GET', '/v1/admin/tenants');
    assert.ok(tenants.body.tenants.some((t) => t.name === 'shared'));

    // What a replica keeps in memory follows the other's changes within a bounded time: a key
    // revoked on one stops working on the other (its verification cache is re-read after 5 s),
    // quotas set on one are enforced with the other's tenant copy (re-read every 5 s).
    const key = await first.api<{ id: string; key: string }>('POST', '/v1/keys', { tenant: 'shared', role: 'member', name: 'k' });
    assert.equal(key.status, 201);
    const asKey = { authorization: `Bearer ${key.body.key}` };
    assert.equal((await second.api('GET', '/v1/sandboxes', undefined, asKey)).status, 200);
    assert.equal((await first.api('DELETE', `/v1/keys/${key.body.id}`)).status, 200);
    const revokedIn = await until(
      'the revoked key fails on the other replica',
      async () => (await second.api('GET', '/v1/sandboxes', undefined, asKey)).status === 401,
      8000,
    );
    assert.equal((await first.api('PUT', '/v1/admin/tenants/shared/quotas', { maxSandboxes: 7 })).status, 200);
    const quotasIn = await until(
      'the quotas reach the other replica',
      async () =>
        (await second.api<{ quotas: { maxSandboxes?: number } | null }>('GET', '/v1/admin/tenants/shared')).body.quotas?.maxSandboxes === 7,
      8000,
    );
    console.log(`revocation seen by the other replica after ${revokedIn} ms, quotas after ${quotasIn} ms`);

    // A follower serves sandboxes (its own runtime: the local provider) but leaves metering to
    // the leader, whose rounds meter every running sandbox of the store (here it can read the
    // follower's sandbox cgroup: same host). Were the follower to account its create and delete
    // as well, the sandbox's running time would be counted about twice.
    const bornAt = Date.now();
    const sb = await second.api<{ id: string }>('POST', '/v1/sandboxes', SMALL);
    assert.equal(sb.status, 201, JSON.stringify(sb.body));
    const ran = await second.api<{ exitCode: number; stdout: string }>('POST', `/v1/sandboxes/${sb.body.id}/exec`, {
      cmd: 'echo from-follower',
    });
    assert.equal(ran.body.stdout, 'from-follower\n');
    await new Promise((r) => setTimeout(r, 3000)); // three sampling intervals
    assert.equal((await second.api('DELETE', `/v1/sandboxes/${sb.body.id}`)).status, 204);
    const lifetime = (Date.now() - bornAt) / 1000;
    const usage = await first.api<{ tenants: Array<{ tenant: string; sandboxSeconds: number }> }>('GET', '/v1/usage');
    const counted = usage.body.tenants.find((t) => t.tenant === 'default')?.sandboxSeconds ?? 0;
    assert.ok(counted > 0 && counted <= lifetime + 0.5, `sandbox seconds ${counted} for a sandbox that lived ${lifetime.toFixed(2)} s`);

    const killedAt = Date.now();
    await first.kill9();
    const took = await until('the second server leads', async () => (await health(second)).leader, 4 * RETRY_MS + 5000);
    assert.equal(await leaderMetric(second), '1');
    assert.match(second.output(), /leadership gained/);
    console.log(`second server led ${took} ms after the first was killed (${Date.now() - killedAt} ms)`);
    // The first comes back as a follower.
    await first.restart();
    assert.deepEqual(await health(first), { ok: true, leader: false });
  });
});
