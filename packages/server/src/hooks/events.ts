import { z } from 'zod';

/**
 * What a git hosting event asks of the preview environments: deploy a commit, destroy an
 * environment, or nothing (with the reason, for the delivery log). Pure functions of the event
 * name and payload; the hook service verifies, dedupes, logs and acts.
 *
 * Environments are keyed by (provider, repository id, pull/merge request number) — never by
 * branch name, which forks and renames reuse — or, for push events, by (provider, repository id,
 * branch).
 */

export type HookProvider = 'github' | 'gitlab';

export type EnvironmentTarget = { provider: HookProvider; repoId: string; repo: string } & (
  { kind: 'pull'; number: number } | { kind: 'branch'; branch: string }
);

export type HookIntent =
  | {
      kind: 'deploy';
      target: EnvironmentTarget;
      /** The commit to deploy. */
      sha: string;
      /** Where and what to fetch: the base repository and a ref it has (for forks too). */
      cloneUrl: string;
      fetchRef: string;
      /** The branch the pull request merges into (a branch environment: its own): the seed snapshot's key. */
      baseRef: string | null;
      /** From a fork: no secrets and no deploy until approved. */
      fork: boolean;
      labels: string[];
      /** What happened, for the delivery log ("opened", "synchronize", "push", ...). */
      action: string;
    }
  | { kind: 'destroy'; target: EnvironmentTarget; action: string; reason: string }
  | { kind: 'ignore'; reason: string };

/** A stable key of the environment a target names (delivery log, environment lookup). */
export function targetKey(t: EnvironmentTarget): string {
  return t.kind === 'pull' ? `${t.provider}:${t.repoId}:pull:${t.number}` : `${t.provider}:${t.repoId}:branch:${t.branch}`;
}

const ignore = (reason: string): HookIntent => ({ kind: 'ignore', reason });

/** The part of a payload that failed to parse, for the delivery log. */
function problem(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join('.') || 'payload'}: ${first.message}` : 'malformed payload';
}

const ZERO_SHA = /^0{40}$/;
const BRANCH_REF = 'refs/heads/';

/** A push to a branch deploys its branch environment at `after`; a deleted branch destroys it. */
function pushIntent(
  repo: { provider: HookProvider; repoId: string; repo: string; cloneUrl: string },
  ref: string,
  after: string,
  deleted: boolean,
): HookIntent {
  if (!ref.startsWith(BRANCH_REF)) return ignore(`push to ${ref} (only branches have environments)`);
  const branch = ref.slice(BRANCH_REF.length);
  const target: EnvironmentTarget = { provider: repo.provider, repoId: repo.repoId, repo: repo.repo, kind: 'branch', branch };
  if (deleted || ZERO_SHA.test(after)) return { kind: 'destroy', target, action: 'push', reason: `branch ${branch} deleted` };
  return {
    kind: 'deploy',
    target,
    sha: after,
    cloneUrl: repo.cloneUrl,
    fetchRef: ref,
    baseRef: branch,
    fork: false,
    labels: [],
    action: 'push',
  };
}

// ---------------------------------------------------------------- GitHub

const githubRepo = z.object({ id: z.number(), full_name: z.string(), clone_url: z.string() });
const githubPull = z.object({
  action: z.string(),
  number: z.number().int().positive(),
  pull_request: z.object({
    head: z.object({ sha: z.string().regex(/^[0-9a-f]{40}$/), ref: z.string(), repo: githubRepo.nullable() }),
    base: z.object({ ref: z.string(), repo: githubRepo }),
    draft: z.boolean().optional(),
    merged: z.boolean().nullable().optional(),
    labels: z.array(z.object({ name: z.string() })).optional(),
  }),
});
const githubPush = z.object({
  ref: z.string(),
  after: z.string().regex(/^[0-9a-f]{40}$/),
  deleted: z.boolean().optional(),
  repository: githubRepo,
});

const GITHUB_DEPLOY_ACTIONS = new Set(['opened', 'reopened', 'synchronize', 'ready_for_review', 'labeled', 'unlabeled', 'edited']);

/** The intent of a GitHub delivery (`X-GitHub-Event` and the parsed JSON body). */
export function githubIntent(event: string, payload: unknown): HookIntent {
  if (event === 'ping') return ignore('ping: the hook is set up');
  if (event === 'pull_request') {
    const parsed = githubPull.safeParse(payload);
    if (!parsed.success) return ignore(`pull_request payload not understood (${problem(parsed.error)})`);
    const { action, number, pull_request: pr } = parsed.data;
    const base = pr.base.repo;
    const target: EnvironmentTarget = { provider: 'github', repoId: String(base.id), repo: base.full_name, kind: 'pull', number };
    if (action === 'closed')
      return { kind: 'destroy', target, action, reason: pr.merged ? `pull request #${number} merged` : `pull request #${number} closed` };
    if (!GITHUB_DEPLOY_ACTIONS.has(action)) return ignore(`pull_request action "${action}" does not change an environment`);
    if (pr.draft) return ignore(`pull request #${number} is a draft (deploys when ready for review)`);
    // A deleted fork has head.repo null; a fork's head lives in another repository. Either way the
    // base repository has the commit at refs/pull/<n>/head.
    const fork = pr.head.repo === null || pr.head.repo.id !== base.id;
    return {
      kind: 'deploy',
      target,
      sha: pr.head.sha,
      cloneUrl: base.clone_url,
      fetchRef: `refs/pull/${number}/head`,
      baseRef: pr.base.ref,
      fork,
      labels: (pr.labels ?? []).map((l) => l.name),
      action,
    };
  }
  if (event === 'push') {
    const parsed = githubPush.safeParse(payload);
    if (!parsed.success) return ignore(`push payload not understood (${problem(parsed.error)})`);
    const { ref, after, deleted, repository } = parsed.data;
    const repo = { provider: 'github' as const, repoId: String(repository.id), repo: repository.full_name, cloneUrl: repository.clone_url };
    return pushIntent(repo, ref, after, deleted === true);
  }
  return ignore(`event "${event.slice(0, 60)}" is not used`);
}

