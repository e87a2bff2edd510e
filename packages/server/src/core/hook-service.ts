import { githubIntent, gitlabIntent, type HookIntent } from '../hooks/events.js';
import { verifyGithubSignature, verifyGitlabToken } from '../hooks/signature.js';
import { conflict, invalidArgument, notFound } from './errors.js';
import type { DeliveryFilter, DeliveryRecord, DeliveryStore, HookProvider, ProjectRecord, ProjectStore } from './hooks.js';
import { newProjectId, PROJECT_ID_PATTERN } from './ids.js';
import type { Logger } from './logger.js';
import type { PreviewService } from './preview-service.js';
import { type Caller, requireVisible } from './tenancy.js';
import { checkEnvironmentVariables } from '../environments/workspace.js';

/**
 * Webhook deliveries from git hosts: authenticated by signature (GitHub) or token (GitLab)
 * against the configured secrets (two during a rotation), recorded in the delivery log whatever
 * happens (a bad signature too), deduplicated by delivery id (a replay is recorded as a duplicate
 * and does nothing), matched to a project (repository → tenant), and handed to the preview
 * reconciler, which queues the work: the answer never waits for an environment.
 */
export interface HookSecrets {
  github: string[];
  gitlab: string[];
}

export interface HookAnswer {
  status: 200 | 202 | 400 | 401;
  /** null: a rejected delivery past the recording limit (not recorded). */
  delivery: DeliveryRecord | null;
  message: string;
}

/**
 * Rejected deliveries recorded per minute at most: anyone can send them, and each would be a row.
 * Past it they are answered the same 401 and counted in the server log, once a minute.
 */
export const REJECTED_RECORDED_PER_MINUTE = 60;

export interface ProjectInput {
  provider: HookProvider;
  repository: string;
  tenant: string;
  cloneUrl?: string | null;
  branches?: string[];
  variables?: Record<string, string>;
}

const REPOSITORY = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/;
const MAX_ID = 200;

/** A header's value (the first, when repeated), bounded. */
function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  const first = Array.isArray(v) ? v[0] : v;
  return first === undefined ? undefined : first.slice(0, MAX_ID);
}

/** The body as JSON: raw JSON, or the `payload` field of a form (GitHub's other content type). */
function parsePayload(body: Buffer, contentType: string | undefined): unknown {
  const text = body.toString('utf8');
  if ((contentType ?? '').startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new Error('a form body without a payload field');
    return JSON.parse(payload);
  }
  return JSON.parse(text);
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v.slice(0, 300) : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null);
const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {});

/** What the delivery log shows of a payload, whatever its event (and even if it is not understood). */
export function describePayload(
  provider: HookProvider,
  payload: unknown,
): { action: string | null; repository: string | null; number: number | null; sha: string | null } {
  const p = obj(payload);
  if (provider === 'github') {
    const pr = obj(p.pull_request);
    return {
      action: str(p.action),
      repository: str(obj(p.repository).full_name)?.toLowerCase() ?? null,
      number: num(p.number) ?? num(pr.number),
      sha: str(obj(pr.head).sha) ?? str(p.after),
    };
  }
  const attrs = obj(p.object_attributes);
  return {
    action: str(attrs.action),
    repository: str(obj(p.project).path_with_namespace)?.toLowerCase() ?? null,
    number: num(attrs.iid),
    sha: str(obj(attrs.last_commit).id) ?? str(p.after),
  };
}

export class HookService {
  private rejected = { windowStart: 0, recorded: 0, dropped: 0 };

  constructor(
    private readonly deliveries: DeliveryStore,
    private readonly projects: ProjectStore,
    private readonly previews: PreviewService,
    private readonly secrets: HookSecrets,
    private readonly tenantExists: (tenant: string) => Promise<unknown>,
    private readonly log: Logger,
  ) {}

