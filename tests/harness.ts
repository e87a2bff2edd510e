import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

/**
 * Starts a real Hutch server in its own process (so tests can SIGKILL it) on a free loopback
 * port with a fresh data dir, sharing the machine's template layer cache.
 */
export const REPO = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
export const LAYERS_DIR = process.env.HUTCH_LAYERS_DIR ?? '/var/lib/hutch/layers';

export interface TestServer {
  url: string;
  key: string;
  dataDir: string;
  child: ChildProcess;
  /** Output captured from the server process (for diagnostics). */
  output(): string;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T; headers: Headers }>;
  kill9(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
    srv.once('error', rej);
  });
}

/**
 * Spawns `runServer` in a child process, keeping its last output lines in `log`. `detached` gives
 * it a process group of its own (the benchmark does, so a Ctrl-C reaches only the benchmark).
 */
/** Extra runServer options a test may set (network pools, DNS upstreams, --domain). */
export interface ExtraServerOptions {
  dnsUpstreams?: string[];
  domain?: string;
  networkPool4?: string;
  networkPool6?: string;
  overcommit?: { cpu?: number; memoryMiB?: number; pids?: number; diskMiB?: number };
  createConcurrency?: number;
  createQueue?: number;
  poolIdleDrainMs?: number;
  auditRetentionDays?: number;
  auditPruneIntervalMs?: number;
  sandboxLogBytes?: number;
  containerRuntime?: 'auto' | 'runc' | 'crun';
  /** `kubernetes`: sandboxes as pods (tests-k8s/). */
  provider?: 'local' | 'kubernetes';
  kubernetes?: {
    kubeconfig?: string;
    namespace?: string;
    imageImport?: string[];
    gvisorRuntimeClass?: string;
    volumeStorageClass?: string;
    volumeSnapshotClass?: string;
    ttlBackstopSeconds?: number;
    agentAccess?: 'pod-ip' | 'api-server' | 'auto';
    imageRepository?: string;
  };
  gitAllowFileUrls?: boolean;
  /** Environment TTL defaults (`30m`, `off`), how often they are checked, and per-service hosts. */
  envIdleTtl?: string;
  envDeleteTtl?: string;
  envSweepIntervalMs?: number;
  previewDomain?: string;
  sampleIntervalSeconds?: number;
  metricsWindowSeconds?: number;
  metricsToken?: string;
  metricsListen?: string;
  otlpEndpoint?: string;
  /** pino level of the server's own log (default warn). */
  logLevel?: string;
  secretsKeyFile?: string;
  /** The admin key from a read-only file (tests/admin-key-file.test.ts). */
  adminKeyFile?: string;
  /** Webhooks and preview feedback (tests/previews.test.ts). */
  githubWebhookSecrets?: string[];
  gitlabWebhookTokens?: string[];
  githubToken?: string;
  gitlabToken?: string;
  githubApiUrl?: string;
  gitlabApiUrl?: string;
  previewJanitorIntervalSeconds?: number;
  /** sqlite:///path or postgres://… (tests/pg-fixture.ts gives a private cluster). */
  store?: string;
  /** PostgreSQL store: leader election retry/check interval (ms). */
  leaderRetryMs?: number;
  /** PostgreSQL store: creates older than this (ms) are ended as abandoned. */
  abandonedCreateMs?: number;
}

export function launch(
  dataDir: string,
  port: number,
  log: string[],
  options: { detached?: boolean; server?: ExtraServerOptions } = {},
): ChildProcess {
  const serverOptions = { host: '127.0.0.1', port, dataDir, layersDir: LAYERS_DIR, logLevel: 'warn', ...(options.server ?? {}) };
  // SIGTERM closes the server as `hutch server` does (deleted sandboxes finish their teardown).
  const script = `import(${JSON.stringify(join(REPO, 'packages/server/dist/index.js'))}).then((m) => m.runServer(${JSON.stringify(serverOptions)})).then((s) => { process.once('SIGTERM', () => { s.close().finally(() => process.exit(0)); }); }).catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached === true,
  });
  const keep = (d: Buffer): void => {
    log.push(d.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return child;
}

async function waitHealthy(url: string, child: ChildProcess, log: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${log.join('').slice(-2000)}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server did not become healthy: ${log.join('').slice(-2000)}`);
}

/** Removes a stopped test server's base nft table and gateway link (a kill -9 leaves them). */
export function removeServerNetwork(key: string): void {
  spawnSync('nft', ['delete', 'table', 'inet', `hutch_base_${key.slice(0, 8)}`], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', `hg${key.slice(0, 8)}`], { stdio: 'ignore' });
}

/** `dataDir`: start on an existing data dir (e.g. a store from an older version); it is removed by stop() too. */
export async function startServer(extra: ExtraServerOptions = {}, options: { dataDir?: string } = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync('/var/tmp/hutch-test-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log: string[] = [];
  let child = launch(dataDir, port, log, { server: extra });
  await waitHealthy(url, child, log);
  const key = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  const stopChild = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    // A graceful stop that hangs is ended (bounded).
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  const server: TestServer = {
    url,
    key,
    dataDir,
    get child() {
      return child;
    },
    output: () => log.join(''),
    async api<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${key}`, ...headers } };
      if (body !== undefined) {
        if (typeof body === 'string' || body instanceof Uint8Array) init.body = body;
        else {
          init.body = JSON.stringify(body);
          (init.headers as Record<string, string>)['content-type'] = 'application/json';
        }
      }
      const res = await fetch(`${url}${path}`, init);
      const text = await res.text();
      let parsed: unknown = text;
      // JSON answers are parsed; NDJSON streams (audit export, logs follow) stay text.
      if (/^application\/json\b/.test(res.headers.get('content-type') ?? '') && text) parsed = JSON.parse(text);
      return { status: res.status, body: parsed as T, headers: res.headers };
    },
    kill9: () => stopChild('SIGKILL'),
    async restart() {
      await stopChild('SIGKILL');
      child = launch(dataDir, port, log, { server: extra });
      await waitHealthy(url, child, log);
    },
    async stop() {
      // Delete whatever the test left, then stop the server and remove its data dir.
      try {
        const res = await server.api<{ sandboxes: Array<{ id: string }> }>('GET', '/v1/sandboxes');
        for (const sb of res.body.sandboxes ?? []) await server.api('DELETE', `/v1/sandboxes/${sb.id}`);
      } catch {
        /* server already down */
      }
      await stopChild('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
      // The server's runtime state dir on /run and its network plumbing are named by a hash of its data dir.
      const key = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
      rmSync(`/run/hutch/${key}`, { recursive: true, force: true });
      removeServerNetwork(key);
    },
  };
  return server;
}
