import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { assertNoLeftovers, run, waitFor } from './hostile-lib.js';
import { REPO, startServer, type TestServer } from './harness.js';

/**
 * Issue 8, git hosting half — webhooks drive preview environments end to end, with real
 * sandboxes: signed GitHub deliveries (payloads adapted from @octokit/webhooks-examples) take
 * tests/fixtures/preview-stack (postgres, a migration/seed job, an API, a web front end, a worker)
 * from a local bare repository over file:// to a running environment whose API answers through
 * its preview URL; a push redeploys it (newest commit wins); a replay does nothing; a bad
 * signature is a 401; a fork's pull request waits for approval and stays isolated from the
 * other; the janitor destroys a preview whose pull request closed without a webhook; `closed`
 * destroys everything; a local recording server plays the GitHub and GitLab REST APIs (commit
 * statuses, one comment edited in place); a GitLab merge request goes open → update → close.
 */
interface Delivery {
  id: number;
  provider: string;
  deliveryId: string | null;
  event: string;
  action: string | null;
  repository: string | null;
  number: number | null;
  sha: string | null;
  signatureOk: boolean;
  duplicateOf: number | null;
  outcome: string;
  reason: string | null;
  environmentId: string | null;
  feedback: string | null;
}
interface Env {
  id: string;
  state: string;
  error: string | null;
  url: string | null;
  gitSha: string | null;
  prNumber: number | null;
  baseRef: string | null;
  keep: boolean;
  services: Array<{ name: string; state: string; sandboxId: string; url: string | null }>;
  volumes: Array<{ volume: string; owned: boolean }>;
}
interface Preview {
  key: string;
  number: number | null;
  state: string;
  environmentId: string | null;
  sha: string;
  deployedSha: string | null;
  fork: boolean;
  keep: boolean;
}
interface Recorded {
  method: string;
  path: string;
  body: Record<string, unknown> | null;
}

const SECRET = 'test-webhook-secret';
const GITLAB_TOKEN = 'test-gitlab-token';
const OWNER = 'octo-org/preview-app';
const REPO_ID = 918273;
const FORK_ID = 918274;

let server: TestServer;
let scratch: string;
let recorder: Server;
const calls: Recorded[] = [];
/** Pull request states the recording server reports (`github:11` → open); unknown: 404. */
const pullStates = new Map<string, string>();
const comments: Array<{ id: number; body: string; key: string }> = [];
let nextCommentId = 1000;

const require = createRequire(import.meta.url);
type Example = { name: string; examples: Array<Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any
const examples = require('@octokit/webhooks-examples/api.github.com/index.json') as Example[];
const openedExample = examples.find((e) => e.name === 'pull_request')!.examples.find((x) => x.action === 'opened')!;

// ---------------------------------------------------------------- the git host, played locally

/** GitHub's and GitLab's REST endpoints the server calls, answering like them and recording every call. */
function startRecorder(): Promise<string> {
  recorder = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      const text = Buffer.concat(chunks).toString();
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : null;
      calls.push({ method: req.method!, path, body });
      const send = (status: number, value: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      };
      const auth = req.headers.authorization === 'Bearer gh-token' || req.headers['private-token'] === 'gl-token';
      if (!auth) return send(401, { message: 'Bad credentials' });
      let m: RegExpExecArray | null;
      // The slow project's statuses fail: feedback problems must not fail its deployments.
      if (path.startsWith('/gh/repos/octo-org/slow/statuses/')) return send(500, { message: 'Server Error' });
      if ((m = /^\/gh\/repos\/[^/]+\/[^/]+\/statuses\/[0-9a-f]{40}$/.exec(path)) && req.method === 'POST') return send(201, { id: 1 });
      if ((m = /^\/gl\/projects\/\d+\/statuses\/[0-9a-f]{40}$/.exec(path)) && req.method === 'POST') return send(201, { id: 1 });
      if ((m = /^\/gh\/repos\/[^/]+\/[^/]+\/issues\/(\d+)\/comments$/.exec(path))) {
        const key = `github:${m[1]}`;
        if (req.method === 'GET')
          return send(
            200,
            comments.filter((c) => c.key === key),
          );
        const c = { id: nextCommentId++, body: String(body?.body), key };
        comments.push(c);
        return send(201, c);
      }
      if ((m = /^\/gh\/repos\/[^/]+\/[^/]+\/issues\/comments\/(\d+)$/.exec(path)) && req.method === 'PATCH') {
        const c = comments.find((x) => x.id === Number(m![1]));
        if (!c) return send(404, { message: 'Not Found' });
        c.body = String(body?.body);
        return send(200, c);
      }
      if ((m = /^\/gl\/projects\/\d+\/merge_requests\/(\d+)\/notes(?:\/(\d+))?$/.exec(path))) {
        const key = `gitlab:${m[1]}`;
        if (req.method === 'GET')
          return send(
            200,
            comments.filter((c) => c.key === key),
          );
        if (req.method === 'POST') {
          const c = { id: nextCommentId++, body: String(body?.body), key };
          comments.push(c);
          return send(201, c);
        }
        const c = comments.find((x) => x.id === Number(m![2]));
        if (!c) return send(404, { message: '404 Not found' });
        c.body = String(body?.body);
        return send(200, c);
      }
      if ((m = /^\/gh\/repos\/[^/]+\/[^/]+\/pulls\/(\d+)$/.exec(path))) {
        const state = pullStates.get(`github:${m[1]}`);
        return state ? send(200, { state }) : send(404, { message: 'Not Found' });
      }
      if ((m = /^\/gl\/projects\/\d+\/merge_requests\/(\d+)$/.exec(path))) {
        const state = pullStates.get(`gitlab:${m[1]}`);
        return state ? send(200, { state }) : send(404, { message: '404 Not found' });
      }
      send(404, { message: `no such endpoint ${req.method} ${path}` });
    });
  });
  return new Promise((resolve) =>
    recorder.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(recorder.address() as { port: number }).port}`)),
  );
}

// ---------------------------------------------------------------- git

const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
const git = (cwd: string, ...args: string[]): string => execFileSync('git', args, { cwd, env: gitEnv }).toString().trim();

/** Commits the work tree and publishes it in the bare repository as `ref` (as GitHub keeps refs/pull/<n>/head). */
function publish(work: string, bare: string, ref: string, message: string): string {
  git(work, 'add', '-A');
  git(work, 'commit', '-q', '--allow-empty', '-m', message);
  git(work, 'push', '-q', '-f', bare, `HEAD:${ref}`);
  return git(work, 'rev-parse', 'HEAD');
}

/** A work tree holding `files` and an empty bare repository beside it (`<name>.git`). */
function repoWith(name: string, files: Record<string, string>): { work: string; bare: string } {
  const work = join(scratch, name);
  mkdirSync(work, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(work, file), text);
  git(work, 'init', '-q', '-b', 'main');
  const bare = join(scratch, `${name}.git`);
  git(scratch, 'init', '-q', '--bare', bare);
  return { work, bare };
}

function setGreeting(work: string, message: string): void {
  const seed = join(work, 'seed/seed.sql');
  writeFileSync(seed, readFileSync(seed, 'utf8').replace(/VALUES \(1, '[^']*'\)/, `VALUES (1, '${message}')`));
}

// ---------------------------------------------------------------- deliveries

/** A pull_request payload: GitHub's own "opened" example with this test's repository, number, commit and labels. */
function pullRequest(action: string, number: number, sha: string, opts: { fork?: boolean; labels?: string[]; merged?: boolean } = {}) {
  const p = structuredClone(openedExample);
  const base = { ...p.pull_request.base.repo, id: REPO_ID, full_name: OWNER, clone_url: `https://github.com/${OWNER}.git` };
  const head = opts.fork
    ? { ...base, id: FORK_ID, full_name: 'someone/preview-app', clone_url: 'https://github.com/someone/preview-app.git' }
    : base;
  p.action = action;
  p.number = number;
  p.repository = base;
  p.pull_request = {
    ...p.pull_request,
    number,
    state: action === 'closed' ? 'closed' : 'open',
    draft: false,
    merged: opts.merged ?? false,
    labels: (opts.labels ?? []).map((name) => ({ id: 1, name, color: 'ededed' })),
    head: { ...p.pull_request.head, sha, ref: `feature-${number}`, repo: head },
    base: { ...p.pull_request.base, ref: 'main', repo: base },
  };
  return p;
}

