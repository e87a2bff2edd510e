import type { CallOptions } from './config.js';
import type { Transport } from './http.js';

/** A git host whose webhooks Hutch receives. */
export type HookProvider = 'github' | 'gitlab';

/** One webhook delivery as received (see docs/environments.md, "Webhooks"). */
export interface HookDelivery {
  id: number;
  provider: HookProvider;
  /** `X-GitHub-Delivery`, GitLab `Idempotency-Key` / `X-Gitlab-Event-UUID`. */
  deliveryId: string | null;
  event: string;
  action: string | null;
  repository: string | null;
  /** Pull/merge request number. */
  number: number | null;
  sha: string | null;
  signatureOk: boolean;
  /** For a replay: the first delivery with the same id. */
  duplicateOf: number | null;
  /** `rejected`, `duplicate`, `ignored`, `queued`, `awaiting-approval`, `superseded`, `deployed`, `failed`, `destroyed`. */
  outcome: string;
  reason: string | null;
  targetKey: string | null;
  environmentId: string | null;
  tenant: string | null;
  /** What went wrong reporting back to the git host (the deployment went on). */
  feedback: string | null;
  time: string;
  updatedAt: string;
}

export interface HookDeliveryFilter {
  /** Admins: one tenant (default: all, unmatched deliveries included). */
  tenant?: string;
  provider?: HookProvider;
  outcome?: string;
  repository?: string;
  number?: number;
  environment?: string;
  /** An ISO 8601 time or a duration back from now (`15m`, `1h`, `7d`). */
  since?: string;
}

export interface HookDeliveryPage {
  /** Newest first. */
  deliveries: HookDelivery[];
  nextCursor: string | null;
}

/** A repository whose deliveries deploy environments in a tenant. */
export interface HookProject {
  id: string;
  provider: HookProvider;
  repository: string;
  tenant: string;
  cloneUrl: string | null;
  branches: string[];
  /** Variable names (values are never returned). */
  variables: string[];
  createdAt: string;
}

export interface HookProjectCreate extends CallOptions {
  provider: HookProvider;
  /** `owner/name` (GitLab: `group/subgroup/name`). */
  repository: string;
  /** Default: the caller's. */
  tenant?: string;
  /** Fetch from here instead of the payload's clone URL. */
  cloneUrl?: string;
  /** Pushes to these branches deploy branch environments. */
  branches?: string[];
  /** Interpolation variables for the project's environments (never for forks). */
  variables?: Record<string, string>;
}

/** The environment of one pull/merge request (or branch). */
export interface Preview {
  key: string;
  provider: HookProvider;
  repository: string;
  number: number | null;
  branch: string | null;
  tenant: string;
  environmentId: string | null;
  state: 'awaiting-approval' | 'deploying' | 'running' | 'error' | 'destroying' | 'destroyed';
  sha: string;
  deployedSha: string | null;
  fork: boolean;
  approvedSha: string | null;
  labels: string[];
  keep: boolean;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

/** `hutch.hooks`: the webhook delivery log, projects, previews and fork approvals. */
export class Hooks {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /** A page of the delivery log, newest first. */
  deliveries(opts: HookDeliveryFilter & CallOptions & { limit?: number; cursor?: string } = {}): Promise<HookDeliveryPage> {
    const { signal, timeoutMs, ...query } = opts;
    return this.transport.json<HookDeliveryPage>({ method: 'GET', path: '/v1/hooks/deliveries', query, signal, timeoutMs });
  }

  async previews(opts: CallOptions & { tenant?: string } = {}): Promise<Preview[]> {
    const { signal, timeoutMs, tenant } = opts;
    return (
      await this.transport.json<{ previews: Preview[] }>({
        method: 'GET',
        path: '/v1/hooks/previews',
        query: { tenant },
        signal,
        timeoutMs,
      })
    ).previews;
  }

  /** Admin keys: registers a repository. */
  createProject(opts: HookProjectCreate): Promise<HookProject> {
    const { signal, timeoutMs, ...body } = opts;
    return this.transport.json<HookProject>({ method: 'POST', path: '/v1/hooks/projects', json: body, signal, timeoutMs });
  }

  async projects(opts: CallOptions & { tenant?: string } = {}): Promise<HookProject[]> {
    const { signal, timeoutMs, tenant } = opts;
    return (
      await this.transport.json<{ projects: HookProject[] }>({
        method: 'GET',
        path: '/v1/hooks/projects',
        query: { tenant },
        signal,
        timeoutMs,
      })
    ).projects;
  }

  /** Admin keys: unregisters a repository. */
  async deleteProject(id: string, opts: CallOptions = {}): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: `/v1/hooks/projects/${encodeURIComponent(id)}`, ...opts });
  }

  /** Approves a fork's pull request at a commit (default: the one waiting): it deploys. */
  approve(opts: CallOptions & { provider: HookProvider; repository: string; number: number; sha?: string }): Promise<Preview> {
    const { signal, timeoutMs, ...body } = opts;
    return this.transport.json<Preview>({ method: 'POST', path: '/v1/hooks/approvals', json: body, signal, timeoutMs });
  }
}
