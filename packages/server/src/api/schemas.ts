import { z } from 'zod';
import { ISOLATION_TIERS, SANDBOX_STATES } from '../core/sandbox.js';
import { SIGNALS } from '../core/process-service.js';
import { ROLES } from '../core/tenancy.js';

/**
 * Request and response schemas. They validate requests at the edge and generate the OpenAPI
 * document (GET /openapi.json), so the contract and the checks cannot drift apart.
 */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const EnvMap = z
  .record(
    z.string().regex(ENV_NAME, 'environment variable names must match [A-Za-z_][A-Za-z0-9_]*').max(256),
    z
      .string()
      .max(128 * 1024)
      .refine((v) => !v.includes('\0'), 'must not contain NUL'),
  )
  .refine((m) => Object.keys(m).length <= 256, 'at most 256 variables');

export const Metadata = z
  .record(z.string().min(1).max(128), z.string().max(1024))
  .refine((m) => Object.keys(m).length <= 64, 'at most 64 keys');

const EgressRules = z
  .object({
    allow: z.array(z.string().max(253)).max(256).optional(),
    deny: z.array(z.string().max(253)).max(256).optional(),
  })
  .strict();
/** Shapes only; entries (CIDR, IP, domain) are validated by core/network.ts with field names. */
export const EgressPolicy = z.union([z.enum(['none', 'open']), EgressRules]);
export const NetworkSettingsBody = z
  .object({
    egress: EgressPolicy.optional(),
    public: z.boolean().optional(),
    publicPorts: z.array(z.number().int().min(1).max(65535)).max(64).optional(),
  })
  .strict();
const NetworkSettings = z.object({
  egress: z.union([z.enum(['none', 'open']), z.object({ allow: z.array(z.string()), deny: z.array(z.string()) })]),
  public: z.boolean(),
  publicPorts: z.array(z.number()),
});

export const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const VolumeName = z.string().regex(VOLUME_NAME, 'volume names are 1-63 lowercase letters, digits, ".", "_" and "-"');
const VolumeMountBody = z
  .object({
    name: VolumeName,
    path: z.string().min(2).max(1024),
    readOnly: z.boolean().optional(),
  })
  .strict();

/**
 * A sandbox's use of a secret: exactly one of env, file or injectHeader (the shapes only; names,
 * paths and collisions are checked by core/secrets.ts, which names the field in its errors).
 */
const SecretRefBody = z
  .object({
    name: z.string().max(64),
    env: z.string().max(256).optional(),
    file: z.string().max(1024).optional(),
    injectHeader: z
      .object({ host: z.string().max(253), header: z.string().max(64), format: z.string().max(256).optional() })
      .strict()
      .optional(),
  })
  .strict();
const SecretRefView = z.object({
  name: z.string(),
  env: z.string().optional(),
  file: z.string().optional(),
  injectHeader: z.object({ host: z.string(), header: z.string(), format: z.string() }).optional(),
});

/** What a sandbox is made of: shared by create and by warm pools (which must match creates). */
const SandboxShape = {
  template: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[a-z0-9][a-z0-9._-]*$/, 'template names are lowercase letters, digits, ".", "_" and "-"')
    .optional(),
  isolation: z.enum(ISOLATION_TIERS).optional(),
  cpu: z.number().min(0.1).max(64).optional(),
  memoryMiB: z.number().int().min(16).max(65536).optional(),
  pids: z.number().int().min(16).max(32768).optional(),
  diskMiB: z
    .number()
    .int()
    .min(64)
    .max(1024 * 1024)
    .optional(),
};

export const CreateSandboxBody = z
  .object({
    ...SandboxShape,
    timeoutSeconds: z.number().int().min(1).max(86400).optional(),
    env: EnvMap.optional(),
    metadata: Metadata.optional(),
    idempotencyKey: z.string().min(1).max(256).optional(),
    network: NetworkSettingsBody.optional(),
    persistent: z.boolean().optional(),
    onTimeout: z.enum(['delete', 'pause']).optional(),
    idleTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86400)
      .optional(),
    autoDeleteAfterSeconds: z
      .number()
      .int()
      .min(1)
      .max(365 * 86400)
      .optional(),
    autoResume: z.boolean().optional(),
    volumes: z.array(VolumeMountBody).max(16).optional(),
    secrets: z.array(SecretRefBody).max(32).optional(),
  })
  .strict();

const Lifecycle = z.object({
  persistent: z.boolean(),
  onTimeout: z.enum(['delete', 'pause']),
  idleTimeoutSeconds: z.number().nullable(),
  autoDeleteAfterSeconds: z.number().nullable(),
  autoResume: z.boolean(),
});