async function deliver(
  event: string,
  payload: unknown,
  opts: { id?: string; secret?: string | null } = {},
): Promise<{ status: number; body: { delivery: number; outcome: string; message: string }; id: string }> {
  const id = opts.id ?? randomUUID();
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': id };
  const secret = opts.secret === undefined ? SECRET : opts.secret;
  if (secret !== null) headers['x-hub-signature-256'] = 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
  const res = await fetch(`${server.url}/v1/hooks/github`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json()) as { delivery: number; outcome: string; message: string }, id };
}

async function deliveryRecord(id: number): Promise<Delivery> {
  const res = await server.api<{ deliveries: Delivery[] }>('GET', `/v1/hooks/deliveries?cursor=${id + 1}&limit=1`);
  assert.equal(res.status, 200);
  assert.equal(res.body.deliveries[0]?.id, id);
  return res.body.deliveries[0]!;
}

async function preview(number: number, provider = 'github'): Promise<Preview | undefined> {
  const res = await server.api<{ previews: Preview[] }>('GET', '/v1/hooks/previews');
  return res.body.previews.find((p) => p.number === number && p.key.startsWith(`${provider}:`));
}

/** Waits (bounded) for a delivery to reach a final outcome. */
async function settled(id: number, withinMs = 300_000): Promise<Delivery> {
  const d = await waitFor(
    async () => {
      const r = await deliveryRecord(id);
      return ['queued', 'awaiting-approval'].includes(r.outcome) ? null : r;
    },
    withinMs,
    1000,
  );
  assert.ok(d, `delivery ${id} still queued after ${withinMs / 1000} s:\n${server.output().slice(-3000)}`);
  return d;
}

async function environment(id: string): Promise<Env> {
  const res = await server.api<Env>('GET', `/v1/environments/${id}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function viaUrl(url: string): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${server.key}` } });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON: kept as text for the assertion message */
  }
  return { status: res.status, json };
}

