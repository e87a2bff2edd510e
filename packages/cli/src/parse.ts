import { Command, CommanderError, Option } from 'commander';
import type {
  ApiKeyLimits,
  ApiKeyRole,
  OnTimeout,
  SandboxCreateParams,
  SandboxEgress,
  SandboxState,
  SecretRef,
  TenantQuotas,
  VolumeMount,
} from '@hutch/sdk';
import {
  ArgumentError,
  commandFromWords,
  parseCopyTarget,
  parseKeyValue,
  parseNumber,
  parseOnTimeout,
  parseSandboxIdOrVerb,
  parseSecretName,
  parseSecretRef,
  parseStates,
  parseVolumeMount,
  parseVolumeName,
  parseWhen,
} from './args.js';
import type { CommandSpec, Connection, HookDeliveryQuery, Invocation, LifecycleAction, Overcommit, Parsed } from './invocation.js';

/** A command line that cannot be understood; the CLI exits with status 2. */
export class UsageError extends Error {}

export interface ParseIo {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

const defaultIo: ParseIo = {
  writeOut: (s) => process.stdout.write(s),
  writeErr: (s) => process.stderr.write(s),
};

/**
 * Parses argv (without `node` and the script) into an {@link Invocation}. Help requested with
 * `--help` is printed to `io.writeOut` and returns `{kind: 'help'}`; any malformed input throws
 * {@link UsageError}. Nothing is executed.
 */
export function parse(argv: string[], opts: { env?: Record<string, string | undefined>; io?: ParseIo; version?: string } = {}): Parsed {
  const env = opts.env ?? process.env;
  let result: Invocation | undefined;
  const set = (inv: Invocation): void => {
    result = inv;
  };
  const program = buildProgram(set, env, opts.io ?? defaultIo, opts.version ?? '0.0.0');
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return { kind: 'help' };
      if (err.code === 'commander.help') throw new UsageError('a command is required (see the list above)');
      let message = err.message.replace(/^error: /, '');
      if (err.code === 'commander.unknownOption' && /^(exec|run)$/.test(argv.find((a) => !a.startsWith('-')) ?? '')) {
        message += ' (options meant for the command go after --, e.g. `hutch exec <id> -- ls -la`)';
      }
      throw new UsageError(message);
    }
    if (err instanceof ArgumentError) throw new UsageError(err.message);
    throw err;
  }
  if (!result) throw new UsageError('a command is required; see `hutch --help`');
  const g = program.opts<{ url?: string; apiKey?: string }>();
  const connection: Connection = { url: g.url, apiKey: g.apiKey };
  return { kind: 'invocation', connection, invocation: result };
}

