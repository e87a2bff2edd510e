import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type ExtraServerOptions, freePort, launch, removeServerNetwork } from '../tests/harness.js';

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
  /** The server process's pid (RSS sampling). */
  pid(): number | undefined;
  /** The server's recent output (for diagnostics). */
  output(): string;
  /** Starts it again on the same data dir and port (after it died). */
  restart(): Promise<void>;
  /** Stops it; removes the data dir and the runtimes' state dirs unless sandboxes are still mounted. */
  stop(): Promise<{ removed: boolean }>;
  /** Last resort on exit: SIGTERM without waiting. */
  killNow(): void;
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

export async function startBenchServer(extra: ExtraServerOptions = {}): Promise<BenchServer> {
  const dataDir = resolve(mkdtempSync('/var/tmp/hutch-bench-data-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log: string[] = [];
  // Its own address pools, so a bench can run beside a test or dev server on the default pools.
  const network = { networkPool4: '10.214.0.0/16', networkPool6: 'fd68:7574:6369::/48', ...extra };
  let child = launch(dataDir, port, log, { detached: true, server: network });
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
    // Bounded: a graceful close waits for teardowns still running (gVisor's take about a second each).
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    url,
    key: readFileSync(join(dataDir, 'admin.key'), 'utf8').trim(),
    dataDir,
    alive,
    pid: () => child.pid,
    output: () => log.join(''),
    async restart() {
      if (alive()) return;
      child = launch(dataDir, port, log, { detached: true, server: network });
      await waitHealthy(url, child, log);
    },
    async stop() {
      await stopChild();
      if (existsSync(join(dataDir, 'sandboxes')) && mountedUnder(join(dataDir, 'sandboxes') + '/')) return { removed: false };
      rmSync(dataDir, { recursive: true, force: true });
      // The runtimes' state root for this data dir (/run/hutch/<sha256(dataDir)[:12]>), empty by now.
      const key = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
      removeServerNetwork(key);
      // Nothing of this server runs any more: its state dir (staged agent, runtime roots) goes too.
      rmSync(join('/run/hutch', key), { recursive: true, force: true });
      return { removed: true };
    },
    killNow() {
      if (alive()) child.kill('SIGTERM');
    },
  };
}