export const TenantName = z
  .string()
  .max(63)
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'tenant names are 1-63 lowercase letters, digits and "-"');
/** `?tenant=`: an admin narrows a list to one tenant, or names the tenant of a named object (volume, pool). */
export const TenantQuery = z.object({ tenant: TenantName.optional() }).strict();

export const Sandbox = z.object({
  id: z.string(),
  tenant: z.string(),
  state: z.enum(SANDBOX_STATES),
  template: z.string(),
  isolation: z.enum(ISOLATION_TIERS),
  cpu: z.number(),
  memoryMiB: z.number(),
  pids: z.number(),
  timeoutSeconds: z.number().nullable(),
  env: z.record(z.string(), z.string()),
  metadata: z.record(z.string(), z.string()),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  error: z.string().nullable(),
  network: NetworkSettings,
  diskMiB: z.number(),
  volumes: z.array(z.object({ name: z.string(), path: z.string(), readOnly: z.boolean() })),
  lifecycle: Lifecycle,
  pauseMode: z.enum(['memory', 'filesystem']).nullable(),
  stateChangedAt: z.string().nullable(),
  /** References only: a secret's value is never part of a sandbox. */
  secrets: z.array(SecretRefView),
  /** Create answers only: whether a warm pool served it (true) or it was booted cold (false). */
  warm: z.boolean().optional(),
});