function buildProgram(set: (inv: Invocation) => void, env: Record<string, string | undefined>, io: ParseIo, version: string): Command {
  const program = new Command('hutch')
    .description('Hutch: self-hosted sandboxes for untrusted code.')
    .version(version, '-V, --version', 'print the CLI version')
    .option('--url <url>', 'server URL (default: $HUTCH_URL or http://127.0.0.1:7171)')
    .option('--api-key <key>', 'API key (default: $HUTCH_API_KEY or the local admin key file)')
    .addHelpText('after', example('hutch server &', 'id=$(hutch create --template minimal)', 'hutch exec $id -- uname -a', 'hutch rm $id'));
  // Subcommands inherit both: errors are thrown (not printed and exited), help goes to `io`.
  program.configureOutput({ writeOut: io.writeOut, writeErr: io.writeErr, outputError: () => {} });
  program.exitOverride();

  program
    .command('server')
    .description('run the Hutch server in the foreground')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', (v) => parseNumber(v, '--port', 0, 65535, true), 7171)
    .option('--data-dir <dir>', 'state directory (env HUTCH_DATA_DIR)', env.HUTCH_DATA_DIR || '/var/lib/hutch')
    .option(
      '--store <url>',
      'the store: sqlite:///path/hutch.db (default: <data-dir>/hutch.db) or postgres://user:pass@host:5432/db, shared by several replicas (env HUTCH_STORE)',
    )
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error)', 'info')
    .option('--network-pool <cidr>', 'IPv4 addresses for networked sandboxes', '10.213.0.0/16')
    .option('--network-pool6 <cidr>', 'IPv6 addresses for networked sandboxes', 'fd68:7574:6368::/48')
    .option(
      '--dns-upstream <ip[:port]>',
      'upstream DNS server for the sandbox resolver (repeatable; default: /etc/resolv.conf)',
      collectList,
      undefined,
    )
    .option('--domain <domain>', 'serve sandbox ports at <port>-<id>.<domain> (wildcard DNS is yours; may include scheme and port)')
    .option(
      '--overcommit <ratios>',
      'how far sandbox limits may exceed the node: one ratio for all, or cpu=N,memory=N,pids=N,disk=N (default cpu=100,memory=4,pids=8,disk=4)',
      parseOvercommit,
    )
    .option('--create-concurrency <n>', 'cold creates run at once (default: cpu count, at least 2)', (v) =>
      parseNumber(v, '--create-concurrency', 1, 256, true),
    )
    .option('--create-queue <n>', 'cold creates that may wait; beyond: 429 (default 64)', (v) =>
      parseNumber(v, '--create-queue', 0, 100_000, true),
    )
    .option('--audit-retention-days <days>', 'audit entries older than this are pruned, hourly (0: kept forever; default 90)', (v) =>
      parseNumber(v, '--audit-retention-days', 0, 36_500, false),
    )
    .option(
      '--sandbox-log-cap <KiB>',
      'output kept per sandbox in its log; the oldest goes first (min 16; 0: no sandbox logs; default 1024)',
      (v) => parseSandboxLogCap(v),
    )
    .option(
      '--container-runtime <name>',
      'OCI runtime of the container tier: auto (crun if installed, else runc; the default), crun or runc',
      parseContainerRuntime,
    )
    .option('--provider <name>', 'where sandboxes run: local (this machine) or kubernetes (pods in a cluster)', parseProvider, 'local')
    .option('--kubeconfig <file>', 'kubernetes: kubeconfig (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)')
    .option('--namespace <ns>', "kubernetes: namespace of the sandbox pods, created if missing (default: the server pod's, else hutch)")
    .option('--runtime-class-gvisor <name>', 'kubernetes: RuntimeClass of the gvisor tier (default gvisor)')
    .option('--image-repository <repo>', 'kubernetes: repository of sandbox images (default localhost/hutch/sandbox)')
    .option(
      '--image-import <command>',
      'kubernetes: command run as "<command> <oci-tar> <image>" to import a template image on first use (default: none; images must be on the nodes or in the registry)',
    )
    .option(
      '--ttl-backstop <seconds>',
      'kubernetes: a pod ends by itself this long after its TTL if the server is down then (activeDeadlineSeconds; default 3600)',
      (v) => parseNumber(v, '--ttl-backstop', 1, 30 * 86_400, true),
    )
    .option(
      '--kubernetes-warm-pools <mode>',
      "kubernetes: what warm pools are made of: pods (Hutch's own pre-created pods, the default) or agent-sandbox (kubernetes-sigs/agent-sandbox's SandboxWarmPool/SandboxClaim; refuses to start where it is not installed)",
      parseWarmPoolMode,
    )
    .option(
      '--kubernetes-agent-access <mode>',
      "kubernetes: how the server reaches sandbox agents: pod-ip (TCP to the pod IP), api-server (through the API server's port-forward, for a server outside the pod network) or auto (pod IP when the first pod answers there, else the API server; the default)",
      parseAgentAccess,
    )
    .option('--volume-storage-class <name>', "kubernetes: StorageClass of volume claims (default: the cluster's default)")
    .option(
      '--volume-snapshot-class <name>',
      "kubernetes: VolumeSnapshotClass of volume snapshots (default: the cluster's default for the driver)",
    )
    .option('--cpu-request-ratio <r>', 'kubernetes: cpu request as a fraction of the sandbox cpu limit (default 0.1)', (v) =>
      parseNumber(v, '--cpu-request-ratio', 0.01, 1, false),
    )
    .option(
      '--env-idle-ttl <duration>',
      'environments without their own x-hutch ttl.idle sleep after this long without a deploy or request (30m, 2h; default off)',
    )
    .option(
      '--env-delete-ttl <duration>',
      'environments without their own x-hutch ttl.delete are destroyed after this long without a deploy or request (72h, 7d; default off)',
    )
    .option('--env-sweep-interval <seconds>', 'how often environment TTLs are checked (default 30)', (v) =>
      parseNumber(v, '--env-sweep-interval', 0.2, 3600, false),
    )
    .option(
      '--preview-domain <domain>',
      'per-service environment hosts {service}--{environment}.<domain> (one wildcard certificate covers them; env HUTCH_PREVIEW_DOMAIN)',
      env.HUTCH_PREVIEW_DOMAIN || undefined,
    )
    .option(
      '--git-allow-file-urls',
      'let environments be created from file:// git URLs (repositories on this machine; tests, single-user setups)',
    )
    .option('--sample-interval <seconds>', 'how often running sandboxes are sampled for metrics and usage (default 5)', (v) =>
      parseNumber(v, '--sample-interval', 0.2, 3600, false),
    )
    .option('--metrics-window <seconds>', 'how long per-sandbox samples are kept (default 3600)', (v) =>
      parseNumber(v, '--metrics-window', 10, 7 * 86_400, true),
    )
    .option(
      '--metrics-token-file <file>',
      'a bearer token in this file may read GET /metrics (besides admin keys; env HUTCH_METRICS_TOKEN)',
    )
    .option('--metrics-listen <host:port>', 'also serve GET /metrics without authentication on this address (e.g. 127.0.0.1:9464)')
    .option(
      '--otlp-endpoint <url>',
      'export OpenTelemetry traces (create, exec) with OTLP/HTTP to this endpoint (default: $OTEL_EXPORTER_OTLP_ENDPOINT; none: off)',
    )
    .option(
      '--secrets-key-file <file>',
      'the 32-byte key sealing stored secrets (64 hex characters, mode 0600; must exist). Default: <data-dir>/secrets.key, generated on first start',
    )
    .option(
      '--admin-key-file <file>',
      'the admin API key in this file (read-only, e.g. a mounted Secret; adopted when the database does not know it). Default: <data-dir>/admin.key, generated on first start',
    )
    .option(
      '--github-webhook-secret <secret>',
      'secret of GitHub webhook signatures for POST /v1/hooks/github (repeatable or a comma list: two during a rotation; env HUTCH_GITHUB_WEBHOOK_SECRET)',
      collectList,
    )
    .option(
      '--gitlab-webhook-token <token>',
      'GitLab webhook secret token for POST /v1/hooks/gitlab (repeatable or a comma list; env HUTCH_GITLAB_WEBHOOK_TOKEN)',
      collectList,
    )
    .option(
      '--github-token-file <file>',
      'a GitHub token (statuses, pull request comments, pull request state for the janitor); none: no feedback',
    )
    .option('--gitlab-token-file <file>', 'a GitLab token (commit statuses, merge request notes and state); none: no feedback')
    .option('--github-api-url <url>', 'GitHub REST API base URL (default https://api.github.com; GitHub Enterprise: https://HOST/api/v3)')
    .option('--gitlab-api-url <url>', 'GitLab REST API base URL (default https://gitlab.com/api/v4)')
    .option('--preview-approval-label <label>', "the label approving a fork's pull request (default hutch:approved)")
    .option('--preview-keep-label <label>', 'the label pinning a preview environment (default hutch:keep)')
    .option('--preview-janitor-interval <seconds>', 'how often the janitor asks the git host about open previews (default 600)', (v) =>
      parseNumber(v, '--preview-janitor-interval', 1, 86_400, false),
    )
    .addHelpText(
      'after',
      example(
        'sudo hutch server --port 7171 --data-dir /var/lib/hutch',
        'HUTCH_STORE=postgres://hutch:secret@db:5432/hutch hutch server --provider kubernetes',
        'hutch server --provider kubernetes --kubeconfig ~/.kube/config --namespace sandboxes',
        'sudo hutch server --domain sbx.example.com',
        'sudo hutch server --overcommit memory=2,cpu=50 --create-queue 128',
        'sudo hutch server --audit-retention-days 365 --sandbox-log-cap 4096',
        'sudo hutch server --metrics-listen 10.0.0.5:9464 --otlp-endpoint http://127.0.0.1:4318',
        'sudo hutch server --preview-domain preview.example.com --env-idle-ttl 30m --env-delete-ttl 7d',
        'sudo hutch server --github-webhook-secret "$SECRET" --github-token-file /etc/hutch/github-token',
      ),
    )
    .action(
      (o: {
        host: string;
        port: number;
        dataDir: string;
        store?: string;
        logLevel: string;
        networkPool: string;
        networkPool6: string;
        dnsUpstream?: string[];
        domain?: string;
        overcommit?: Overcommit;
        createConcurrency?: number;
        createQueue?: number;
        auditRetentionDays?: number;
        sandboxLogCap?: number;
        containerRuntime?: 'auto' | 'runc' | 'crun';
        provider: 'local' | 'kubernetes';
        kubeconfig?: string;
        namespace?: string;
        runtimeClassGvisor?: string;
        imageRepository?: string;
        imageImport?: string;
        cpuRequestRatio?: number;
        volumeStorageClass?: string;
        volumeSnapshotClass?: string;
        ttlBackstop?: number;
        kubernetesWarmPools?: 'pods' | 'agent-sandbox';
        kubernetesAgentAccess?: 'pod-ip' | 'api-server' | 'auto';
        gitAllowFileUrls?: boolean;
        envIdleTtl?: string;
        envDeleteTtl?: string;
        envSweepInterval?: number;
        previewDomain?: string;
        sampleInterval?: number;
        metricsWindow?: number;
        metricsTokenFile?: string;
        metricsListen?: string;
        otlpEndpoint?: string;
        secretsKeyFile?: string;
        adminKeyFile?: string;
        githubWebhookSecret?: string[];
        gitlabWebhookToken?: string[];
        githubTokenFile?: string;
        gitlabTokenFile?: string;
        githubApiUrl?: string;
        gitlabApiUrl?: string;
        previewApprovalLabel?: string;
        previewKeepLabel?: string;
        previewJanitorInterval?: number;
      }) =>
        set({
          kind: 'server',
          ...(o.githubWebhookSecret ? { githubWebhookSecrets: o.githubWebhookSecret } : {}),
          ...(o.gitlabWebhookToken ? { gitlabWebhookTokens: o.gitlabWebhookToken } : {}),
          ...(o.githubTokenFile ? { githubTokenFile: o.githubTokenFile } : {}),
          ...(o.gitlabTokenFile ? { gitlabTokenFile: o.gitlabTokenFile } : {}),
          ...(o.githubApiUrl ? { githubApiUrl: o.githubApiUrl } : {}),
          ...(o.gitlabApiUrl ? { gitlabApiUrl: o.gitlabApiUrl } : {}),
          ...(o.previewApprovalLabel ? { previewApprovalLabel: o.previewApprovalLabel } : {}),
          ...(o.previewKeepLabel ? { previewKeepLabel: o.previewKeepLabel } : {}),
          ...(o.previewJanitorInterval !== undefined ? { previewJanitorIntervalSeconds: o.previewJanitorInterval } : {}),
          ...(o.auditRetentionDays !== undefined ? { auditRetentionDays: o.auditRetentionDays } : {}),
          ...(o.sandboxLogCap !== undefined ? { sandboxLogBytes: o.sandboxLogCap * 1024 } : {}),
          ...(o.gitAllowFileUrls ? { gitAllowFileUrls: true } : {}),
          ...(o.envIdleTtl !== undefined ? { envIdleTtl: o.envIdleTtl } : {}),
          ...(o.envDeleteTtl !== undefined ? { envDeleteTtl: o.envDeleteTtl } : {}),
          ...(o.envSweepInterval !== undefined ? { envSweepIntervalMs: Math.round(o.envSweepInterval * 1000) } : {}),
          ...(o.previewDomain ? { previewDomain: o.previewDomain } : {}),
          ...(o.secretsKeyFile !== undefined ? { secretsKeyFile: o.secretsKeyFile } : {}),
          ...(o.adminKeyFile !== undefined ? { adminKeyFile: o.adminKeyFile } : {}),
          // Read here, not as the option's default: --help must not print a URL with a password.
          ...((o.store ?? env.HUTCH_STORE) ? { store: (o.store ?? env.HUTCH_STORE)! } : {}),
          ...(o.provider === 'kubernetes'
            ? {
                provider: 'kubernetes',
                kubernetes: {
                  ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
                  ...(o.namespace ? { namespace: o.namespace } : {}),
                  ...(o.runtimeClassGvisor ? { gvisorRuntimeClass: o.runtimeClassGvisor } : {}),
                  ...(o.imageRepository ? { imageRepository: o.imageRepository } : {}),
                  ...(o.imageImport ? { imageImport: o.imageImport.split(/\s+/).filter(Boolean) } : {}),
                  ...(o.cpuRequestRatio !== undefined ? { cpuRequestRatio: o.cpuRequestRatio } : {}),
                  ...(o.volumeStorageClass ? { volumeStorageClass: o.volumeStorageClass } : {}),
                  ...(o.volumeSnapshotClass ? { volumeSnapshotClass: o.volumeSnapshotClass } : {}),
                  ...(o.ttlBackstop !== undefined ? { ttlBackstopSeconds: o.ttlBackstop } : {}),
                  ...(o.kubernetesWarmPools ? { warmPools: o.kubernetesWarmPools } : {}),
                  ...(o.kubernetesAgentAccess ? { agentAccess: o.kubernetesAgentAccess } : {}),
                },
              }
            : {}),
          ...(o.sampleInterval !== undefined ? { sampleIntervalSeconds: o.sampleInterval } : {}),
          ...(o.metricsWindow !== undefined ? { metricsWindowSeconds: o.metricsWindow } : {}),
          ...(o.metricsTokenFile ? { metricsTokenFile: o.metricsTokenFile } : {}),
          ...(o.metricsListen ? { metricsListen: o.metricsListen } : {}),
          ...(o.otlpEndpoint ? { otlpEndpoint: o.otlpEndpoint } : {}),
          ...(o.overcommit ? { overcommit: o.overcommit } : {}),
          ...(o.createConcurrency !== undefined ? { createConcurrency: o.createConcurrency } : {}),
          ...(o.createQueue !== undefined ? { createQueue: o.createQueue } : {}),
          ...(o.containerRuntime ? { containerRuntime: o.containerRuntime } : {}),
          host: o.host,
          port: o.port,
          dataDir: o.dataDir,
          logLevel: o.logLevel,
          networkPool4: o.networkPool,
          networkPool6: o.networkPool6,
          ...(o.dnsUpstream ? { dnsUpstreams: o.dnsUpstream } : {}),
          ...(o.domain ? { domain: o.domain } : {}),
        }),
    );

  program
    .command('info')
    .description('show the server version, isolation tiers and templates')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch info --json'))
    .action((o: { json?: boolean }) => set({ kind: 'info', json: !!o.json }));

  addLifecycleOptions(
    addCreateOptions(
      program
        .command('create')
        .description('create a sandbox and print its id')
        .option('--json', 'print the sandbox as JSON instead of its id'),
    ),
  )
    .addHelpText(
      'after',
      example(
        'hutch create --template minimal --cpu 0.5 --memory 256 --env DEBUG=1',
        'hutch create --persistent --disk 4096 --volume data:/data --volume refs:/refs:ro',
        'hutch create --timeout 600 --on-timeout pause --idle-timeout 120 --auto-resume',
        'hutch create --secret GITHUB_TOKEN --secret db-password=file:/run/secrets/db',
      ),
    )
    .action((o: CreateFlags & LifecycleFlags & { json?: boolean }) =>
      set({ kind: 'create', params: { ...createParams(o), ...lifecycleParams(o) }, json: !!o.json }),
    );

  program
    .command('ls')
    .alias('list')
    .description('list sandboxes (every state but deleted: running, paused, stopped, …)')
    .option('--state <states>', 'only these states (comma-separated)', parseStates)
    .option('--metadata <K=V>', 'only sandboxes with this metadata (repeatable)', collectKv('metadata'), {})
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch ls --state running --metadata owner=me'))
    .action((o: { state?: SandboxState[]; metadata: Record<string, string>; json?: boolean }) =>
      set({ kind: 'ls', state: o.state, metadata: o.metadata, json: !!o.json }),
    );

  program
    .command('get')
    .description("show one sandbox's details")
    .argument('<id>', 'sandbox id')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch get k3j5h2l9q8w7e6r5t4y3 --json'))
    .action((id: string, o: { json?: boolean }) => set({ kind: 'get', id, json: !!o.json }));

  addExecOptions(
    program
      .command('exec')
      .description("run a command in a sandbox, streaming its output; exits with the command's status")
      .argument('<id>', 'sandbox id')
      .argument('<cmd...>', 'the command, after -- (one word: run by /bin/sh -c; several: argv)'),
  )
    .option('--env <K=V>', 'environment variable for the command (repeatable)', collectKv('env'))
    .addHelpText('after', example('hutch exec $id -- ls -la /', "hutch exec $id -- 'echo $HOME && id'", 'echo hi | hutch exec $id -- cat'))
    .action((id: string, words: string[], o: ExecFlags & { env?: Record<string, string> }) =>
      set({ kind: 'exec', id, spec: commandSpec(words, o, o.env) }),
    );

  addExecOptions(
    addCreateOptions(
      program
        .command('run')
        .description("create a sandbox, run one command in it, then delete it; exits with the command's status")
        .argument('<cmd...>', 'the command, after -- (one word: run by /bin/sh -c; several: argv)'),
    ),
  )
    .addHelpText(
      'after',
      example("hutch run --template minimal -- sh -c 'echo hello; exit 3'", 'hutch run --volume data:/data -- ls /data'),
    )
    .action((words: string[], o: CreateFlags & ExecFlags) => set({ kind: 'run', params: createParams(o), spec: commandSpec(words, o) }));

  program
    .command('shell')
    .description('open an interactive terminal in a sandbox')
    .argument('<id>', 'sandbox id')
    .option('--user <user>', 'user to log in as (default: the template default user)')
    .option('--cwd <dir>', 'starting directory')
    .addHelpText('after', example('hutch shell $id --user root'))
    .action((id: string, o: { user?: string; cwd?: string }) => set({ kind: 'shell', id, user: o.user, cwd: o.cwd }));

  program
    .command('cp')
    .description('copy a file into or out of a sandbox (<id>:<path> names a sandbox side; - is stdin/stdout)')
    .argument('<src>', 'source: a local path, <id>:<path>, or -')
    .argument('<dst>', 'destination: a local path, <id>:<path>, or -')
    .addHelpText('after', example('hutch cp ./data.csv $id:/tmp/data.csv', 'hutch cp $id:/tmp/out.png .', 'hutch cp $id:/etc/os-release -'))
    .action((src: string, dst: string) => {
      const s = parseCopyTarget(src);
      const d = parseCopyTarget(dst);
      if (s.kind !== 'sandbox' && d.kind !== 'sandbox') throw new ArgumentError('one side of cp must be <id>:<path>');
      set({ kind: 'cp', src: s, dst: d });
    });

  program
    .command('rm')
    .description('delete sandboxes (kills their processes, removes their files)')
    .argument('<id...>', 'sandbox ids')
    .addHelpText('after', example('hutch rm $id', 'hutch ls --json | jq -r ".[].id" | xargs hutch rm'))
    .action((ids: string[]) => set({ kind: 'rm', ids }));

  const template = program.command('template').description('manage templates');
  template
    .command('ls')
    .alias('list')
    .description('list templates')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch template ls'))
    .action((o: { json?: boolean }) => set({ kind: 'template-ls', json: !!o.json }));
  template
    .command('build')
    .description('build templates into the layer cache on this machine (skips those already built; no server needed)')
    .argument('[names...]', 'templates to build (default: all shipped templates)')
    .option(
      '--layers-dir <dir>',
      'layer cache (env HUTCH_LAYERS_DIR)',
      env.HUTCH_LAYERS_DIR || `${env.HUTCH_DATA_DIR || '/var/lib/hutch'}/layers`,
    )
    .option('--json', 'print the built templates as JSON')
    .addHelpText('after', example('sudo hutch template build', 'sudo hutch template build minimal'))
    .action((names: string[], o: { layersDir: string; json?: boolean }) =>
      set({ kind: 'template-build', names, layersDir: o.layersDir, json: !!o.json }),
    );
  template
    .command('export')
    .description(
      'write a template as an OCI image-layout tarball (its layers plus hutch-agent as the entrypoint) for the kubernetes provider; prints the image reference (no server needed)',
    )
    .argument('<name>', 'template to export (built first if missing)')
    .requiredOption('--oci <file>', 'the tarball to write')
    .option(
      '--layers-dir <dir>',
      'layer cache (env HUTCH_LAYERS_DIR)',
      env.HUTCH_LAYERS_DIR || `${env.HUTCH_DATA_DIR || '/var/lib/hutch'}/layers`,
    )
    .option('--repository <repo>', "image repository of the reference (default localhost/hutch/sandbox; the server's --image-repository)")
    .option('--agent <file>', 'the hutch-agent binary (env HUTCH_AGENT_BINARY; default: the repository build)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      example(
        'sudo hutch template export minimal --oci minimal.tar',
        'ref=$(sudo hutch template export base --oci base.tar) && ctr -n k8s.io images import --index-name "$ref" base.tar',
      ),
    )
    .action((name: string, o: { oci: string; layersDir: string; repository?: string; agent?: string; json?: boolean }) =>
      set({
        kind: 'template-export',
        name,
        out: o.oci,
        layersDir: o.layersDir,
        ...(o.repository ? { repository: o.repository } : {}),
        ...(o.agent || env.HUTCH_AGENT_BINARY ? { agentBinary: o.agent || env.HUTCH_AGENT_BINARY } : {}),
        json: !!o.json,
      }),
    );

  program
    .command('timeout')
    .description('make a sandbox expire <seconds> from now')
    .argument('<id>', 'sandbox id')
    .argument('<seconds>', 'new lifetime in seconds, from now', (v) => parseNumber(v, 'seconds', 1, 86_400, true))
    .option('--json', 'print the sandbox as JSON')
    .addHelpText('after', example('hutch timeout $id 3600'))
    .action((id: string, seconds: number, o: { json?: boolean }) => set({ kind: 'timeout', id, seconds, json: !!o.json }));

  const lifecycle: [LifecycleAction, string, string][] = [
    [
      'pause',
      'pause a running sandbox: memory and processes kept where the tier can (gvisor), else only its files (the output says which)',
      'print {id, state, pauseMode, note, durationMs} as JSON',
    ],
    ['resume', 'resume a paused sandbox', 'print {id, state, pauseMode, note, durationMs} as JSON'],
    ['stop', 'stop a running or paused sandbox: its processes end, its files and volumes stay', 'print the sandbox as JSON'],
    ['start', 'start a stopped sandbox again (same id, files, env and metadata; no processes)', 'print the sandbox as JSON'],
  ];
  for (const [verb, description, jsonHelp] of lifecycle) {
    program
      .command(verb)
      .description(description)
      .argument('<id>', 'sandbox id')
      .option('--json', jsonHelp)
      .addHelpText('after', example(`hutch ${verb} $id`))
      .action((id: string, o: { json?: boolean }) => set({ kind: verb, id, json: !!o.json }));
  }

  program
    .command('usage')
    .description(
      "usage per tenant over whole UTC hours (vCPU-seconds used and reserved, memory GiB-seconds, storage GiB-hours, sandbox-seconds, network bytes; members see their tenant); with a sandbox id: that sandbox's disk use and its volumes'",
    )
    .argument('[id]', 'sandbox id (disk use of its filesystem and volumes)')
    .option('--since <when>', 'start: a duration back (24h, 7d) or a date/time (default: the start of this month, UTC)', (v) =>
      parseWhen(v, '--since'),
    )
    .option('--until <when>', 'end (default: now)', (v) => parseWhen(v, '--until'))
    .option('--tenant <name>', 'admin keys: one tenant (default: all)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      example(
        'hutch usage',
        'hutch usage --since 7d --json',
        'hutch usage --since 2025-01-01 --until 2025-02-01 --tenant team-a',
        'hutch usage $id',
      ),
    )
    .action((id: string | undefined, o: { since?: string; until?: string; tenant?: string; json?: boolean }) => {
      if (id === undefined) {
        set({
          kind: 'usage-report',
          ...(o.since ? { since: o.since } : {}),
          ...(o.until ? { until: o.until } : {}),
          ...(o.tenant ? { tenant: o.tenant } : {}),
          json: !!o.json,
        });
        return;
      }
      if (o.since || o.until || o.tenant)
        throw new ArgumentError('--since, --until and --tenant are for the tenant report (hutch usage without an id)');
      set({ kind: 'usage', id, json: !!o.json });
    });

  program
    .command('metrics')
    .description(
      "a sandbox's samples: cpu, memory, pids, disk and network, taken every few seconds and kept for the server's metrics window",
    )
    .argument('<id>', 'sandbox id')
    .option('--since <when>', 'from: a duration back (10m) or a date/time (default: the whole window)', (v) => parseWhen(v, '--since'))
    .option('--until <when>', 'to (default: now)', (v) => parseWhen(v, '--until'))
    .option(
      '--tail <n>',
      'rows the table shows, newest last (default 20; --json prints all)',
      (v) => parseNumber(v, '--tail', 1, 100_000, true),
      20,
    )
    .option('--json', 'print JSON (every sample in the range)')
    .addHelpText('after', example('hutch metrics $id', 'hutch metrics $id --since 10m --json'))
    .action((id: string, o: { since?: string; until?: string; tail: number; json?: boolean }) =>
      set({
        kind: 'metrics',
        id,
        ...(o.since ? { since: o.since } : {}),
        ...(o.until ? { until: o.until } : {}),
        tail: o.tail,
        json: !!o.json,
      }),
    );

  program
    .command('logs')
    .description(
      'print the output a sandbox kept: stdout and stderr of the processes started through the API (not terminals), up to the server’s cap',
    )
    .argument('<id>', 'sandbox id')
    .option('-f, --follow', 'keep printing new output until the sandbox is deleted (or Ctrl-C)')
    .option('--since <time>', 'only output from this time on: ISO 8601, or a duration back from now (10m, 2h, 1d)')
    .option('--tail <n>', 'only the last n entries (default 1000)', (v) => parseNumber(v, '--tail', 1, 10_000, true))
    .option('--after <seq>', 'only entries after this seq (the `seq` of an entry, from --json)', (v) =>
      parseNumber(v, '--after', 0, Number.MAX_SAFE_INTEGER, true),
    )
    .option('-t, --timestamps', 'prefix every line with its time, pid and stream')
    .option('--json', 'print one JSON object per entry (JSON lines; with -f, markers too)')
    .addHelpText(
      'after',
      example('hutch logs $id', 'hutch logs -f $id', 'hutch logs --since 10m --timestamps $id', 'hutch logs --json $id | jq .text'),
    )
    .action((id: string, o: { follow?: boolean; since?: string; tail?: number; after?: number; timestamps?: boolean; json?: boolean }) =>
      set({
        kind: 'logs',
        id,
        follow: !!o.follow,
        ...(o.since !== undefined ? { since: o.since } : {}),
        ...(o.tail !== undefined ? { tail: o.tail } : {}),
        ...(o.after !== undefined ? { after: o.after } : {}),
        timestamps: !!o.timestamps,
        json: !!o.json,
      }),
    );

  program
    .command('audit')
    .description(
      "show the audit log, newest first: every change, exec, process start, file transfer and PTY session, with who, what and the outcome (your tenant's; admins: every tenant's)",
    )
    .option('--action <name>', 'an action or its prefix (sandbox, sandbox.exec, file, key.revoke, …)')
    .option('--since <time>', 'from this time on: ISO 8601, or a duration back from now (1h, 7d)')
    .option('--until <time>', 'before this time (same forms)')
    .option('--key <id>', 'calls made with this API key (or token:<sandbox id>)')
    .option('--target <id>', 'calls on this object (a sandbox id also matches its files and processes)')
    .option('--outcome <o>', 'ok, error, a status (404) or an error code (permission_denied)')
    .option('--tenant <name>', 'admins: only this tenant')
    .option('--limit <n>', 'entries per page (default 50, max 1000)', (v) => parseNumber(v, '--limit', 1, 1000, true))
    .option('--cursor <c>', 'the next page (printed after a full page)')
    .option('--json', 'print the page as JSON ({entries, nextCursor})')
    .option('--export', 'print every matching entry as JSON lines, oldest first (for a file: > audit.jsonl)')
    .addHelpText(
      'after',
      example(
        'hutch audit',
        'hutch audit --action sandbox.exec --since 1h',
        'hutch audit --outcome error --json',
        'hutch audit --since 30d --export > audit.jsonl',
      ),
    )
    .action(
      (o: {
        action?: string;
        since?: string;
        until?: string;
        key?: string;
        target?: string;
        outcome?: string;
        tenant?: string;
        limit?: number;
        cursor?: string;
        json?: boolean;
        export?: boolean;
      }) => {
        if (o.export && (o.json || o.cursor !== undefined))
          throw new ArgumentError('--export prints JSON lines of every entry: no --json or --cursor with it');
        const filter = Object.fromEntries(
          (['tenant', 'key', 'action', 'target', 'outcome', 'since', 'until'] as const)
            .filter((k) => o[k] !== undefined)
            .map((k) => [k, o[k]!]),
        );
        set({
          kind: 'audit',
          filter,
          ...(o.limit !== undefined ? { limit: o.limit } : {}),
          ...(o.cursor !== undefined ? { cursor: o.cursor } : {}),
          export: !!o.export,
          json: !!o.json,
        });
      },
    );

  const hooks = program
    .command('hooks')
    .description(
      'git hosting webhooks: the delivery log, registered repositories (projects), preview environments and fork approvals (see docs/environments.md, "Webhooks")',
    );
  hooks
    .command('deliveries')
    .description(
      "the webhook delivery log, newest first: what each delivery triggered or why it was ignored (your tenant's; admins: every tenant's)",
    )
    .option('--provider <p>', 'github or gitlab')
    .option('--outcome <o>', 'rejected, duplicate, ignored, queued, awaiting-approval, superseded, deployed, failed or destroyed')
    .option('--repository <owner/name>', 'one repository')
    .option('--number <n>', 'one pull/merge request', (v) => parseNumber(v, '--number', 1, 2 ** 31, true))
    .option('--environment <id>', 'deliveries that acted on this environment')
    .option('--since <time>', 'from this time on: ISO 8601, or a duration back from now (1h, 7d)')
    .option('--tenant <name>', 'admins: only this tenant')
    .option('--limit <n>', 'entries per page (default 50, max 1000)', (v) => parseNumber(v, '--limit', 1, 1000, true))
    .option('--cursor <c>', 'the next page (printed after a full page)')
    .option('--json', 'print the page as JSON ({deliveries, nextCursor})')
    .addHelpText(
      'after',
      example(
        'hutch hooks deliveries',
        'hutch hooks deliveries --repository acme/shop --number 42',
        'hutch hooks deliveries --outcome rejected --json',
      ),
    )
    .action(
      (o: {
        provider?: string;
        outcome?: string;
        repository?: string;
        number?: number;
        environment?: string;
        since?: string;
        tenant?: string;
        limit?: number;
        cursor?: string;
        json?: boolean;
      }) => {
        if (o.provider !== undefined && o.provider !== 'github' && o.provider !== 'gitlab')
          throw new ArgumentError(`--provider: "${o.provider}" is not github or gitlab`);
        const { json: asJson, limit, cursor, ...filter } = o;
        set({
          kind: 'hooks-deliveries',
          filter: Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)) as HookDeliveryQuery,
          ...(limit !== undefined ? { limit } : {}),
          ...(cursor !== undefined ? { cursor } : {}),
          json: !!asJson,
        });
      },
    );
  hooks
    .command('previews')
    .description('preview environments driven by webhooks: pull request, commit, state, environment')
    .option('--json', 'print JSON ({previews})')
    .action((o: { json?: boolean }) => set({ kind: 'hooks-previews', json: !!o.json }));
  hooks
    .command('approve')
    .description("approve a fork's pull request at a commit (default: the one waiting): it deploys")
    .argument('<provider>', 'github or gitlab')
    .argument('<repository>', 'owner/name')
    .argument('<number>', 'pull/merge request number')
    .option('--sha <sha>', 'the commit approved (default: the one waiting)')
    .option('--json', 'print the preview as JSON')
    .addHelpText('after', example('hutch hooks approve github acme/shop 42'))
    .action((provider: string, repository: string, number: string, o: { sha?: string; json?: boolean }) => {
      if (provider !== 'github' && provider !== 'gitlab') throw new ArgumentError(`provider: "${provider}" is not github or gitlab`);
      set({
        kind: 'hooks-approve',
        provider,
        repository,
        number: parseNumber(number, 'number', 1, 2 ** 31, true),
        ...(o.sha !== undefined ? { sha: o.sha } : {}),
        json: !!o.json,
      });
    });
  const projects = hooks.command('projects').description('repositories whose webhooks deploy environments, and the tenant that owns them');
  projects
    .command('add')
    .description('admins: register a repository (its deliveries deploy environments in --tenant)')
    .argument('<provider>', 'github or gitlab')
    .argument('<repository>', 'owner/name (GitLab: group/subgroup/name)')
    .option('--tenant <name>', 'the tenant owning its environments (default: yours)')
    .option('--clone-url <url>', "fetch from here instead of the payload's clone URL (a mirror, or a URL with credentials)")
    .option('--branch <name>', 'pushes to this branch deploy a branch environment (repeatable)', collectList)
    .option('--var <K=V>', 'interpolation variable for its environments, never for forks (repeatable)', collectKv('var'))
    .option('--json', 'print the project as JSON')
    .addHelpText(
      'after',
      example('hutch hooks projects add github acme/shop --tenant shop-team', 'hutch hooks projects add gitlab group/app --branch main'),
    )
    .action(
      (
        provider: string,
        repository: string,
        o: { tenant?: string; cloneUrl?: string; branch?: string[]; var?: Record<string, string>; json?: boolean },
      ) => {
        if (provider !== 'github' && provider !== 'gitlab') throw new ArgumentError(`provider: "${provider}" is not github or gitlab`);
        set({
          kind: 'hooks-project-add',
          provider,
          repository,
          ...(o.tenant !== undefined ? { tenant: o.tenant } : {}),
          ...(o.cloneUrl !== undefined ? { cloneUrl: o.cloneUrl } : {}),
          ...(o.branch ? { branches: o.branch } : {}),
          ...(o.var ? { variables: o.var } : {}),
          json: !!o.json,
        });
      },
    );
  projects
    .command('ls')
    .description('registered repositories')
    .option('--json', 'print JSON ({projects})')
    .action((o: { json?: boolean }) => set({ kind: 'hooks-project-ls', json: !!o.json }));
  projects
    .command('rm')
    .description('admins: unregister repositories (their environments stay until closed or deleted)')
    .argument('<id...>', 'project ids (prj-…)')
    .action((ids: string[]) => set({ kind: 'hooks-project-rm', ids }));

  const keys = program
    .command('keys')
    .description(
      "manage API keys: each belongs to a tenant and has a role (admin, member, read-only); works as Authorization: Bearer and as the E2B SDK's E2B_API_KEY",
    )
    .addHelpText(
      'after',
      example('hutch keys create ci', 'hutch keys create --tenant team-a --role member', 'hutch keys ls', 'hutch keys revoke $keyId'),
    );
  keys
    .command('create')
    .description('create an API key and print it (it is shown only once)')
    .argument('[name]', 'a name to recognise the key by (default <tenant>-<role>)')
    .option('--tenant <name>', "the tenant it belongs to (default: your key's; only admins name another)")
    .option('--role <role>', 'admin (every tenant), member (its tenant) or read-only (its tenant, reads only); default member', parseRole)
    .option('--e2b', 'shape the key as e2b_<hex>, for e2b SDKs older than 2.46 (they check the format)')
    .option('--json', 'print {id, name, tenant, role, key, ...} as JSON')
    .addHelpText(
      'after',
      example(
        'export E2B_API_KEY=$(hutch keys create my-agent --e2b)',
        'hutch keys create dashboards --tenant team-a --role read-only',
        'hutch keys create ci --max-sandboxes 20 --memory 8192',
      ),
    );
  addLimitOptions(keys.commands.at(-1)!).action(
    (name: string | undefined, o: LimitFlags & { tenant?: string; role?: ApiKeyRole; e2b?: boolean; json?: boolean }) =>
      set({
        kind: 'keys-create',
        ...(name !== undefined ? { name } : {}),
        ...(o.tenant !== undefined ? { tenant: o.tenant } : {}),
        ...(o.role !== undefined ? { role: o.role } : {}),
        ...(o.e2b ? { e2b: true } : {}),
        ...limitsOf(o),
        json: !!o.json,
      }),
  );
  addLimitOptions(
    keys
      .command('limits')
      .description("replace an API key's limits (flags not given become unlimited; --none lifts all)")
      .argument('<key-id>', 'the key id (hutch keys ls)')
      .option('--none', 'no limits at all'),
  )
    .addHelpText(
      'after',
      example('hutch keys limits $keyId --max-sandboxes 50 --creates-per-minute 120', 'hutch keys limits $keyId --none'),
    )
    .action((id: string, o: LimitFlags & { none?: boolean }) =>
      set({ kind: 'keys-limits', id, limits: o.none ? null : (limitsOf(o).limits ?? null) }),
    );
  keys
    .command('ls')
    .alias('list')
    .description("list API keys (never their secrets): your tenant's, or an admin's view of every tenant's")
    .option('--tenant <name>', 'admins: only this tenant')
    .option('--json', 'print JSON')
    .action((o: { tenant?: string; json?: boolean }) =>
      set({ kind: 'keys-ls', ...(o.tenant !== undefined ? { tenant: o.tenant } : {}), json: !!o.json }),
    );
  keys
    .command('revoke')
    .description('revoke API keys: they stop working at once and their open streams and terminals are closed')
    .argument('<key-id...>', 'key ids (hutch keys ls)')
    .addHelpText('after', example('hutch keys revoke $keyId'))
    .action((ids: string[]) => set({ kind: 'keys-revoke', ids }));

  const tenant = program
    .command('tenant')
    .alias('tenants')
    .description('manage tenants (admin keys only): the teams sharing this server, each with its own objects, keys and quotas')
    .addHelpText(
      'after',
      example(
        'hutch tenant create team-a --max-sandboxes 20 --cpu 16 --memory 32768 --disk 102400 --creates-per-minute 120',
        'hutch keys create --tenant team-a --role member',
        'hutch tenant ls',
        'hutch tenant quotas team-a --max-sandboxes 50',
        'hutch tenant rm team-a --force',
      ),
    );
  addLimitOptions(
    tenant
      .command('create')
      .description('create a tenant with quotas (flags not given: unlimited)')
      .argument('<name>', '1-63 of a-z, 0-9, -')
      .option('--json', 'print the tenant as JSON'),
    'the tenant',
  ).action((name: string, o: LimitFlags & { json?: boolean }) => set({ kind: 'tenant-create', name, ...quotasOf(o), json: !!o.json }));
  tenant
    .command('ls')
    .alias('list')
    .description('list tenants with their quotas and what they hold now')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => set({ kind: 'tenant-ls', json: !!o.json }));
  addLimitOptions(
    tenant
      .command('quotas')
      .description("replace a tenant's quotas (flags not given become unlimited; --none lifts all)")
      .argument('<name>', 'the tenant')
      .option('--none', 'no quotas at all')
      .option('--json', 'print the tenant as JSON'),
    'the tenant',
  ).action((name: string, o: LimitFlags & { none?: boolean; json?: boolean }) =>
    set({ kind: 'tenant-quotas', name, quotas: o.none ? null : (quotasOf(o).quotas ?? null), json: !!o.json }),
  );
  tenant
    .command('rm')
    .description('delete tenants and revoke their keys (refused while one owns sandboxes, volumes, snapshots or pools, unless --force)')
    .argument('<name...>', 'tenant names')
    .option('--force', 'also delete everything the tenant owns')
    .action((names: string[], o: { force?: boolean }) => set({ kind: 'tenant-rm', names, force: !!o.force }));

  const pool = program
    .command('pool')
    .description('manage warm pools: sandboxes booted ahead so that matching creates start in milliseconds')
    .addHelpText(
      'after',
      example(
        'hutch pool put py --template base --memory 512 --min 1 --target 4 --max 16',
        'hutch create --template base --memory 512   # claims a ready one ("warm")',
        'hutch pool ls',
        'hutch pool rm py',
      ),
    );
  pool
    .command('put')
    .description('create or replace a pool (creates with the same template, isolation, cpu, memory, pids and disk match it)')
    .argument('<name>', '1-63 of a-z, 0-9, -')
    .requiredOption('--template <name>', 'template or snapshot')
    .option('--isolation <tier>', 'container or gvisor (default container)')
    .option('--cpu <cores>', 'CPU cores (server default 1)', (v) => parseNumber(v, '--cpu', 0.1, 64, false))
    .option('--memory <MiB>', 'memory limit (server default 512)', (v) => parseNumber(v, '--memory', 16, 65_536, true))
    .option('--pids <n>', 'process limit (server default 512)', (v) => parseNumber(v, '--pids', 16, 32_768, true))
    .option('--disk <MiB>', 'disk quota (server default 2048)', (v) => parseNumber(v, '--disk', 64, 1024 * 1024, true))
    .option('--min <n>', 'ready sandboxes kept even when idle (default 0)', (v) => parseNumber(v, '--min', 0, 1000, true), 0)
    .requiredOption('--target <n>', 'ready sandboxes kept while there is demand', (v) => parseNumber(v, '--target', 0, 1000, true))
    .requiredOption('--max <n>', 'upper bound when demand is high', (v) => parseNumber(v, '--max', 0, 1000, true))
    .option('--json', 'print the pool as JSON')
    .action(
      (
        name: string,
        o: {
          template: string;
          isolation?: string;
          cpu?: number;
          memory?: number;
          pids?: number;
          disk?: number;
          min: number;
          target: number;
          max: number;
          json?: boolean;
        },
      ) =>
        set({
          kind: 'pool-put',
          name,
          spec: {
            template: o.template,
            ...(o.isolation ? { isolation: o.isolation } : {}),
            ...(o.cpu !== undefined ? { cpu: o.cpu } : {}),
            ...(o.memory !== undefined ? { memoryMiB: o.memory } : {}),
            ...(o.pids !== undefined ? { pids: o.pids } : {}),
            ...(o.disk !== undefined ? { diskMiB: o.disk } : {}),
            min: o.min,
            target: o.target,
            max: o.max,
          },
          json: !!o.json,
        }),
    );
  pool
    .command('ls')
    .alias('list')
    .description('list pools: ready, booting, what each aims for, hits and misses')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => set({ kind: 'pool-ls', json: !!o.json }));
  pool
    .command('rm')
    .description('remove pools and destroy their ready sandboxes')
    .argument('<name...>', 'pool names')
    .action((names: string[]) => set({ kind: 'pool-rm', names }));

  const volume = program
    .command('volume')
    .description("manage volumes: named, quota'd directories that outlive sandboxes")
    .addHelpText(
      'after',
      example('hutch volume create data --size 512', 'hutch run --volume data:/data -- ls /data', 'hutch volume rm data'),
    );
  volume
    .command('create')
    .description('create an empty volume and print its name')
    .argument('<name>', "1-63 of a-z, 0-9, '.', '_', '-'", (v) => parseVolumeName(v))
    .option('--size <MiB>', 'quota in MiB (server default: 1024)', (v) => parseNumber(v, '--size', 64, 1024 * 1024, true))
    .option('--label <K=V>', 'label (repeatable)', collectKv('label'))
    .option('--json', 'print the volume as JSON instead of its name')
    .addHelpText('after', example('hutch volume create data --size 512 --label owner=me', 'hutch create --volume data:/data'))
    .action((name: string, o: { size?: number; label?: Record<string, string>; json?: boolean }) =>
      set({
        kind: 'volume-create',
        name,
        ...(o.size !== undefined ? { sizeMiB: o.size } : {}),
        ...(o.label !== undefined ? { labels: o.label } : {}),
        json: !!o.json,
      }),
    );
  volume
    .command('ls')
    .alias('list')
    .description('list volumes with their use and the sandboxes that mount them')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch volume ls'))
    .action((o: { json?: boolean }) => set({ kind: 'volume-ls', json: !!o.json }));
  volume
    .command('rm')
    .description('delete volumes and their contents (refused while a sandbox mounts them)')
    .argument('<name...>', 'volume names')
    .addHelpText('after', example('hutch volume rm data'))
    .action((names: string[]) => set({ kind: 'volume-rm', names }));
  volume
    .command('snapshot')
    .description('snapshot a volume (kubernetes provider with VolumeSnapshot CRDs: a VolumeSnapshot of its claim)')
    .argument('<volume>', 'volume name', (v) => parseVolumeName(v))
    .argument('<name>', "snapshot name: 1-63 of a-z, 0-9, '.', '_', '-'", (v) => parseVolumeName(v))
    .option('--json', 'print the snapshot as JSON instead of its name')
    .addHelpText('after', example('hutch volume snapshot data nightly', 'hutch volume snapshots data'))
    .action((volumeName: string, name: string, o: { json?: boolean }) =>
      set({ kind: 'volume-snapshot', volume: volumeName, name, json: !!o.json }),
    );
  volume
    .command('snapshots')
    .description("list a volume's snapshots, oldest first")
    .argument('<volume>', 'volume name')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch volume snapshots data'))
    .action((volumeName: string, o: { json?: boolean }) => set({ kind: 'volume-snapshots', volume: volumeName, json: !!o.json }));
  volume
    .command('snapshot-rm')
    .description("delete a volume's snapshots")
    .argument('<volume>', 'volume name')
    .argument('<name...>', 'snapshot names')
    .addHelpText('after', example('hutch volume snapshot-rm data nightly'))
    .action((volumeName: string, names: string[]) => set({ kind: 'volume-snapshot-rm', volume: volumeName, names }));

  const environment = program
    .command('env')
    .description('preview environments: a Compose project as sandboxes on a private network of their own')
    .addHelpText(
      'after',
      example('hutch env up ./my-app', 'hutch env ls', 'hutch env logs env-0123456789abcdef api', 'hutch env down env-0123456789abcdef'),
    );
  environment
    .command('up')
    .description('create an environment from a Compose project (uploads the directory, or --git) and follow it until it runs')
    .argument('[dir]', 'project directory with compose.yaml or docker-compose.yml', '.')
    .option('--name <name>', "name shown in listings (default: the Compose file's name:)")
    .option('--var <K=V>', 'interpolation variable for the Compose files (repeatable)', collectKv('var'))
    .option('--profile <name>', 'enable a Compose profile (repeatable)', collectList)
    .option('--git <url>', 'fetch the project with git on the server instead of uploading [dir]')
    .option('--ref <ref>', 'branch, tag or commit for --git', 'main')
    .option('--pr <number>', 'pull request number (PREVIEW_PR_NUMBER)', (v) => parseNumber(v, '--pr', 1, 2 ** 31, true))
    .option(
      '--git-sha <sha>',
      'commit of the uploaded directory (PREVIEW_GIT_SHA; default: git rev-parse HEAD in [dir] when it is a checkout)',
    )
    .option('--keep', 'pin it: no TTL applies, no janitor removes it')
    .option('--no-wait', 'answer once the project is accepted instead of waiting for the services')
    .option('--json', 'print the environment as JSON (progress still goes to stderr)')
    .addHelpText(
      'after',
      example(
        'hutch env up',
        'hutch env up ./app --var DB_PASSWORD=secret --profile debug',
        'hutch env up --git https://github.com/acme/shop.git --ref feature-x --pr 42',
      ),
    )
    .action(
      (
        dir: string,
        o: {
          name?: string;
          var?: Record<string, string>;
          profile?: string[];
          git?: string;
          ref: string;
          pr?: number;
          gitSha?: string;
          keep?: boolean;
          wait: boolean;
          json?: boolean;
        },
      ) =>
        set({
          kind: 'env-up',
          dir,
          ...(o.git !== undefined ? { git: { url: o.git, ref: o.ref } } : {}),
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(o.var !== undefined ? { variables: o.var } : {}),
          ...(o.profile !== undefined ? { profiles: o.profile } : {}),
          ...(o.pr !== undefined ? { prNumber: o.pr } : {}),
          ...(o.gitSha !== undefined ? { gitSha: o.gitSha } : {}),
          ...(o.keep ? { keep: true } : {}),
          wait: o.wait,
          json: !!o.json,
        }),
    );
  environment
    .command('ls')
    .alias('list')
    .description('list environments with the state and URL of each service')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch env ls'))
    .action((o: { json?: boolean }) => set({ kind: 'env-ls', json: !!o.json }));
  environment
    .command('down')
    .alias('rm')
    .description('destroy environments: their sandboxes, the volumes they created and their network')
    .argument('<env...>', 'environment ids')
    .addHelpText('after', example('hutch env down env-0123456789abcdef'))
    .action((ids: string[]) => set({ kind: 'env-down', ids }));
  environment
    .command('logs')
    .description("print the last lines of each service's output (or one service's)")
    .argument('<env>', 'environment id')
    .argument('[service]', 'one service')
    .option('--tail <lines>', 'lines per service (default 200)', (v) => parseNumber(v, '--tail', 1, 5000, true))
    .addHelpText('after', example('hutch env logs env-0123456789abcdef', 'hutch env logs env-0123456789abcdef api --tail 50'))
    .action((id: string, service: string | undefined, o: { tail?: number }) =>
      set({ kind: 'env-logs', id, ...(service !== undefined ? { service } : {}), ...(o.tail !== undefined ? { tail: o.tail } : {}) }),
    );
  environment
    .command('seeds')
    .description('list the golden seed snapshots of your projects (x-hutch.seed strategy snapshot)')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch env seeds'))
    .action((o: { json?: boolean }) => set({ kind: 'env-seeds', json: !!o.json }));
  environment
    .command('reseed')
    .description("forget a project's seed snapshots: the next environment runs its seed job again")
    .argument('<project>', 'the project (a repository name, or the Compose name)')
    .option('--base <ref>', 'only this base branch')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch env reseed shop', 'hutch env reseed shop --base main'))
    .action((project: string, o: { base?: string; json?: boolean }) =>
      set({ kind: 'env-reseed', project, ...(o.base !== undefined ? { baseRef: o.base } : {}), json: !!o.json }),
    );
  environment
    .command('keep')
    .description('pin an environment: no idle or delete TTL applies and no janitor removes it (--off: unpin)')
    .argument('<env>', 'environment id')
    .option('--off', 'unpin it (its TTLs apply again, counted from now)')
    .option('--json', 'print the environment as JSON')
    .addHelpText('after', example('hutch env keep env-0123456789abcdef', 'hutch env keep env-0123456789abcdef --off'))
    .action((id: string, o: { off?: boolean; json?: boolean }) => set({ kind: 'env-update', id, keep: !o.off, json: !!o.json }));
  environment
    .command('ttl')
    .description("set an environment's TTLs, counted from its last deploy, wake or request: idle → sleep, delete → destroy")
    .argument('<env>', 'environment id')
    .option('--idle <duration>', "sleep after this long without activity (30m, 2h; off; default: the server's)")
    .option('--delete <duration>', "destroy after this long without activity (72h, 7d; off; default: the server's)")
    .option('--json', 'print the environment as JSON')
    .addHelpText(
      'after',
      example(
        'hutch env ttl env-0123456789abcdef --idle 30m --delete 3d',
        'hutch env ttl env-0123456789abcdef --idle off',
        'hutch env ttl env-0123456789abcdef --idle default',
      ),
    )
    .action((id: string, o: { idle?: string; delete?: string; json?: boolean }) => {
      const value = (v: string): string | null => (v === 'default' ? null : v);
      if (o.idle === undefined && o.delete === undefined) throw new ArgumentError('hutch env ttl: give --idle, --delete or both');
      set({
        kind: 'env-update',
        id,
        ttl: { ...(o.idle !== undefined ? { idle: value(o.idle) } : {}), ...(o.delete !== undefined ? { delete: value(o.delete) } : {}) },
        json: !!o.json,
      });
    });

  const snapshot = program
    .command('snapshot')
    .usage('<id> [--label K=V]... [--json] | ls [--json] | rm <snap-id...>')
    .description("snapshot a sandbox's files (`hutch snapshot <id>` prints the snapshot id), list or delete snapshots")
    .addHelpText(
      'after',
      example(
        'snap=$(hutch snapshot $id --label step=1)',
        'hutch run --template $snap -- ls /home/user',
        'hutch snapshot ls',
        'hutch snapshot rm $snap',
      ),
    );
  snapshot
    .command('create', { isDefault: true })
    .description(
      "snapshot a sandbox's files (--memory: its memory too, gVisor) and print the snapshot id; the default: `hutch snapshot <id>`",
    )
    .argument('<id>', 'sandbox id (running, paused or stopped)', (v) => parseSandboxIdOrVerb(v, 'snapshot', SNAPSHOT_VERBS))
    .option('--label <K=V>', 'snapshot metadata (repeatable)', collectKv('label'))
    .option('--memory', "keep the memory too (gVisor, egress none): sandboxes from it continue this one's processes")
    .option('--json', 'print the snapshot as JSON instead of its id')
    .addHelpText(
      'after',
      example('snap=$(hutch snapshot $id)', 'hutch create --template $snap', 'hutch snapshot $id --label step=1 --json'),
    )
    .action((id: string, o: { label?: Record<string, string>; memory?: boolean; json?: boolean }) =>
      set({
        kind: 'snapshot',
        id,
        ...(o.label !== undefined ? { metadata: o.label } : {}),
        ...(o.memory ? { memory: true } : {}),
        json: !!o.json,
      }),
    );
  snapshot
    .command('ls')
    .alias('list')
    .description('list snapshots')
    .option('--json', 'print JSON')
    .addHelpText('after', example('hutch snapshot ls', 'hutch snapshot ls --json'))
    .action((o: { json?: boolean }) => set({ kind: 'snapshot-ls', json: !!o.json }));
  snapshot
    .command('rm')
    .description('delete snapshots (refused while a sandbox created from one exists; `hutch gc` then frees their layers)')
    .argument('<snap-id...>', 'snapshot ids')
    .addHelpText('after', example('hutch snapshot rm $snap', 'hutch gc'))
    .action((ids: string[]) => set({ kind: 'snapshot-rm', ids }));

  program
    .command('fork')
    .description('snapshot a sandbox and create sandboxes from the snapshot with its settings; prints the new ids, one per line')
    .argument('<id>', 'sandbox id')
    .option('--count <n>', 'how many sandboxes to create (default 1)', (v) => parseNumber(v, '--count', 1, 64, true))
    .option('--metadata <K=V>', "metadata of the new sandboxes, over the source's (repeatable)", collectKv('metadata'))
    .option('--memory', "fork with memory (gVisor, egress none): the forks continue this sandbox's processes")
    .option('--json', 'print {snapshot, sandboxes} as JSON')
    .addHelpText('after', example('hutch fork $id --count 4', 'for f in $(hutch fork $id --count 2); do hutch exec $f -- ls; done'))
    .action((id: string, o: { count?: number; metadata?: Record<string, string>; memory?: boolean; json?: boolean }) =>
      set({
        kind: 'fork',
        id,
        ...(o.count !== undefined ? { count: o.count } : {}),
        ...(o.memory ? { memory: true } : {}),
        ...(o.metadata !== undefined ? { metadata: o.metadata } : {}),
        json: !!o.json,
      }),
    );

  program
    .command('gc')
    .description('remove snapshot layers no snapshot references any more, and the stored files only they used')
    .option('--dry-run', 'only report what would be removed')
    .option('--json', 'print {layers, objects, bytes, staging, dryRun} as JSON')
    .addHelpText('after', example('hutch snapshot rm $snap && hutch gc --dry-run', 'hutch gc'))
    .action((o: { dryRun?: boolean; json?: boolean }) => set({ kind: 'gc', dryRun: !!o.dryRun, json: !!o.json }));

  program
    .command('url')
    .description('print the URL of a port a process listens on inside a sandbox (signed when the port is private)')
    .argument('<id>', 'sandbox id')
    .argument('<port>', 'port inside the sandbox', (v) => parseNumber(v, 'port', 1, 65_535, true))
    .option('--expires <seconds>', 'lifetime of a signed URL (default 3600, at most 7 days)', (v) =>
      parseNumber(v, '--expires', 1, 7 * 24 * 3600, true),
    )
    .option('--json', 'print the URL, expiry and access headers as JSON')
    .addHelpText('after', example("hutch exec $id -- 'python3 -m http.server 8000 &'", 'curl "$(hutch url $id 8000)"'))
    .action((id: string, port: number, o: { expires?: number; json?: boolean }) =>
      set({ kind: 'url', id, port, ...(o.expires !== undefined ? { expiresIn: o.expires } : {}), json: !!o.json }),
    );

  program
    .command('network')
    .description("show a sandbox's network (egress policy, addresses, recent DNS queries) or change it live")
    .argument('<id>', 'sandbox id')
    .option('--egress <policy>', 'new egress: none or open (use --allow/--deny for an allowlist)')
    .option('--allow <entry>', 'allowlist entry: CIDR, IP or domain (repeatable; replaces the policy)', collectList)
    .option('--deny <entry>', 'deny entry within an allowlist (repeatable)', collectList)
    .option('--public', 'make every port reachable without a token')
    .option('--private', 'require a token or the API key for ports (default)')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      example('hutch network $id', 'hutch network $id --allow pypi.org --allow "*.pythonhosted.org"', 'hutch network $id --egress none'),
    )
    .action((id: string, o: EgressFlags & { public?: boolean; private?: boolean; json?: boolean }) => {
      if (o.public && o.private) throw new ArgumentError('--public and --private exclude each other');
      const egress = egressFromFlags(o);
      set({
        kind: 'network',
        id,
        ...(egress !== undefined ? { egress } : {}),
        ...(o.public ? { public: true } : o.private ? { public: false } : {}),
        json: !!o.json,
      });
    });

  const secret = program
    .command('secret')
    .alias('secrets')
    .description("manage your tenant's secrets: stored encrypted, never shown again; sandboxes get them with --secret")
    .addHelpText(
      'after',
      example(
        'printf %s "$GITHUB_TOKEN" | hutch secret put GITHUB_TOKEN',
        'hutch secret put db-password --from-file ./db-password.txt',
        'hutch create --secret GITHUB_TOKEN --secret db-password=file:/run/secrets/db',
        'hutch secret ls',
        'hutch secret rm db-password',
      ),
    );
  secret
    .command('put')
    .description(
      'create or replace a secret (a UTF-8 string, at most 64 KiB) and print its name; the value comes from --value, --from-file, or stdin (one trailing newline dropped)',
    )
    .argument('<name>', "1-64 of A-Z, a-z, 0-9, '_', '-'; a letter first", (v) => parseSecretName(v))
    .option('--value <value>', 'the value (visible in your shell history and process list: prefer stdin or --from-file)')
    .option('--from-file <file>', 'read the value from a file (as is)')
    .option('--tenant <name>', 'admins: the tenant it belongs to')
    .option('--json', 'print {name, tenant, sizeBytes, createdAt, updatedAt, created} as JSON')
    .addHelpText('after', example('hutch secret put API_TOKEN < token.txt', 'hutch secret put tls-key --from-file key.pem --json'))
    .action((name: string, o: { value?: string; fromFile?: string; tenant?: string; json?: boolean }) => {
      if (o.value !== undefined && o.fromFile !== undefined) throw new ArgumentError('--value and --from-file exclude each other');
      set({
        kind: 'secret-put',
        name,
        source:
          o.value !== undefined
            ? { kind: 'value', value: o.value }
            : o.fromFile !== undefined
              ? { kind: 'file', path: o.fromFile }
              : { kind: 'stdin' },
        ...(o.tenant !== undefined ? { tenant: o.tenant } : {}),
        json: !!o.json,
      });
    });
  secret
    .command('ls')
    .alias('list')
    .description("list secrets: names, sizes and times, never values (admins: every tenant's)")
    .option('--tenant <name>', 'admins: only this tenant')
    .option('--json', 'print JSON')
    .action((o: { tenant?: string; json?: boolean }) =>
      set({ kind: 'secret-ls', ...(o.tenant !== undefined ? { tenant: o.tenant } : {}), json: !!o.json }),
    );
  secret
    .command('rm')
    .description('delete secrets (running sandboxes keep what they were given; stopped ones naming them cannot start again)')
    .argument('<name...>', 'secret names')
    .option('--tenant <name>', "admins: another tenant's")
    .action((names: string[], o: { tenant?: string }) =>
      set({ kind: 'secret-rm', names, ...(o.tenant !== undefined ? { tenant: o.tenant } : {}) }),
    );

  return program;
}

