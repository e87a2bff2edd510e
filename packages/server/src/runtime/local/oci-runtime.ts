import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool, ToolError } from './exec-tool.js';

/**
 * A thin wrapper over one OCI runtime binary (runc, crun or runsc) with its own state root.
 * Each server data dir gets its own root, so `list()` only ever sees this server's sandboxes.
 */
export interface OciContainer {
  id: string;
  status: string;
  pid: number;
}

export class OciRuntime {
  constructor(
    readonly name: 'runc' | 'crun' | 'runsc',
    readonly binary: string,
    readonly root: string,
    /** Flags placed before the sub-command (e.g. runsc's --platform, --network). */
    private readonly globalFlags: string[] = [],
    /**
     * A command that execs the runtime itself for every sub-command (e.g. crun on a hybrid
     * cgroup host, in a mount namespace where the cgroup2 mount is hidden); empty for none.
     */
    private readonly launcher: string[] = [],
  ) {}

  /** A sub-command of this runtime with its state root and global flags, through the launcher. */
  private tool(...rest: string[]): Promise<string> {
    const [program, args] = this.command(['--root', this.root, ...this.globalFlags, ...rest], this.launcher);
    return runTool(program, args, { timeoutMs: 30_000 });
  }

  /**
   * The program and arguments that run this runtime with `args`; `launcher`, when given, is a
   * command that execs the runtime itself (e.g. in another mount namespace), followed by it.
   */
  private command(args: string[], launcher: string[]): [string, string[]] {
    const [first, ...rest] = launcher;
    return first === undefined ? [this.binary, args] : [first, [...rest, this.binary, ...args]];
  }

  /** Creates and starts the container detached; its stdio goes to the file `log` (appended). */
  async run(id: string, bundle: string, log: string, runFlags: string[] = [], launcher: string[] = this.launcher): Promise<void> {
    const detach = this.name === 'runsc' ? '--detach' : '-d';
    try {
      const [program, args] = this.command(
        ['--root', this.root, ...this.globalFlags, ...runFlags, 'run', detach, '--bundle', bundle, id],
        launcher,
      );
      await runTool(program, args, { logFile: log, timeoutMs: 60_000 });
    } catch (err) {
      // runc/runsc write their error to the log fd; surface its tail.
      throw err instanceof ToolError ? new Error(`${this.name} run failed (exit ${err.exitCode ?? err.signal})`) : err;
    }
  }

  /**
   * runsc only: writes the sandbox's memory and processes to `imageDir`; the container is stopped
   * afterwards (its state must still be deleted). No connection from the host into the sandbox may
   * be open (a checkpoint taken with one cannot be restored).
   */
  async checkpoint(id: string, imageDir: string): Promise<void> {
    const [program, args] = this.command(
      ['--root', this.root, ...this.globalFlags, 'checkpoint', '--image-path', imageDir, id],
      this.launcher,
    );
    await runTool(program, args, { timeoutMs: 120_000 });
  }

  /** runsc only: starts the container `id` from a checkpoint image, detached. */
  async restore(
    id: string,
    bundle: string,
    imageDir: string,
    log: string,
    runFlags: string[] = [],
    launcher: string[] = this.launcher,
  ): Promise<void> {
    try {
      const [program, args] = this.command(
        ['--root', this.root, ...this.globalFlags, ...runFlags, 'restore', '--detach', '--image-path', imageDir, '--bundle', bundle, id],
        launcher,
      );
      await runTool(program, args, { logFile: log, timeoutMs: 120_000 });
    } catch (err) {
      throw err instanceof ToolError ? new Error(`${this.name} restore failed (exit ${err.exitCode ?? err.signal})`) : err;
    }
  }

  /** Sends a signal to the container's init (the agent). */
  async signal(id: string, signal: string): Promise<void> {
    await this.tool('kill', id, signal);
  }

  /** Freezes every process of the container (cgroup freezer; runsc stops its tasks). */
  async pause(id: string): Promise<void> {
    await this.tool('pause', id);
  }

  async resume(id: string): Promise<void> {
    await this.tool('resume', id);
  }

  /** Kills everything and removes the runtime's state; a missing container is not an error. */
  async forceDelete(id: string): Promise<void> {
    // runc's `delete --force` of a running container sleeps 100 ms after its SIGKILL; killing
    // first and deleting the stopped container is ~6× faster. Anything unexpected falls back.
    if (this.name !== 'runsc') {
      try {
        const killed = await this.killInit(id);
        // runc refuses to delete while the init still runs: wait for it in /proc (a stat, where
        // each early `runc delete` would cost a process), then delete once. An init that is gone
        // already (killed through its cgroup) needs no wait; one we cannot read falls through to
        // `delete --force`.
        if (killed) await waitGone(killed.pid, killed.start, 2000);
        if (killed || (await this.initGone(id))) {
          // For a stopped runc or crun container, `delete` only removes its cgroups (the provider
          // removes those itself, with retries) and its state dir: doing the latter here saves a
          // runtime process (≈5 ms of cpu for runc) per delete.
          if (await this.initGone(id)) {
            await rm(join(this.root, id), { recursive: true, force: true });
            return;
          }
          for (let attempt = 0; attempt < 50; attempt++) {
            try {
              await this.tool('delete', id);
              return;
            } catch (err) {
              if (!(err instanceof ToolError) || !/running|not stopped/i.test(err.stderr)) break;
              await new Promise((r) => setTimeout(r, 2));
            }
          }
        }
      } catch {
        /* not running, already gone, or a runtime that disagrees: use --force below */
      }
    }
    try {
      await this.tool('delete', '--force', id);
    } catch (err) {
      if (err instanceof ToolError && /does not exist|not exist|no such file|cannot find|not found/i.test(err.stderr)) return;
      throw err;
    }
  }

