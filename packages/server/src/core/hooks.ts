import type { HookProvider } from '../hooks/events.js';

/**
 * Git hosting webhooks and the preview environments they drive: the records the hook service and
 * the preview reconciler keep, and the store interfaces that persist them (store/hook-repo.ts).
 *
 * - A **project** says which tenant owns the environments of a repository (webhooks carry no API
 *   key): registered by an admin, matched by provider and repository name.
 * - A **delivery** is one webhook as received, with what it triggered or why it did not.
 * - A **preview** is the environment of one pull/merge request (or branch), keyed by
 *   (provider, repository id, number): never by branch name.
 */

export type { HookProvider };

export interface ProjectRecord {
  id: string;
  provider: HookProvider;
  /** `owner/name` (GitHub full_name, GitLab path_with_namespace), lower case. */
  repository: string;
  tenant: string;
  /** Fetch from here instead of the payload's clone URL (a mirror, credentials, file:// in tests). */
  cloneUrl: string | null;
  /** Branches whose pushes deploy a branch environment (none by default). */
  branches: string[];
  /** Interpolation variables handed to the project's environments (never to fork pull requests). */
  variables: Record<string, string>;
  createdAt: Date;
}

export interface ProjectStore {
  insert(p: ProjectRecord): Promise<void>;
  find(provider: HookProvider, repository: string): Promise<ProjectRecord | null>;
  get(id: string): Promise<ProjectRecord | null>;
  list(tenant: string | null): Promise<ProjectRecord[]>;
  delete(id: string): Promise<void>;
}

/**
 * What became of a delivery: `rejected` (bad or missing signature), `duplicate` (a delivery id
 * seen before), `ignored` (with the reason), `queued`, `awaiting-approval` (a fork),
 * `superseded` (a newer commit took its place), `deployed`, `failed`, `destroyed`.
 */
export const DELIVERY_OUTCOMES = [
  'rejected',
  'duplicate',
  'ignored',
  'queued',
  'awaiting-approval',
  'superseded',
  'deployed',
  'failed',
  'destroyed',
] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

export interface DeliveryRecord {
  id: number;
  provider: HookProvider;
  /** `X-GitHub-Delivery`, GitLab `Idempotency-Key` / `X-Gitlab-Event-UUID`. */
  deliveryId: string | null;
  event: string;
  action: string | null;
  repository: string | null;
  number: number | null;
  sha: string | null;
  signatureOk: boolean;
  /** The first delivery with the same id, for a duplicate. */
  duplicateOf: number | null;
  outcome: DeliveryOutcome;
  reason: string | null;
  targetKey: string | null;
  environmentId: string | null;
  /** The tenant of the matched project (null: none matched). */
  tenant: string | null;
  /** What went wrong reporting back to the git host (never fails the deployment). */
  feedback: string | null;
  time: Date;
  updatedAt: Date;
}

export type DeliveryPatch = Partial<Pick<DeliveryRecord, 'outcome' | 'reason' | 'environmentId' | 'feedback' | 'tenant' | 'targetKey'>>;

export interface DeliveryFilter {
  tenant: string | null;
  provider?: HookProvider;
  outcome?: DeliveryOutcome;
  repository?: string;
  number?: number;
  environmentId?: string;
  targetKey?: string;
  since?: Date;
  /** Entries with a smaller id (the cursor). */
  before?: number;
  limit: number;
}

export interface DeliveryStore {
  /**
   * Records a delivery. One whose signature is good and whose delivery id was recorded before
   * (with a good signature) is recorded as a `duplicate` of that one instead.
   */
  record(d: Omit<DeliveryRecord, 'id' | 'duplicateOf' | 'updatedAt'>): Promise<DeliveryRecord>;
  get(id: number): Promise<DeliveryRecord | null>;
  update(id: number, patch: DeliveryPatch): Promise<void>;
  /** Newest first. */
  query(f: DeliveryFilter): Promise<DeliveryRecord[]>;
  prune(before: Date): Promise<number>;
}

/**
 * A preview's progress: `awaiting-approval` (a fork not approved yet), `deploying`, `running`,
 * `error` (the environment failed; the next commit tries again), `destroying`, `destroyed`.
 */
export const PREVIEW_STATES = ['awaiting-approval', 'deploying', 'running', 'error', 'destroying', 'destroyed'] as const;
export type PreviewState = (typeof PREVIEW_STATES)[number];

export interface PreviewRecord {
  /** hooks/events.ts targetKey: `github:<repo id>:pull:<n>` or `…:branch:<name>`. */
  key: string;
  provider: HookProvider;
  repoId: string;
  repository: string;
  number: number | null;
  branch: string | null;
  tenant: string;
  environmentId: string | null;
  state: PreviewState;
  /** The newest commit asked for, and the one the environment runs. */
  sha: string;
  deployedSha: string | null;
  cloneUrl: string;
  fetchRef: string;
  fork: boolean;
  /** A commit approved through the API (a fork's). */
  approvedSha: string | null;
  labels: string[];
  /** Pinned by the keep label: neither a close nor the janitor destroys it. */
  keep: boolean;
  /** The pull request comment kept up to date (its id at the git host). */
  commentId: string | null;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export type PreviewPatch = Partial<Omit<PreviewRecord, 'key' | 'provider' | 'repoId' | 'createdAt' | 'updatedAt'>>;

export interface PreviewStore {
  upsert(p: PreviewRecord): Promise<void>;
  get(key: string): Promise<PreviewRecord | null>;
  update(key: string, patch: PreviewPatch): Promise<void>;
  /** Not destroyed ones (of one tenant, or every tenant's). */
  list(tenant: string | null): Promise<PreviewRecord[]>;
}

/** The repository a preview reports to: GitHub by `owner/name`, GitLab by project id. */
export interface HostRepo {
  provider: HookProvider;
  repoId: string;
  repository: string;
}

export type CommitState = 'pending' | 'success' | 'failure';

/**
 * The git host's REST API, as the preview reconciler uses it (hooks/git-host-client.ts): commit
 * statuses, one pull request comment edited in place, and the state of a pull request (the
 * janitor). Every call may throw; callers log and go on.
 */
export interface GitHost {
  /** Whether the provider has a token configured (without one: no feedback, no janitor queries). */
  configured(provider: HookProvider): boolean;
  setStatus(repo: HostRepo, sha: string, state: CommitState, description: string, url: string | null): Promise<void>;
  /**
   * Creates or edits the comment holding `marker` on pull/merge request `number`: `knownId` first,
   * else the first comment containing the marker, else a new one. Returns its id.
   */
  upsertComment(repo: HostRepo, number: number, marker: string, body: string, knownId: string | null): Promise<string>;
  /** `open`, `closed` (merged too), or `unknown` (the host answers 404). */
  pullState(repo: HostRepo, number: number): Promise<'open' | 'closed' | 'unknown'>;
}