interface EgressFlags {
  egress?: string;
  allow?: string[];
  deny?: string[];
}

function egressFromFlags(o: EgressFlags): SandboxEgress | undefined {
  if (o.allow || o.deny) {
    if (o.egress !== undefined) throw new ArgumentError('--egress cannot be combined with --allow/--deny (they form an allowlist)');
    return { allow: o.allow ?? [], deny: o.deny ?? [] };
  }
  if (o.egress === undefined) return undefined;
  if (o.egress !== 'none' && o.egress !== 'open')
    throw new ArgumentError(`--egress: "${o.egress}" is not none or open (use --allow for an allowlist)`);
  return o.egress;
}

/** The words `hutch snapshot` takes as subcommands rather than as a sandbox id. */
const SNAPSHOT_VERBS = ['create', 'ls', 'list', 'rm'] as const;

function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `--sandbox-log-cap`: KiB, 0 (off) or at least 16. */
function parseSandboxLogCap(v: string): number {
  const n = parseNumber(v, '--sandbox-log-cap', 0, 16 * 1024 * 1024, true);
  if (n !== 0 && n < 16) throw new ArgumentError('--sandbox-log-cap: 0 (no sandbox logs) or at least 16 (KiB)');
  return n;
}

function example(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

function collectKv(what: 'env' | 'metadata' | 'label' | 'var') {
  return (value: string, previous: Record<string, string> | undefined): Record<string, string> => {
    const [k, v] = parseKeyValue(value, what);
    return { ...(previous ?? {}), [k]: v };
  };
}

interface CreateFlags extends EgressFlags {
  public?: boolean;
  template?: string;
  isolation?: string;
  cpu?: number;
  memory?: number;
  pids?: number;
  timeout?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  disk?: number;
  volume?: VolumeMount[];
  secret?: SecretRef[];
}

function collectSecret(value: string, previous: SecretRef[] | undefined): SecretRef[] {
  return [...(previous ?? []), parseSecretRef(value)];
}

function collectVolume(value: string, previous: VolumeMount[] | undefined): VolumeMount[] {
  return [...(previous ?? []), parseVolumeMount(value)];
}

interface LimitFlags {
  maxSandboxes?: number;
  cpu?: number;
  memory?: number;
  disk?: number;
  createsPerMinute?: number;
}

function addLimitOptions(cmd: Command, who = 'the key'): Command {
  const storage = who === 'the tenant' ? 'disks of its sandboxes plus its volumes' : 'sum of disk quotas of its sandboxes';
  return cmd
    .option('--max-sandboxes <n>', `sandboxes ${who} may have at once`, (v) => parseNumber(v, '--max-sandboxes', 0, 1_000_000, true))
    .option('--cpu <cores>', 'sum of cpu of its running sandboxes', (v) => parseNumber(v, '--cpu', 0, 100_000, false))
    .option('--memory <MiB>', 'sum of memory of its running sandboxes', (v) => parseNumber(v, '--memory', 0, 1 << 30, true))
    .option('--disk <MiB>', storage, (v) => parseNumber(v, '--disk', 0, 1 << 30, true))
    .option('--creates-per-minute <n>', 'creates per minute', (v) => parseNumber(v, '--creates-per-minute', 0, 1_000_000, true));
}

function quotasOf(o: LimitFlags): { quotas?: TenantQuotas } {
  const { limits } = limitsOf(o);
  return limits ? { quotas: limits } : {};
}

const ROLES: readonly ApiKeyRole[] = ['admin', 'member', 'read-only'];

function parseRole(value: string): ApiKeyRole {
  if (!(ROLES as readonly string[]).includes(value)) throw new ArgumentError(`--role: "${value}" is not one of ${ROLES.join(', ')}`);
  return value as ApiKeyRole;
}

function limitsOf(o: LimitFlags): { limits?: ApiKeyLimits } {
  const limits: ApiKeyLimits = {
    ...(o.maxSandboxes !== undefined ? { maxSandboxes: o.maxSandboxes } : {}),
    ...(o.cpu !== undefined ? { cpu: o.cpu } : {}),
    ...(o.memory !== undefined ? { memoryMiB: o.memory } : {}),
    ...(o.disk !== undefined ? { diskMiB: o.disk } : {}),
    ...(o.createsPerMinute !== undefined ? { createsPerMinute: o.createsPerMinute } : {}),
  };
  return Object.keys(limits).length > 0 ? { limits } : {};
}

/** `--overcommit 4` or `--overcommit cpu=100,memory=2`. */
function parseWarmPoolMode(text: string): 'pods' | 'agent-sandbox' {
  if (text !== 'pods' && text !== 'agent-sandbox')
    throw new ArgumentError(`--kubernetes-warm-pools: "${text}" is not one of pods, agent-sandbox`);
  return text;
}

function parseProvider(text: string): 'local' | 'kubernetes' {
  if (text !== 'local' && text !== 'kubernetes') throw new ArgumentError(`--provider: "${text}" is not one of local, kubernetes`);
  return text;
}

function parseOvercommit(text: string): Overcommit {
  const names: Record<string, keyof Overcommit> = { cpu: 'cpu', memory: 'memoryMiB', pids: 'pids', disk: 'diskMiB' };
  const ratio = (v: string, what: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > 10_000) throw new ArgumentError(`--overcommit: ${what} "${v}" is not a ratio above 0`);
    return n;
  };
  if (!text.includes('=')) {
    const r = ratio(text, 'ratio');
    return { cpu: r, memoryMiB: r, pids: r, diskMiB: r };
  }
  const out: Overcommit = {};
  for (const part of text.split(',')) {
    const [k, v] = part.split('=');
    const field = names[(k ?? '').trim()];
    if (!field || v === undefined) throw new ArgumentError(`--overcommit: "${part}" is not cpu=N, memory=N, pids=N or disk=N`);
    out[field] = ratio(v.trim(), k!.trim());
  }
  return out;
}

