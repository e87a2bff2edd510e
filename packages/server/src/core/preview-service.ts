import { type HookIntent, targetKey } from '../hooks/events.js';
import type { EnvironmentLifecycle } from './environment-lifecycle.js';
import type { EnvironmentSeeds } from './environment-seeds.js';
import type { EnvironmentService } from './environment-service.js';
import type { EnvironmentRecord } from './environment.js';
import { isHutchError, notFound } from './errors.js';
import type {
  DeliveryOutcome,
  DeliveryStore,
  GitHost,
  HookProvider,
  PreviewRecord,
  PreviewStore,
  ProjectRecord,
  ProjectStore,
} from './hooks.js';
import type { Logger } from './logger.js';
import { KeyedMutex } from './keyed-mutex.js';
import { PreviewFeedback } from './preview-feedback.js';
import { type LatestTask, LatestWinsQueue } from './preview-queue.js';
import { type Caller, requireVisible } from './tenancy.js';

/**
 * The preview reconciler: turns deploy and destroy intents of verified webhook deliveries into
 * environments, one per pull/merge request (or configured branch), keyed by (provider, repository
 * id, number). One serial queue per key where the newest commit wins (core/preview-queue.ts): a
 * waiting older commit is dropped, an in-flight bring-up of an older commit is cancelled by the
 * redeploy of the newer one. Upsert = create if the key has no live environment, else redeploy at
 * the new commit (same environment id, volumes kept). Destroy is idempotent (nothing to destroy
 * is a success). Fork pull requests get no project variables and wait for approval (a label or
 * POST /v1/hooks/approvals). Progress goes back to the git host as a commit status and one pull
 * request comment edited in place (core/preview-feedback.ts: failures are recorded on the
 * delivery, never fail the deployment). A periodic janitor destroys previews whose pull request
 * is closed or gone.
 */
export interface PreviewOptions {
  /** The label that approves a fork's pull request (default `hutch:approved`). */
  approvalLabel: string;
  /** The label that pins a preview: no destroy on close, none by the janitor (default `hutch:keep`). */
  keepLabel: string;
  /** How often the janitor runs (default 10 minutes). */
  janitorIntervalMs: number;
  /** Deliveries older than this are pruned by the janitor (default 30 days). */
  deliveryRetentionMs: number;
  /** How often a bring-up is polled for its outcome (default 1 s). */
  pollMs?: number;
}

export const DEFAULT_PREVIEW_OPTIONS: PreviewOptions = {
  approvalLabel: 'hutch:approved',
  keepLabel: 'hutch:keep',
  janitorIntervalMs: 10 * 60_000,
  deliveryRetentionMs: 30 * 86_400_000,
};

/** A bring-up watched for longer than this is reported as failed (it goes on). */
const WATCH_LIMIT_MS = 60 * 60_000;

export interface Submitted {
  outcome: DeliveryOutcome;
  reason: string | null;
  key: string | null;
  environmentId: string | null;
}

export interface ApprovalInput {
  provider: HookProvider;
  repository: string;
  number: number;
  /** The commit approved (default: the one waiting). */
  sha?: string;
}

type DeployIntent = Extract<HookIntent, { kind: 'deploy' }>;
type DestroyIntent = Extract<HookIntent, { kind: 'destroy' }>;

/** A repository's project name (`octo-org/shop` → `shop`): seed snapshots and host slugs use it. */
function projectName(repository: string): string {
  return repository.split('/').pop()!.toLowerCase();
}

function short(sha: string | null): string {
  return sha ? sha.slice(0, 7) : '(none)';
}

export class PreviewService {
  private readonly queue: LatestWinsQueue;
  private readonly submits = new KeyedMutex();
  private readonly reports: PreviewFeedback;
  private janitor: NodeJS.Timeout | null = null;
  private janitorRun: Promise<void> | null = null;
  private closed = false;
  /**
   * Each preview's base branch as its last delivery said (the seed snapshot's key, `baseRef` of
   * the environment): in memory — a redeploy keeps the environment's own, and a create after a
   * restart without a delivery has none.
   */
  private readonly baseRefs = new Map<string, string>();
  /** Keep flags and TTLs of environments (the `keep` label sets it; kept environments are never destroyed here). */
  lifecycle: Pick<EnvironmentLifecycle, 'update' | 'expiry'> | null = null;
  /** Golden seed volumes: a push to a branch forgets that branch's (the next environment seeds again). */
  seeds: Pick<EnvironmentSeeds, 'refresh'> | null = null;

