import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create as tarCreate } from 'tar';
import { sleep, waitFor } from './hostile-lib.js';
import { REPO, startServer, type TestServer } from './harness.js';

/**
 * Issue 8, the environment lifecycle, with real sandboxes: `keep` and TTL overrides (PATCH, CLI,
 * x-hutch.ttl) with their validation errors naming the field; the idle TTL puts an environment to
 * sleep (sandboxes stopped) and a request through its URL wakes it with its database's data; the
 * delete TTL destroys one; kept ones are left alone.
 */
interface Service {
  name: string;
  state: string;
  note: string | null;
  exitCode: number | null;
  job: boolean;
  sandboxId: string;
  url: string | null;
  routes: Array<{ port: number; url: string }>;
}
interface Environment {
  id: string;
  state: string;
  error: string | null;
  keep: boolean;
  ttl: { idleSeconds: number; deleteSeconds: number };
  activeAt: string;
  sleepsAt: string | null;
  deletesAt: string | null;
  sleptAt: string | null;
  slug: string;
  url: string | null;
  services: Service[];
  volumes: Array<{ name: string; volume: string; owned: boolean }>;
}
interface ApiError {
  error?: { code: string; message: string };
}

/** Per-service hosts live under it; requests reach them with a Host header, never by resolving it. */
const PREVIEW_DOMAIN = 'preview.test';
let server: TestServer;
let scratch: string;

/** A Compose project in a scratch directory, as the base64 tar.gz POST /v1/environments takes. */
async function project(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(scratch, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of tarCreate({ cwd: dir, gzip: true, portable: true }, ['.'])) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('base64');
}

/** One idle service on the minimal template, with `extra` top-level Compose lines. */
const IDLE = (extra = ''): string =>
  ['services:', '  idle:', '    image: busybox', '    command: sleep 100000', '    x-hutch: {template: minimal}', extra, ''].join('\n');

/** The fixture app (postgres, seed job, API) with top-level x-hutch lines appended. */
async function fixtureApp(name: string, xHutch: string, files: Record<string, string> = {}): Promise<string> {
  const dir = join(scratch, name);
  cpSync(join(REPO, 'tests/fixtures/preview-app'), dir, { recursive: true });
  appendFileSync(join(dir, 'compose.yaml'), `\nx-hutch:\n${xHutch}\n`);
  return project(name, files);
}

async function sandboxState(id: string): Promise<string> {
  const res = await server.api<{ state: string }>('GET', `/v1/sandboxes/${id}`);
  return res.status === 404 ? 'gone' : res.body.state;
}

/**
 * GET an ingress URL (a sandbox-port URL or a per-service host) on the test server's own listener:
 * the URL's host goes in the Host header, never resolved. With the API key unless `key` is null.
 */