function addCreateOptions(cmd: Command): Command {
  return cmd
    .option('--template <name>', 'template (server default: base)')
    .option('--isolation <tier>', 'isolation tier: container, gvisor (server default: container)')
    .option('--cpu <cores>', 'CPU cores, fractional allowed', (v) => parseNumber(v, '--cpu', 0.1, 64, false))
    .option('--memory <MiB>', 'memory limit in MiB', (v) => parseNumber(v, '--memory', 16, 65_536, true))
    .option('--pids <n>', 'process limit', (v) => parseNumber(v, '--pids', 16, 32_768, true))
    .option('--timeout <seconds>', 'sandbox lifetime in seconds (server default: 300; none with --persistent)', (v) =>
      parseNumber(v, '--timeout', 1, 86_400, true),
    )
    .addOption(new Option('--env <K=V>', 'environment variable of the sandbox (repeatable)').argParser(collectKv('env')))
    .option('--metadata <K=V>', 'metadata label (repeatable)', collectKv('metadata'))
    .option('--egress <policy>', 'network egress: none (default) or open')
    .option('--allow <entry>', 'egress allowlist entry: CIDR, IP or domain like pypi.org or *.example.com (repeatable)', collectList)
    .option('--deny <entry>', 'deny entry within the allowlist (repeatable)', collectList)
    .option('--public', 'ports reachable through the ingress without a token')
    .option('--disk <MiB>', 'disk quota of the sandbox filesystem in MiB (server default: 2048)', (v) =>
      parseNumber(v, '--disk', 64, 1024 * 1024, true),
    )
    .option('--volume <name:/path[:ro]>', 'mount an existing volume (repeatable; :ro for read-only)', collectVolume)
    .option(
      '--secret <NAME=env:VAR|NAME=file:/run/secrets/PATH|NAME=header:HOST[:HEADER[:FORMAT]]>',
      'give the sandbox a stored secret (repeatable): as a variable, a 0400 file on /run/secrets, or a header the egress proxy adds to plain-HTTP requests to HOST (default Authorization: Bearer {}); NAME alone is NAME=env:NAME',
      collectSecret,
    );
}