  constructor(
    private readonly store: PreviewStore,
    private readonly projects: ProjectStore,
    private readonly deliveries: DeliveryStore,
    private readonly environments: EnvironmentService,
    private readonly host: GitHost,
    private readonly log: Logger,
    private readonly options: PreviewOptions = DEFAULT_PREVIEW_OPTIONS,
  ) {
    this.queue = new LatestWinsQueue((key, task, err) =>
      this.log.error({ preview: key, task: task.label, err: (err as Error).message }, 'preview task failed'),
    );
    this.reports = new PreviewFeedback(host, store, deliveries, log, options.keepLabel, (env) => this.lifecycle?.expiry(env) ?? null);
  }

  list(tenant: string | null): Promise<PreviewRecord[]> {
    return this.store.list(tenant);
  }

  /** Whether work runs or waits for a preview (tests, diagnostics). */
  busy(key: string): boolean {
    return this.queue.busy(key);
  }

  /** Acts on the intent of a verified delivery of `project`'s repository; answers at once (the work is queued). */
  async submit(intent: DeployIntent | DestroyIntent, project: ProjectRecord, deliveryId: number | null): Promise<Submitted> {
    const key = targetKey(intent.target);
    // One delivery at a time per preview, so they reach the queue in the order they came.
    return this.submits.run(key, () => this.submitOne(key, intent, project, deliveryId));
  }

