import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create as tarCreate } from 'tar';
import { assertNoLeftovers, createSandbox, deleteSandbox, run, sleep, waitFor } from './hostile-lib.js';
import { REPO, startServer, type TestServer } from './harness.js';

/**
 * Issue 8, first slice — environments from a Compose project, end to end with real sandboxes:
 * tests/fixtures/preview-app (postgres:15, a seed job with restart "no", an API on the base
 * template reading the seeded row) comes up from an uploaded archive and answers through its URL;
 * a second environment comes from a local bare git repository over file://; service names resolve
 * and connect inside an environment, never across environments nor from a plain sandbox (IPv4
 * and IPv6); a server restart keeps them; delete leaves nothing behind; bad projects get a 400
 * naming the field; another tenant sees 404s.
 */
interface Service {
  name: string;
  state: string;
  job: boolean;
  sandboxId: string;
  template: string;
  url: string | null;
  routes: Array<{ port: number; url: string }>;
  exitCode: number | null;
  error: string | null;
}
interface Environment {
  id: string;
  tenant: string;
  state: string;
  error: string | null;
  url: string | null;
  gitSha: string | null;
  prNumber: number | null;
  source: { kind: string; url?: string; ref?: string };
  services: Service[];
  volumes: Array<{ name: string; volume: string; owned: boolean }>;
  warnings: string[];
}
interface ApiError {
  error?: { code: string; message: string };
}

const APP = join(REPO, 'tests/fixtures/preview-app');
let server: TestServer;
let scratch: string;
/** The fixture app (archive) and the small git-sourced one. */
let app: Environment;
let other: Environment;

async function archiveOf(dir: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of tarCreate({ cwd: dir, gzip: true, portable: true }, ['.'])) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('base64');
}

