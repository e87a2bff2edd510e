import type { LeaderDuty } from './leadership.js';

/** What the sweep needs of the sandbox service. */
export interface AbandonedCreateEnder {
  endAbandonedCreates(startedBefore: Date): Promise<string[]>;
}

/** Creates older than this are taken as abandoned (a cold create takes seconds; a template build, minutes). */
export const DEFAULT_ABANDONED_CREATE_MS = 30 * 60_000;

/**
 * A leader duty with several replicas: every `afterMs / 2` (at most a minute) ends the creates
 * that began more than `afterMs` ago and are still `creating` — those of a replica that stopped
 * mid-create (SandboxService.endAbandonedCreates). A single server needs none: its reconcile at
 * start does this for its own.
 */
export class AbandonedCreates implements LeaderDuty {
  readonly name = 'abandoned-creates';
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly sandboxes: AbandonedCreateEnder,
    private readonly log: { error(obj: object, message: string): void },
    private readonly afterMs = DEFAULT_ABANDONED_CREATE_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), Math.min(60_000, Math.max(100, this.afterMs / 2)));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass (one at a time). */
  sweep(): Promise<unknown> {
    this.running ??= this.sandboxes
      .endAbandonedCreates(new Date(Date.now() - this.afterMs))
      .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'ending abandoned creates failed'))
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }
}
