import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HutchError } from '../src/core/errors.js';
import { interpolateString } from '../src/environments/interpolate.js';
import { loadComposeProject } from '../src/environments/load.js';
import type { ServiceSpec } from '../src/environments/model.js';

// Compose loading against real files: tests/fixtures/compose/full is a project that also runs with
// `docker compose up` (compose.yaml + compose.preview.yaml + .env + an env_file); the refusals use
// small projects written to a temporary directory. No sandboxes are involved.

const FULL = fileURLToPath(new URL('../../../tests/fixtures/compose/full', import.meta.url));
const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function project(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hutch-compose-'));
  scratch.push(dir);
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

async function refusal(files: Record<string, string>, options: { variables?: Record<string, string> } = {}): Promise<string> {
  const dir = await project(files);
  try {
    await loadComposeProject({ dir, ...options });
  } catch (err) {
    assert.ok(err instanceof HutchError, `a HutchError, got ${String(err)}`);
    assert.equal(err.kind, 'invalid_argument');
    return err.message;
  }
  assert.fail('the project was accepted');
}

function service(services: ServiceSpec[], name: string): ServiceSpec {
  const s = services.find((x) => x.name === name);
  assert.ok(s, `service ${name} is in the model`);
  return s;
}

describe('the full fixture (compose.yaml + compose.preview.yaml)', async () => {
  const model = await loadComposeProject({ dir: FULL, variables: { PREVIEW_ID: 'env-123' } });

  test('reads both files in order, keeps the project name, leaves profiled services out', () => {
    assert.deepEqual(model.files, ['compose.yaml', 'compose.preview.yaml']);
    assert.equal(model.name, 'shop');
    assert.deepEqual(model.services.map((s) => s.name).sort(), ['api', 'cache', 'db', 'migrate', 'worker']);
    assert.deepEqual(model.settings.templates, { 'ghcr.io/example/worker:2': 'base' });
  });

  test('orders services so that each comes after its dependencies', () => {
    const order = model.services.map((s) => s.name);
    for (const s of model.services)
      for (const d of s.dependsOn) assert.ok(order.indexOf(d.service) < order.indexOf(s.name), `${d.service} before ${s.name}`);
    assert.deepEqual(service(model.services, 'api').dependsOn, [
      { service: 'migrate', condition: 'service_completed_successfully', required: true },
      { service: 'cache', condition: 'service_started', required: true },
    ]);
    assert.deepEqual(
      service(model.services, 'worker').dependsOn.map((d) => [d.service, d.condition]),
      [
        ['api', 'service_started'],
        ['cache', 'service_started'],
      ],
    );
  });

  test('db: image, .env interpolation, named volume, healthcheck with durations', () => {
    const db = service(model.services, 'db');
    assert.deepEqual(db.source, { kind: 'image', image: 'postgres:15' });
    assert.equal(db.environment.POSTGRES_PASSWORD, 'from-dotenv');
    assert.deepEqual(db.mounts, [{ kind: 'volume', volume: 'db-data', target: '/var/lib/postgresql/data', readOnly: false }]);
    assert.deepEqual(db.healthcheck, {
      test: ['/bin/sh', '-c', 'pg_isready -U shop -d shop'],
      intervalMs: 2000,
      timeoutMs: 5000,
      retries: 30,
      startPeriodMs: 90_000,
      startIntervalMs: 5000,
    });
    assert.equal(db.job, false);
    assert.deepEqual(model.volumes, [{ name: 'db-data', external: null, sizeMiB: null }]);
  });

  test('migrate: restart "no" is a job; a relative bind is a copy of the project path; anchors merge', () => {
    const migrate = service(model.services, 'migrate');
    assert.equal(migrate.job, true);
    assert.deepEqual(migrate.command, { argv: ['python3', '/app/migrate.py'] });
    assert.equal(migrate.workingDir, '/app');
    assert.deepEqual(migrate.mounts, [{ kind: 'copy', source: 'app', target: '/app', readOnly: true }]);
    assert.equal(migrate.environment.LOG_LEVEL, 'warn');
    assert.equal(migrate.environment.DATABASE_URL, 'postgres://shop:from-dotenv@db:5432/shop');
  });

  test('api: env_file then environment, override merged by key, routes from ports (host ports ignored)', () => {
    const api = service(model.services, 'api');
    assert.deepEqual(api.command, { shell: 'python3 -m http.server ${PORT:-8000}' }, '$$ is a literal $');
    assert.equal(api.user, 'root');
    assert.equal(api.environment.API_NAME, 'shop-api', 'from the env_file');
    assert.equal(api.environment.PORT, '8000', 'environment wins over env_file');
    assert.equal(api.environment.QUOTED, 'a b # not a comment');
    assert.equal(api.environment.LOG_LEVEL, 'debug', 'compose.preview.yaml wins');
    assert.equal(api.environment.PREVIEW, 'env-123', 'caller variables are interpolated');
    assert.ok(!('GREETING' in api.environment), 'a bare name without a variable stays unset');
    assert.deepEqual(api.routes, [8000, 9000]);
    assert.deepEqual(api.settings, {
      template: null,
      egress: { allow: ['pypi.org'], deny: [] },
      public: true,
      cpu: null,
      memoryMiB: 768,
      diskMiB: null,
    });
  });

  test('worker: entrypoint kept, command replaced by the override', () => {
    const worker = service(model.services, 'worker');
    assert.deepEqual(worker.entrypoint, { argv: ['/usr/bin/env'] });
    assert.deepEqual(worker.command, { argv: ['python3', '-c', "print('preview work')"] });
  });

  test('warnings name what was ignored', () => {
    assert.ok(
      model.warnings.some((w) => w.startsWith('services.api.container_name: ignored')),
      model.warnings.join('\n'),
    );
    assert.ok(
      model.warnings.some((w) => w.startsWith('services.api.ports[2]: udp ports are not routed')),
      model.warnings.join('\n'),
    );
  });
});

test('profiles enable services; caller variables win over .env', async () => {
  const model = await loadComposeProject({ dir: FULL, profiles: ['debug'], variables: { DB_PASSWORD: 's3cret', GREETING: 'hi' } });
  assert.ok(model.services.some((s) => s.name === 'debug'));
  assert.equal(service(model.services, 'db').environment.POSTGRES_PASSWORD, 's3cret');
  assert.equal(service(model.services, 'api').environment.GREETING, 'hi');
});

test('interpolation follows Compose: defaults, unset versus empty, replacements, $$, nesting, errors', () => {
  const variables = new Map([
    ['SET', 'value'],
    ['EMPTY', ''],
  ]);
  const missing: string[] = [];
  const run = (text: string): string => interpolateString(text, { variables, path: 'x', onMissing: (n) => missing.push(n) });
  assert.equal(run('$SET ${SET} $$SET $$ a$'), 'value value $SET $ a$');
  assert.equal(run('${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d}'), 'd d  d');
  assert.equal(run('${SET:+r} ${EMPTY:+r} ${EMPTY+r} ${UNSET+r}'), 'r  r ');
  assert.equal(run('${UNSET:-${SET}-x} ${UNSET:-$${literal}}'), 'value-x ${literal}');
  assert.equal(run('${SET:-${NEVER_EXPANDED}}'), 'value');
  assert.equal(run('[$UNSET]'), '[]');
  assert.deepEqual(missing, ['UNSET']);
  assert.throws(() => run('${EMPTY:?must be set}'), /x: required variable EMPTY is missing a value: must be set/);
  assert.equal(run('${EMPTY?unused}'), '');
  assert.throws(() => run('${UNSET?}'), /required variable UNSET is missing a value/);
  assert.throws(() => run('${SET'), /invalid interpolation format/);
  assert.throws(() => run('${SET:x}'), /invalid interpolation format/);
});

describe('refusals name the file, service and field', () => {
  const web = (extra: string): Record<string, string> => ({ 'compose.yaml': `services:\n  web:\n    image: python:3.11\n${extra}` });
  for (const [field, yaml] of [
    ['privileged', '    privileged: true\n'],
    ['network_mode', '    network_mode: host\n'],
    ['cap_add', '    cap_add: [NET_ADMIN]\n'],
    ['devices', '    devices: ["/dev/fuse:/dev/fuse"]\n'],
    ['pid', '    pid: host\n'],
    ['ipc', '    ipc: host\n'],
  ] as const) {
    test(field, async () => {
      assert.match(await refusal(web(yaml)), new RegExp(`^services\\.web\\.${field}: `));
    });
  }

  test('absolute and home host binds, and paths outside the project', async () => {
    assert.match(await refusal(web('    volumes: ["/etc:/host-etc"]\n')), /^services\.web\.volumes\[0\]: "\/etc" is a host path/);
    assert.match(await refusal(web('    volumes: ["~/.ssh:/keys"]\n')), /^services\.web\.volumes\[0\]: "~\/.ssh" is a host path/);
    assert.match(
      await refusal(web('    volumes:\n      - type: bind\n        source: ../secrets\n        target: /s\n')),
      /^services\.web\.volumes\[0\]: "..\/secrets" is outside the project directory/,
    );
    assert.match(
      await refusal(web('    env_file: ../outside.env\n')),
      /^services\.web\.env_file: "..\/outside.env" is outside the project/,
    );
  });

  test('the Compose schema: unknown fields and wrong types', async () => {
    assert.equal(
      await refusal({ 'compose.yaml': 'services:\n  web:\n    imagee: python:3.11\n' }),
      'compose.yaml: services.web.imagee: unknown field (not in the Compose Specification)',
    );
    assert.match(await refusal(web('    ports: 8000\n')), /^compose\.yaml: services\.web\.ports: must be array/);
    assert.match(
      await refusal({ 'compose.yaml': 'services:\n  web:\n    image: x\n', 'compose.preview.yaml': 'services:\n  web:\n    restart: 5\n' }),
      /^compose\.preview\.yaml: services\.web\.restart: must be string/,
    );
    assert.match(await refusal(web('    depends_on:\n      db:\n        condition: service_ready\n')), /services\.web\.depends_on/);
  });

  test('YAML errors name the file', async () => {
    assert.match(await refusal({ 'docker-compose.yml': 'services:\n  web: [\n' }), /^docker-compose\.yml: /);
  });

  test('required variables, dependencies, volumes, x-hutch', async () => {
    assert.match(
      await refusal(web('    environment:\n      TOKEN: ${TOKEN:?set a token}\n')),
      /^services\.web\.environment\.TOKEN: required variable TOKEN is missing a value: set a token$/,
    );
    assert.match(await refusal(web('    depends_on: [db]\n')), /^services\.web\.depends_on\.db: service "db" is not defined$/);
    assert.match(
      await refusal({
        'compose.yaml': 'services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n',
      }),
      /dependency cycle a → b → a/,
    );
    assert.match(await refusal(web('    volumes: ["data:/data"]\n')), /volume "data" is not declared in the top-level volumes section/);
    assert.match(await refusal(web('    x-hutch:\n      tempalte: base\n')), /^services\.web\.x-hutch: unknown setting "tempalte"/);
    assert.match(await refusal(web('    x-hutch:\n      egress: sometimes\n')), /^services\.web\.x-hutch\.egress: /);
    assert.match(
      await refusal({ 'compose.yaml': 'services:\n  Web_1:\n    image: x\n' }),
      /^services\.Web_1: the service name must be a DNS label/,
    );
  });

  test('a project without a Compose file, or with a profile nobody has', async () => {
    assert.match(await refusal({ 'README.md': 'hi' }), /no Compose file in the project/);
    assert.match(
      await refusal({ 'compose.yaml': 'services:\n  a:\n    image: x\n    profiles: [p]\n' }),
      /no service is active with profiles \[\]/,
    );
  });
});

test('docker-compose.yml is found, and a service that needs neither image nor build is refused', async () => {
  const dir = await project({ 'docker-compose.yml': 'services:\n  web:\n    image: python:3.11\n    expose: ["3000-3002"]\n' });
  const model = await loadComposeProject({ dir });
  assert.deepEqual(model.files, ['docker-compose.yml']);
  assert.deepEqual(model.services[0]!.routes, [3000, 3001, 3002]);
  assert.match(
    await refusal({ 'compose.yaml': 'services:\n  web:\n    command: "true"\n' }),
    /^services\.web: needs an image or a build section$/,
  );
});
