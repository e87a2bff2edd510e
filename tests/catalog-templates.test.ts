import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { quote } from 'shell-quote';
import { loadComposeProject } from '../packages/server/src/environments/load.js';
import { planService, type ServicePlan } from '../packages/server/src/environments/service-plan.js';
import { startServer, type TestServer } from './harness.js';

// The catalog's templates keep the images' runtime contract: a service planned from a Compose file
// that says `image: postgres:15` / `image: redis:7` starts in a real sandbox of the template, its
// data is initialized from POSTGRES_* as the official image does, and the catalog's healthcheck
// turns healthy. (The environment service does the same through its own code: environments.test.ts.)

let server: TestServer;
let dir: string;
before(async () => {
  server = await startServer();
  dir = await mkdtemp(join(tmpdir(), 'hutch-catalog-'));
});
after(async () => {
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Exec {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function plans(): Promise<Record<string, ServicePlan>> {
  await writeFile(
    join(dir, 'compose.yaml'),
    [
      'services:',
      '  db:',
      '    image: postgres:15',
      '    environment: { POSTGRES_USER: app, POSTGRES_PASSWORD: "pw with space", POSTGRES_DB: shop }',
      '  cache:',
      '    image: redis:7',
      '',
    ].join('\n'),
  );
  const model = await loadComposeProject({ dir });
  return Object.fromEntries(model.services.map((s) => [s.name, planService(s, model, {})]));
}

/** Creates a sandbox for the plan and starts its main process in the background, as the plan's user. */
async function start(plan: ServicePlan): Promise<string> {
  const created = await server.api<{ id: string }>('POST', '/v1/sandboxes', { template: plan.template, env: plan.env });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const run = await server.api<Exec>('POST', `/v1/sandboxes/${id}/exec`, {
    cmd: `nohup ${quote(plan.argv)} > /tmp/main.log 2>&1 &`,
    ...(plan.user ? { user: plan.user } : {}),
    ...(plan.workingDir ? { cwd: plan.workingDir } : {}),
  });
  assert.equal(run.body.exitCode, 0, run.body.stderr);
  return id;
}

async function exec(id: string, cmd: string | string[], user?: string | null): Promise<Exec> {
  const res = await server.api<Exec>('POST', `/v1/sandboxes/${id}/exec`, { cmd, ...(user ? { user } : {}) });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

/** Users running a program (the templates have no ps). */
const usersOf = (comm: string): string =>
  `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ${comm} ] && stat -c %U $p; done | sort -u`;

async function healthy(id: string, plan: ServicePlan): Promise<void> {
  assert.ok(plan.healthcheck, 'the catalog gives a healthcheck');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await exec(id, plan.healthcheck.test, plan.user);
    if (r.exitCode === 0) return;
    if (Date.now() > deadline) {
      const log = await exec(id, 'cat /tmp/main.log');
      assert.fail(`not healthy within 60 s: ${log.stdout}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

test('postgres:15 initializes from POSTGRES_* and answers over TCP with the password', async () => {
  const plan = (await plans()).db!;
  assert.equal(plan.template, 'postgres-15');
  const id = await start(plan);
  await healthy(id, plan);
  const query = await exec(
    id,
    ['psql', '-h', '127.0.0.1', '-U', 'app', '-d', 'shop', '-tAc', 'select current_user, current_database(), 6*7'],
    plan.user,
  );
  // Without PGPASSWORD, TCP logins need the password (scram-sha-256): psql fails without a prompt.
  assert.notEqual(query.exitCode, 0, query.stdout);
  assert.match(query.stderr, /password|fe_sendauth/i);
  const withPassword = await exec(
    id,
    'PGPASSWORD="pw with space" psql -h 127.0.0.1 -U app -d shop -tAc "select current_user, current_database(), 6*7"',
    plan.user,
  );
  assert.equal(withPassword.exitCode, 0, withPassword.stderr);
  assert.equal(withPassword.stdout.trim(), 'app|shop|42');
  const owner = await exec(id, `stat -c %U /var/lib/postgresql/data/pgdata && ${usersOf('postgres')}`);
  assert.equal(owner.stdout.trim(), 'postgres\npostgres');
});

test('redis:7 serves on every address as user redis, data in /data', async () => {
  const plan = (await plans()).cache!;
  assert.equal(plan.template, 'redis-7');
  const id = await start(plan);
  await healthy(id, plan);
  assert.equal((await exec(id, 'redis-cli set greeting hello && redis-cli save && redis-cli get greeting')).stdout, 'OK\nOK\nhello\n');
  const where = await exec(id, `ls /data && ${usersOf('redis-server')}`);
  assert.equal(where.stdout, 'dump.rdb\nredis\n');
});
