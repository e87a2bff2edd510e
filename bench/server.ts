import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { LAYERS_DIR, REPO } from '../tests/harness.js';

/**
 * The benchmark's own server, started as tests/harness.ts does (child process, free loopback port,
 * fresh data dir, shared layer cache) but in its own process group: a Ctrl-C in the terminal
 * reaches the benchmark (which then cleans up through this server), not the server or the
 * sandboxes it started.
 */
export interface BenchServer {
  url: string;
  key: string;
  dataDir: string;
  alive(): boolean;
  /** The server's recent output (for diagnostics). */
  output(): string;
  /** Starts it again on the same data dir and port (after it died). */
  restart(): Promise<void>;
  /** Stops it; removes the data dir and the runtimes' state dirs unless sandboxes are still mounted. */
  stop(): Promise<{ removed: boolean }>;
  /** Last resort on exit: SIGTERM without waiting. */
  killNow(): void;
}

async function freePort(): Promise<number> {
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

function launch(dataDir: string, port: number, log: string[]): ChildProcess {
  const script = `import(${JSON.stringify(join(REPO, 'packages/server/dist/index.js'))}).then((m) => m.runServer({ host: '127.0.0.1', port: ${port}, dataDir: ${JSON.stringify(dataDir)}, layersDir: ${JSON.stringify(LAYERS_DIR)}, logLevel: 'warn' })).catch((e) => { console.error(e); process.exit(1); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
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
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}): ${log.join('').slice(-2000)}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`server did not become healthy within 60 s: ${log.join('').slice(-2000)}`);
}

function mountedUnder(prefix: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => (line.split(' ')[4] ?? '').startsWith(prefix));
}

export async function startBenchServer(): Promise<BenchServer> {
  const dataDir = resolve(mkdtempSync('/var/tmp/hutch-bench-data-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log: string[] = [];
  let child = launch(dataDir, port, log);
  try {
    await waitHealthy(url, child, log);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const stopChild = async (): Promise<void> => {
    if (!alive()) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    url,
    key: readFileSync(join(dataDir, 'admin.key'), 'utf8').trim(),
    dataDir,
    alive,
    output: () => log.join(''),
    async restart() {
      if (alive()) return;
      child = launch(dataDir, port, log);
      await waitHealthy(url, child, log);
    },
    async stop() {
      await stopChild();
      if (existsSync(join(dataDir, 'sandboxes')) && mountedUnder(join(dataDir, 'sandboxes') + '/')) return { removed: false };
      rmSync(dataDir, { recursive: true, force: true });
      // The runtimes' state root for this data dir (/run/hutch/<sha256(dataDir)[:12]>), empty by now.
      const key = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
      for (const d of ['runc', 'crun', 'runsc', '']) {
        try {
          rmdirSync(join('/run/hutch', key, d));
        } catch {
          /* absent or not empty */
        }
      }
      return { removed: true };
    },
    killNow() {
      if (alive()) child.kill('SIGTERM');
    },
  };
}