const PoolSpecFields = {
  ...SandboxShape,
  template: SandboxShape.template.unwrap(),
  min: z.number().int().min(0).max(1000).default(0),
  max: z.number().int().min(0).max(1000),
  target: z.number().int().min(0).max(1000),
};
export const PutPoolBody = z.object(PoolSpecFields).strict();
export const PoolView = z.object({
  tenant: z.string(),
  name: z.string(),
  spec: z.object({
    template: z.string(),
    isolation: z.enum(ISOLATION_TIERS),
    cpu: z.number(),
    memoryMiB: z.number(),
    pids: z.number(),
    diskMiB: z.number(),
    min: z.number(),
    max: z.number(),
    target: z.number(),
  }),
  size: z.number(),
  starting: z.number(),
  desired: z.number(),
  hits: z.number(),
  misses: z.number(),
  demandPerMinute: z.number(),
  refillPerMinute: z.number(),
  lastFillMs: z.number().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const NetworkState = NetworkSettings.extend({
  ipv4: z.string().nullable(),
  ipv6: z.string().nullable(),
  dns: z.string().nullable(),
  dnsLog: z.array(z.object({ name: z.string(), type: z.string(), verdict: z.string(), at: z.string() })),
  /** Connections cut by the change (PUT only). */
  cut: z.number().optional(),
});

export const PortUrlQuery = z
  .object({
    port: z.coerce.number().int().min(1).max(65535),
    expiresIn: z.coerce
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .optional(),
  })
  .strict();

export const PortUrl = z.object({
  url: z.string(),
  port: z.number(),
  public: z.boolean(),
  expiresAt: z.string().nullable(),
  headers: z.record(z.string(), z.string()),
});

export const SandboxList = z.object({ sandboxes: z.array(Sandbox) });

/**
 * Sandbox ids are checked here, at the edge, for every route that names one: some services (stdin,
 * close-stdin, resize) go straight to the agent, whose socket path is built from the id, so an id
 * like `../../x` must never get past validation.
 */
const SandboxId = z
  .string()
  .max(64)
  .regex(/^[a-z0-9]{20}$/, 'not a sandbox id (20 characters a-z, 0-9)');

export const IdParams = z.object({ id: SandboxId });

export const ListSandboxesQuery = z
  .object({ state: z.string().max(200).optional(), tenant: TenantName.optional() })
  .catchall(z.string().max(1024));

export const TimeoutBody = z.object({ timeoutSeconds: z.number().int().min(1).max(86400) }).strict();

const Command = z.union([
  z
    .string()
    .min(1)
    .max(128 * 1024)
    .refine((v) => !v.includes('\0'), 'must not contain NUL'),
  z
    .array(
      z
        .string()
        .max(128 * 1024)
        .refine((v) => !v.includes('\0'), 'must not contain NUL'),
    )
    .min(1)
    .max(4096),
]);
const Cwd = z
  .string()
  .min(1)
  .max(4096)
  .refine((v) => !v.includes('\0'), 'must not contain NUL');
const User = z
  .string()
  .min(1)
  .max(32)
  .regex(/^[a-z_][a-z0-9_-]*\$?$/i, 'not a valid user name');

export const ExecBody = z
  .object({
    cmd: Command,
    cwd: Cwd.optional(),
    env: EnvMap.optional(),
    user: User.optional(),
    stdin: z
      .string()
      .max(16 * 1024 * 1024)
      .optional(),
    timeoutMs: z.number().int().min(1).max(86_400_000).optional(),
    maxOutputBytes: z
      .number()
      .int()
      .min(0)
      .max(16 * 1024 * 1024)
      .optional(),
    keepAlive: z.boolean().optional(),
  })
  .strict();

export const ExecResult = z.object({
  pid: z.number(),
  exitCode: z.number(),
  signal: z.string().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  stdoutTruncated: z.boolean(),
  stderrTruncated: z.boolean(),
  timedOut: z.boolean(),
  oomKilled: z.boolean(),
  durationMs: z.number(),
});

export const PtySize = z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict();

export const StartProcessBody = z
  .object({
    cmd: Command,
    cwd: Cwd.optional(),
    env: EnvMap.optional(),
    user: User.optional(),
    timeoutMs: z.number().int().min(0).max(86_400_000).optional(),
    tag: z.string().min(1).max(128).optional(),
    stdin: z.boolean().optional(),
    pty: PtySize.optional(),
    keepAlive: z.boolean().optional(),
  })
  .strict();

export const ProcessParams = z.object({ id: SandboxId, pid: z.string().max(140) });

export const SignalBody = z.object({ signal: z.enum(SIGNALS).default('SIGKILL') }).strict();

export const ProcessList = z.object({
  processes: z.array(
    z.object({
      pid: z.number(),
      tag: z.string().nullable(),
      cmd: z.string(),
      args: z.array(z.string()),
      cwd: z.string().nullable(),
      pty: z.boolean(),
    }),
  ),
});

export const WaitResult = z.object({ exitCode: z.number(), signal: z.string().nullable(), timedOut: z.boolean() });

export const PathQuery = z.object({ path: z.string().min(1).max(4096), user: User.optional() });
export const ListQuery = PathQuery.extend({ depth: z.coerce.number().int().min(1).max(32).default(1) });
export const MkdirBody = z.object({ path: z.string().min(1).max(4096), user: User.optional() }).strict();
export const RenameBody = z.object({ from: z.string().min(1).max(4096), to: z.string().min(1).max(4096), user: User.optional() }).strict();

export const FileEntry = z.object({
  name: z.string(),
  path: z.string(),
  type: z.enum(['file', 'dir', 'symlink']),
  size: z.number(),
  mode: z.number(),
  permissions: z.string(),
  owner: z.string(),
  group: z.string(),
  modifiedTime: z.string().nullable(),
  symlinkTarget: z.string().nullable(),
});

export const PtyQuery = z.object({
  cols: z.coerce.number().int().min(1).max(1000).default(80),
  rows: z.coerce.number().int().min(1).max(1000).default(24),
  cmd: z.string().max(8192).optional(),
  user: User.optional(),
  cwd: Cwd.optional(),
  token: z.string().max(256).optional(),
});

export const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const TemplateList = z.object({
  templates: z.array(
    z.object({
      name: z.string(),
      description: z.string(),
      digest: z.string(),
      state: z.enum(['ready', 'building', 'missing', 'error']),
      defaultUser: z.string(),
      sizeBytes: z.number().nullable(),
      builtAt: z.string().nullable(),
      error: z.string().optional(),
    }),
  ),
});

export const CreateVolumeBody = z
  .object({
    name: VolumeName,
    sizeMiB: z
      .number()
      .int()
      .min(64)
      .max(1024 * 1024)
      .optional(),
    labels: Metadata.optional(),
  })
  .strict();

export const Volume = z.object({
  tenant: z.string(),
  name: z.string(),
  sizeMiB: z.number(),
  labels: z.record(z.string(), z.string()),
  createdAt: z.string(),
  usedBytes: z.number().nullable(),
  usedBy: z.array(z.string()),
});
export const VolumeList = z.object({ volumes: z.array(Volume) });
export const VolumeParams = z.object({ name: z.string().max(128) });
export const VolumeSnapshotParams = z.object({ name: z.string().max(128), snapshot: z.string().max(128) });
export const CreateVolumeSnapshotBody = z
  .object({ name: z.string().regex(VOLUME_NAME, 'snapshot names are 1-63 lowercase letters, digits, ".", "_" and "-"') })
  .strict();
export const VolumeSnapshot = z.object({
  tenant: z.string(),
  volume: z.string(),
  name: z.string(),
  createdAt: z.string(),
  readyToUse: z.boolean(),
  restoreSizeMiB: z.number().nullable(),
  error: z.string().nullable(),
});
export const VolumeSnapshotList = z.object({ snapshots: z.array(VolumeSnapshot) });

/** Secrets: the API shows metadata only, never a value. */
export const SecretParams = z.object({ name: z.string().max(128) });
export const PutSecretBody = z.object({ value: z.string() }).strict();
export const SecretInfo = z.object({
  tenant: z.string(),
  name: z.string(),
  sizeBytes: z.number(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export const SecretList = z.object({ secrets: z.array(SecretInfo) });

export const PauseResult = z.object({
  id: z.string(),
  state: z.enum(SANDBOX_STATES),
  pauseMode: z.enum(['memory', 'filesystem']).nullable(),
  /** Why the mode is what it is (e.g. the tier cannot keep memory on this host). */
  note: z.string().nullable(),
  durationMs: z.number(),
});

export const SandboxUsage = z.object({
  disk: z.object({ sizeBytes: z.number(), usedBytes: z.number(), availableBytes: z.number() }).nullable(),
  volumes: z.array(z.object({ name: z.string(), path: z.string(), usedBytes: z.number().nullable(), sizeBytes: z.number().nullable() })),
});

export const CreateSnapshotBody = z
  .object({
    memory: z.boolean().optional(),
    metadata: Metadata.optional(),
  })
  .strict();

export const Snapshot = z.object({
  id: z.string(),
  tenant: z.string(),
  sourceSandbox: z.string(),
  template: z.string(),
  layers: z.array(z.string()),
  isolation: z.enum(ISOLATION_TIERS),
  memory: z.boolean(),
  sizeBytes: z.number(),
  metadata: z.record(z.string(), z.string()),
  createdAt: z.string(),
  reused: z.boolean().optional(),
  durationMs: z.number().optional(),
});
export const SnapshotList = z.object({ snapshots: z.array(Snapshot) });
export const SnapshotParams = z.object({ snapshotId: z.string().max(128) });

export const ForkBody = z
  .object({ count: z.number().int().min(1).max(64).optional(), metadata: Metadata.optional(), memory: z.boolean().optional() })
  .strict();

export const GcQuery = z.object({ dryRun: z.enum(['true', 'false', '1', '0']).optional() });

/** Tenant quotas and per-key limits (absent fields: unlimited). */
export const ResourceLimitsBody = z
  .object({
    maxSandboxes: z.number().int().min(0).max(1_000_000).optional(),
    cpu: z.number().min(0).max(100_000).optional(),
    memoryMiB: z
      .number()
      .int()
      .min(0)
      .max(1 << 30)
      .optional(),
    diskMiB: z
      .number()
      .int()
      .min(0)
      .max(1 << 30)
      .optional(),
    createsPerMinute: z.number().int().min(0).max(1_000_000).optional(),
  })
  .strict();

export const CreateKeyBody = z
  .object({
    /** Default: the caller's tenant (only admins name another). */
    tenant: TenantName.optional(),
    /** Default member; never above the caller's role. */
    role: z.enum(ROLES).optional(),
    name: z.string().min(1).max(128).optional(),
    /** Shape the key as `e2b_<hex>` for e2b SDKs older than 2.46, which check the format. */
    e2b: z.boolean().optional(),
    /** The key's own limits inside its tenant's quotas (absent: none). */
    limits: ResourceLimitsBody.optional(),
  })
  .strict();
export const KeyInfo = z.object({
  id: z.string(),
  name: z.string(),
  tenant: z.string(),
  role: z.enum(ROLES),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
  limits: ResourceLimitsBody.nullable(),
});
export const KeyParams = z.object({ id: z.string().min(1).max(64) });

export const CreateTenantBody = z.object({ name: TenantName, quotas: ResourceLimitsBody.nullish() }).strict();
export const TenantParams = z.object({ name: TenantName });
export const DeleteTenantQuery = z.object({ force: z.enum(['true', 'false', '1', '0']).optional() }).strict();
export const Tenant = z.object({
  name: z.string(),
  quotas: ResourceLimitsBody.nullable(),
  createdAt: z.string(),
  usage: z.object({
    sandboxes: z.number(),
    cpu: z.number(),
    memoryMiB: z.number(),
    diskMiB: z.number(),
    volumes: z.number(),
    snapshots: z.number(),
    pools: z.number(),
    keys: z.number(),
  }),
});

// ---- environments ----

/** An uploaded project is sent base64-encoded inside the JSON body (a tar or tar.gz of the directory). */
export const ENVIRONMENT_ARCHIVE_MAX_BYTES = 48 * 1024 * 1024;
export const ENVIRONMENT_BODY_LIMIT = Math.ceil((ENVIRONMENT_ARCHIVE_MAX_BYTES * 4) / 3) + 1024 * 1024;

export const CreateEnvironmentBody = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$/, 'must be 1-100 letters, digits, spaces, ".", "_" or "-"')
      .optional(),
    source: z.union([
      z
        .object({
          archive: z
            .string()
            .min(1)
            .max(Math.ceil((ENVIRONMENT_ARCHIVE_MAX_BYTES * 4) / 3))
            .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64'),
        })
        .strict(),
      z.object({ git: z.object({ url: z.string().min(1).max(2048), ref: z.string().min(1).max(200) }).strict() }).strict(),
    ]),
    variables: EnvMap.optional(),
    profiles: z
      .array(
        z
          .string()
          .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/)
          .max(64),
      )
      .max(32)
      .optional(),
    prNumber: z
      .number()
      .int()
      .min(1)
      .max(2 ** 31)
      .optional(),
    gitSha: z
      .string()
      .regex(/^[0-9a-f]{7,64}$/, 'must be a commit id (hex)')
      .optional(),
    keep: z.boolean().optional(),
    project: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/, 'must be 1-200 letters, digits, ".", "_", "/" or "-"')
      .optional(),
    baseRef: z.string().min(1).max(200).optional(),
  })
  .strict();

