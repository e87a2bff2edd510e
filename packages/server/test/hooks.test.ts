import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { githubIntent, gitlabIntent, targetKey, type HookIntent } from '../src/hooks/events.js';
import { githubSignature, verifyGithubSignature, verifyGitlabToken, webhookSecrets } from '../src/hooks/signature.js';

// Webhook verification and the meaning of events. GitHub payloads are GitHub's own published
// examples (@octokit/webhooks-examples, every pull_request and push example there); GitLab's are
// written after GitLab's documented merge request and push payloads (no package publishes them).

interface Example {
  name: string;
  examples: Array<Record<string, unknown>>;
}
const require = createRequire(import.meta.url);
const github = require('@octokit/webhooks-examples/api.github.com/index.json') as Example[];
const examples = (name: string): Array<Record<string, any>> => github.find((e) => e.name === name)!.examples; // eslint-disable-line @typescript-eslint/no-explicit-any

test("GitHub's test vector verifies; a wrong secret, a changed body or a malformed header do not", () => {
  // From GitHub's documentation of X-Hub-Signature-256.
  const body = Buffer.from('Hello, World!');
  const header = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
  assert.equal(verifyGithubSignature(body, header, ["It's a Secret to Everybody"]), true);
  assert.equal(githubSignature(body, "It's a Secret to Everybody"), header);
  assert.equal(verifyGithubSignature(body, header, ['another secret']), false);
  assert.equal(verifyGithubSignature(Buffer.from('Hello, World?'), header, ["It's a Secret to Everybody"]), false);
  for (const bad of [
    undefined,
    '',
    'sha1=abc',
    'sha256=',
    'sha256=zz',
    header.slice(0, -2),
    header.toUpperCase().replace('SHA256', 'sha1'),
  ])
    assert.equal(verifyGithubSignature(body, bad, ["It's a Secret to Everybody"]), false, String(bad));
  // No secret configured verifies nothing, not even an empty-key HMAC.
  assert.equal(verifyGithubSignature(body, githubSignature(body, ''), ['']), false);
});

test('during a rotation either secret verifies; the signature is over the raw bytes, invalid UTF-8 included', () => {
  const body = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
  const secrets = ['old-secret', 'new-secret'];
  assert.equal(verifyGithubSignature(body, githubSignature(body, 'old-secret'), secrets), true);
  assert.equal(verifyGithubSignature(body, githubSignature(body, 'new-secret'), secrets), true);
  assert.equal(verifyGithubSignature(body, githubSignature(body.toString('utf8'), 'new-secret'), secrets), false);
});

test('GitLab tokens compare whole, against each configured token', () => {
  assert.equal(verifyGitlabToken('tok-1', ['tok-1', 'tok-2']), true);
  assert.equal(verifyGitlabToken('tok-2', ['tok-1', 'tok-2']), true);
  for (const bad of [undefined, '', 'tok', 'tok-1 ', 'tok-12'])
    assert.equal(verifyGitlabToken(bad, ['tok-1', 'tok-2']), false, String(bad));
  assert.equal(verifyGitlabToken('', ['']), false);
});

test('every GitHub pull_request example: deploys at pull_request.head.sha, closed destroys, the rest is ignored with a reason', () => {
  const prs = examples('pull_request');
  assert.ok(prs.length >= 20, `${prs.length} examples`);
  const deployActions = new Set(['opened', 'reopened', 'synchronize', 'ready_for_review', 'labeled', 'unlabeled', 'edited']);
  let deployed = 0;
  for (const payload of prs) {
    const intent = githubIntent('pull_request', payload);
    const pr = payload.pull_request;
    const label = `${payload.action} #${payload.number}`;
    if (payload.action === 'closed') {
      assert.equal(intent.kind, 'destroy', label);
      if (intent.kind === 'destroy') assert.match(intent.reason, pr.merged ? /merged/ : /closed/);
    } else if (deployActions.has(payload.action) && !pr.draft) {
      assert.equal(intent.kind, 'deploy', `${label}: ${JSON.stringify(intent)}`);
      if (intent.kind !== 'deploy') continue;
      deployed++;
      // The commit is the pull request's head, fetched from the base repository.
      assert.equal(intent.sha, pr.head.sha);
      assert.equal(intent.cloneUrl, pr.base.repo.clone_url);
      assert.equal(intent.fetchRef, `refs/pull/${payload.number}/head`);
      assert.equal(intent.baseRef, pr.base.ref, 'the branch it merges into');
      assert.equal(intent.fork, pr.head.repo === null || pr.head.repo.id !== pr.base.repo.id);
      assert.deepEqual(
        intent.labels,
        pr.labels.map((l: { name: string }) => l.name),
      );
      assert.equal(targetKey(intent.target), `github:${pr.base.repo.id}:pull:${payload.number}`);
    } else {
      assert.equal(intent.kind, 'ignore', label);
      if (intent.kind === 'ignore') assert.ok(intent.reason.length > 0);
    }
  }
  assert.ok(deployed >= 5, `${deployed} deploys among the examples`);
});

