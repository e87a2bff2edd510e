import type { KubernetesSettings } from '@hutch/server';
import type {
  ApiKeyLimits,
  ApiKeyRole,
  Command,
  PoolSpec,
  SandboxCreateParams,
  SandboxEgress,
  SandboxState,
  TenantQuotas,
} from '@hutch/sdk';

/**
 * A parsed command line: what to do, fully typed and validated. `parse.ts` produces it from argv;
 * the `commands/` modules act on it. Nothing here touches the network.
 */

/** Where the server is; unset fields fall back to HUTCH_URL / HUTCH_API_KEY / defaults. */
export interface Connection {
  url?: string;
  apiKey?: string;
}

/** How to run one command inside a sandbox (exec and run). */
export interface CommandSpec {
  /** A single word after `--` is a shell string (`/bin/sh -c`); several are argv. */
  cmd: Command;
  cwd?: string;
  user?: string;
  env?: Record<string, string>;
  /** The command's time limit; undefined means no limit (the sandbox's own timeout still applies). */
  timeoutMs?: number;
  /** Forward local stdin: true/false when forced, undefined to decide by whether stdin is a TTY. */
  stdin?: boolean;
  /** The command keeps the sandbox active (no idle timeout) while it runs, attached or not. */
  keepAlive?: boolean;
}

/** Overcommit ratios for `hutch server --overcommit`. */
export interface Overcommit {
  cpu?: number;
  memoryMiB?: number;
  pids?: number;
  diskMiB?: number;
}

/** The lifecycle verbs that act on one sandbox's state. */
export type LifecycleAction = 'pause' | 'resume' | 'stop' | 'start';

/** One side of `hutch cp`. */
export type CopyTarget = { kind: 'local'; path: string } | { kind: 'stdio' } | { kind: 'sandbox'; id: string; path: string };

