import type { AgentClient } from '../runtime/agent/agent-client.js';
import type { Hold } from './activity.js';
import type { Logger } from './logger.js';
import type { AgentProcessMessage } from './process-events.js';

/**
 * Processes started with `keepAlive: true` keep their sandbox active for as long as they run.
 * They carry this variable (`=1`) in their environment: the agent lists each process with the
 * environment it was started with, so the server can find them again after a restart, a memory
 * resume or a lost connection without keeping any record of its own.
 */
export const KEEP_ALIVE_ENV = 'HUTCH_KEEP_ALIVE';

/**
 * How many keepAlive processes of one sandbox are followed by a stream of their own (each takes
 * a connection to the agent); the rest are found by the idle check's look at the process list.
 */
const MAX_FOLLOWED_PER_SANDBOX = 8;
const LIST_TIMEOUT_MS = 3000;

export interface KeepAliveHost {
  agent(id: string): Pick<AgentClient, 'stream' | 'unary'>;
  hold(id: string, what: string): Hold;
}

interface ListedProcess {
  pid?: number;
  config?: { envs?: Record<string, string> };
}

export class KeepAliveProcesses {
  /** The processes followed now, by sandbox and pid. */
  private readonly followed = new Map<string, Map<number, AbortController>>();

  constructor(
    private readonly host: KeepAliveHost,
    private readonly log: Logger,
  ) {}

  /**
   * Holds the sandbox until process `pid` ends. The end comes from the agent over a stream of the
   * server's own, so it is known whether or not any client is attached.
   */
  follow(id: string, pid: number): void {
    let mine = this.followed.get(id);
    if (!mine) {
      mine = new Map();
      this.followed.set(id, mine);
    }
    if (mine.has(pid) || mine.size >= MAX_FOLLOWED_PER_SANDBOX) return;
    const controller = new AbortController();
    mine.set(pid, controller);
    const hold = this.host.hold(id, `keepAlive process ${pid}`);
    void this.untilEnd(id, pid, controller.signal).finally(() => {
      hold.release();
      const current = this.followed.get(id);
      if (current?.get(pid) !== controller) return;
      current.delete(pid);
      if (current.size === 0) this.followed.delete(id);
    });
  }

  private async untilEnd(id: string, pid: number, signal: AbortSignal): Promise<void> {
    try {
      const stream = this.host.agent(id).stream<AgentProcessMessage>('process.Process/Connect', { process: { pid } }, { signal });
      // Output is read and dropped: a stream that stopped reading would block the process's writes.
      for await (const message of stream) if (message.event?.end) return;
    } catch (err) {
      // The agent went away (pause, stop, restart) or the process is unknown: the idle check asks
      // the agent again before it acts.
      if (!signal.aborted) this.log.debug({ sandbox: id, pid, err: (err as Error).message }, 'stopped following a keepAlive process');
    }
  }

  /**
   * Asks the agent which keepAlive processes run in the sandbox, follows those not yet followed,
   * and answers how many run.
   */
  async running(id: string): Promise<number> {
    const reply = await this.host
      .agent(id)
      .unary<{ processes?: ListedProcess[] }>('process.Process/List', {}, { signal: AbortSignal.timeout(LIST_TIMEOUT_MS) });
    let count = 0;
    for (const p of reply.processes ?? []) {
      const pid = Number(p.pid ?? 0);
      if (pid <= 0 || p.config?.envs?.[KEEP_ALIVE_ENV] !== '1') continue;
      this.follow(id, pid);
      count++;
    }
    return count;
  }

  /** Stops following the processes of a sandbox that stopped running (their holds go with it). */
  forget(id: string): void {
    for (const controller of this.followed.get(id)?.values() ?? []) controller.abort();
    this.followed.delete(id);
  }
}
