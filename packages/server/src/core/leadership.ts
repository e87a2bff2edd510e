/**
 * Leadership among the server replicas sharing a store: the periodic loops (TTL reaper, warm
 * pools, usage meter, audit retention, janitors) must run on one replica at a time, or two
 * replicas would delete the same expired sandbox, fill the same pool twice and count usage
 * twice. An SQLite store has one server, always the leader; on PostgreSQL the leader is whoever
 * holds an advisory lock (store/pg-leader.ts).
 */
export interface Leadership {
  /** Whether this replica leads now. */
  readonly leader: boolean;
  /**
   * Starts campaigning. Resolves after the first attempt, so a lone replica leads before it
   * serves; followers keep trying in the background.
   */
  start(): Promise<void>;
  /** Called with the new state on every change (gained: true; lost or stepped down: false). */
  onChange(listener: (leader: boolean) => void): void;
  /** Stops campaigning and gives leadership up (listeners hear `false`). Idempotent. */
  close(): Promise<void>;
}

/** One process, one store (SQLite): always the leader, from start() to close(). */
export class SoleLeadership implements Leadership {
  private state = false;
  private readonly listeners: Array<(leader: boolean) => void> = [];

  get leader(): boolean {
    return this.state;
  }

  async start(): Promise<void> {
    if (this.state) return;
    this.state = true;
    for (const l of this.listeners) l(true);
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    if (!this.state) return;
    this.state = false;
    for (const l of this.listeners) l(false);
  }
}

/** A periodic loop that runs only on the leader: started when leadership is gained, stopped when lost. */
export interface LeaderDuty {
  name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

interface DutyLog {
  info(obj: object, message: string): void;
  warn(obj: object, message: string): void;
  error(obj: object, message: string): void;
}

/**
 * Runs the duties while `leadership` is held: every change is applied in order (a loss during a
 * start waits for the start, then stops), so a duty never runs twice and never outlives a loss.
 */
export class LeaderDuties {
  private running = false;
  private chain: Promise<void> = Promise.resolve();
  private detached = false;

  constructor(
    leadership: Leadership,
    private readonly duties: LeaderDuty[],
    private readonly log: DutyLog,
  ) {
    leadership.onChange((leader) => {
      if (this.detached) return;
      this.chain = this.chain.then(() => (leader ? this.startAll() : this.stopAll('leadership lost')));
    });
    // Leadership taken before the duties were known (start() resolves after the first attempt).
    if (leadership.leader) this.chain = this.startAll();
  }

  /** Whether the duties run on this replica now. */
  get active(): boolean {
    return this.running;
  }

  private async startAll(): Promise<void> {
    if (this.running) return;
    this.running = true;
    for (const d of this.duties) {
      try {
        await d.start();
      } catch (err) {
        this.log.error({ duty: d.name, err: (err as Error).message }, 'a leader duty failed to start');
      }
    }
    this.log.info({ duties: this.duties.map((d) => d.name) }, 'this replica leads: periodic loops started');
  }

  private async stopAll(why: string): Promise<void> {
    if (!this.running) return;
    this.running = false;
    for (const d of [...this.duties].reverse()) {
      try {
        await d.stop();
      } catch (err) {
        this.log.error({ duty: d.name, err: (err as Error).message }, 'a leader duty failed to stop');
      }
    }
    this.log.warn({ duties: this.duties.map((d) => d.name), why }, 'periodic loops stopped on this replica');
  }

  /** Stops the duties and ignores later changes (server shutdown, before the services close). */
  async close(): Promise<void> {
    this.detached = true;
    await this.chain;
    await this.stopAll('server stopping');
  }
}