// ---------------------------------------------------------------- GitLab

const gitlabProject = z.object({ id: z.number(), path_with_namespace: z.string(), git_http_url: z.string() });
const gitlabMergeRequest = z.object({
  project: gitlabProject,
  object_attributes: z.object({
    iid: z.number().int().positive(),
    action: z.string().optional(),
    oldrev: z.string().optional(),
    source_project_id: z.number(),
    target_project_id: z.number(),
    target_branch: z.string().optional(),
    draft: z.boolean().optional(),
    work_in_progress: z.boolean().optional(),
    last_commit: z.object({ id: z.string().regex(/^[0-9a-f]{40}$/) }),
  }),
  labels: z.array(z.object({ title: z.string() })).optional(),
});
const gitlabPush = z.object({
  ref: z.string(),
  after: z.string().regex(/^[0-9a-f]{40}$/),
  project: gitlabProject,
});

/** The intent of a GitLab delivery (`X-Gitlab-Event` and the parsed JSON body). */
export function gitlabIntent(event: string, payload: unknown): HookIntent {
  if (event === 'Merge Request Hook') {
    const parsed = gitlabMergeRequest.safeParse(payload);
    if (!parsed.success) return ignore(`merge request payload not understood (${problem(parsed.error)})`);
    const { project, object_attributes: mr, labels } = parsed.data;
    const action = mr.action ?? 'unknown';
    const target: EnvironmentTarget = {
      provider: 'gitlab',
      repoId: String(mr.target_project_id),
      repo: project.path_with_namespace,
      kind: 'pull',
      number: mr.iid,
    };
    if (action === 'merge' || action === 'close')
      return { kind: 'destroy', target, action, reason: `merge request !${mr.iid} ${action === 'merge' ? 'merged' : 'closed'}` };
    // `update` with `oldrev` is a push to the source branch; without, a change of title, labels,
    // etc., which re-evaluates (a label may approve a fork) and deploys the same commit again at most.
    if (action !== 'open' && action !== 'reopen' && action !== 'update')
      return ignore(`merge request action "${action}" does not change an environment`);
    if (mr.draft ?? mr.work_in_progress) return ignore(`merge request !${mr.iid} is a draft (deploys when marked ready)`);
    return {
      kind: 'deploy',
      target,
      sha: mr.last_commit.id,
      cloneUrl: project.git_http_url,
      fetchRef: `refs/merge-requests/${mr.iid}/head`,
      baseRef: mr.target_branch ?? null,
      fork: mr.source_project_id !== mr.target_project_id,
      labels: (labels ?? []).map((l) => l.title),
      action: action === 'update' && mr.oldrev ? 'update (push)' : action,
    };
  }
  if (event === 'Push Hook') {
    const parsed = gitlabPush.safeParse(payload);
    if (!parsed.success) return ignore(`push payload not understood (${problem(parsed.error)})`);
    const { ref, after, project } = parsed.data;
    const repo = {
      provider: 'gitlab' as const,
      repoId: String(project.id),
      repo: project.path_with_namespace,
      cloneUrl: project.git_http_url,
    };
    return pushIntent(repo, ref, after, false);
  }
  // GitLab disables a hook after repeated 4xx answers: other events are accepted and ignored.
  return ignore(`event "${event.slice(0, 60)}" is not used`);
}
