/**
 * `npm run bench -- env`: preview environments of the webhook sample app (tests/fixtures/
 * preview-stack: postgres, a migration/seed job, an API, a web front end, a worker) with a golden
 * seed snapshot (`x-hutch.seed`) and its API built from a Dockerfile (`build:`, API_DOCKERFILE),
 * driven the way a git host drives them: a signed GitHub `pull_request` delivery to
 * `POST /v1/hooks/github`. Per run:
 *   - cold: the build cache (the API image's build snapshot) deleted and seed snapshots forgotten
 *     first → delivery `opened` … every service healthy/running/completed;
 *   - warm: the cold run's build snapshot and seed snapshot are there → delivery `opened` (another
 *     PR) … the same;
 *   - build: of cold and warm, the API service's time in `building` as the bench's polls see it;
 *   - wake: the warm environment put to sleep (idle TTL) → a request through its API URL … 200;
 *   - destroy: delivery `closed` … the environment gone (its sandboxes and volumes deleted).
 * The bench's copy of the app is changed (the shared fixture, which tests/previews.test.ts runs, is
 * not). Its own server (own data dir and pools), cleaned up.
 */
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { REPO } from '../tests/harness.js';
import { Api } from './client.js';
import { startBenchServer } from './server.js';
import { fmtMs, summarize, type Summary } from './stats.js';

const require = createRequire(import.meta.url);
type Example = { name: string; examples: Array<Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any
const examples = require('@octokit/webhooks-examples/api.github.com/index.json') as Example[];
const openedExample = examples.find((e) => e.name === 'pull_request')!.examples.find((x) => x.action === 'opened')!;

const SECRET = 'bench-webhook-secret';
const OWNER = 'bench-org/preview-app';
const PROJECT = 'preview-app';
/** Bounds of each step (a stuck step fails the run, never hangs it). */
const STEP_MS = 600_000;
/** How often the bench looks at the environment (the resolution of the build figures). */
const POLL_MS = 50;
const BUILD_METADATA = 'hutch.build';

/**
 * The bench's API image (`python:3.11-slim` is the `base` template: Debian's Python, no pip or
 * venv). Its RUN steps do offline work a cache hit saves (builds have egress, the bench uses
 * none): Python's standard library copied to /opt/pylib and every module byte-compiled (forced,
 * two optimization levels), then the app byte-compiled.
 */
export const API_DOCKERFILE = `FROM python:3.11-slim
RUN cp -r /usr/lib/python3.11 /opt/pylib && python3 -m compileall -q -f -j 0 -o 0 -o 1 /opt/pylib
COPY api /app
RUN python3 -m compileall -q /app
WORKDIR /app
CMD ["python3", "server.py"]
`;
/** The fixture's API service, replaced by a `build:` of API_DOCKERFILE in the bench's copy. */
const FIXTURE_API = `  api:
    image: python:3.11-slim
    command: ['python3', 'server.py']
    working_dir: /app
    volumes:
      - ./api:/app:ro
`;
const BUILT_API = `  api:
    build: {context: ., dockerfile: api.Dockerfile}
`;

export interface EnvBenchOptions {
  runs: number;
  progress: (message: string) => void;
  checkAbort: () => void;
}

type Series = 'cold' | 'warm' | 'coldBuild' | 'warmBuild' | 'wake' | 'destroy';

export interface EnvBenchResult {
  cold: Summary | null;
  warm: Summary | null;
  /** The API service's time in `building` (cold: a build; warm: a cache hit), to POLL_MS. */
  coldBuild: Summary | null;
  warmBuild: Summary | null;
  wake: Summary | null;
  destroy: Summary | null;
  /** Raw samples, ms. */
  samples: Record<Series, number[]>;
  errors: string[];
}

interface Env {
  id: string;
  state: string;
  error: string | null;
  services: Array<{ name: string; state: string; note: string | null; url: string | null; sandboxId: string; template: string }>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: { ...process.env, GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@b', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@b' },
  })
    .toString()
    .trim();
}