test('a fork pull request deploys from the base repository and is marked as a fork; a draft waits', () => {
  const opened = structuredClone(examples('pull_request').find((p) => p.action === 'opened' && !p.pull_request.draft)!);
  opened.pull_request.head.repo = {
    ...opened.pull_request.head.repo,
    id: 999_999,
    full_name: 'someone/fork',
    clone_url: 'https://x.invalid/fork.git',
  };
  const intent = githubIntent('pull_request', opened);
  assert.equal(intent.kind, 'deploy');
  if (intent.kind === 'deploy') {
    assert.equal(intent.fork, true);
    assert.equal(intent.cloneUrl, opened.pull_request.base.repo.clone_url);
  }
  opened.pull_request.head.repo = null; // the fork was deleted
  assert.equal((githubIntent('pull_request', opened) as Extract<HookIntent, { kind: 'deploy' }>).fork, true);
  opened.pull_request.draft = true;
  assert.match((githubIntent('pull_request', opened) as Extract<HookIntent, { kind: 'ignore' }>).reason, /draft/);
});

test('GitHub push: a branch deploys at `after`, a deleted branch is destroyed, tags are ignored; ping and others ignored', () => {
  for (const payload of examples('push')) {
    const intent = githubIntent('push', payload);
    if (!String(payload.ref).startsWith('refs/heads/')) assert.equal(intent.kind, 'ignore');
    else if (payload.deleted) assert.equal(intent.kind, 'destroy');
    else {
      assert.equal(intent.kind, 'deploy', JSON.stringify(intent));
      if (intent.kind === 'deploy') {
        assert.equal(intent.sha, payload.after);
        assert.equal(targetKey(intent.target), `github:${payload.repository.id}:branch:${payload.ref.slice('refs/heads/'.length)}`);
      }
    }
  }
  assert.match((githubIntent('ping', examples('ping')[0]) as Extract<HookIntent, { kind: 'ignore' }>).reason, /ping/);
  assert.equal(githubIntent('issues', {}).kind, 'ignore');
  // A malformed payload is ignored with the field named, never thrown.
  const broken = githubIntent('pull_request', { action: 'opened', number: 1, pull_request: { head: { sha: 'nope' } } });
  assert.equal(broken.kind, 'ignore');
  assert.match((broken as Extract<HookIntent, { kind: 'ignore' }>).reason, /pull_request\.(head|base)/);
});

function gitlabMr(action: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    object_kind: 'merge_request',
    project: { id: 15, path_with_namespace: 'group/app', git_http_url: 'http://127.0.0.1:1/group/app.git' },
    object_attributes: {
      iid: 4,
      action,
      source_project_id: 15,
      target_project_id: 15,
      target_branch: 'main',
      draft: false,
      last_commit: { id: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7' },
      ...extra,
    },
    labels: [{ title: 'preview' }],
  };
}

test('GitLab merge requests: open, reopen and update deploy last_commit from refs/merge-requests; merge and close destroy', () => {
  for (const action of ['open', 'reopen']) {
    const intent = gitlabIntent('Merge Request Hook', gitlabMr(action));
    assert.equal(intent.kind, 'deploy');
    if (intent.kind === 'deploy') {
      assert.equal(intent.sha, 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7');
      assert.equal(intent.fetchRef, 'refs/merge-requests/4/head');
      assert.equal(intent.baseRef, 'main');
      assert.equal(targetKey(intent.target), 'gitlab:15:pull:4');
      assert.deepEqual(intent.labels, ['preview']);
      assert.equal(intent.fork, false);
    }
  }
  const pushed = gitlabIntent('Merge Request Hook', gitlabMr('update', { oldrev: 'a'.repeat(40) }));
  assert.equal(pushed.kind === 'deploy' && pushed.action, 'update (push)');
  assert.equal(gitlabIntent('Merge Request Hook', gitlabMr('update')).kind, 'deploy');
  assert.equal((gitlabIntent('Merge Request Hook', gitlabMr('update', { source_project_id: 99 })) as { fork?: boolean }).fork, true);
  for (const action of ['merge', 'close']) assert.equal(gitlabIntent('Merge Request Hook', gitlabMr(action)).kind, 'destroy');
  assert.equal(gitlabIntent('Merge Request Hook', gitlabMr('approved')).kind, 'ignore');
  assert.equal(gitlabIntent('Merge Request Hook', gitlabMr('open', { draft: true })).kind, 'ignore');
  assert.equal(gitlabIntent('Note Hook', {}).kind, 'ignore');
});

test('GitLab push: branches deploy, an all-zero `after` destroys, tags are ignored', () => {
  const project = { id: 15, path_with_namespace: 'group/app', git_http_url: 'http://127.0.0.1:1/group/app.git' };
  const sha = 'b'.repeat(40);
  const deploy = gitlabIntent('Push Hook', { ref: 'refs/heads/main', after: sha, project });
  assert.equal(deploy.kind === 'deploy' && targetKey(deploy.target), 'gitlab:15:branch:main');
  assert.equal(gitlabIntent('Push Hook', { ref: 'refs/heads/main', after: '0'.repeat(40), project }).kind, 'destroy');
  assert.equal(gitlabIntent('Push Hook', { ref: 'refs/tags/v1', after: sha, project }).kind, 'ignore');
});

test('configured secrets: repeated options or comma lists, else the environment variable; blanks dropped', () => {
  assert.deepEqual(webhookSecrets(['old', 'new'], 'env'), ['old', 'new']);
  assert.deepEqual(webhookSecrets(['a, b', ''], undefined), ['a', 'b']);
  assert.deepEqual(webhookSecrets(undefined, ' one ,two,, '), ['one', 'two']);
  assert.deepEqual(webhookSecrets([], undefined), []);
});