interface LifecycleFlags {
  persistent?: boolean;
  onTimeout?: OnTimeout;
  idleTimeout?: number;
  autoDelete?: number;
  autoResume?: boolean;
}

/** Options that only make sense for a sandbox that outlives the command (create, not run). */
function addLifecycleOptions(cmd: Command): Command {
  return cmd
    .option('--persistent', 'no forced lifetime (no --timeout unless given); stop/start keep its files')
    .option('--on-timeout <action>', 'at the timeout or idle timeout: delete (default) or pause', parseOnTimeout)
    .option('--idle-timeout <seconds>', 'apply --on-timeout after this many seconds without API activity', (v) =>
      parseNumber(v, '--idle-timeout', 1, 30 * 86_400, true),
    )
    .option('--auto-delete <seconds>', 'delete it this long after it stops or pauses (default: 1 day; never with --persistent)', (v) =>
      parseNumber(v, '--auto-delete', 1, 365 * 86_400, true),
    )
    .option('--auto-resume', 'resume it when paused and a call needs it running (exec, files, …)');
}

function lifecycleParams(o: LifecycleFlags): SandboxCreateParams {
  const params: SandboxCreateParams = {};
  if (o.persistent) params.persistent = true;
  if (o.onTimeout !== undefined) params.onTimeout = o.onTimeout;
  if (o.idleTimeout !== undefined) params.idleTimeoutSeconds = o.idleTimeout;
  if (o.autoDelete !== undefined) params.autoDeleteAfterSeconds = o.autoDelete;
  if (o.autoResume) params.autoResume = true;
  return params;
}