/** The built CLI against the test server. */
function hutchCli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'packages/cli/dist/main.js'), ...args], {
    env: { ...process.env, HUTCH_URL: server.url, HUTCH_API_KEY: server.key },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const serviceOf = (env: Env, name: string) => {
  const s = env.services.find((x) => x.name === name);
  assert.ok(s, `service ${name} in ${JSON.stringify(env.services)}`);
  return s;
};

// ---------------------------------------------------------------- the test

let work: string;
let bare: string;
let recorderUrl: string;
let sha1: string;
let pr11: Preview;
let env11: Env;
let forkEnv: Env;

before(async () => {
  scratch = mkdtempSync('/var/tmp/hutch-previews-test-');
  recorderUrl = await startRecorder();
  // A pool of its own: 10.236–238 (no other test file uses them; environments.test.ts: 10.240–249).
  const n = 236 + Math.floor(Math.random() * 3);
  server = await startServer({
    gitAllowFileUrls: true,
    networkPool4: `10.${n}.0.0/16`,
    networkPool6: `fd68:7574:63${n.toString(16)}::/48`,
    githubWebhookSecrets: ['an-old-secret', SECRET],
    gitlabWebhookTokens: [GITLAB_TOKEN],
    githubToken: 'gh-token',
    gitlabToken: 'gl-token',
    githubApiUrl: `${recorderUrl}/gh`,
    gitlabApiUrl: `${recorderUrl}/gl`,
    previewJanitorIntervalSeconds: 2,
  });
  // The repository: the sample app, its API from the environments fixture.
  work = join(scratch, 'work');
  cpSync(join(REPO, 'tests/fixtures/preview-stack'), work, { recursive: true });
  cpSync(join(REPO, 'tests/fixtures/preview-app/api'), join(work, 'api'), { recursive: true });
  git(work, 'init', '-q', '-b', 'main');
  bare = join(scratch, 'preview-app.git');
  git(scratch, 'init', '-q', '--bare', bare);
  publish(work, bare, 'refs/heads/main', 'the app');
  const project = await server.api<{ id: string; variables: string[] }>('POST', '/v1/hooks/projects', {
    provider: 'github',
    repository: OWNER,
    cloneUrl: `file://${bare}`,
    variables: { DEPLOY_NOTE: 'project variable' },
  });
  assert.equal(project.status, 201, JSON.stringify(project.body));
  assert.deepEqual(project.body.variables, ['DEPLOY_NOTE'], 'names only');
});

after(async () => {
  const left = await server?.api<{ environments: Env[] }>('GET', '/v1/environments').catch(() => null);
  for (const env of left?.body.environments ?? []) await server.api('DELETE', `/v1/environments/${env.id}`).catch(() => undefined);
  await server?.stop();
  await new Promise((r) => recorder?.close(r));
  rmSync(scratch, { recursive: true, force: true });
});

describe('webhooks → preview environments', () => {
  test('receivers: ping 200, missing or bad signature 401 (logged, never believed), no API key needed, unregistered repositories ignored', async () => {
    const ping = await deliver('ping', { zen: 'Design for failure.', hook_id: 1, repository: { full_name: OWNER } });
    assert.deepEqual([ping.status, ping.body.outcome], [200, 'ignored']);
    const bad = await deliver('pull_request', pullRequest('opened', 99, 'a'.repeat(40)), { secret: 'not-the-secret' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.outcome, 'rejected');
    const none = await deliver('pull_request', pullRequest('opened', 99, 'a'.repeat(40)), { secret: null });
    assert.equal(none.status, 401);
    const rejected = await deliveryRecord(bad.body.delivery);
    assert.deepEqual(
      [rejected.signatureOk, rejected.outcome, rejected.repository, rejected.number],
      [false, 'rejected', null, null],
      'nothing of an unsigned body is recorded',
    );
    // The old secret of a rotation still verifies; an unknown repository is accepted and ignored.
    const other = pullRequest('opened', 5, 'b'.repeat(40));
    other.repository.full_name = other.pull_request.base.repo.full_name = 'someone/else';
    const ignored = await deliver('pull_request', other, { secret: 'an-old-secret' });
    assert.equal(ignored.status, 200);
    assert.equal(ignored.body.outcome, 'ignored');
    assert.match(ignored.body.message, /no project for github repository someone\/else/);
    const notJson = await fetch(`${server.url}/v1/hooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-hub-signature-256': 'sha256=' + createHmac('sha256', SECRET).update('{oops').digest('hex'),
      },
      body: '{oops',
    });
    assert.equal(notJson.status, 400);
    // The API keys are not involved: a wrong one changes nothing.
    const withKey = await fetch(`${server.url}/v1/hooks/github`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope', 'x-github-event': 'ping', 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(withKey.status, 401);
    assert.equal(((await withKey.json()) as { outcome: string }).outcome, 'rejected');
    const list = await server.api<{ deliveries: Delivery[]; nextCursor: string | null }>(
      'GET',
      '/v1/hooks/deliveries?outcome=rejected&limit=2',
    );
    assert.equal(list.status, 200);
    assert.equal(list.body.deliveries.length, 2);
    assert.ok(list.body.nextCursor, 'a third rejected one is on the next page');
    const next = await server.api<{ deliveries: Delivery[] }>(
      'GET',
      `/v1/hooks/deliveries?outcome=rejected&cursor=${list.body.nextCursor}`,
    );
    assert.equal(next.body.deliveries.length, 1);
    assert.ok(next.body.deliveries[0]!.id < list.body.deliveries[1]!.id);
    const badQuery = await server.api<{ error: { message: string } }>('GET', '/v1/hooks/deliveries?outcome=nope');
    assert.equal(badQuery.status, 400);
    assert.match(badQuery.body.error.message, /outcome/);
  });

  test('opened → a running environment: the API answers through its preview URL with the row the seed job wrote', async () => {
    sha1 = git(work, 'rev-parse', 'HEAD');
    git(work, 'push', '-q', bare, `HEAD:refs/pull/11/head`);
    pullStates.set('github:11', 'open');
    const opened = await deliver('pull_request', pullRequest('opened', 11, sha1));
    assert.equal(opened.status, 202, JSON.stringify(opened.body));
    assert.equal(opened.body.outcome, 'queued');
    const done = await settled(opened.body.delivery);
    assert.equal(done.outcome, 'deployed', `${done.reason}\n${server.output().slice(-2000)}`);
    assert.deepEqual([done.event, done.action, done.repository, done.number, done.sha], ['pull_request', 'opened', OWNER, 11, sha1]);
    pr11 = (await preview(11))!;
    assert.equal(pr11.key, `github:${REPO_ID}:pull:11`, 'keyed by repository id and number, never by branch');
    assert.deepEqual([pr11.state, pr11.deployedSha, pr11.environmentId], ['running', sha1, done.environmentId]);
    env11 = await environment(done.environmentId!);
    assert.equal(env11.state, 'running');
    assert.equal(env11.gitSha, sha1);
    assert.equal(env11.prNumber, 11);
    assert.equal(env11.baseRef, 'main', "the pull request's base branch (the seed snapshot's key)");
    assert.deepEqual(
      env11.services.map((s) => [s.name, s.state]),
      [
        ['db', 'healthy'],
        ['migrate', 'completed'],
        ['api', 'running'],
        ['web', 'running'],
        ['worker', 'running'],
      ],
    );
    const api = await viaUrl(serviceOf(env11, 'api').url!);
    assert.equal(api.status, 200, JSON.stringify(api.json));
    assert.equal(api.json.message, 'hello from the first commit');
    assert.equal(api.json.preview.PREVIEW_PR_NUMBER, '11');
    assert.equal(api.json.preview.PREVIEW_GIT_SHA, sha1);
    const web = await viaUrl(serviceOf(env11, 'web').url!);
    assert.equal(web.status, 200, JSON.stringify(web.json));
    assert.equal(web.json.api.message, 'hello from the first commit', 'web reaches the API by its service name');
  });

  test('a replayed delivery is logged as a duplicate and does nothing', async () => {
    const first = await deliver('pull_request', pullRequest('reopened', 11, sha1), { id: 'replayed-delivery-1' });
    assert.equal(first.status, 200);
    assert.equal(first.body.outcome, 'ignored', 'the environment is already at that commit');
    const replay = await deliver('pull_request', pullRequest('synchronize', 11, 'c'.repeat(40)), { id: 'replayed-delivery-1' });
    assert.equal(replay.status, 200);
    assert.equal(replay.body.outcome, 'duplicate');
    const d = await deliveryRecord(replay.body.delivery);
    assert.deepEqual([d.outcome, d.duplicateOf, d.environmentId], ['duplicate', first.body.delivery, null]);
    const p = await preview(11);
    assert.deepEqual([p?.sha, p?.state, p?.environmentId], [sha1, 'running', env11.id], 'no new work');
  });

  test('synchronize: the newest commit wins (an older one is superseded) and the same environment is redeployed', async () => {
    setGreeting(work, 'hello from the second commit');
    const sha2 = publish(work, bare, 'refs/pull/11/head', 'second');
    const second = await deliver('pull_request', pullRequest('synchronize', 11, sha2));
    assert.equal(second.status, 202);
    setGreeting(work, 'hello from the third commit');
    const sha3 = publish(work, bare, 'refs/pull/11/head', 'third');
    // The second commit's bring-up is under way (or still waiting) when the third arrives.
    await waitFor(async () => (await deliveryRecord(second.body.delivery)).environmentId !== null, 60_000, 200);
    const third = await deliver('pull_request', pullRequest('synchronize', 11, sha3));
    assert.equal(third.status, 202);
    const superseded = await settled(second.body.delivery);
    assert.equal(superseded.outcome, 'superseded', JSON.stringify(superseded));
    const done = await settled(third.body.delivery);
    assert.equal(done.outcome, 'deployed', `${done.reason}\n${server.output().slice(-2000)}`);
    assert.equal(done.environmentId, env11.id, 'the same environment');
    const env = await environment(env11.id);
    assert.equal(env.gitSha, sha3);
    assert.deepEqual(env.volumes, env11.volumes, 'its volume kept');
    assert.notEqual(serviceOf(env, 'api').sandboxId, serviceOf(env11, 'api').sandboxId, 'new sandboxes');
    for (const s of env11.services)
      assert.equal((await server.api('GET', `/v1/sandboxes/${s.sandboxId}`)).status, 404, `old ${s.name} gone`);
    const api = await viaUrl(serviceOf(env, 'api').url!);
    assert.equal(api.status, 200, JSON.stringify(api.json));
    assert.equal(api.json.message, 'hello from the third commit');
    assert.equal(api.json.preview.PREVIEW_GIT_SHA, sha3);
    env11 = env;
  });

  test("a fork's pull request waits for approval (API), deploys without the project's variables, and is isolated from the other", async () => {
    const forkWork = join(scratch, 'fork');
    cpSync(work, forkWork, { recursive: true });
    setGreeting(forkWork, 'hello from a fork');
    const shaFork = publish(forkWork, bare, 'refs/pull/12/head', 'from a fork');
    pullStates.set('github:12', 'open');
    const opened = await deliver('pull_request', pullRequest('opened', 12, shaFork, { fork: true }));
    assert.equal(opened.status, 200);
    assert.equal(opened.body.outcome, 'awaiting-approval');
    assert.match(opened.body.message, /awaiting approval \(label hutch:approved/);
    const waiting = await preview(12);
    assert.deepEqual([waiting?.state, waiting?.environmentId, waiting?.fork], ['awaiting-approval', null, true]);
    const log = await deliveryRecord(opened.body.delivery);
    assert.equal(log.outcome, 'awaiting-approval', 'the delivery log says so');
    const pending = await waitFor(
      () => calls.find((c) => c.method === 'POST' && c.path === `/gh/repos/${OWNER}/statuses/${shaFork}`),
      10_000,
      100,
    );
    assert.deepEqual(
      [pending?.body?.state, pending?.body?.description],
      ['pending', 'awaiting approval (a fork: no deploy until approved)'],
    );
    // Approved through the API (the CLI's `hutch hooks approve`): the waiting commit deploys.
    const approve = hutchCli('hooks', 'approve', 'github', OWNER, '12', '--json');
    assert.equal(approve.status, 0, approve.stderr);
    assert.deepEqual([JSON.parse(approve.stdout).approvedSha, JSON.parse(approve.stdout).state], [shaFork, 'deploying']);
    const up = await waitFor(async () => ((await preview(12))?.state === 'deploying' ? null : await preview(12)), 300_000, 1000);
    assert.equal(up?.state, 'running', JSON.stringify(up));
    forkEnv = await environment(up.environmentId!);
    const api = await viaUrl(serviceOf(forkEnv, 'api').url!);
    assert.equal(api.json.message, 'hello from a fork');
    const note = async (env: Env): Promise<string> =>
      (await run(server, serviceOf(env, 'api').sandboxId, 'printenv DEPLOY_NOTE')).stdout.trim();
    assert.equal(await note(forkEnv), 'none', 'no project variables for a fork');
    assert.equal(await note(env11), 'project variable');

    // Isolation: each API resolves only its own db, and cannot reach the other's.
    const mine = serviceOf(env11, 'api').sandboxId;
    const theirs = serviceOf(forkEnv, 'api').sandboxId;
    const addr = async (id: string): Promise<string> =>
      (await server.api<{ ipv4: string }>('GET', `/v1/sandboxes/${id}/network`)).body.ipv4;
    const connects = async (from: string, host: string, port: number): Promise<boolean> =>
      (
        await run(server, from, ['bash', '-c', `timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' && echo open`], { user: 'root' })
      ).stdout.trim() === 'open';
    const db11 = await addr(serviceOf(env11, 'db').sandboxId);
    const dbFork = await addr(serviceOf(forkEnv, 'db').sandboxId);
    assert.ok(await connects(mine, 'db', 5432), 'PR 11 api → its db');
    assert.ok(await connects(theirs, 'db', 5432), 'PR 12 api → its db');
    assert.equal(await connects(mine, dbFork, 5432), false, "PR 11 → PR 12's db");
    assert.equal(await connects(theirs, db11, 5432), false, "PR 12 → PR 11's db");
    assert.equal(await connects(theirs, await addr(serviceOf(env11, 'api').sandboxId), 8000), false, "PR 12 → PR 11's api");
  });

  test('the janitor destroys a preview whose pull request closed without a webhook', async () => {
    pullStates.set('github:12', 'closed');
    const gone = await waitFor(async () => (await preview(12)) === undefined, 120_000, 500);
    assert.ok(gone, 'janitor destroyed PR 12');
    assert.equal((await server.api('GET', `/v1/environments/${forkEnv.id}`)).status, 404);
    assert.ok(calls.some((c) => c.method === 'GET' && c.path === `/gh/repos/${OWNER}/pulls/12`));
    assert.equal((await preview(11))?.state, 'running', 'the open one is left alone');
  });

  test('the keep label pins a preview: closing it leaves it up until the label goes', async () => {
    const kept = await deliver('pull_request', pullRequest('labeled', 11, env11.gitSha!, { labels: ['hutch:keep'] }));
    assert.equal(kept.body.outcome, 'ignored');
    assert.equal((await preview(11))?.keep, true);
    assert.equal((await environment(env11.id)).keep, true, "the label sets the environment's keep flag");
    const closed = await deliver('pull_request', pullRequest('closed', 11, env11.gitSha!, { labels: ['hutch:keep'] }));
    assert.equal(closed.body.outcome, 'ignored');
    assert.match(closed.body.message, /kept \(label hutch:keep or the environment.s keep\)/);
    assert.equal((await environment(env11.id)).state, 'running');
    const unlabeled = await deliver('pull_request', pullRequest('unlabeled', 11, env11.gitSha!));
    assert.equal(unlabeled.body.outcome, 'ignored');
    assert.equal((await preview(11))?.keep, false);
    assert.equal((await environment(env11.id)).keep, false);
  });

  test('closed destroys everything: sandboxes, volumes, peer links, nft tables; again is a success', async () => {
    const closed = await deliver('pull_request', pullRequest('closed', 11, env11.gitSha!, { merged: true }));
    assert.equal(closed.status, 202);
    const done = await settled(closed.body.delivery);
    pullStates.set('github:11', 'closed');
    assert.equal(done.outcome, 'destroyed', done.reason ?? '');
    assert.match(done.reason ?? '', /merged/);
    assert.equal((await server.api('GET', `/v1/environments/${env11.id}`)).status, 404);
    const again = await deliver('pull_request', pullRequest('closed', 11, env11.gitSha!));
    assert.deepEqual([again.status, again.body.outcome], [200, 'destroyed']);
    const ids = [...env11.services, ...forkEnv.services].map((s) => s.sandboxId);
    const sandboxes = await server.api<{ sandboxes: Array<{ id: string }> }>('GET', '/v1/sandboxes');
    assert.deepEqual(
      sandboxes.body.sandboxes.filter((s) => ids.includes(s.id)),
      [],
    );
    const volumes = await server.api<{ volumes: Array<{ name: string }> }>('GET', '/v1/volumes');
    assert.deepEqual(
      volumes.body.volumes.filter((v) => v.name.startsWith(env11.id) || v.name.startsWith(forkEnv.id)),
      [],
    );
    const key = createHash('sha256').update(server.dataDir).digest('hex').slice(0, 4);
    const left = (): string[] => [
      ...readdirSync('/sys/class/net').filter((l) => l.startsWith(`hp${key}`)),
      ...execFileSync('nft', ['list', 'tables'])
        .toString()
        .split('\n')
        .filter((t) => ids.some((id) => t.includes(`hutch_${id}`))),
    ];
    await waitFor(() => left().length === 0, 15_000);
    assert.deepEqual(left(), [], 'no peer links or sandbox tables left');
    for (const id of ids) await assertNoLeftovers(server, 'container', id, 10_000);
  });

  test('feedback: commit statuses with the URL, and exactly one comment per pull request, edited in place', async () => {
    const statuses = calls.filter((c) => c.method === 'POST' && c.path.startsWith(`/gh/repos/${OWNER}/statuses/`));
    const forSha1 = statuses.filter((c) => c.path.endsWith(sha1)).map((c) => c.body!.state);
    assert.deepEqual(forSha1, ['pending', 'success']);
    const success = statuses.find((c) => c.path.endsWith(env11.gitSha!) && c.body!.state === 'success');
    assert.ok(success, 'the last commit got a success');
    assert.equal(success.body!.context, 'hutch/preview');
    assert.match(String(success.body!.target_url), /^http/);
    const created = calls.filter((c) => c.method === 'POST' && c.path === `/gh/repos/${OWNER}/issues/11/comments`);
    assert.equal(created.length, 1, 'one comment created for PR 11');
    const mine = comments.filter((c) => c.key === 'github:11');
    assert.equal(mine.length, 1);
    const edits = calls.filter((c) => c.method === 'PATCH' && c.path === `/gh/repos/${OWNER}/issues/comments/${mine[0]!.id}`);
    assert.ok(edits.length >= 4, `edited in place ${edits.length} times`);
    assert.match(mine[0]!.body, /<!-- hutch-preview:github:918273:pull:11 -->/);
    assert.match(mine[0]!.body, /destroyed/);
    const running = edits.map((e) => String(e.body!.body)).find((b) => b.includes('| api | running |'));
    assert.ok(running, 'a version listed each service with its state and URL');
    assert.match(running, /\| web \| running \| http/);
    assert.match(running, /Expires: destroyed when the pull request is closed or merged/);
  });

  test('the delivery log tells the story, filterable, and through the CLI (--json)', async () => {
    const log = await server.api<{ deliveries: Delivery[] }>('GET', '/v1/hooks/deliveries?number=11&provider=github');
    const outcomes = log.body.deliveries.map((d) => d.outcome);
    for (const o of ['deployed', 'duplicate', 'superseded', 'destroyed', 'ignored']) assert.ok(outcomes.includes(o), `${o} in ${outcomes}`);
    const cli = hutchCli('hooks', 'deliveries', '--number', '11', '--json');
    assert.equal(cli.status, 0, cli.stderr);
    const parsed = JSON.parse(cli.stdout) as { deliveries: Delivery[] };
    assert.deepEqual(
      parsed.deliveries.map((d) => d.id),
      log.body.deliveries.map((d) => d.id),
    );
    const table = hutchCli('hooks', 'deliveries', '--outcome', 'duplicate');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /github\s+pull_request\s+synchronize\s+octo-org\/preview-app#11\s+duplicate/);
    // Projects through the CLI: add (variable names only in answers), ls, rm; previews.
    const add = hutchCli('hooks', 'projects', 'add', 'gitlab', 'Group/Other', '--branch', 'main', '--var', 'TOKEN=s3cr3t', '--json');
    assert.equal(add.status, 0, add.stderr);
    const added = JSON.parse(add.stdout) as { id: string; repository: string; branches: string[]; variables: string[] };
    assert.deepEqual([added.repository, added.branches, added.variables], ['group/other', ['main'], ['TOKEN']]);
    assert.ok(!add.stdout.includes('s3cr3t'));
    assert.match(hutchCli('hooks', 'projects', 'ls').stdout, new RegExp(`^${added.id}\\s+gitlab\\s+group/other\\s+default`, 'm'));
    assert.equal(hutchCli('hooks', 'projects', 'add', 'gitlab', 'group/other').status, 1, 'registered once');
    assert.deepEqual([hutchCli('hooks', 'projects', 'rm', added.id).stdout], [`${added.id}\n`]);
    const listed = hutchCli('hooks', 'previews', '--json');
    assert.equal(listed.status, 0, listed.stderr);
    assert.ok(
      !(JSON.parse(listed.stdout) as { previews: Preview[] }).previews.some((p) => p.number === 11),
      'destroyed ones are not listed',
    );
    // Tenant-scoped: another tenant's member sees none of these, and cannot ask for them.
    assert.equal((await server.api('POST', '/v1/admin/tenants', { name: 'hooks-b' })).status, 201);
    const key = await server.api<{ key: string }>('POST', '/v1/keys', { tenant: 'hooks-b', role: 'member' });
    const asB = { authorization: `Bearer ${key.body.key}` };
    const theirs = await server.api<{ deliveries: Delivery[] }>('GET', '/v1/hooks/deliveries', undefined, asB);
    assert.deepEqual([theirs.status, theirs.body.deliveries], [200, []]);
    assert.equal((await server.api('GET', '/v1/hooks/deliveries?tenant=default', undefined, asB)).status, 404);
    assert.equal(
      (await server.api('POST', '/v1/hooks/projects', { provider: 'github', repository: 'b/b' }, asB)).status,
      403,
      'admins register projects',
    );
  });

  test('push: a configured branch gets an environment, other branches are ignored, a deleted branch is destroyed; a restart mid-deploy deploys again; a refused commit leaves the environment as it was; failing feedback fails nothing', async () => {
    // A slow project: its service is healthy 5 s after it starts (a restart can land mid-bring-up).
    const { work: slowWork, bare: slowBare } = repoWith('slow', {
      'compose.yaml': [
        'services:',
        '  app:',
        '    image: debian:12',
        "    command: ['sh', '-c', 'sleep 5; touch /tmp/ready; exec sleep infinity']",
        '    healthcheck:',
        "      test: ['CMD', 'test', '-f', '/tmp/ready']",
        '      interval: 1s',
        '      retries: 60',
        '    depends_on:',
        '      seed: {condition: service_completed_successfully}',
        '  seed:',
        '    image: debian:12',
        "    restart: 'no'",
        "    command: ['sh', '-c', 'echo seeded > /data/seeded']",
        "    volumes: ['data:/data']",
        'volumes:',
        '  data:',
        'x-hutch:',
        '  seed: {strategy: snapshot, volume: data, job: seed}',
        '',
      ].join('\n'),
    });
    const main = publish(slowWork, slowBare, 'refs/heads/main', 'slow app');
    const created = await server.api('POST', '/v1/hooks/projects', {
      provider: 'github',
      repository: 'octo-org/slow',
      cloneUrl: `file://${slowBare}`,
      branches: ['main'],
    });
    assert.equal(created.status, 201);
    const repository = { id: 5550, full_name: 'octo-org/slow', clone_url: 'https://github.com/octo-org/slow.git' };
    const push = (ref: string, after: string, deleted = false) => ({
      ref,
      before: '0'.repeat(40),
      after,
      deleted,
      commits: [],
      repository,
    });
    const other = await deliver('push', push('refs/heads/feature', main));
    assert.equal(other.status, 200);
    assert.match(other.body.message, /push to branch feature: the project has no environment for it \(its branches: main\)/);
    const pushed = await deliver('push', push('refs/heads/main', main));
    assert.equal(pushed.status, 202, JSON.stringify(pushed.body));
    const up = await settled(pushed.body.delivery);
    assert.equal(up.outcome, 'deployed', up.reason ?? '');
    assert.match(
      up.feedback ?? '',
      /^status: github POST \/repos\/octo-org\/slow\/statuses\/[0-9a-f]{40}: 500/,
      'the git host failed; the deployment did not',
    );
    const branchEnv = await environment(up.environmentId!);
    assert.deepEqual(
      [branchEnv.gitSha, branchEnv.prNumber, branchEnv.baseRef, serviceOf(branchEnv, 'app').state],
      [main, null, 'main', 'healthy'],
    );
    // The branch environment took the golden seed snapshot of slow@main; the next push to main forgets it.
    const seedsOf = async (): Promise<Array<{ project: string; baseRef: string; snapshotVolume: string }>> =>
      (
        await server.api<{ seeds: Array<{ project: string; baseRef: string; snapshotVolume: string }> }>('GET', '/v1/environment-seeds')
      ).body.seeds.filter((s) => s.project === 'slow');
    const golden = await waitFor(async () => (await seedsOf())[0], 30_000, 250);
    assert.deepEqual([golden?.project, golden?.baseRef], ['slow', 'main'], 'a seed snapshot keyed by the project and its branch');
    const next = publish(slowWork, slowBare, 'refs/heads/main', 'next');
    const pushedAgain = await deliver('push', push('refs/heads/main', next));
    assert.equal(pushedAgain.status, 202);
    assert.match(pushedAgain.body.message, /seed snapshots of slow@main refreshed \(1\)/);
    assert.ok(!(await seedsOf()).some((s) => s.snapshotVolume === golden!.snapshotVolume), 'the old golden volume is forgotten');
    assert.equal((await settled(pushedAgain.body.delivery)).outcome, 'deployed');
    const gone = await deliver('push', push('refs/heads/main', '0'.repeat(40), true));
    assert.equal((await settled(gone.body.delivery)).outcome, 'destroyed');
    assert.equal((await server.api('GET', `/v1/environments/${branchEnv.id}`)).status, 404);

    // A pull request whose bring-up a kill -9 interrupts: the next start deploys it again.
    const prSha = publish(slowWork, slowBare, 'refs/pull/21/head', 'a change');
    pullStates.set('github:21', 'open');
    const pr = structuredClone(pullRequest('opened', 21, prSha));
    pr.repository = pr.pull_request.base.repo = pr.pull_request.head.repo = { ...pr.repository, ...repository };
    const opened = await deliver('pull_request', pr);
    assert.equal(opened.status, 202);
    assert.ok(await waitFor(async () => (await deliveryRecord(opened.body.delivery)).environmentId !== null, 60_000, 100));
    await server.kill9();
    await server.restart();
    const interrupted = await deliveryRecord(opened.body.delivery);
    assert.deepEqual(
      [interrupted.outcome, interrupted.reason],
      ['superseded', `interrupted by a server restart; the preview was deployed again at ${prSha.slice(0, 7)} at the next start`],
    );
    const again = await waitFor(async () => ((await preview(21))?.state === 'running' ? preview(21) : null), 120_000, 500);
    assert.ok(again, JSON.stringify(await preview(21)));
    assert.equal(again.environmentId, interrupted.environmentId, 'the same environment, redeployed');
    assert.equal((await environment(again.environmentId!)).state, 'running');
    // A commit whose Compose file is refused: the delivery fails with the field, the environment stays as it was.
    const good = await environment(again.environmentId!);
    writeFileSync(
      join(slowWork, 'compose.yaml'),
      readFileSync(join(slowWork, 'compose.yaml'), 'utf8').replace(
        '    image: debian:12\n',
        '    image: debian:12\n    privileged: true\n',
      ),
    );
    const badSha = publish(slowWork, slowBare, 'refs/pull/21/head', 'privileged');
    const bad = await deliver('pull_request', {
      ...pr,
      action: 'synchronize',
      pull_request: { ...pr.pull_request, head: { ...pr.pull_request.head, sha: badSha } },
    });
    const refused = await settled(bad.body.delivery);
    assert.equal(refused.outcome, 'failed');
    assert.match(refused.reason ?? '', /^services\.app\.privileged: /);
    const still = await environment(good.id);
    assert.deepEqual([still.state, still.gitSha, serviceOf(still, 'app').sandboxId], ['running', prSha, serviceOf(good, 'app').sandboxId]);
    assert.equal((await preview(21))?.state, 'error');
    const closed = await deliver('pull_request', { ...pr, action: 'closed' });
    assert.equal((await settled(closed.body.delivery)).outcome, 'destroyed');
  });

  test("GitLab: a fork's merge request opens (awaiting approval), is approved by a label, updates (oldrev), closes and reopens at once, closes; statuses and one note", async () => {
    const { work: glWork, bare: glBare } = repoWith('gl', {
      'compose.yaml': readFileSync(join(REPO, 'tests/fixtures/compose/tiny/compose.yaml'), 'utf8'),
    });
    const first = publish(glWork, glBare, 'refs/merge-requests/3/head', 'one');
    const project = await server.api('POST', '/v1/hooks/projects', {
      provider: 'gitlab',
      repository: 'group/tiny',
      cloneUrl: `file://${glBare}`,
    });
    assert.equal(project.status, 201);
    pullStates.set('gitlab:3', 'opened');
    const mr = (action: string, sha: string, extra: Record<string, unknown> = {}) => ({
      object_kind: 'merge_request',
      event_type: 'merge_request',
      project: { id: 77, path_with_namespace: 'group/tiny', git_http_url: 'https://gitlab.example.com/group/tiny.git' },
      // From a fork (another source project), approved by a label from the first update on.
      object_attributes: {
        iid: 3,
        action,
        source_project_id: 78,
        target_project_id: 77,
        state: 'opened',
        last_commit: { id: sha },
        ...extra,
      },
      labels: action === 'open' ? [] : [{ title: 'hutch:approved' }],
    });
    const send = async (payload: unknown, token = GITLAB_TOKEN) => {
      const res = await fetch(`${server.url}/v1/hooks/gitlab`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-gitlab-event': 'Merge Request Hook',
          'x-gitlab-token': token,
          'x-gitlab-event-uuid': randomUUID(),
        },
        body: JSON.stringify(payload),
      });
      return { status: res.status, body: (await res.json()) as { delivery: number; outcome: string } };
    };
    assert.equal((await send(mr('open', first), 'wrong')).status, 401);
    const opened = await send(mr('open', first));
    assert.deepEqual([opened.status, opened.body.outcome], [200, 'awaiting-approval']);
    const approved = await send(mr('update', first));
    assert.equal(approved.status, 202);
    const up = await settled(approved.body.delivery);
    assert.equal(up.outcome, 'deployed', up.reason ?? '');
    const second = publish(glWork, glBare, 'refs/merge-requests/3/head', 'two');
    const updated = await send(mr('update', second, { oldrev: first }));
    const redeployed = await settled(updated.body.delivery);
    assert.equal(redeployed.outcome, 'deployed', redeployed.reason ?? '');
    assert.equal(redeployed.environmentId, up.environmentId);
    assert.equal((await environment(up.environmentId!)).gitSha, second);
    // Closed and at once reopened: the destroy finishes, then a new environment comes up.
    const closedFirst = await send(mr('close', second));
    const reopened = await send(mr('reopen', second));
    assert.equal((await settled(closedFirst.body.delivery)).outcome, 'destroyed');
    const back = await settled(reopened.body.delivery);
    assert.equal(back.outcome, 'deployed', back.reason ?? '');
    assert.notEqual(back.environmentId, up.environmentId);
    assert.equal((await server.api('GET', `/v1/environments/${up.environmentId}`)).status, 404);
    const closed = await send(mr('close', second));
    assert.equal((await settled(closed.body.delivery)).outcome, 'destroyed');
    assert.equal((await server.api('GET', `/v1/environments/${back.environmentId}`)).status, 404);
    const notes = comments.filter((c) => c.key === 'gitlab:3');
    assert.equal(notes.length, 1, 'one note');
    assert.match(notes[0]!.body, /destroyed/);
    const glStatuses = calls
      .filter((c) => c.method === 'POST' && c.path === `/gl/projects/77/statuses/${second}`)
      .map((c) => c.body!.state);
    assert.deepEqual(glStatuses, ['running', 'success', 'running', 'success'], 'deployed at that commit twice (update, reopen)');
    assert.equal(calls.filter((c) => c.method === 'POST' && c.path === '/gl/projects/77/merge_requests/3/notes').length, 1);
  });
  test('a flood of bad signatures: every one a 401, at most 60 a minute recorded', async () => {
    const answers: Array<number | null> = [];
    for (let i = 0; i < 70; i++) {
      const res = await deliver('pull_request', { n: i }, { secret: 'wrong' });
      assert.equal(res.status, 401);
      answers.push(res.body.delivery as number | null); // null: not recorded
    }
    const recorded = answers.filter((d) => d !== null);
    assert.ok(recorded.length <= 60, `${recorded.length} recorded`);
    assert.ok(
      answers.slice(-10).every((d) => d === null),
      'the last ones were not recorded',
    );
  });
});
