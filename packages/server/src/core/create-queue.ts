import { HutchError } from './errors.js';

/**
 * The bounded create queue: at most `concurrency` cold creates run at once (they are cpu-bound
 * runtime work; more in parallel only makes each slower), at most `maxQueued` wait, and waiting
 * creates are served round-robin by tenant, and within a tenant by API key, so neither a busy
 * team (however many keys it uses) nor one busy client of a team can starve the others. A create
 * that finds the queue (or its key's share of it) full gets 429 with Retry-After at once.
 *
 * Hand-written: p-queue and p-limit serve in arrival order (or by a fixed priority); this needs
 * two-level round robin and an immediate refusal instead of unbounded waiting.
 */
export interface CreateQueueOptions {
  concurrency: number;
  maxQueued: number;
  /** The most one API key may have waiting (defaults to maxQueued). */
  maxQueuedPerCaller?: number;
}

interface Waiter {
  start: () => void;
}

/** Who is waiting: the tenant is served in turn with other tenants, the key with its tenant's other keys. */
export interface QueueCaller {
  tenant: string;
  key: string;
}

export class CreateQueue {
  private running = 0;
  private queued = 0;
  /** Tenants with waiters, in round-robin order; in each, keys with waiters in round-robin order. */
  private readonly byTenant = new Map<string, Map<string, Waiter[]>>();
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

  async run<T>(caller: QueueCaller, work: () => Promise<T>): Promise<T> {
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

  private wait(caller: QueueCaller): Promise<void> {
    const perCaller = this.options.maxQueuedPerCaller ?? this.options.maxQueued;
    const mine = this.byTenant.get(caller.tenant)?.get(caller.key);
    if (this.queued >= this.options.maxQueued || (mine?.length ?? 0) >= perCaller) {
      const full = this.queued >= this.options.maxQueued;
      throw new HutchError(
        'resource_exhausted',
        full
          ? `create queue full: ${this.running} creates running and ${this.queued} waiting (limit ${this.options.maxQueued}); retry later`
          : `create queue: this API key already has ${mine?.length ?? 0} creates waiting (limit ${perCaller} per key); retry later`,
        { retryAfterSeconds: this.retryAfter(), admissionReason: full ? 'queue_full' : 'queue_per_key' },
      );
    }
    return new Promise<void>((resolve) => {
      let keys = this.byTenant.get(caller.tenant);
      if (!keys) this.byTenant.set(caller.tenant, (keys = new Map()));
      let list = keys.get(caller.key);
      if (!list) keys.set(caller.key, (list = []));
      list.push({ start: resolve });
      this.queued++;
    });
  }

  /** Hands the freed slot to the next tenant in turn (its next key's oldest waiter), or frees it. */
  private next(): void {
    const first = this.byTenant.entries().next();
    if (first.done) {
      this.running--;
      return;
    }
    const [tenant, keys] = first.value;
    const [key, list] = keys.entries().next().value!;
    const waiter = list.shift()!;
    // Round robin at both levels: whoever has more waiting goes to the back of its line.
    keys.delete(key);
    if (list.length > 0) keys.set(key, list);
    this.byTenant.delete(tenant);
    if (keys.size > 0) this.byTenant.set(tenant, keys);
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