function createParams(o: CreateFlags): SandboxCreateParams {
  const params: SandboxCreateParams = {};
  if (o.template !== undefined) params.template = o.template;
  if (o.isolation !== undefined) params.isolation = o.isolation;
  if (o.cpu !== undefined) params.cpu = o.cpu;
  if (o.memory !== undefined) params.memoryMiB = o.memory;
  if (o.pids !== undefined) params.pids = o.pids;
  if (o.timeout !== undefined) params.timeoutSeconds = o.timeout;
  if (o.env !== undefined) params.env = o.env;
  if (o.metadata !== undefined) params.metadata = o.metadata;
  if (o.disk !== undefined) params.diskMiB = o.disk;
  if (o.secret !== undefined) params.secrets = o.secret;
  if (o.volume !== undefined) {
    const paths = new Set<string>();
    for (const v of o.volume) {
      if (paths.has(v.path)) throw new ArgumentError(`--volume: two volumes mount at ${v.path}`);
      paths.add(v.path);
    }
    params.volumes = o.volume;
  }
  const egress = egressFromFlags(o);
  if (egress !== undefined || o.public)
    params.network = { ...(egress !== undefined ? { egress } : {}), ...(o.public ? { public: true } : {}) };
  return params;
}

interface ExecFlags {
  cwd?: string;
  user?: string;
  timeoutMs?: number;
  stdin?: boolean;
  keepAlive?: boolean;
}

