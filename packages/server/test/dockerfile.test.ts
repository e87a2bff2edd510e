import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadDockerfile, type DockerfileInput } from '../src/environments/dockerfile.js';

// The Dockerfile subset of `build:` on real files (tests/fixtures/build-app and variations): the
// steps, the image contract, the cache hash and the refusals. Builds themselves run in
// tests/environments.test.ts.

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/build-app', import.meta.url));
const scratch: string[] = [];
after(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

async function copyOfFixture(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hutch-dockerfile-'));
  scratch.push(dir);
  await cp(FIXTURE, dir, { recursive: true });
  return dir;
}

const input = (root: string, extra: Partial<DockerfileInput> = {}): DockerfileInput => ({
  root,
  context: '',
  dockerfile: 'Dockerfile',
  args: { GREETING: 'hi' },
  templates: {},
  field: 'services.web.build',
  ...extra,
});

test('the fixture: steps in order, the contract, build args over ARG defaults', async () => {
  const image = await loadDockerfile(input(FIXTURE));
  assert.equal(image.fromTemplate, 'base');
  assert.deepEqual(
    image.steps.map((s) => [s.kind, s.line]),
    [
      ['mkdir', 5],
      ['copy', 6],
      ['run', 7],
    ],
  );
  assert.deepEqual(image.steps[1], { kind: 'copy', line: 6, sources: ['app'], dest: '/srv/' });
  const run = image.steps[2]!;
  assert.equal(run.kind, 'run');
  if (run.kind === 'run') {
    assert.equal(run.argv[0], '/bin/sh');
    assert.equal(run.env.GREETING, 'hi');
    assert.equal(run.cwd, '/srv');
    assert.equal(run.user, 'root', "python:3.11's user");
  }
  assert.deepEqual(image.contract.command, ['python3', 'serve.py']);
  assert.equal(image.contract.entrypoint, null);
  assert.equal(image.contract.workingDir, '/srv');
  assert.equal(image.contract.env.GREETING, 'hi');
  assert.equal(image.contract.env.PORT, '8080');
  assert.deepEqual(image.contract.ports, [8080]);
  assert.equal(image.contract.healthcheck?.intervalMs, 1000);
  assert.equal(image.contract.healthcheck?.retries, 30);
  assert.equal(image.contract.healthcheck?.test[0], '/bin/sh');
});

test('the hash changes with a copied file, a build arg or a step, and not otherwise', async () => {
  const dir = await copyOfFixture();
  const hash = async (extra: Partial<DockerfileInput> = {}): Promise<string> => (await loadDockerfile(input(dir, extra))).hash;
  const before = await hash();
  assert.equal(await hash(), before);
  await writeFile(join(dir, 'README.md'), 'not copied');
  assert.equal(await hash(), before, 'a file COPY does not read');
  await writeFile(join(dir, 'app/extra.txt'), 'copied');
  const withFile = await hash();
  assert.notEqual(withFile, before);
  assert.notEqual(await hash({ args: { GREETING: 'other' } }), withFile);
  await writeFile(join(dir, 'Dockerfile'), 'FROM python:3.11-slim\nRUN true\n');
  assert.notEqual(await hash(), withFile);
});

test('ENTRYPOINT resets the base command; a template by name; x-hutch mapping; refusals name the line', async () => {
  const dir = await copyOfFixture();
  const write = (text: string): Promise<void> => writeFile(join(dir, 'Dockerfile'), text);
  await write('FROM postgres:15\nENTRYPOINT ["/bin/tini"]\n');
  let image = await loadDockerfile(input(dir));
  assert.equal(image.fromTemplate, 'postgres-15');
  assert.deepEqual([image.contract.entrypoint, image.contract.command, image.contract.user], [['/bin/tini'], [], 'postgres']);
  await write('FROM base\nRUN ["id"]\nUSER root\nCMD echo $HOME\n');
  image = await loadDockerfile(input(dir));
  assert.equal(image.fromTemplate, 'base');
  assert.deepEqual(image.steps[0], { kind: 'run', line: 2, argv: ['id'], env: {}, user: null, cwd: null });
  assert.deepEqual(image.contract.command, ['/bin/sh', '-c', 'echo $HOME']);
  await write('FROM ghcr.io/acme/runtime:3\n');
  assert.equal((await loadDockerfile(input(dir, { templates: { 'ghcr.io/acme/runtime:3': 'base' } }))).fromTemplate, 'base');
  const refused = async (text: string): Promise<string> => {
    await write(text);
    try {
      await loadDockerfile(input(dir));
    } catch (err) {
      return (err as Error).message;
    }
    return 'accepted';
  };
  assert.match(await refused('FROM python:3.11\nADD x /x\n'), /^Dockerfile:2: ADD is not supported/);
  assert.match(await refused('FROM python:3.11 AS a\nFROM base\n'), /^Dockerfile:2: multi-stage builds are not supported yet/);
  assert.match(await refused('FROM postgres:16\n'), /^Dockerfile:1 FROM: "postgres:16" asks for version "16"/);
  assert.match(await refused('FROM postgres\n'), /asks for no version/);
  assert.match(await refused('FROM base\nCOPY ../secret /x\n'), /^Dockerfile:2: "..\/secret" is outside the project directory/);
  assert.match(await refused('FROM base\nCOPY *.py /x/\n'), /^Dockerfile:2: COPY wildcards are not supported yet/);
  assert.match(await refused('RUN true\n'), /^Dockerfile: must start with FROM/);
});