function viaUrl(
  url: string,
  key: string | null = server.key,
  extra: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  const headers: Record<string, string> = { host: u.host, ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: new URL(server.url).port, path: `${u.pathname}${u.search}`, headers, agent: false, timeout: 150_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function createEnv(body: Record<string, unknown>): Promise<Environment> {
  const res = await server.api<Environment & ApiError>('POST', '/v1/environments', body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

async function getEnv(id: string): Promise<Environment> {
  const res = await server.api<Environment>('GET', `/v1/environments/${id}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function untilState(id: string, state: string, withinMs = 180_000): Promise<Environment> {
  const env = await waitFor(
    async () => {
      const e = await getEnv(id);
      return e.state === state || (e.state === 'error' && state !== 'error') ? e : null;
    },
    withinMs,
    250,
  );
  assert.ok(env, `environment ${id} did not reach ${state} within ${withinMs} ms`);
  assert.equal(env.state, state, `${env.error}`);
  return env;
}

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), ...args], {
    env: { ...process.env, HUTCH_URL: server.url, HUTCH_API_KEY: server.key },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('environment lifecycle', () => {
  before(async () => {
    // A pool of its own (no other test file uses 10.233/16).
    server = await startServer({
      networkPool4: '10.233.0.0/16',
      networkPool6: 'fd68:7574:63e9::/48',
      envSweepIntervalMs: 500,
      previewDomain: PREVIEW_DOMAIN,
    });
    scratch = mkdtempSync('/var/tmp/hutch-envlife-test-');
  });
  after(async () => {
    const left = await server?.api<{ environments: Environment[] }>('GET', '/v1/environments').catch(() => null);
    for (const env of left?.body.environments ?? []) await server.api('DELETE', `/v1/environments/${env.id}`).catch(() => undefined);
    await server?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('keep and TTL overrides: PATCH, x-hutch.ttl, the CLI, and errors naming the field', async () => {
    const env = await createEnv({
      source: { archive: await project('ttl', { 'compose.yaml': IDLE('x-hutch: {ttl: {idle: 30m, delete: 3d}}') }) },
    });
    assert.equal(env.keep, false);
    assert.deepEqual(env.ttl, { idleSeconds: 1800, deleteSeconds: 3 * 86400 });
    assert.equal(new Date(env.deletesAt!).getTime(), new Date(env.activeAt).getTime() + 3 * 86400_000);
    assert.equal(env.sleepsAt, null, 'a creating environment does not sleep');
    await untilState(env.id, 'running');
    const running = await getEnv(env.id);
    assert.equal(new Date(running.sleepsAt!).getTime(), new Date(running.activeAt).getTime() + 1800_000);

    const patch = (body: unknown) => server.api<Environment & ApiError>('PATCH', `/v1/environments/${env.id}`, body);
    const kept = await patch({ keep: true });
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.equal(kept.body.keep, true);
    assert.deepEqual([kept.body.sleepsAt, kept.body.deletesAt], [null, null], 'a kept environment has no expiry');
    assert.equal((await getEnv(env.id)).keep, true);

    const ttl = await patch({ keep: false, ttl: { idle: 'off', delete: '90m' } });
    assert.equal(ttl.status, 200, JSON.stringify(ttl.body));
    assert.deepEqual([ttl.body.keep, ttl.body.ttl], [false, { idleSeconds: 0, deleteSeconds: 5400 }]);
    assert.equal(ttl.body.sleepsAt, null);
    const reset = await patch({ ttl: { idle: null, delete: null } });
    assert.deepEqual(reset.body.ttl, { idleSeconds: 0, deleteSeconds: 0 }, "null: the server's defaults (off here)");

    for (const [body, field] of [
      [{ ttl: { idle: 'soon' } }, /ttl\.idle: "soon" is not a duration/],
      [{ ttl: { delete: '500ms' } }, /ttl\.delete: "500ms" is shorter than a second/],
      [{ ttl: { delete: '400d' } }, /ttl\.delete: .* longer than a year/],
      [{ keep: 'yes' }, /keep/],
      [{ ttl: { sleep: '1h' } }, /ttl/],
      [{ color: 'red' }, /color/],
    ] as const) {
      const res = await patch(body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.match(res.body.error!.message, field);
    }
    assert.equal((await server.api('PATCH', '/v1/environments/env-0000000000000000', { keep: true })).status, 404);

    // The CLI.
    const keep = cli('env', 'keep', env.id);
    assert.equal(keep.status, 0, keep.stderr);
    assert.equal(keep.stdout, `${env.id}: kept (no TTL applies)\n`);
    const off = cli('env', 'keep', env.id, '--off', '--json');
    assert.equal(off.status, 0, off.stderr);
    assert.equal((JSON.parse(off.stdout) as Environment).keep, false);
    const set = cli('env', 'ttl', env.id, '--idle', '45m', '--delete', 'off');
    assert.equal(set.status, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`^${env.id}: idle 45m \\(.+\\), delete off\\n$`));
    const bad = cli('env', 'ttl', env.id, '--idle', 'forever');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /ttl\.idle: "forever" is not a duration/);
    assert.equal(cli('env', 'ttl', env.id).status, 2, 'no flag is a usage error');
    assert.equal((await server.api('DELETE', `/v1/environments/${env.id}`)).status, 204);
  });

  test('x-hutch.ttl is validated at create, naming the field', async () => {
    for (const [extra, message] of [
      ['x-hutch: {ttl: {idle: later}}', /x-hutch\.ttl\.idle: "later" is not a duration/],
      ['x-hutch: {ttl: {delete: 10ms}}', /x-hutch\.ttl\.delete: "10ms" is shorter than a second/],
      ['x-hutch: {ttl: {idel: 1h}}', /x-hutch\.ttl: unknown setting "idel"/],
    ] as const) {
      const res = await server.api<ApiError>('POST', '/v1/environments', {
        source: { archive: await project(`bad-${extra.length}`, { 'compose.yaml': IDLE(extra) }) },
      });
      assert.equal(res.status, 400, extra);
      assert.match(res.body.error!.message, message);
    }
  });

  test('idle TTL: the environment sleeps (sandboxes stopped); a request through its URL wakes it with its data', async () => {
    const created = await createEnv({ source: { archive: await fixtureApp('sleepy', '  ttl: {idle: 3s}') } });
    const env = await untilState(created.id, 'running');
    const api = env.services.find((s) => s.name === 'api')!;
    const first = await viaUrl(api.url!);
    assert.equal(first.status, 200, first.text);
    assert.equal((JSON.parse(first.text) as { message: string }).message, 'hello from the seed job');

    const asleep = await untilState(env.id, 'sleeping', 60_000);
    assert.ok(asleep.sleptAt);
    assert.equal(asleep.sleepsAt, null);
    for (const s of asleep.services) {
      // Recorded first, then the sandboxes stop.
      const stopped = await waitFor(async () => (await sandboxState(s.sandboxId)) === 'stopped', 30_000, 100);
      assert.ok(stopped, `${s.name}'s sandbox is ${await sandboxState(s.sandboxId)}`);
      assert.equal(s.state, s.job ? 'completed' : 'stopped', s.name);
    }
    assert.equal(asleep.url, env.url, 'URLs stay the same');

    // A server restart (kill -9) keeps it asleep; its URLs still wake it.
    await server.restart();
    assert.equal((await getEnv(env.id)).state, 'sleeping');

    // Three requests at once: one wake, every one answered from the database.
    const answers = await Promise.all([1, 2, 3].map(() => viaUrl(api.url!)));
    for (const a of answers) {
      assert.equal(a.status, 200, a.text);
      assert.equal((JSON.parse(a.text) as { message: string }).message, 'hello from the seed job', 'the seeded row survived the sleep');
    }
    const awake = await getEnv(env.id);
    assert.equal(awake.state, 'running', `${awake.error}`);
    assert.equal(awake.sleptAt, null);
    for (const s of awake.services) assert.equal(await sandboxState(s.sandboxId), 'running', `${s.name}'s sandbox after the wake`);
    assert.deepEqual(
      awake.services.map((s) => [s.name, s.state]),
      [
        ['db', 'healthy'],
        ['seed', 'completed'],
        ['api', 'running'],
      ],
    );
    const seedRuns = await server.api<{ logs: Array<{ text: string }> }>('GET', `/v1/environments/${env.id}/logs?service=seed`);
    assert.equal(seedRuns.body.logs[0]!.text.match(/INSERT/g)?.length ?? 0, 1, 'the seed job is not run again by a wake');

    // A private route still needs a credential: no wake for strangers.
    const asleepAgain = await untilState(env.id, 'sleeping', 60_000);
    const stranger = await viaUrl(api.url!, null);
    assert.equal(stranger.status, 401);
    assert.equal((await getEnv(asleepAgain.id)).state, 'sleeping', 'an unauthorized request does not wake it');
    assert.equal((await server.api('DELETE', `/v1/environments/${env.id}`)).status, 204, 'a sleeping environment deletes');
    for (const s of env.services) assert.equal(await sandboxState(s.sandboxId), 'gone');
  });

  test('traffic renews the idle TTL', async () => {
    const created = await createEnv({ source: { archive: await fixtureApp('busy', '  ttl: {idle: 6s}') } });
    const env = await untilState(created.id, 'running');
    const api = env.services.find((s) => s.name === 'api')!;
    // Requests every 0.5 s for 8 s (longer than the TTL): it stays awake.
    for (let i = 0; i < 16; i++) {
      assert.equal((await viaUrl(api.url!)).status, 200);
      assert.equal((await getEnv(env.id)).state, 'running', `asleep after ${i} requests`);
      await sleep(500);
    }
    await untilState(env.id, 'sleeping', 60_000);
    assert.equal((await server.api('DELETE', `/v1/environments/${env.id}`)).status, 204);
  });

  test('delete TTL destroys the environment; kept ones are left alone', async () => {
    const doomed = await createEnv({ source: { archive: await fixtureApp('doomed', '  ttl: {delete: 3s}') } });
    const kept = await createEnv({
      keep: true,
      source: { archive: await project('kept', { 'compose.yaml': IDLE('x-hutch: {ttl: {idle: 1s, delete: 2s}}') }) },
    });
    const running = await untilState(doomed.id, 'running');
    const gone = await waitFor(async () => (await server.api('GET', `/v1/environments/${doomed.id}`)).status === 404, 60_000, 250);
    assert.ok(gone, 'deleted by its TTL');
    for (const s of running.services) assert.equal(await sandboxState(s.sandboxId), 'gone', `${s.name}'s sandbox`);
    const volumes = await server.api<{ volumes: Array<{ name: string }> }>('GET', '/v1/volumes');
    assert.deepEqual(
      volumes.body.volumes.filter((v) => v.name.startsWith(doomed.id)),
      [],
      'its volumes are gone',
    );
    assert.equal((await server.api('DELETE', `/v1/environments/${doomed.id}`)).status, 204, 'deleting again is fine');

    // The kept one (idle 1 s, delete 2 s) is still running, well past both.
    const k = await getEnv(kept.id);
    assert.deepEqual([k.state, k.keep, k.sleepsAt, k.deletesAt], ['running', true, null, null]);
    assert.equal(await sandboxState(k.services[0]!.sandboxId), 'running');
    // Unpinned, its TTLs apply again, counted from now.
    assert.equal((await server.api('PATCH', `/v1/environments/${kept.id}`, { keep: false })).status, 200);
    const removed = await waitFor(async () => (await server.api('GET', `/v1/environments/${kept.id}`)).status === 404, 60_000, 250);
    assert.ok(removed, 'unpinned, its delete TTL applies');
  });

  test('per-service hosts: {service}--{slug}.{preview-domain}, other routes, access rules, 404s', async () => {
    // The fixture app named "shop": slug "shop"; its API's preview variables are those hosts.
    const shop = await untilState(
      (await createEnv({ name: 'shop', source: { archive: await fixtureApp('shop', '  ttl: {idle: off}') } })).id,
      'running',
    );
    assert.equal(shop.slug, 'shop');
    const api = shop.services.find((s) => s.name === 'api')!;
    assert.equal(api.url, `http://api--shop.${PREVIEW_DOMAIN}/`);
    assert.equal(shop.url, api.url, 'PREVIEW_URL');
    const answer = await viaUrl(api.url!);
    assert.equal(answer.status, 200, answer.text);
    const body = JSON.parse(answer.text) as { message: string; preview: Record<string, string> };
    assert.equal(body.message, 'hello from the seed job');
    assert.equal(body.preview.PREVIEW_URL_API, api.url);
    assert.equal(body.preview.PREVIEW_URL, api.url);
    assert.equal((await viaUrl(api.url!, null)).status, 401, 'a private route needs a credential');
    // The port's own credentials work on its host: a signed token (hutch url) and the access token.
    const signed = await server.api<{ url: string; headers: Record<string, string> }>(
      'GET',
      `/v1/sandboxes/${api.sandboxId}/url?port=8000`,
    );
    assert.equal(signed.status, 200);
    const token = new URL(signed.body.url).searchParams.get('hutch_token')!;
    assert.equal((await viaUrl(`${api.url!}?hutch_token=${token}`, null)).status, 200, 'signed token');
    assert.equal((await viaUrl(api.url!, null, signed.body.headers)).status, 200, 'X-Hutch-Access-Token');
    for (const host of [
      `nope--shop.${PREVIEW_DOMAIN}`,
      `api--nope.${PREVIEW_DOMAIN}`,
      `db--shop.${PREVIEW_DOMAIN}`,
      `api-9999--shop.${PREVIEW_DOMAIN}`,
    ])
      assert.equal((await viaUrl(`http://${host}/`)).status, 404, host);

    // A pull request's environment: pr-<n>--<project>; a public service with a second route.
    const web = [
      'services:',
      '  web:',
      '    image: busybox',
      '    x-hutch: {template: minimal, public: true}',
      "    command: ['sh', '-c', 'mkdir -p /a /b && echo first > /a/index.html && echo second > /b/index.html && httpd -p 9090 -h /b && exec httpd -f -p 8080 -h /a']",
      "    ports: ['8080:8080']",
      "    expose: ['9090']",
      '',
    ].join('\n');
    const pr = await untilState(
      (await createEnv({ prNumber: 12, project: 'shop', source: { archive: await project('web', { 'compose.yaml': web }) } })).id,
      'running',
    );
    assert.equal(pr.slug, 'pr-12--shop');
    const w = pr.services[0]!;
    assert.deepEqual(w.routes, [
      { port: 8080, url: `http://web--pr-12--shop.${PREVIEW_DOMAIN}/` },
      { port: 9090, url: `http://web-9090--pr-12--shop.${PREVIEW_DOMAIN}/` },
    ]);
    assert.deepEqual(await viaUrl(w.routes[0]!.url, null), { status: 200, text: 'first\n' }, 'public: no credential needed');
    assert.deepEqual(await viaUrl(w.routes[1]!.url, null), { status: 200, text: 'second\n' });
    // Another tenant's key: a private route is a 404 as for an unknown host (public ones answer anyone).
    assert.equal((await server.api('POST', '/v1/admin/tenants', { name: 'envlife-b' })).status, 201);
    const other = await server.api<{ key: string }>('POST', '/v1/keys', { tenant: 'envlife-b', role: 'member' });
    assert.equal((await viaUrl(api.url!, other.body.key)).status, 404);

    for (const id of [shop.id, pr.id]) assert.equal((await server.api('DELETE', `/v1/environments/${id}`)).status, 204);
    assert.equal((await viaUrl(api.url!)).status, 404, 'a deleted environment has no hosts');
  });

  test('seed snapshots: the second environment skips the seed job and reads the seeded row; a changed seed job re-seeds', async () => {
    interface Seed {
      project: string;
      baseRef: string;
      volume: string;
      inputsHash: string;
      snapshotVolume: string;
      environment: string | null;
    }
    const SEED = '  seed: {strategy: snapshot, volume: db-data, job: seed}';
    const seeds = async (): Promise<Seed[]> => (await server.api<{ seeds: Seed[] }>('GET', '/v1/environment-seeds')).body.seeds;
    const volumeNames = async (): Promise<string[]> =>
      (await server.api<{ volumes: Array<{ name: string }> }>('GET', '/v1/volumes')).body.volumes.map((v) => v.name);
    const up = async (name: string, files: Record<string, string> = {}): Promise<Environment> =>
      untilState(
        (await createEnv({ project: 'seedy', baseRef: 'main', source: { archive: await fixtureApp(name, SEED, files) } })).id,
        'running',
      );
    const greeting = async (env: Environment): Promise<string> => {
      const a = await viaUrl(env.services.find((s) => s.name === 'api')!.url!);
      assert.equal(a.status, 200, a.text);
      return (JSON.parse(a.text) as { message: string }).message;
    };

    const first = await up('seed-1');
    const seed1 = first.services.find((s) => s.name === 'seed')!;
    assert.deepEqual([seed1.state, seed1.exitCode, seed1.note], ['completed', 0, null], 'the first environment runs the seed job');
    const [golden] = await seeds();
    assert.ok(golden, 'a seed snapshot was taken');
    assert.deepEqual([golden.project, golden.baseRef, golden.volume, golden.environment], ['seedy', 'main', 'db-data', first.id]);
    assert.ok((await volumeNames()).includes(golden.snapshotVolume));

    const second = await up('seed-2');
    const seed2 = second.services.find((s) => s.name === 'seed')!;
    assert.deepEqual([seed2.state, seed2.note], ['completed', 'from seed snapshot']);
    assert.equal((await server.api('GET', `/v1/sandboxes/${seed2.sandboxId}`)).status, 404, 'a skipped seed job has no sandbox');
    assert.equal(await greeting(second), 'hello from the seed job', 'the cloned volume holds the seeded row');
    // Its own copy: a write in the second environment is not in the first.
    const db2 = second.services.find((s) => s.name === 'db')!.sandboxId;
    const write = await server.api<{ exitCode: number; stderr: string }>('POST', `/v1/sandboxes/${db2}/exec`, {
      cmd: ['psql', '-h', '127.0.0.1', '-U', 'app', '-d', 'app', '-c', "UPDATE greetings SET message = 'changed in 2'"],
    });
    assert.equal(write.body.exitCode, 0, write.body.stderr);
    assert.equal(await greeting(second), 'changed in 2');
    assert.equal(await greeting(first), 'hello from the seed job');

    // A changed seed job (its SQL file) invalidates the snapshot: the job runs and a new one replaces it.
    const third = await up('seed-3', {
      'seed/seed.sql': `${readFileSync(join(REPO, 'tests/fixtures/preview-app/seed/seed.sql'), 'utf8')}-- v2\n`,
    });
    const seed3 = third.services.find((s) => s.name === 'seed')!;
    assert.deepEqual([seed3.state, seed3.exitCode, seed3.note], ['completed', 0, null]);
    const [replaced] = await seeds();
    assert.ok(replaced);
    assert.notEqual(replaced.inputsHash, golden.inputsHash);
    assert.equal(replaced.environment, third.id);
    assert.ok(!(await volumeNames()).includes(golden.snapshotVolume), 'the old snapshot volume is removed');

    // The CLI lists it; refresh forgets it: the next environment seeds again.
    const listed = cli('env', 'seeds');
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(
      listed.stdout,
      new RegExp(`^seedy\\s+main\\s+db-data\\s+${replaced.snapshotVolume}\\s+${replaced.inputsHash.slice(0, 12)}\\s+${third.id}`, 'm'),
    );
    assert.equal(cli('env', 'reseed', 'other-project').stderr, 'hutch: no seed snapshots of other-project\n');
    const refreshed = await server.api<{ seeds: Seed[] }>('POST', '/v1/environment-seeds/refresh', { project: 'seedy' });
    assert.equal(refreshed.status, 200);
    assert.deepEqual(
      refreshed.body.seeds.map((s) => s.snapshotVolume),
      [replaced.snapshotVolume],
    );
    assert.deepEqual(await seeds(), []);
    assert.ok(!(await volumeNames()).includes(replaced.snapshotVolume));

    for (const [extra, message] of [
      ['  seed: {strategy: snapshot, volume: nope, job: seed}', /x-hutch\.seed\.volume: "nope" is not one of the project's volumes/],
      ['  seed: {strategy: snapshot, volume: db-data, job: api}', /x-hutch\.seed\.job: "api" must be a job/],
      ['  seed: {strategy: clone, volume: db-data, job: seed}', /x-hutch\.seed\.strategy/],
    ] as const) {
      const res = await server.api<ApiError>('POST', '/v1/environments', {
        source: { archive: await fixtureApp(`bad-seed-${extra.length}`, extra) },
      });
      assert.equal(res.status, 400, extra);
      assert.match(res.body.error!.message, message);
    }
    for (const env of [first, second, third]) assert.equal((await server.api('DELETE', `/v1/environments/${env.id}`)).status, 204);
  });
});