  private async submitOne(
    key: string,
    intent: DeployIntent | DestroyIntent,
    project: ProjectRecord,
    deliveryId: number | null,
  ): Promise<Submitted> {
    const existing = await this.store.get(key);
    if (intent.kind === 'destroy') {
      if (!existing || existing.state === 'destroyed')
        return this.settle(deliveryId, {
          outcome: 'destroyed',
          reason: `${intent.reason}: no environment (nothing to do)`,
          key,
          environmentId: null,
        });
      if (await this.kept(existing))
        return this.settle(deliveryId, {
          outcome: 'ignored',
          reason: `${intent.reason}, but the preview is kept (label ${this.options.keepLabel} or the environment's keep): remove it, or DELETE /v1/environments/${existing.environmentId}`,
          key,
          environmentId: existing.environmentId,
        });
      const answer = await this.settle(deliveryId, {
        outcome: 'queued',
        reason: intent.reason,
        key,
        environmentId: existing.environmentId,
      });
      // Recorded first: a restart before it is done destroys it at the next start.
      await this.store.update(key, { state: 'destroying', error: intent.reason });
      this.queue.push(key, this.destroyTask(key, intent.reason, deliveryId));
      return answer;
    }
    const t = intent.target;
    // A push to a branch changes what its pull requests' seed snapshots were taken from.
    const refreshed =
      t.kind === 'branch' && this.seeds
        ? await this.seeds.refresh(project.tenant, projectName(t.repo), t.branch).then(
            (seeds) => (seeds.length > 0 ? `; seed snapshots of ${projectName(t.repo)}@${t.branch} refreshed (${seeds.length})` : ''),
            (err: unknown) => `; seed snapshots not refreshed: ${(err as Error).message}`,
          )
        : '';
    if (t.kind === 'branch' && !project.branches.includes(t.branch))
      return this.settle(deliveryId, {
        outcome: 'ignored',
        reason: `push to branch ${t.branch}: the project has no environment for it (its branches: ${project.branches.join(', ') || 'none'})${refreshed}`,
        key: null,
        environmentId: null,
      });
    if (intent.baseRef !== null) this.baseRefs.set(key, intent.baseRef);
    const now = new Date();
    const labels = intent.labels;
    const record: PreviewRecord = {
      key,
      provider: t.provider,
      repoId: t.repoId,
      repository: t.repo.toLowerCase(),
      number: t.kind === 'pull' ? t.number : null,
      branch: t.kind === 'branch' ? t.branch : null,
      tenant: project.tenant,
      environmentId: existing?.environmentId ?? null,
      state: existing?.state ?? 'deploying',
      sha: intent.sha,
      deployedSha: existing?.deployedSha ?? null,
      cloneUrl: project.cloneUrl ?? intent.cloneUrl,
      fetchRef: intent.fetchRef,
      fork: intent.fork,
      approvedSha: existing?.approvedSha ?? null,
      labels,
      keep: labels.includes(this.options.keepLabel),
      commentId: existing?.commentId ?? null,
      error: existing?.error ?? null,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    if (existing && existing.keep !== record.keep && record.environmentId !== null && this.lifecycle)
      await this.lifecycle
        .update(record.environmentId, { keep: record.keep })
        .catch((err: unknown) => this.log.warn({ preview: key, err: (err as Error).message }, 'could not set the keep flag'));
    const live = existing && (existing.state === 'running' || existing.state === 'deploying');
    if (live && existing.sha === intent.sha) {
      await this.store.upsert(record);
      return this.settle(deliveryId, {
        outcome: 'ignored',
        reason: `${intent.action}: the environment is already at ${short(intent.sha)}`,
        key,
        environmentId: record.environmentId,
      });
    }
    if (intent.fork && !labels.includes(this.options.approvalLabel) && record.approvedSha !== intent.sha) {
      record.state = 'awaiting-approval';
      await this.store.upsert(record);
      // Not queued: a deploy of an approved commit in progress goes on (this one waits).
      const waiting = 'awaiting approval (a fork: no deploy until approved)';
      void this.reports
        .report(
          record,
          { status: { sha: record.sha, state: 'pending', description: waiting, url: null }, headline: waiting, env: null },
          deliveryId,
        )
        .catch((err: unknown) => this.log.warn({ preview: key, err: (err as Error).message }, 'preview feedback failed'));
      return this.settle(deliveryId, {
        outcome: 'awaiting-approval',
        reason: `a fork's pull request: awaiting approval (label ${this.options.approvalLabel}, or POST /v1/hooks/approvals) — no secrets, no deploy until then`,
        key,
        environmentId: record.environmentId,
      });
    }
    record.state = 'deploying';
    await this.store.upsert(record);
    const answer = await this.settle(deliveryId, {
      outcome: 'queued',
      reason: `${intent.action}: deploy ${short(intent.sha)}${refreshed}`,
      key,
      environmentId: record.environmentId,
    });
    this.queue.push(key, this.deployTask(key, intent.sha, project, deliveryId));
    return answer;
  }

  /** Approves a fork's pull request at a commit (default: the one waiting) and deploys it. */
  async approve(caller: Caller, input: ApprovalInput): Promise<PreviewRecord> {
    const project = await this.projects.find(input.provider, input.repository);
    if (!project) throw notFound(`repository: no ${input.provider} project ${input.repository}`);
    requireVisible(caller, project.tenant, `project ${input.repository}`);
    const found = (await this.store.list(project.tenant)).find(
      (p) => p.provider === input.provider && p.repository === project.repository && p.number === input.number,
    );
    if (!found) throw notFound(`number: no preview of ${input.repository} #${input.number} (no delivery for it yet)`);
    return this.submits.run(found.key, async () => {
      const preview = (await this.store.get(found.key)) ?? found;
      const sha = input.sha ?? preview.sha;
      const deploy = preview.state === 'awaiting-approval' && preview.sha === sha;
      await this.store.update(preview.key, { approvedSha: sha, ...(deploy ? { state: 'deploying' as const } : {}) });
      if (deploy) this.queue.push(preview.key, this.deployTask(preview.key, sha, project, null));
      this.log.info({ preview: preview.key, sha, by: caller.keyId }, 'preview approved');
      return { ...preview, approvedSha: sha, state: deploy ? 'deploying' : preview.state };
    });
  }

  /**
   * After a restart: previews whose deploy was interrupted are deployed again at their newest
   * commit, those being destroyed are destroyed; the deliveries that were still queued say so.
   */
  async resume(): Promise<void> {
    for (const p of await this.store.list(null)) {
      if (p.state !== 'deploying' && p.state !== 'destroying') continue;
      const redo = p.state === 'deploying' ? `deployed again at ${short(p.sha)}` : 'destroyed';
      for (const d of await this.deliveries.query({ tenant: null, targetKey: p.key, outcome: 'queued', limit: 100 }))
        await this.deliveries.update(d.id, {
          outcome: 'superseded',
          reason: `interrupted by a server restart; the preview was ${redo} at the next start`,
        });
      if (p.state === 'destroying') {
        this.queue.push(p.key, this.destroyTask(p.key, p.error ?? 'destroy interrupted by a restart', null));
        continue;
      }
      const project = await this.projects.find(p.provider, p.repository);
      if (project) this.queue.push(p.key, this.deployTask(p.key, p.sha, project, null));
      else await this.store.update(p.key, { state: 'error', error: `no project for ${p.repository} any more` });
    }
  }

  // ---- tasks ----

  private async settle(deliveryId: number | null, s: Submitted): Promise<Submitted> {
    if (deliveryId !== null)
      await this.deliveries.update(deliveryId, { outcome: s.outcome, reason: s.reason, targetKey: s.key, environmentId: s.environmentId });
    return s;
  }

  private superseded(deliveryId: number | null, by: string): void {
    if (deliveryId === null) return;
    void this.deliveries
      .update(deliveryId, { outcome: 'superseded', reason: `a newer delivery (${by}) took its place` })
      .catch(() => undefined);
  }

  private deployTask(key: string, sha: string, project: ProjectRecord, deliveryId: number | null): LatestTask {
    return {
      label: `deploy ${short(sha)}`,
      dropped: (by) => this.superseded(deliveryId, by.label),
      run: (signal) => this.deploy(key, sha, project, deliveryId, signal),
    };
  }

  private destroyTask(key: string, reason: string, deliveryId: number | null): LatestTask {
    return {
      label: 'destroy',
      dropped: (by) => this.superseded(deliveryId, by.label),
      run: () => this.destroy(key, reason, deliveryId),
    };
  }

  private async deploy(key: string, sha: string, project: ProjectRecord, deliveryId: number | null, signal: AbortSignal): Promise<void> {
    const p = await this.store.get(key);
    if (!p) return;
    const caller: Caller = { tenant: project.tenant, keyId: `hooks:${project.id}`, role: 'member', limits: null };
    const input = {
      source: { git: { url: p.cloneUrl, ref: p.fetchRef } },
      // The seed snapshots' and the per-service hosts' project: the repository's name.
      project: projectName(p.repository),
      keep: p.keep,
      ...(p.number !== null ? { prNumber: p.number } : {}),
      // Forks run code nobody reviewed yet: none of the project's variables.
      variables: p.fork ? {} : project.variables,
    };
    await this.store.update(key, { state: 'deploying', error: null });
    await this.reports.report(
      p,
      {
        status: { sha, state: 'pending', description: `deploying ${short(sha)}`, url: null },
        headline: `deploying ${short(sha)}…`,
        env: null,
      },
      deliveryId,
    );
    let env: EnvironmentRecord;
    try {
      const current = p.environmentId ? await this.environments.get(p.environmentId).catch(() => null) : null;
      env = current
        ? await this.environments.redeploy(current.id, input, caller)
        : await this.environments.create(
            {
              ...input,
              name: p.number !== null ? `${p.repository}#${p.number}` : `${p.repository}@${p.branch}`,
              ...(this.baseRefs.has(key) ? { baseRef: this.baseRefs.get(key)! } : {}),
            },
            caller,
          );
    } catch (err) {
      const message = isHutchError(err) ? err.message : `${(err as Error).message}`;
      await this.store.update(key, { state: 'error', error: message });
      if (deliveryId !== null) await this.deliveries.update(deliveryId, { outcome: 'failed', reason: message });
      await this.reports.report(
        p,
        {
          status: { sha, state: 'failure', description: 'the environment could not be created', url: null },
          headline: `failed: ${message}`,
          env: null,
        },
        deliveryId,
      );
      return;
    }
    const deployed = env.gitSha ?? sha;
    await this.store.update(key, { environmentId: env.id, deployedSha: deployed });
    if (deliveryId !== null) await this.deliveries.update(deliveryId, { environmentId: env.id });
    this.log.info({ preview: key, environment: env.id, sha: deployed }, 'preview deploying');
    const final = await this.watch(env.id, signal);
    if (signal.aborted || final === null) {
      // A newer commit (or a destroy) took over; its task reports.
      if (deliveryId !== null)
        await this.deliveries.update(deliveryId, {
          outcome: 'superseded',
          reason: `a newer delivery replaced ${short(deployed)} before it was up`,
        });
      return;
    }
    const ok = final.state === 'running';
    const error = ok ? null : (final.error ?? `environment ${final.state}`);
    await this.store.update(key, { state: ok ? 'running' : 'error', error });
    if (deliveryId !== null)
      await this.deliveries.update(deliveryId, {
        outcome: ok ? 'deployed' : 'failed',
        reason: ok ? `environment ${env.id} running at ${short(deployed)}` : `environment ${env.id}: ${error}`,
      });
    const fresh = (await this.store.get(key)) ?? p;
    await this.reports.report(
      fresh,
      {
        status: {
          sha: deployed,
          state: ok ? 'success' : 'failure',
          description: ok ? `preview running at ${short(deployed)}` : `preview failed at ${short(deployed)}`,
          url: final.url,
        },
        headline: ok ? `running at ${short(deployed)}` : `failed at ${short(deployed)}: ${error}`,
        env: final,
      },
      deliveryId,
    );
  }

  /** Polls the environment until its bring-up ends (null: aborted, gone, or too long). */
  private async watch(id: string, signal: AbortSignal): Promise<EnvironmentRecord | null> {
    const deadline = Date.now() + WATCH_LIMIT_MS;
    while (!signal.aborted && Date.now() < deadline) {
      const env = await this.environments.get(id).catch(() => null);
      if (!env) return null;
      if (env.state !== 'creating') return env;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.pollMs ?? 1000);
        signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
    return null;
  }

  private async destroy(key: string, reason: string, deliveryId: number | null): Promise<void> {
    const p = await this.store.get(key);
    if (!p) return;
    if (p.environmentId) {
      await this.environments.delete(p.environmentId).catch((err: unknown) => {
        if (!(isHutchError(err) && err.kind === 'not_found')) throw err;
      });
    }
    await this.store.update(key, { state: 'destroyed', error: null });
    if (deliveryId !== null)
      await this.deliveries.update(deliveryId, {
        outcome: 'destroyed',
        reason: `${reason}: environment ${p.environmentId ?? '(none)'} destroyed`,
      });
    this.log.info({ preview: key, environment: p.environmentId, reason }, 'preview destroyed');
    if (p.number !== null && this.host.configured(p.provider))
      await this.reports.report(p, { status: null, headline: `destroyed (${reason})`, env: null }, deliveryId);
  }

  /** Pinned by the keep label, or the environment's own keep flag (`hutch env keep`). */
  private async kept(p: PreviewRecord): Promise<boolean> {
    if (p.keep) return true;
    if (!p.environmentId) return false;
    const env = await this.environments.get(p.environmentId).catch(() => null);
    return env?.keep === true;
  }

  // ---- janitor ----

  /** Starts the periodic janitor (next to the pools and the meter; leader election may gate it). */
  start(): void {
    if (this.janitor || this.closed) return;
    this.janitor = setInterval(() => void this.sweep(), this.options.janitorIntervalMs);
    this.janitor.unref();
  }

  /** Stops the periodic janitor (leadership lost: another replica runs it); start() resumes it. */
  async stopJanitor(): Promise<void> {
    if (this.janitor) clearInterval(this.janitor);
    this.janitor = null;
    await this.janitorRun;
  }

  /**
   * One janitor pass: previews whose pull request the host says is closed, or does not know (404),
   * are destroyed unless kept; old deliveries are pruned. Providers without a token are skipped.
   */
  sweep(): Promise<void> {
    this.janitorRun ??= this.sweepOnce().finally(() => (this.janitorRun = null));
    return this.janitorRun;
  }

  private async sweepOnce(): Promise<void> {
    try {
      await this.deliveries.prune(new Date(Date.now() - this.options.deliveryRetentionMs));
      for (const p of await this.store.list(null)) {
        if (this.closed) return;
        if (p.number === null || this.queue.busy(p.key) || !this.host.configured(p.provider) || (await this.kept(p))) continue;
        const state = await this.host
          .pullState({ provider: p.provider, repoId: p.repoId, repository: p.repository }, p.number)
          .catch((err: unknown) => {
            this.log.warn({ preview: p.key, err: (err as Error).message }, 'janitor: could not ask the git host');
            return 'open' as const;
          });
        if (state === 'open') continue;
        const reason = state === 'closed' ? `janitor: #${p.number} is closed` : `janitor: #${p.number} is unknown to ${p.provider}`;
        // Recorded first, as for a close delivery: a restart before it is done destroys it at the next start.
        await this.store.update(p.key, { state: 'destroying', error: reason });
        this.queue.push(p.key, this.destroyTask(p.key, reason, null));
      }
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'preview janitor failed');
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.janitor) clearInterval(this.janitor);
    this.janitor = null;
    this.queue.abortAll();
    await this.janitorRun;
    await this.queue.idle(30_000);
  }
}