function addExecOptions(cmd: Command): Command {
  return cmd
    .option('--cwd <dir>', "working directory (default: the user's home)")
    .option('--user <user>', 'user to run as (default: the template default user)')
    .option('--timeout-ms <ms>', 'kill the command after this many ms (default: no limit)', (v) =>
      parseNumber(v, '--timeout-ms', 1, 86_400_000, true),
    )
    .option('--stdin', 'forward local stdin (default: when stdin is not a terminal)')
    .option('--no-stdin', 'do not forward local stdin')
    .option(
      '--keep-alive',
      "the command counts as activity while it runs, even once this client stops waiting (the sandbox's idle timeout waits for it)",
    );
}

function commandSpec(words: string[], o: ExecFlags, env?: Record<string, string>): CommandSpec {
  const spec: CommandSpec = { cmd: commandFromWords(words) };
  if (o.cwd !== undefined) spec.cwd = o.cwd;
  if (o.user !== undefined) spec.user = o.user;
  if (env !== undefined) spec.env = env;
  if (o.timeoutMs !== undefined) spec.timeoutMs = o.timeoutMs;
  if (o.stdin !== undefined) spec.stdin = o.stdin;
  if (o.keepAlive) spec.keepAlive = true;
  return spec;
}

function parseAgentAccess(value: string): 'pod-ip' | 'api-server' | 'auto' {
  if (value === 'pod-ip' || value === 'api-server' || value === 'auto') return value;
  throw new ArgumentError(`--kubernetes-agent-access: expected pod-ip, api-server or auto, got "${value}"`);
}

function parseContainerRuntime(value: string): 'auto' | 'runc' | 'crun' {
  if (value === 'auto' || value === 'runc' || value === 'crun') return value;
  throw new ArgumentError(`--container-runtime: expected auto, crun or runc, got "${value}"`);
}
