import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { catalogEntryFor, IMAGE_CATALOG, parseImageRef } from '../src/environments/image-catalog.js';
import { loadComposeProject } from '../src/environments/load.js';
import { planService } from '../src/environments/service-plan.js';
import { shippedRecipes } from '../src/templates/recipes.js';

// The image catalog (image reference → template + runtime contract) and how a service's argv, env,
// user and healthcheck come out of it together with the Compose file. The templates themselves are
// exercised with real sandboxes in tests/environments.test.ts.

const FULL = fileURLToPath(new URL('../../../tests/fixtures/compose/full', import.meta.url));
const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

test('image references: Docker Hub spellings, registries, tags and digests', () => {
  assert.deepEqual(parseImageRef('postgres:15'), { registry: null, repository: 'postgres', tag: '15', digest: null });
  assert.deepEqual(parseImageRef('docker.io/library/redis:7-bookworm'), {
    registry: null,
    repository: 'redis',
    tag: '7-bookworm',
    digest: null,
  });
  assert.deepEqual(parseImageRef('library/python'), { registry: null, repository: 'python', tag: null, digest: null });
  assert.deepEqual(parseImageRef('ghcr.io/acme/api:1.2'), { registry: 'ghcr.io', repository: 'acme/api', tag: '1.2', digest: null });
  assert.deepEqual(parseImageRef('localhost:5000/app'), { registry: 'localhost:5000', repository: 'app', tag: null, digest: null });
  assert.deepEqual(parseImageRef('postgres:15@sha256:abc'), { registry: null, repository: 'postgres', tag: '15', digest: 'sha256:abc' });
});

test('every catalog entry names a shipped template', () => {
  const names = new Set(shippedRecipes().map((r) => r.name));
  for (const entry of IMAGE_CATALOG) assert.ok(names.has(entry.template), `${entry.repository}:${entry.version} → ${entry.template}`);
});

test('exact version matches, variants allowed', () => {
  for (const [image, template] of [
    ['postgres:15', 'postgres-15'],
    ['postgres:15.4', 'postgres-15'],
    ['docker.io/library/postgres:15-alpine', 'postgres-15'],
    ['redis:7', 'redis-7'],
    ['redis:7.0-bookworm', 'redis-7'],
    ['python:3.11-slim', 'base'],
    ['python:3.11.4', 'base'],
    ['node:18-bookworm-slim', 'base'],
    ['debian:bookworm', 'base'],
    ['debian:12.5', 'base'],
  ])
    assert.equal(catalogEntryFor(image!, 'services.x.image').template, template, image);
});

test('other versions, latest, digests and unknown images are refused, naming what the catalog has', () => {
  assert.throws(
    () => catalogEntryFor('postgres:16', 'services.db.image'),
    /^HutchError: services\.db\.image: "postgres:16" asks for version "16", and the catalog has postgres:15 \(template postgres-15\); Hutch never changes a version silently/,
  );
  assert.throws(() => catalogEntryFor('postgres', 'services.db.image'), /asks for no version \(it would mean "latest"\)/);
  assert.throws(() => catalogEntryFor('postgres:latest', 'services.db.image'), /asks for version "latest"/);
  assert.throws(() => catalogEntryFor('python:3', 'services.api.image'), /asks for version "3", and the catalog has python:3.11/);
  assert.throws(() => catalogEntryFor('postgres:150', 'services.db.image'), /asks for version "150"/);
  assert.throws(() => catalogEntryFor('postgres:15@sha256:0123', 'services.db.image'), /pins a digest/);
  assert.throws(
    () => catalogEntryFor('mysql:8', 'services.db.image'),
    /^HutchError: services\.db\.image: "mysql:8" is not in the template catalog \(postgres:15 \(template postgres-15\), redis:7 \(template redis-7\), python:3\.11 \(template base\), node:18 \(template base\), debian:12 \(template base\)\); map it to a template with x-hutch \(services\.db\.x-hutch\.template, or x-hutch\.templates at the top level\)$/,
  );
  assert.throws(() => catalogEntryFor('ghcr.io/acme/postgres:15', 'services.db.image'), /is not in the template catalog/);
});

test('plans for the full fixture: contracts, explicit templates, argv and env', async () => {
  const model = await loadComposeProject({ dir: FULL, variables: { PREVIEW_ID: 'env-1' } });
  const injected = { PREVIEW_ID: 'env-1', PREVIEW_URL: '' };
  const plans = Object.fromEntries(model.services.map((s) => [s.name, planService(s, model, injected)]));

  const db = plans.db!;
  assert.equal(db.template, 'postgres-15');
  assert.deepEqual(db.argv, ['/usr/local/bin/hutch-postgres-entrypoint', 'postgres']);
  assert.equal(db.user, 'postgres');
  assert.equal(db.env.PGDATA, '/var/lib/postgresql/data/pgdata');
  assert.equal(db.env.POSTGRES_USER, 'shop');
  assert.equal(db.env.PREVIEW_ID, 'env-1');
  assert.deepEqual(db.healthcheck?.test, ['/bin/sh', '-c', 'pg_isready -U shop -d shop'], "the Compose file's healthcheck wins");

  const cache = plans.cache!;
  assert.equal(cache.template, 'redis-7');
  assert.deepEqual(cache.argv, ['/usr/local/bin/hutch-redis-entrypoint', 'redis-server']);
  assert.equal(cache.workingDir, '/data');
  assert.match(cache.healthcheck!.test.join(' '), /redis-cli -h 127\.0\.0\.1 ping/, "the image's healthcheck when the file has none");

  const api = plans.api!;
  assert.equal(api.template, 'base');
  assert.deepEqual(api.argv, ['/bin/sh', '-c', 'python3 -m http.server ${PORT:-8000}']);
  assert.equal(api.user, 'root');
  assert.equal(api.healthcheck, null);

  const worker = plans.worker!;
  assert.equal(worker.template, 'base', 'x-hutch.templates maps the image');
  assert.equal(worker.contract, null);
  assert.deepEqual(worker.argv, ['/usr/bin/env', 'python3', '-c', "print('preview work')"]);
  assert.equal(worker.user, null, "a mapped image without a contract runs as the template's default user");
});

test('a string command given to an entrypoint is split into words; shell operators there are refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hutch-plan-'));
  scratch.push(dir);
  await writeFile(
    join(dir, 'compose.yaml'),
    [
      'services:',
      '  db:',
      '    image: postgres:15',
      "    command: postgres -c 'max_connections=50' -c shared_buffers=$$X",
      '  bad:',
      '    image: redis:7',
      '    command: redis-server && echo no',
      '  built:',
      '    build: ./app',
      '  shellentry:',
      '    image: debian:12',
      '    entrypoint: echo one',
      '    command: ["ignored"]',
      '',
    ].join('\n'),
  );
  const model = await loadComposeProject({ dir });
  const byName = (n: string) => model.services.find((s) => s.name === n)!;
  assert.deepEqual(planService(byName('db'), model, {}).argv, [
    '/usr/local/bin/hutch-postgres-entrypoint',
    'postgres',
    '-c',
    'max_connections=50',
    '-c',
    'shared_buffers=$X',
  ]);
  assert.throws(
    () => planService(byName('bad'), model, {}),
    /^HutchError: services\.bad\.command: a string command given to an entrypoint/,
  );
  assert.throws(() => planService(byName('built'), model, {}), /services\.built\.build: the image was not prepared/);
  assert.deepEqual(planService(byName('shellentry'), model, {}).argv, ['/bin/sh', '-c', 'echo one']);
});
