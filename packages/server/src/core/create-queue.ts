import { HutchError } from './errors.js';

/**
 * The bounded create queue: at most `concurrency` cold creates run at once (they are cpu-bound
 * runtime work; more in parallel only makes each slower), at most `maxQueued` wait, and waiting
 * creates are served round-robin by caller so one busy client cannot starve the others. A create
 * that finds the queue (or its caller's share of it) full gets 429 with Retry-After at once.
 */
export interface CreateQueueOptions {
  concurrency: number;
  maxQueued: number;
  /** The most one caller may have waiting (defaults to maxQueued). */
  maxQueuedPerCaller?: number;
}

interface Waiter {
  start: () => void;
}

export class CreateQueue {
  private running = 0;
  private queued = 0;
  /** Callers with waiters, in round-robin order. */
  private readonly byCaller = new Map<string, Waiter[]>();
  /** Recent run times (ms), for Retry-After estimates. */
  private readonly recent: number[] = [];

  constructor(private readonly options: CreateQueueOptions) {}

  get stats(): { running: number; queued: number; concurrency: number; maxQueued: number } {
    return { running: this.running, queued: this.queued, concurrency: this.options.concurrency, maxQueued: this.options.maxQueued };
  }

  /** Whether work is running or waiting (background pool refills yield to it). */
  busy(): boolean {
    return this.running > 0 || this.queued > 0;
  }

  async run<T>(caller: string, work: () => Promise<T>): Promise<T> {
    if (this.running >= this.options.concurrency) await this.wait(caller);
    else this.running++;
    const started = Date.now();
    try {
      return await work();
    } finally {
      this.recent.push(Date.now() - started);
      if (this.recent.length > 32) this.recent.shift();
      this.next();
    }
  }

  private wait(caller: string): Promise<void> {
    const perCaller = this.options.maxQueuedPerCaller ?? this.options.maxQueued;
    const mine = this.byCaller.get(caller);
    if (this.queued >= this.options.maxQueued || (mine?.length ?? 0) >= perCaller) {
      const full = this.queued >= this.options.maxQueued;
      throw new HutchError(
        'resource_exhausted',
        full
          ? `create queue full: ${this.running} creates running and ${this.queued} waiting (limit ${this.options.maxQueued}); retry later`
          : `create queue: this API key already has ${mine?.length ?? 0} creates waiting (limit ${perCaller} per key); retry later`,
        { retryAfterSeconds: this.retryAfter() },
      );
    }
    return new Promise<void>((resolve) => {
      const list = mine ?? [];
      list.push({ start: resolve });
      if (!mine) this.byCaller.set(caller, list);
      this.queued++;
    });
  }

  /** Hands the freed slot to the next caller in turn (its oldest waiter), or frees it. */
  private next(): void {
    const first = this.byCaller.entries().next();
    if (first.done) {
      this.running--;
      return;
    }
    const [caller, list] = first.value;
    const waiter = list.shift()!;
    this.byCaller.delete(caller);
    // Round robin: a caller with more waiting goes to the back of the line.
    if (list.length > 0) this.byCaller.set(caller, list);
    this.queued--;
    waiter.start();
  }

  /** Seconds until a slot is likely free: the waiting work at the recent median pace. */
  private retryAfter(): number {
    const sorted = [...this.recent].sort((a, b) => a - b);
    const median = sorted.length > 0 ? sorted[Math.floor(sorted.length / 2)]! : 100;
    return Math.max(1, Math.ceil(((this.queued + this.running) * median) / this.options.concurrency / 1000));
  }
}