  /** Receives one delivery: verify, record, dedupe, match, queue. Never throws for what the sender did. */
  async receive(provider: HookProvider, headers: Record<string, string | string[] | undefined>, body: Buffer): Promise<HookAnswer> {
    const github = provider === 'github';
    const event = header(headers, github ? 'x-github-event' : 'x-gitlab-event') ?? '(none)';
    const deliveryId = github
      ? (header(headers, 'x-github-delivery') ?? null)
      : (header(headers, 'idempotency-key') ?? header(headers, 'x-gitlab-event-uuid') ?? null);
    const secrets = this.secrets[provider];
    const signatureOk = github
      ? verifyGithubSignature(body, header(headers, 'x-hub-signature-256'), secrets)
      : verifyGitlabToken(header(headers, 'x-gitlab-token'), secrets);
    const base = {
      provider,
      deliveryId,
      event,
      action: null,
      repository: null,
      number: null,
      sha: null,
      signatureOk,
      targetKey: null,
      environmentId: null,
      tenant: null,
      feedback: null,
      time: new Date(),
    };
    if (!signatureOk) {
      // Nothing of an unauthenticated body is believed (nor recorded).
      const why =
        secrets.length === 0
          ? `no ${provider} webhook secret is configured on this server (hutch server --${github ? 'github-webhook-secret' : 'gitlab-webhook-token'})`
          : github
            ? 'missing or bad X-Hub-Signature-256'
            : 'missing or bad X-Gitlab-Token';
      if (!this.mayRecordRejected()) return { status: 401, delivery: null, message: why };
      const delivery = await this.deliveries.record({ ...base, outcome: 'rejected', reason: why });
      this.log.warn({ provider, delivery: delivery.id, deliveryId }, `webhook rejected: ${why}`);
      return { status: 401, delivery, message: why };
    }
    let payload: unknown;
    try {
      payload = parsePayload(body, header(headers, 'content-type'));
    } catch (err) {
      const why = `the body is not a JSON payload (${(err as Error).message.slice(0, 100)})`;
      const delivery = await this.deliveries.record({ ...base, outcome: 'ignored', reason: why });
      return { status: 400, delivery, message: why };
    }
    const described = describePayload(provider, payload);
    const intent: HookIntent = github ? githubIntent(event, payload) : gitlabIntent(event, payload);
    const repository = intent.kind === 'ignore' ? described.repository : intent.target.repo.toLowerCase();
    const project = repository ? await this.projects.find(provider, repository) : null;
    const delivery = await this.deliveries.record({
      ...base,
      ...described,
      repository,
      tenant: project?.tenant ?? null,
      outcome: 'queued',
      reason: null,
    });
    if (delivery.outcome === 'duplicate') {
      this.log.info({ provider, delivery: delivery.id, deliveryId }, 'webhook replayed: nothing done');
      return { status: 200, delivery, message: delivery.reason ?? 'duplicate' };
    }
    const done = async (outcome: 'ignored', reason: string): Promise<HookAnswer> => {
      await this.deliveries.update(delivery.id, { outcome, reason });
      return { status: 200, delivery: { ...delivery, outcome, reason }, message: reason };
    };
    if (intent.kind === 'ignore') return done('ignored', intent.reason);
    if (!project)
      return done(
        'ignored',
        `no project for ${provider} repository ${repository}: register it (POST /v1/hooks/projects, hutch hooks projects add)`,
      );
    const submitted = await this.previews.submit(intent, project, delivery.id);
    this.log.info({ provider, delivery: delivery.id, event, outcome: submitted.outcome, preview: submitted.key }, 'webhook received');
    const answer = {
      ...delivery,
      outcome: submitted.outcome,
      reason: submitted.reason,
      targetKey: submitted.key,
      environmentId: submitted.environmentId,
    };
    return { status: submitted.outcome === 'queued' ? 202 : 200, delivery: answer, message: submitted.reason ?? submitted.outcome };
  }

  /** Whether one more rejected delivery may be recorded in this minute (counts the others). */
  private mayRecordRejected(now = Date.now()): boolean {
    const r = this.rejected;
    if (now - r.windowStart >= 60_000) {
      if (r.dropped > 0)
        this.log.warn(
          { dropped: r.dropped },
          `${r.dropped} more rejected webhook deliveries in a minute were answered 401 and not recorded`,
        );
      this.rejected = { windowStart: now, recorded: 0, dropped: 0 };
    }
    if (this.rejected.recorded >= REJECTED_RECORDED_PER_MINUTE) {
      this.rejected.dropped++;
      return false;
    }
    this.rejected.recorded++;
    return true;
  }

  /** Deliveries the caller may see (admins: every tenant's, or `filter.tenant`'s), newest first. */
  listDeliveries(filter: DeliveryFilter): Promise<DeliveryRecord[]> {
    return this.deliveries.query(filter);
  }

  // ---- projects ----

  async addProject(input: ProjectInput): Promise<ProjectRecord> {
    if (!REPOSITORY.test(input.repository) || input.repository.length > 255)
      throw invalidArgument(`repository: "${input.repository.slice(0, 80)}" is not owner/name (GitLab: group/subgroup/name)`);
    await this.tenantExists(input.tenant);
    for (const b of input.branches ?? [])
      if (!/^[A-Za-z0-9._/-]{1,200}$/.test(b) || b.startsWith('-') || b.includes('..'))
        throw invalidArgument(`branches: "${b.slice(0, 80)}" is not a branch name`);
    checkEnvironmentVariables(input.variables);
    const repository = input.repository.toLowerCase();
    if (await this.projects.find(input.provider, repository))
      throw conflict(`repository: ${input.provider} ${repository} is already a project (DELETE it first)`);
    const project: ProjectRecord = {
      id: newProjectId(),
      provider: input.provider,
      repository,
      tenant: input.tenant,
      cloneUrl: input.cloneUrl ?? null,
      branches: input.branches ?? [],
      variables: input.variables ?? {},
      createdAt: new Date(),
    };
    await this.projects.insert(project);
    this.log.info({ project: project.id, provider: project.provider, repository, tenant: project.tenant }, 'webhook project added');
    return project;
  }

  listProjects(tenant: string | null): Promise<ProjectRecord[]> {
    return this.projects.list(tenant);
  }

  /** Access check for routes naming a project: another tenant's is a 404, as an unknown one. */
  async project(caller: Caller, id: string): Promise<ProjectRecord> {
    if (!PROJECT_ID_PATTERN.test(id)) throw invalidArgument(`id: "${id.slice(0, 40)}" is not a project id (prj- and 16 characters)`);
    const project = await this.projects.get(id);
    if (!project) throw notFound(`project ${id} not found`);
    requireVisible(caller, project.tenant, `project ${id}`);
    return project;
  }

  /** Removes a project: its deliveries are ignored from then on; its environments stay until closed or deleted. */
  async removeProject(id: string): Promise<void> {
    await this.projects.delete(id);
  }
}