  /**
   * SIGKILLs the container's init (PID 1 of its pid namespace, so everything in it dies) straight
   * from runc's state file, saving a `runc kill` process. The init's start time is checked against
   * /proc so a recycled pid is never signalled. Null when that cannot be done safely.
   */
  private async killInit(id: string): Promise<{ pid: number; start: string } | null> {
    try {
      const state = this.initState(id);
      const pid = state?.pid;
      if (!state || !pid || pid <= 1) return null;
      const startTime = await procStart(pid);
      if (startTime === null || state.start !== startTime) return null;
      process.kill(pid, 'SIGKILL');
      return { pid, start: startTime };
    } catch {
      return null;
    }
  }

  /**
   * The container init's pid and start time (/proc field 22) from the runtime's own state file:
   * runc's `state.json`, crun's `status`. Null for runsc or when unreadable.
   */
  private initState(id: string): { pid: number; start: string } | null {
    try {
      // Synchronous: the state file is on tmpfs (/run) and tiny.
      if (this.name === 'runc') {
        const s = JSON.parse(readFileSync(join(this.root, id, 'state.json'), 'utf8')) as {
          init_process_pid?: number;
          init_process_start?: number;
        };
        return s.init_process_pid ? { pid: s.init_process_pid, start: String(s.init_process_start) } : null;
      }
      if (this.name === 'crun') {
        const s = JSON.parse(readFileSync(join(this.root, id, 'status'), 'utf8')) as { pid?: number; 'process-start-time'?: number };
        return s.pid ? { pid: s.pid, start: String(s['process-start-time']) } : null;
      }
    } catch {
      /* no state (yet or any more) */
    }
    return null;
  }

  /** Whether the runtime's state names an init that no longer runs (false when unknown). */
  private async initGone(id: string): Promise<boolean> {
    const state = this.initState(id);
    if (!state) return false;
    const s = await procStat(state.pid);
    return !s || s.zombie || s.start !== state.start;
  }

  /** The container's init pid from the runtime's state (null when not running or unknown). */
  async initPid(id: string): Promise<number | null> {
    try {
      const out = await this.tool('state', id);
      const state = JSON.parse(out) as { pid?: number; status?: string };
      return state.status === 'running' && state.pid && state.pid > 1 ? state.pid : null;
    } catch {
      return null;
    }
  }

  /** Whether the runtime reports the container running; null when it cannot say (timeout, odd answer). */
  async isRunning(id: string): Promise<boolean | null> {
    try {
      const out = await this.tool('state', id);
      const state = JSON.parse(out) as { status?: string };
      return typeof state.status === 'string' ? state.status === 'running' : null;
    } catch (err) {
      if (err instanceof ToolError && /does not exist|not exist|no such file|cannot find|not found/i.test(err.stderr)) return false;
      return null;
    }
  }

  async list(): Promise<OciContainer[]> {
    try {
      const out = await this.tool('list', '--format', 'json');
      const parsed = JSON.parse(out.trim() || 'null') as Array<{ id: string; status: string; pid: number }> | null;
      return (parsed ?? []).map((c) => ({ id: c.id, status: c.status, pid: c.pid }));
    } catch (err) {
      if (err instanceof ToolError && /no such file|does not exist/i.test(err.stderr)) return [];
      throw err;
    }
  }

  async version(): Promise<string> {
    const out = await runTool(this.binary, ['--version']);
    return out.split('\n')[0] ?? '';
  }
}

/** A process's start time from /proc (field 22), and whether it is a zombie; null when gone. */
async function procStat(pid: number): Promise<{ start: string; zombie: boolean } | null> {
  try {
    // Synchronous on purpose: a procfs read never blocks, and this is polled while a sandbox dies.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] === undefined ? null : { start: fields[19], zombie: fields[0] === 'Z' };
  } catch {
    return null;
  }
}

async function procStart(pid: number): Promise<string | null> {
  return (await procStat(pid))?.start ?? null;
}

/** Waits (bounded) until the process `pid` started at `start` has exited (gone or a zombie). */
async function waitGone(pid: number, start: string, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    const s = await procStat(pid);
    if (!s || s.start !== start || s.zombie) return;
    await new Promise((r) => setTimeout(r, 1));
  }
}
