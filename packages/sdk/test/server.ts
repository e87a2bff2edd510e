/**
 * Starts a real Hutch server for end-to-end tests: `node packages/cli/dist/main.js server` on a
 * free port with a fresh data dir, templates taken from the shared cache
 * (HUTCH_LAYERS_DIR=/var/lib/hutch/layers) so tests do not rebuild them.
 *
 *   let server: TestServer;
 *   before(async () => { server = await startServer(); });
 *   after(() => server?.stop());
 *
 * `stop()` deletes any sandbox the tests left behind (and then fails, because tests must clean
 * up after themselves), stops the server by pid and removes the data dir.
 * Env knobs: HUTCH_TEST_VERBOSE=1 echoes the server's output; HUTCH_TEST_STARTUP_MS (default
 * 120000) bounds the wait for /healthz; HUTCH_TEST_TMP is where data dirs go;
 * HUTCH_TEST_URL + HUTCH_TEST_API_KEY run the tests against an already running server instead
 * (nothing is spawned; stop() only deletes leftovers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hutch, type ConnectionOptions } from '../src/index.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI_MAIN = join(REPO_ROOT, 'packages/cli/dist/main.js');
export const LAYERS_DIR = process.env.HUTCH_LAYERS_DIR ?? '/var/lib/hutch/layers';

export interface TestServer {
  url: string;
  apiKey: string;
  dataDir: string;
  pid: number;
  /** A client of this server. */
  client(options?: ConnectionOptions): Hutch;
  /** Environment for a CLI child process pointed at this server. */
  env(): NodeJS.ProcessEnv;
  /** Everything the server printed so far. */
  logs(): string;
  /** Deletes leftover sandboxes (then throws naming them), stops the server, removes the data dir. */
  stop(): Promise<void>;
}

export async function startServer(): Promise<TestServer> {
  if (process.env.HUTCH_TEST_URL) return attachServer(process.env.HUTCH_TEST_URL, process.env.HUTCH_TEST_API_KEY ?? '');
  if (!existsSync(CLI_MAIN)) {
    throw new Error(`${CLI_MAIN} is missing: build first (npx tsc -b packages/sdk packages/server packages/cli)`);
  }
  const port = await freePort();
  const parent = process.env.HUTCH_TEST_TMP ?? join(REPO_ROOT, '.hutch-test');
  await mkdir(parent, { recursive: true });
  const dataDir = await mkdtemp(join(parent, 'server-'));
  const url = `http://127.0.0.1:${port}`;

  const env: NodeJS.ProcessEnv = { ...process.env, HUTCH_LAYERS_DIR: LAYERS_DIR };
  delete env.HUTCH_DATA_DIR;
  delete env.HUTCH_API_KEY;
  delete env.HUTCH_URL;
  const child = spawn(process.execPath, [CLI_MAIN, 'server', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (output.length > 1_000_000) output = output.slice(-500_000);
    if (process.env.HUTCH_TEST_VERBOSE === '1') process.stderr.write(chunk);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));

  const cleanup = async (): Promise<void> => {
    await kill(child, exited);
    await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    // The server's state dir on /run (staged agent, runtime roots) is named by a hash of its data dir.
    const key = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
    await rm(`/run/hutch/${key}`, { recursive: true, force: true }).catch(() => {});
  };

  try {
    await waitHealthy(url, child, Number(process.env.HUTCH_TEST_STARTUP_MS ?? 120_000));
    const apiKey = (await readFile(join(dataDir, 'admin.key'), 'utf8')).trim();
    if (!apiKey) throw new Error(`${dataDir}/admin.key is empty`);
    return handle({ url, apiKey, dataDir, pid: child.pid!, env, logs: () => output, cleanup });
  } catch (err) {
    await cleanup();
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n--- server output ---\n${output.slice(-8000)}`);
  }
}

/** A server the tests did not start: sandboxes that exist before the tests are left alone. */
async function attachServer(url: string, apiKey: string): Promise<TestServer> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.HUTCH_DATA_DIR;
  const before = new Set((await new Hutch({ url, apiKey }).sandboxes.list()).map((s) => s.id));
  return handle({ url, apiKey, dataDir: '', pid: 0, env, logs: () => '', cleanup: async () => {}, preexisting: before });
}

function handle(o: {
  url: string;
  apiKey: string;
  dataDir: string;
  pid: number;
  env: NodeJS.ProcessEnv;
  logs: () => string;
  cleanup: () => Promise<void>;
  preexisting?: Set<string>;
}): TestServer {
  const { url, apiKey } = o;
  let stopped = false;
  return {
    url,
    apiKey,
    dataDir: o.dataDir,
    pid: o.pid,
    client: (options) => new Hutch({ url, apiKey, ...options }),
    env: () => ({ ...o.env, HUTCH_URL: url, HUTCH_API_KEY: apiKey }),
    logs: o.logs,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      let leaked: string[] = [];
      try {
        const hutch = new Hutch({ url, apiKey });
        const left = await hutch.sandboxes.list();
        leaked = left.filter((s) => s.state !== 'deleted' && !o.preexisting?.has(s.id)).map((s) => s.id);
        for (const id of leaked) await hutch.sandboxes.kill(id).catch(() => {});
      } finally {
        await o.cleanup();
      }
      if (leaked.length) throw new Error(`tests left ${leaked.length} sandbox(es) behind: ${leaked.join(', ')}`);
    },
  };
}

async function waitHealthy(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before becoming healthy`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the server did not answer ${url}/healthz within ${timeoutMs} ms`);
}

/** SIGTERM, then SIGKILL after 15 s. */
async function kill(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }, 15_000);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => res(port));
    });
  });
}