/** A TTL: a duration (`30m`, `72h`, `3d`), `off` or 0, or null (the server's default). Parsed by the service. */
const TtlValue = z.union([z.string().max(32), z.number().int().min(0), z.null()]);

export const UpdateEnvironmentBody = z
  .object({
    keep: z.boolean().optional(),
    ttl: z.object({ idle: TtlValue.optional(), delete: TtlValue.optional() }).strict().optional(),
  })
  .strict();

export const EnvironmentServiceJson = z.object({
  name: z.string(),
  state: z.string(),
  job: z.boolean(),
  sandboxId: z.string(),
  template: z.string(),
  url: z.string().nullable(),
  routes: z.array(z.object({ port: z.number(), url: z.string() })),
  exitCode: z.number().nullable(),
  error: z.string().nullable(),
  note: z.string().nullable(),
});

export const Environment = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string().nullable(),
  state: z.string(),
  error: z.string().nullable(),
  url: z.string().nullable(),
  source: z.union([z.object({ kind: z.literal('archive') }), z.object({ kind: z.literal('git'), url: z.string(), ref: z.string() })]),
  gitSha: z.string().nullable(),
  prNumber: z.number().nullable(),
  profiles: z.array(z.string()),
  services: z.array(EnvironmentServiceJson),
  volumes: z.array(z.object({ name: z.string(), volume: z.string(), owned: z.boolean() })),
  warnings: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
  keep: z.boolean(),
  /** The TTLs in effect (seconds; 0: off) and when they fall due (null: they do not). */
  ttl: z.object({ idleSeconds: z.number(), deleteSeconds: z.number() }),
  activeAt: z.string(),
  sleepsAt: z.string().nullable(),
  deletesAt: z.string().nullable(),
  sleptAt: z.string().nullable(),
  slug: z.string(),
  project: z.string().nullable(),
  baseRef: z.string().nullable(),
});
export const EnvironmentList = z.object({ environments: z.array(Environment) });
export const EnvironmentSeedList = z.object({
  seeds: z.array(
    z.object({
      tenant: z.string(),
      project: z.string(),
      baseRef: z.string(),
      volume: z.string(),
      inputsHash: z.string(),
      snapshotVolume: z.string(),
      environment: z.string().nullable(),
      createdAt: z.string(),
    }),
  ),
});
export const RefreshSeedsBody = z.object({ project: z.string().min(1).max(200), baseRef: z.string().min(1).max(200).optional() }).strict();
export const EnvironmentParams = z.object({ id: z.string().max(64) });
export const EnvironmentLogsQuery = z
  .object({ service: z.string().max(64).optional(), tail: z.coerce.number().int().min(1).max(5000).optional() })
  .strict();
export const EnvironmentLogs = z.object({ logs: z.array(z.object({ service: z.string(), text: z.string() })) });