export type Invocation =
  | {
      kind: 'server';
      host: string;
      port: number;
      dataDir: string;
      logLevel: string;
      networkPool4?: string;
      networkPool6?: string;
      dnsUpstreams?: string[];
      domain?: string;
      overcommit?: Overcommit;
      createConcurrency?: number;
      createQueue?: number;
      auditRetentionDays?: number;
      sandboxLogBytes?: number;
      containerRuntime?: 'auto' | 'runc' | 'crun';
      provider?: 'local' | 'kubernetes';
      kubernetes?: KubernetesSettings;
      gitAllowFileUrls?: boolean;
      envIdleTtl?: string;
      envDeleteTtl?: string;
      envSweepIntervalMs?: number;
      previewDomain?: string;
      sampleIntervalSeconds?: number;
      metricsWindowSeconds?: number;
      /** Read by the server command (parsing reads no files). */
      metricsTokenFile?: string;
      metricsListen?: string;
      otlpEndpoint?: string;
      secretsKeyFile?: string;
      adminKeyFile?: string;
      githubWebhookSecrets?: string[];
      gitlabWebhookTokens?: string[];
      /** Read by the server command (parsing reads no files). */
      githubTokenFile?: string;
      gitlabTokenFile?: string;
      githubApiUrl?: string;
      gitlabApiUrl?: string;
      previewApprovalLabel?: string;
      previewKeepLabel?: string;
      previewJanitorIntervalSeconds?: number;
      /** sqlite:///path or postgres://… (from --store or HUTCH_STORE). */
      store?: string;
    }
  | { kind: 'info'; json: boolean }
  | { kind: 'create'; params: SandboxCreateParams; json: boolean }
  | { kind: 'ls'; state?: SandboxState[]; metadata: Record<string, string>; json: boolean }
  | { kind: 'get'; id: string; json: boolean }
  | { kind: 'exec'; id: string; spec: CommandSpec }
  | { kind: 'run'; params: SandboxCreateParams; spec: CommandSpec }
  | { kind: 'shell'; id: string; user?: string; cwd?: string }
  | { kind: 'cp'; src: CopyTarget; dst: CopyTarget }
  | { kind: 'rm'; ids: string[] }
  | { kind: 'template-ls'; json: boolean }
  | { kind: 'template-build'; names: string[]; layersDir: string; json: boolean }
  | { kind: 'template-export'; name: string; out: string; layersDir: string; repository?: string; agentBinary?: string; json: boolean }
  | { kind: 'timeout'; id: string; seconds: number; json: boolean }
  | { kind: 'url'; id: string; port: number; expiresIn?: number; json: boolean }
  | { kind: 'network'; id: string; egress?: SandboxEgress; public?: boolean; json: boolean }
  | { kind: LifecycleAction; id: string; json: boolean }
  | { kind: 'usage'; id: string; json: boolean }
  | { kind: 'usage-report'; since?: string; until?: string; tenant?: string; json: boolean }
  | { kind: 'metrics'; id: string; since?: string; until?: string; tail: number; json: boolean }
  | { kind: 'volume-create'; name: string; sizeMiB?: number; labels?: Record<string, string>; json: boolean }
  | { kind: 'volume-ls'; json: boolean }
  | { kind: 'volume-snapshot'; volume: string; name: string; json: boolean }
  | { kind: 'volume-snapshots'; volume: string; json: boolean }
  | { kind: 'volume-snapshot-rm'; volume: string; names: string[] }
  | { kind: 'keys-create'; name?: string; tenant?: string; role?: ApiKeyRole; e2b?: boolean; limits?: ApiKeyLimits; json: boolean }
  | { kind: 'keys-revoke'; ids: string[] }
  | { kind: 'tenant-create'; name: string; quotas?: TenantQuotas; json: boolean }
  | { kind: 'tenant-ls'; json: boolean }
  | { kind: 'tenant-quotas'; name: string; quotas: TenantQuotas | null; json: boolean }
  | { kind: 'tenant-rm'; names: string[]; force: boolean }
  | { kind: 'keys-limits'; id: string; limits: ApiKeyLimits | null }
  | { kind: 'pool-put'; name: string; spec: PoolSpec; json: boolean }
  | { kind: 'pool-ls'; json: boolean }
  | { kind: 'pool-rm'; names: string[] }
  | { kind: 'keys-ls'; tenant?: string; json: boolean }
  | { kind: 'volume-rm'; names: string[] }
  | { kind: 'snapshot'; id: string; metadata?: Record<string, string>; memory?: boolean; json: boolean }
  | { kind: 'snapshot-ls'; json: boolean }
  | { kind: 'snapshot-rm'; ids: string[] }
  | { kind: 'fork'; id: string; count?: number; metadata?: Record<string, string>; memory?: boolean; json: boolean }
  | { kind: 'gc'; dryRun: boolean; json: boolean }
  | {
      kind: 'env-up';
      dir: string;
      git?: { url: string; ref: string };
      name?: string;
      variables?: Record<string, string>;
      profiles?: string[];
      prNumber?: number;
      gitSha?: string;
      keep?: boolean;
      wait: boolean;
      json: boolean;
    }
  | { kind: 'env-ls'; json: boolean }
  | { kind: 'env-down'; ids: string[] }
  | { kind: 'env-logs'; id: string; service?: string; tail?: number }
  | { kind: 'env-seeds'; json: boolean }
  | { kind: 'env-reseed'; project: string; baseRef?: string; json: boolean }
  | { kind: 'env-update'; id: string; keep?: boolean; ttl?: { idle?: string | null; delete?: string | null }; json: boolean }
  | { kind: 'hooks-deliveries'; filter: HookDeliveryQuery; limit?: number; cursor?: string; json: boolean }
  | { kind: 'hooks-previews'; json: boolean }
  | { kind: 'hooks-approve'; provider: 'github' | 'gitlab'; repository: string; number: number; sha?: string; json: boolean }
  | {
      kind: 'hooks-project-add';
      provider: 'github' | 'gitlab';
      repository: string;
      tenant?: string;
      cloneUrl?: string;
      branches?: string[];
      variables?: Record<string, string>;
      json: boolean;
    }
  | { kind: 'hooks-project-ls'; json: boolean }
  | { kind: 'hooks-project-rm'; ids: string[] }
  | { kind: 'audit'; filter: AuditQuery; limit?: number; cursor?: string; export: boolean; json: boolean }
  | { kind: 'logs'; id: string; follow: boolean; since?: string; after?: number; tail?: number; timestamps: boolean; json: boolean }
  | { kind: 'secret-put'; name: string; source: SecretSource; tenant?: string; json: boolean }
  | { kind: 'secret-ls'; tenant?: string; json: boolean }
  | { kind: 'secret-rm'; names: string[]; tenant?: string };

/** The filters of `hutch audit` (the server parses times: ISO 8601 or a duration back from now). */
export interface AuditQuery {
  tenant?: string;
  key?: string;
  action?: string;
  target?: string;
  outcome?: string;
  since?: string;
  until?: string;
}

/** Where `hutch secret put` reads the value: the flag, a file, or stdin. */
export type SecretSource = { kind: 'value'; value: string } | { kind: 'file'; path: string } | { kind: 'stdin' };

/** What `parse()` returns: an invocation to run, or help/version text that was already printed. */
export type Parsed = { kind: 'invocation'; connection: Connection; invocation: Invocation } | { kind: 'help' };

/** The filters of `hutch hooks deliveries`. */
export interface HookDeliveryQuery {
  provider?: 'github' | 'gitlab';
  outcome?: string;
  repository?: string;
  number?: number;
  environment?: string;
  since?: string;
  tenant?: string;
}
