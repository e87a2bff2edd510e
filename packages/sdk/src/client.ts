import { resolveConfig, type CallOptions, type ConnectionOptions, type ResolvedConfig } from './config.js';
import { Transport } from './http.js';
import { Sandboxes } from './sandboxes.js';
import { Snapshots } from './snapshots.js';
import { Templates } from './templates.js';
import type { GcResult, ServerInfo } from './types.js';
import { Volumes } from './volumes.js';
import { ApiKeys } from './keys.js';
import { Pools } from './pools.js';
import { Tenants } from './tenants.js';
import { Audit } from './audit.js';
import { Hooks } from './hooks.js';
import { Environments } from './environments.js';
import { fetchUsage, type UsageOptions, type UsageReport } from './observability.js';
import { Secrets } from './secrets.js';

export interface GcOptions extends CallOptions {
  /** Only report what would be removed (default false: remove it). */
  dryRun?: boolean;
}

/**
 * The client of one Hutch server.
 *
 * ```ts
 * const hutch = new Hutch();                       // HUTCH_URL / HUTCH_API_KEY / admin.key
 * await using sb = await hutch.sandboxes.create({ template: 'minimal' });
 * const { stdout } = await sb.exec('echo hello');
 * ```
 *
 * Connection settings resolve per call > client options > environment > defaults (see
 * {@link resolveConfig}); the environment is read once, when the client is constructed.
 */
export class Hutch {
  readonly sandboxes: Sandboxes;
  readonly templates: Templates;
  readonly volumes: Volumes;
  readonly snapshots: Snapshots;
  readonly keys: ApiKeys;
  readonly pools: Pools;
  /** The tenant's secrets (values go in, never come out). */
  readonly secrets: Secrets;
  /** Admin keys only. */
  readonly tenants: Tenants;
  /** The audit log: your tenant's (admin keys: every tenant's). */
  readonly audit: Audit;
  /** Compose projects as sets of sandboxes on a private network. */
  readonly environments: Environments;
  /** Git hosting webhooks: the delivery log, projects, previews, fork approvals. */
  readonly hooks: Hooks;
  private readonly transport: Transport;

  constructor(options: ConnectionOptions = {}) {
    this.transport = new Transport(resolveConfig(options));
    this.sandboxes = new Sandboxes(this.transport);
    this.templates = new Templates(this.transport);
    this.volumes = new Volumes(this.transport);
    this.snapshots = new Snapshots(this.transport);
    this.keys = new ApiKeys(this.transport);
    this.pools = new Pools(this.transport);
    this.secrets = new Secrets(this.transport);
    this.tenants = new Tenants(this.transport);
    this.audit = new Audit(this.transport);
    this.environments = new Environments(this.transport);
    this.hooks = new Hooks(this.transport);
  }

  /** The resolved connection (URL, whether a key is set, default timeout). */
  get config(): Readonly<ResolvedConfig> {
    return this.transport.config;
  }

  /** Server version, available isolation tiers, templates and security posture. */
  info(opts?: CallOptions): Promise<ServerInfo> {
    return this.transport.json<ServerInfo>({ method: 'GET', path: '/v1/info', ...opts });
  }

  /**
   * Usage per tenant over whole UTC hours (default: this month so far): vCPU-seconds used and
   * reserved, memory GiB-seconds reserved and used, storage GiB-hours, sandbox-seconds, network
   * bytes. Member and read-only keys get their own tenant; admin keys every tenant, or `tenant`.
   */
  usage(opts: UsageOptions = {}): Promise<UsageReport> {
    return fetchUsage(this.transport, opts);
  }

  /**
   * Removes the snapshot layers no snapshot references any more (deleted snapshots leave them
   * behind), the pooled files only they used, and leftovers of crashed captures. With
   * `dryRun: true` it only reports what it would remove.
   */
  gc(opts: GcOptions = {}): Promise<GcResult> {
    const { dryRun = false, ...call } = opts;
    return this.transport.json<GcResult>({ method: 'POST', path: '/v1/gc', query: { dryRun }, ...call });
  }
}