/** A pull_request payload: GitHub's own "opened" example with this repository, number and commit. */
function pullRequest(action: 'opened' | 'closed', number: number, sha: string): unknown {
  const p = structuredClone(openedExample);
  const repo = { ...p.pull_request.base.repo, id: 424242, full_name: OWNER, clone_url: `https://github.com/${OWNER}.git` };
  p.action = action;
  p.number = number;
  p.repository = repo;
  p.pull_request = {
    ...p.pull_request,
    number,
    state: action === 'closed' ? 'closed' : 'open',
    draft: false,
    merged: false,
    labels: [],
    head: { ...p.pull_request.head, sha, ref: `feature-${number}`, repo },
    base: { ...p.pull_request.base, ref: 'main', repo },
  };
  return p;
}

export async function benchEnv(opts: EnvBenchOptions): Promise<EnvBenchResult> {
  const scratch = mkdtempSync('/var/tmp/hutch-bench-env-');
  const server = await startBenchServer({
    gitAllowFileUrls: true,
    githubWebhookSecrets: [SECRET],
    envSweepIntervalMs: 250,
    networkPool4: '10.234.0.0/16',
    networkPool6: 'fd68:7574:63ea::/48',
  });
  const api = new Api(server.url, server.key);
  const samples: EnvBenchResult['samples'] = { cold: [], warm: [], coldBuild: [], warmBuild: [], wake: [], destroy: [] };
  const errors: string[] = [];
  const live = new Set<string>();
  let number = 100;
  const deliver = async (action: 'opened' | 'closed', n: number, sha: string): Promise<void> => {
    const body = JSON.stringify(pullRequest(action, n, sha));
    const res = await fetch(`${server.url}/v1/hooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'pull_request',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': 'sha256=' + createHmac('sha256', SECRET).update(body).digest('hex'),
      },
      body,
    });
    if (res.status >= 300) throw new Error(`delivery ${action} #${n}: ${res.status} ${await res.text()}`);
  };
  /** Polls (bounded) until `check` answers a value. */
  const until = async <T>(what: string, check: () => Promise<T | null>, everyMs = POLL_MS): Promise<T> => {
    const deadline = Date.now() + STEP_MS;
    for (;;) {
      opts.checkAbort();
      const v = await check();
      if (v !== null) return v;
      if (Date.now() > deadline) throw new Error(`${what}: not within ${STEP_MS / 1000} s`);
      await sleep(everyMs);
    }
  };
  const environmentOf = async (n: number): Promise<string | null> => {
    const res = await api.call<{
      previews: Array<{ number: number | null; environmentId: string | null; state: string; error: string | null }>;
    }>('GET', '/v1/hooks/previews');
    const p = res.previews.find((x) => x.number === n);
    if (p?.state === 'error') throw new Error(`PR #${n}'s preview: ${p.error}`);
    return p?.environmentId ?? null;
  };
  /** The API service's build as the polls see it: first seen `building`, first seen past it. */
  type BuildSeen = { building: number | null; built: number | null };
  const running = async (id: string, build: BuildSeen): Promise<Env | null> => {
    const env = await api.call<Env>('GET', `/v1/environments/${id}`);
    if (env.state === 'error') throw new Error(`environment ${id}: ${env.error}`);
    const now = performance.now();
    const state = env.services.find((s) => s.name === 'api')?.state;
    if (state === 'building') build.building ??= now;
    else if (state !== undefined && state !== 'pending') build.built ??= now;
    return env.state === 'running' ? env : null;
  };
  /** The build cache: the tenant's build snapshots. */
  const buildSnapshots = async (): Promise<string[]> =>
    (await api.call<{ snapshots: Array<{ id: string; metadata: Record<string, string> }> }>('GET', '/v1/snapshots')).snapshots
      .filter((s) => s.metadata[BUILD_METADATA] !== undefined)
      .map((s) => s.id);
  const dropBuildCache = async (): Promise<void> => {
    for (const id of await buildSnapshots()) await api.call('DELETE', `/v1/snapshots/${id}`);
  };
  /** From the delivery to every service up (the environment `running`). */
  let bare = '';
  let work = '';
  const open = async (sha: string): Promise<{ ms: number; env: Env; n: number; buildMs: number }> => {
    const n = ++number;
    // GitHub keeps a pull request's head at refs/pull/<n>/head of the base repository.
    git(work, 'push', '-q', '-f', bare, `${sha}:refs/pull/${n}/head`);
    const t0 = performance.now();
    await deliver('opened', n, sha);
    const id = await until(`PR #${n}'s environment`, () => environmentOf(n));
    live.add(id);
    const build: BuildSeen = { building: null, built: null };
    const env = await until(`environment ${id} running`, () => running(id, build));
    // Never seen `building`: the build (a cache hit) took less than one poll, counted as 0.
    const buildMs = build.building === null ? 0 : (build.built ?? performance.now()) - build.building;
    return { ms: performance.now() - t0, env, n, buildMs };
  };
  const close = async (n: number, id: string, sha: string): Promise<number> => {
    const t0 = performance.now();
    await deliver('closed', n, sha);
    await until(`environment ${id} destroyed`, async () =>
      (await api.request('GET', `/v1/environments/${id}`)).status === 404 ? true : null,
    );
    live.delete(id);
    return performance.now() - t0;
  };
  const through = async (url: string): Promise<number> => {
    const res = await fetch(url, { headers: { authorization: `Bearer ${server.key}` }, signal: AbortSignal.timeout(STEP_MS) });
    await res.text();
    return res.status;
  };

  try {
    // The repository: the sample app with a seed snapshot of its database volume.
    work = join(scratch, 'work');
    cpSync(join(REPO, 'tests/fixtures/preview-stack'), work, { recursive: true });
    cpSync(join(REPO, 'tests/fixtures/preview-app/api'), join(work, 'api'), { recursive: true });
    const compose = readFileSync(join(work, 'compose.yaml'), 'utf8');
    if (!compose.includes(FIXTURE_API)) throw new Error("tests/fixtures/preview-stack's api service changed: update bench/env.ts");
    writeFileSync(join(work, 'compose.yaml'), compose.replace(FIXTURE_API, BUILT_API));
    writeFileSync(join(work, 'api.Dockerfile'), API_DOCKERFILE);
    appendFileSync(join(work, 'compose.yaml'), '\nx-hutch:\n  seed: {strategy: snapshot, volume: db-data, job: migrate}\n');
    git(work, 'init', '-q', '-b', 'main');
    git(work, 'add', '-A');
    git(work, 'commit', '-q', '-m', 'the sample app');
    bare = join(scratch, `${PROJECT}.git`);
    git(scratch, 'clone', '-q', '--bare', work, bare);
    const sha = git(work, 'rev-parse', 'HEAD');
    await api.call('POST', '/v1/hooks/projects', { provider: 'github', repository: OWNER, cloneUrl: `file://${bare}` });

    for (let run = 1; run <= opts.runs; run++) {
      opts.progress(`env: run ${run}/${opts.runs}: cold`);
      await api.call('POST', '/v1/environment-seeds/refresh', { project: PROJECT });
      await dropBuildCache();
      const cold = await open(sha);
      if (cold.env.services.some((s) => s.note === 'from seed snapshot')) throw new Error('a cold run used a seed snapshot');
      const image = cold.env.services.find((s) => s.name === 'api')!.template;
      if (!(await buildSnapshots()).includes(image)) throw new Error(`a cold run's API runs on ${image}, not a new build snapshot`);
      samples.cold.push(cold.ms);
      samples.coldBuild.push(cold.buildMs);

      opts.progress(`env: run ${run}/${opts.runs}: warm`);
      const warm = await open(sha);
      if (!warm.env.services.some((s) => s.note === 'from seed snapshot')) throw new Error('a warm run did not use the seed snapshot');
      const warmImage = warm.env.services.find((s) => s.name === 'api')!.template;
      if (warmImage !== image) throw new Error(`a warm run's API runs on ${warmImage}, not the cold run's build ${image}`);
      samples.warm.push(warm.ms);
      samples.warmBuild.push(warm.buildMs);

      opts.progress(`env: run ${run}/${opts.runs}: wake`);
      const apiUrl = warm.env.services.find((s) => s.name === 'api')!.url!;
      await api.call('PATCH', `/v1/environments/${warm.env.id}`, { ttl: { idle: '1s' } });
      await until(`environment ${warm.env.id} asleep`, async () => {
        const e = await api.call<Env>('GET', `/v1/environments/${warm.env.id}`);
        if (e.state !== 'sleeping') return null;
        // Recorded first, then the sandboxes stop: asleep once every one that exists is stopped.
        for (const s of e.services) {
          const sb = await api.request<{ state: string }>('GET', `/v1/sandboxes/${s.sandboxId}`);
          if (sb.status === 200 && sb.body.state !== 'stopped') return null;
        }
        return e;
      });
      await api.call('PATCH', `/v1/environments/${warm.env.id}`, { ttl: { idle: 'off' } }).catch(() => undefined);
      const t0 = performance.now();
      const status = await through(apiUrl);
      if (status !== 200) throw new Error(`the request that woke ${warm.env.id} got ${status}`);
      samples.wake.push(performance.now() - t0);

      opts.progress(`env: run ${run}/${opts.runs}: destroy`);
      samples.destroy.push(await close(cold.n, cold.env.id, sha));
      samples.destroy.push(await close(warm.n, warm.env.id, sha));
    }
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    for (const id of live) await api.call('DELETE', `/v1/environments/${id}`).catch(() => undefined);
    await api.call('POST', '/v1/environment-seeds/refresh', { project: PROJECT }).catch(() => undefined);
    await dropBuildCache().catch(() => undefined);
    api.close();
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
  return {
    cold: summarize(samples.cold),
    warm: summarize(samples.warm),
    coldBuild: summarize(samples.coldBuild),
    warmBuild: summarize(samples.warmBuild),
    wake: summarize(samples.wake),
    destroy: summarize(samples.destroy),
    samples,
    errors,
  };
}

export function renderEnv(r: EnvBenchResult, markdown: boolean): string {
  const rows: Array<[string, Summary | null]> = [
    ['cold: webhook → all services up (no build cache, no seed snapshot)', r.cold],
    ['warm: webhook → all services up (build cache, seed snapshot)', r.warm],
    ['of cold: the API image built (service `building`)', r.coldBuild],
    ['of warm: the API image from the build cache (`building`)', r.warmBuild],
    ['wake: request to a sleeping environment → 200', r.wake],
    ['destroy: close webhook → environment gone', r.destroy],
  ];
  if (markdown) {
    const lines = ['| series | n | median ms | p95 ms | min ms | max ms |', '|---|---|---|---|---|---|'];
    for (const [name, s] of rows)
      lines.push(`| ${name} | ${s?.n ?? 0} | ${fmtMs(s?.median)} | ${fmtMs(s?.p95)} | ${fmtMs(s?.min)} | ${fmtMs(s?.max)} |`);
    return lines.join('\n');
  }
  return rows
    .map(
      ([name, s]) =>
        `${name.padEnd(68)} n=${String(s?.n ?? 0).padStart(2)}  median ${fmtMs(s?.median).padStart(7)} ms  p95 ${fmtMs(s?.p95).padStart(7)} ms`,
    )
    .join('\n');
}