async function createEnv(body: Record<string, unknown>): Promise<Environment> {
  const res = await server.api<Environment & ApiError>('POST', '/v1/environments', body);
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

/** Polls until the environment leaves `creating` (bounded); asserts it is running. */
async function untilRunning(id: string): Promise<Environment> {
  const env = await waitFor(
    async () => {
      const res = await server.api<Environment>('GET', `/v1/environments/${id}`);
      return res.body.state !== 'creating' ? res.body : null;
    },
    180_000,
    500,
  );
  assert.ok(env, `environment ${id} still creating after 180 s`);
  assert.equal(env.state, 'running', `${env.error}\n${JSON.stringify(env.services, null, 1)}`);
  return env;
}

const service = (env: Environment, name: string): Service => {
  const s = env.services.find((x) => x.name === name);
  assert.ok(s, `service ${name}`);
  return s;
};

async function addresses(sandboxId: string): Promise<{ ipv4: string; ipv6: string }> {
  const res = await server.api<{ ipv4: string; ipv6: string }>('GET', `/v1/sandboxes/${sandboxId}/network`);
  assert.equal(res.status, 200);
  return res.body;
}

/** Whether a TCP connection from the sandbox to host:port opens within 3 s (bash /dev/tcp). */
async function connects(sandboxId: string, host: string, port: number): Promise<boolean> {
  const r = await run(server, sandboxId, ['bash', '-c', `timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' && echo open`], {
    user: 'root',
  });
  return r.stdout.trim() === 'open';
}

async function resolves(sandboxId: string, name: string): Promise<string[]> {
  const r = await run(server, sandboxId, ['getent', 'ahosts', name], { user: 'root' });
  return [
    ...new Set(
      r.stdout
        .split('\n')
        .map((l) => l.split(/\s+/)[0]!)
        .filter(Boolean),
    ),
  ].sort();
}

/** GET through the ingress URL with the API key (routes are private by default). */
async function viaUrl(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${server.key}` } });
  return { status: res.status, text: await res.text() };
}

/** A bare repository (file://) holding a tiny project: redis and a client that idles. */
function gitProject(): { url: string; sha: string } {
  const work = join(scratch, 'work');
  mkdirSync(work, { recursive: true });
  writeFileSync(
    join(work, 'compose.yaml'),
    [
      'services:',
      '  cache:',
      '    image: redis:7',
      '  client:',
      '    image: debian:12',
      '    command: sleep infinity',
      '    depends_on:',
      '      cache:',
      '        condition: service_healthy',
      '',
    ].join('\n'),
  );
  const git = (cwd: string, ...args: string[]): string =>
    execFileSync('git', args, {
      cwd,
      env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
    }).toString();
  git(work, 'init', '-q', '-b', 'main');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'project');
  const bare = join(scratch, 'project.git');
  git(scratch, 'clone', '-q', '--bare', work, bare);
  return { url: `file://${bare}`, sha: git(work, 'rev-parse', 'HEAD').trim() };
}

before(async () => {
  // A pool of its own: another server on this host (or one left by a crash) may hold the default.
  const n = 240 + Math.floor(Math.random() * 10);
  server = await startServer({
    gitAllowFileUrls: true,
    networkPool4: `10.${n}.0.0/16`,
    networkPool6: `fd68:7574:63${n.toString(16)}::/48`,
  });
  scratch = mkdtempSync('/var/tmp/hutch-env-test-');
});
after(async () => {
  const left = await server?.api<{ environments: Environment[] }>('GET', '/v1/environments').catch(() => null);
  for (const env of left?.body.environments ?? []) await server.api('DELETE', `/v1/environments/${env.id}`).catch(() => undefined);
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('environments', () => {
  test('the fixture app comes up from an uploaded archive and answers through its URL with the seeded row', async () => {
    const created = await createEnv({ source: { archive: await archiveOf(APP) }, prNumber: 7, name: 'fixture' });
    assert.match(created.id, /^env-[a-z0-9]{16}$/);
    assert.equal(created.state, 'creating');
    assert.deepEqual(
      created.services.map((s) => [s.name, s.template, s.job]),
      [
        ['db', 'postgres-15', false],
        ['seed', 'postgres-15', true],
        ['api', 'base', false],
      ],
    );
    app = await untilRunning(created.id);
    assert.equal(service(app, 'db').state, 'healthy');
    assert.deepEqual([service(app, 'seed').state, service(app, 'seed').exitCode], ['completed', 0]);
    assert.equal(service(app, 'api').state, 'running');
    const api = service(app, 'api');
    assert.equal(api.url, api.routes[0]!.url);
    assert.equal(app.url, api.url, 'PREVIEW_URL is the first service with a route');
    assert.deepEqual(app.volumes, [{ name: 'db-data', volume: `${app.id}-db-data`, owned: true }]);

    const answer = await viaUrl(api.url!);
    assert.equal(answer.status, 200, answer.text);
    const body = JSON.parse(answer.text) as { message: string; preview: Record<string, string> };
    assert.equal(body.message, 'hello from the seed job');
    assert.deepEqual(body.preview, {
      PREVIEW_ID: app.id,
      PREVIEW_URL: api.url,
      PREVIEW_URL_API: api.url,
      PREVIEW_PR_NUMBER: '7',
    });
    assert.equal((await fetch(api.url!)).status, 401, 'routes are private by default');

    const list = await server.api<{ environments: Environment[] }>('GET', '/v1/environments');
    const listed = list.body.environments.find((e) => e.id === app.id);
    assert.ok(listed);
    assert.deepEqual(
      listed.services.map((s) => [s.name, s.state, s.url]),
      [
        ['db', 'healthy', null],
        ['seed', 'completed', null],
        ['api', 'running', api.url],
      ],
    );
    const logs = await server.api<{ logs: Array<{ service: string; text: string }> }>('GET', `/v1/environments/${app.id}/logs?service=api`);
    assert.equal(logs.status, 200);
    assert.match(logs.body.logs[0]!.text, /api listening on :8000/);
    const sandbox = await server.api<{ metadata: Record<string, string> }>('GET', `/v1/sandboxes/${api.sandboxId}`);
    assert.deepEqual(sandbox.body.metadata, { 'hutch.environment': app.id, 'hutch.service': 'api' });
  });

  test('a git source (a local bare repository over file://) comes up with its commit', async () => {
    const repo = gitProject();
    const created = await createEnv({ source: { git: { url: repo.url, ref: 'main' } } });
    assert.equal(created.gitSha, repo.sha);
    assert.deepEqual(created.source, { kind: 'git', url: repo.url, ref: 'main' });
    other = await untilRunning(created.id);
    assert.equal(service(other, 'cache').state, 'healthy');
    const byCommit = await server.api<ApiError>('POST', '/v1/environments', { source: { git: { url: repo.url, ref: 'no-such-branch' } } });
    assert.equal(byCommit.status, 400);
    assert.match(byCommit.body.error!.message, /^source\.git: could not fetch no-such-branch/);
  });

  test('service names resolve and connect inside an environment, never across environments', async () => {
    assert.ok(app && other, 'both environments are up');
    const api = service(app, 'api').sandboxId;
    const db = await addresses(service(app, 'db').sandboxId);
    const client = service(other, 'client').sandboxId;
    const cache = await addresses(service(other, 'cache').sandboxId);

    assert.deepEqual(await resolves(api, 'db'), [db.ipv4, db.ipv6].sort());
    assert.ok(await connects(api, 'db', 5432), 'api → db by name');
    assert.ok(await connects(api, db.ipv4, 5432), 'api → db over IPv4');
    assert.ok(await connects(api, db.ipv6, 5432), 'api → db over IPv6');
    assert.deepEqual(await resolves(client, 'cache'), [cache.ipv4, cache.ipv6].sort());
    const ping = await run(server, client, ['bash', '-c', "exec 3<>/dev/tcp/cache/6379; printf 'PING\\r\\n' >&3; head -c 7 <&3"], {
      user: 'root',
    });
    assert.equal(ping.stdout, '+PONG\r\n');

    // Across environments: names are not known, addresses are unreachable.
    assert.deepEqual(await resolves(client, 'db'), []);
    assert.deepEqual(await resolves(api, 'cache'), []);
    for (const ip of [db.ipv4, db.ipv6]) assert.equal(await connects(client, ip, 5432), false, `other env → db ${ip}`);
    for (const ip of [cache.ipv4, cache.ipv6]) assert.equal(await connects(api, ip, 6379), false, `app → other cache ${ip}`);
  });

  test('a plain sandbox (egress open) cannot reach or resolve environment members', async () => {
    const db = await addresses(service(app, 'db').sandboxId);
    const plain = await createSandbox(server, { template: 'base', network: { egress: 'open' } });
    try {
      for (const ip of [db.ipv4, db.ipv6]) assert.equal(await connects(plain.id, ip, 5432), false, `plain → db ${ip}`);
      assert.deepEqual(await resolves(plain.id, 'db'), []);
      // And members cannot reach it.
      const p = await addresses(plain.id);
      const ready = await run(server, plain.id, 'nohup python3 -m http.server 8080 >/dev/null 2>&1 &');
      assert.equal(ready.exitCode, 0);
      await sleep(500);
      assert.equal(await connects(service(app, 'api').sandboxId, p.ipv4, 8080), false, 'member → plain sandbox');
    } finally {
      await deleteSandbox(server, plain.id);
    }
  });

  test('a server restart keeps environments: state, peer network and URLs', async () => {
    await server.restart();
    const after = await server.api<Environment>('GET', `/v1/environments/${app.id}`);
    assert.equal(after.status, 200);
    assert.equal(after.body.state, 'running', after.body.error ?? '');
    const answer = await viaUrl(service(app, 'api').url!);
    assert.equal(answer.status, 200, answer.text);
    assert.equal((JSON.parse(answer.text) as { message: string }).message, 'hello from the seed job', 'api still reaches db by name');
    assert.equal(await connects(service(other, 'client').sandboxId, (await addresses(service(app, 'db').sandboxId)).ipv4, 5432), false);
  });

  test('delete removes sandboxes, volumes, network and files; it is idempotent', async () => {
    const ids = app.services.map((s) => s.sandboxId);
    const res = await server.api('DELETE', `/v1/environments/${app.id}`);
    assert.equal(res.status, 204);
    assert.equal((await server.api('DELETE', `/v1/environments/${app.id}`)).status, 204, 'again: still a success');
    assert.equal((await server.api('GET', `/v1/environments/${app.id}`)).status, 404);
    const listed = await server.api<{ environments: Environment[] }>('GET', '/v1/environments');
    assert.ok(!listed.body.environments.some((e) => e.id === app.id));
    const sandboxes = await server.api<{ sandboxes: Array<{ id: string }> }>('GET', '/v1/sandboxes');
    assert.deepEqual(
      sandboxes.body.sandboxes.filter((s) => ids.includes(s.id)),
      [],
    );
    const volumes = await server.api<{ volumes: Array<{ name: string }> }>('GET', '/v1/volumes');
    assert.ok(!volumes.body.volumes.some((v) => v.name.startsWith(app.id)), JSON.stringify(volumes.body));
    for (const id of ids) await assertNoLeftovers(server, 'container', id, 10_000);
    assert.ok(!existsSync(join(server.dataDir, 'environments', app.id)), 'source tree removed');
    const deleted = await server.api('DELETE', `/v1/environments/${other.id}`);
    assert.equal(deleted.status, 204);
    // Sandboxes without volumes finish their teardown (links, tables) just after the answer.
    const key = createHash('sha256').update(server.dataDir).digest('hex').slice(0, 4);
    const all = [...ids, ...other.services.map((s) => s.sandboxId)];
    const left = (): string[] => [
      ...readdirSync('/sys/class/net').filter((l) => l.startsWith(`hp${key}`)),
      ...execFileSync('nft', ['list', 'tables'])
        .toString()
        .split('\n')
        .filter((t) => all.some((id) => t.includes(`hutch_${id}`))),
    ];
    await waitFor(() => left().length === 0, 10_000);
    assert.deepEqual(left(), [], 'no peer links or sandbox tables of the environments are left');
    for (const id of all) await assertNoLeftovers(server, 'container', id, 10_000);
  });

  test('bad projects get a 400 naming the field', async () => {
    const bad = async (files: Record<string, string>): Promise<string> => {
      const dir = mkdtempSync(join(scratch, 'bad-'));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      const res = await server.api<ApiError>('POST', '/v1/environments', { source: { archive: await archiveOf(dir) } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      return res.body.error!.message;
    };
    const svc = (extra: string): Record<string, string> => ({ 'compose.yaml': `services:\n  web:\n    image: python:3.11\n${extra}` });
    assert.match(await bad(svc('    privileged: true\n')), /^services\.web\.privileged: /);
    assert.match(await bad(svc('    network_mode: host\n')), /^services\.web\.network_mode: /);
    assert.match(await bad(svc('    volumes: ["/etc:/etc2"]\n')), /^services\.web\.volumes\[0\]: "\/etc" is a host path/);
    assert.match(await bad(svc('    imagee: x\n')), /^compose\.yaml: services\.web\.imagee: unknown field/);
    assert.match(
      await bad({ 'compose.yaml': 'services:\n  db:\n    image: postgres:16\n' }),
      /^services\.db\.image: "postgres:16" asks for version "16"/,
    );
    assert.match(
      await bad({
        'compose.yaml':
          'services:\n  a:\n    image: debian:12\n    depends_on:\n      b: {condition: service_healthy}\n  b:\n    image: debian:12\n',
      }),
      /^services\.a\.depends_on\.b: service_healthy needs a healthcheck/,
    );
    assert.match(
      await bad(svc('    command: ["true"]\n    x-hutch: {template: no-such-template}\n')),
      /^services\.web: template "no-such-template" does not exist/,
    );
    assert.match(await bad({ README: 'no compose file' }), /no Compose file in the project/);
    const notTar = await server.api<ApiError>('POST', '/v1/environments', {
      source: { archive: Buffer.from('not a tar').toString('base64') },
    });
    assert.equal(notTar.status, 400);
    assert.match(notTar.body.error!.message, /^source\.archive: /);
    const reserved = await server.api<ApiError>('POST', '/v1/environments', {
      source: { archive: 'AAAA' },
      variables: { PREVIEW_ID: 'x' },
    });
    assert.equal(reserved.status, 400);
    assert.match(reserved.body.error!.message, /^variables\.PREVIEW_ID: /);
    const environments = await server.api<{ environments: Environment[] }>('GET', '/v1/environments');
    assert.deepEqual(environments.body.environments, [], 'refused projects leave nothing');
    assert.deepEqual(readdirSync(join(server.dataDir, 'environments')), []);
  });

  test('a failing job fails the environment with its exit code and output; its dependents do not start', async () => {
    const dir = mkdtempSync(join(scratch, 'failing-'));
    writeFileSync(
      join(dir, 'compose.yaml'),
      [
        'services:',
        '  migrate:',
        '    image: debian:12',
        '    restart: "no"',
        '    command: ["sh", "-c", "echo migration broke; exit 3"]',
        '  app:',
        '    image: debian:12',
        '    command: sleep infinity',
        '    depends_on:',
        '      migrate: {condition: service_completed_successfully}',
        '',
      ].join('\n'),
    );
    const created = await createEnv({ source: { archive: await archiveOf(dir) } });
    try {
      const failed = await waitFor(
        async () => {
          const res = await server.api<Environment>('GET', `/v1/environments/${created.id}`);
          return res.body.state !== 'creating' ? res.body : null;
        },
        60_000,
        250,
      );
      assert.ok(failed);
      assert.equal(failed.state, 'error');
      const migrate = service(failed, 'migrate');
      assert.deepEqual([migrate.state, migrate.exitCode], ['failed', 3]);
      assert.match(migrate.error ?? '', /^the job exited with 3: migration broke$/);
      assert.deepEqual(
        [service(failed, 'app').state, service(failed, 'app').error],
        ['failed', 'dependency migrate did not reach service_completed_successfully'],
      );
      assert.match(failed.error ?? '', /migrate: the job exited with 3/);
    } finally {
      assert.equal((await server.api('DELETE', `/v1/environments/${created.id}`)).status, 204);
    }
  });

  test('build: a Dockerfile is built into a snapshot once, reused while unchanged, rebuilt when a copied file changes', async () => {
    const dir = join(scratch, 'build-app');
    execFileSync('cp', ['-r', join(REPO, 'tests/fixtures/build-app'), dir]);
    const builds = async (): Promise<string[]> =>
      (await server.api<{ snapshots: Array<{ id: string; metadata: Record<string, string> }> }>('GET', '/v1/snapshots')).body.snapshots
        .filter((x) => x.metadata['hutch.build'])
        .map((x) => x.id);
    const up = async (): Promise<Environment> => {
      const created = await createEnv({ source: { archive: await archiveOf(dir) } });
      assert.equal(service(created, 'web').template, '(build)');
      return untilRunning(created.id);
    };
    const first = await up();
    const web = service(first, 'web');
    assert.match(web.template, /^snap-[a-z0-9]{16}$/);
    assert.equal(web.state, 'healthy', 'the HEALTHCHECK of the Dockerfile gates it');
    const answer = await viaUrl(web.url!);
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(JSON.parse(answer.text), {
      built: 'hello from the build at build time',
      greeting: 'hello from the build',
      cwd: '/srv',
    });
    assert.deepEqual(await builds(), [web.template]);

    const again = await up();
    assert.equal(service(again, 'web').template, web.template, 'unchanged: the same snapshot');
    assert.deepEqual(await builds(), [web.template]);

    writeFileSync(join(dir, 'app/extra.txt'), 'a new file');
    const changed = await up();
    assert.notEqual(service(changed, 'web').template, web.template, 'a changed COPY source: built again');
    assert.equal((await builds()).length, 2);

    writeFileSync(join(dir, 'Dockerfile'), 'FROM python:3.11-slim\nRUN echo compiling && exit 7\nCMD ["true"]\n');
    const broken = await createEnv({ source: { archive: await archiveOf(dir) } });
    const failed = await waitFor(
      async () => {
        const res = await server.api<Environment>('GET', `/v1/environments/${broken.id}`);
        return res.body.state !== 'creating' ? res.body : null;
      },
      60_000,
      250,
    );
    assert.equal(failed?.state, 'error');
    assert.match(service(failed!, 'web').error ?? '', /^build: line 2: exited with 7: compiling$/);
    writeFileSync(join(dir, 'Dockerfile'), 'FROM python:3.11-slim\nADD https://example.com/x /x\n');
    const refused = await server.api<ApiError>('POST', '/v1/environments', { source: { archive: await archiveOf(dir) } });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error!.message, /^Dockerfile:2: ADD is not supported/);
    for (const env of [first, again, changed, failed!])
      assert.equal((await server.api('DELETE', `/v1/environments/${env.id}`)).status, 204);
    const sandboxes = await server.api<{ sandboxes: Array<{ metadata: Record<string, string> }> }>('GET', '/v1/sandboxes');
    assert.deepEqual(
      sandboxes.body.sandboxes.filter((x) => x.metadata['hutch.build']),
      [],
      'build sandboxes are deleted after the build',
    );
    for (const id of await builds()) assert.equal((await server.api('DELETE', `/v1/snapshots/${id}`)).status, 204);
  });

  test('the CLI: env up (upload, progress, JSON), env ls, env logs, env down', async () => {
    const cli = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
      const r = spawnSync(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), ...args], {
        env: { ...process.env, HUTCH_URL: server.url, HUTCH_API_KEY: server.key },
        encoding: 'utf8',
        timeout: 180_000,
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const up = cli('env', 'up', join(REPO, 'tests/fixtures/compose/tiny'), '--name', 'tiny', '--json');
    assert.equal(up.status, 0, up.stderr);
    const env = JSON.parse(up.stdout) as Environment;
    assert.equal(env.state, 'running');
    assert.match(up.stderr, /hutch: uploading .*tiny \(\d+ entries, [\d.]+ (B|KiB)\)/);
    assert.match(up.stderr, new RegExp(`hutch: environment ${env.id}: idle:pending`));
    const ls = cli('env', 'ls');
    assert.equal(ls.status, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`^${env.id}\\s+tiny\\s+running\\s+idle:running`, 'm'));
    const logs = cli('env', 'logs', env.id);
    assert.equal(logs.status, 0, logs.stderr);
    assert.equal(logs.stdout, '==> idle <==\n');
    const down = cli('env', 'down', env.id);
    assert.deepEqual([down.status, down.stdout], [0, `${env.id}\n`]);
    const unknown = cli('env', 'down', 'env-0000000000000000');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no environment env-0000000000000000/);
  });

  test("another tenant's environments are 404s", async () => {
    assert.equal((await server.api('POST', '/v1/admin/tenants', { name: 'envs-b' })).status, 201);
    const key = await server.api<{ key: string }>('POST', '/v1/keys', { tenant: 'envs-b', role: 'member' });
    assert.equal(key.status, 201);
    const asB = (method: string, path: string, body?: unknown) =>
      server.api<Environment & ApiError>(method, path, body, { authorization: `Bearer ${key.body.key}` });
    const mine = await createEnv({ source: { archive: await archiveOf(join(REPO, 'tests/fixtures/compose/tiny')) } });
    try {
      assert.equal((await asB('GET', `/v1/environments/${mine.id}`)).status, 404);
      assert.equal((await asB('DELETE', `/v1/environments/${mine.id}`)).status, 404);
      assert.equal((await asB('GET', `/v1/environments/${mine.id}/logs`)).status, 404);
      const list = await server.api<{ environments: Environment[] }>('GET', '/v1/environments', undefined, {
        authorization: `Bearer ${key.body.key}`,
      });
      assert.deepEqual(list.body.environments, []);
      assert.equal((await server.api('GET', `/v1/environments/${mine.id}`)).status, 200);
    } finally {
      assert.equal((await server.api('DELETE', `/v1/environments/${mine.id}`)).status, 204);
    }
  });
});
