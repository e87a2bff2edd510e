/**
 * One serial queue per key where the newest task wins: at most one task runs per key and at most
 * one waits. A new task replaces the waiting one (which is dropped: `dropped` is called with the
 * task that took its place) and aborts the running one's signal (it should stop as soon as it can:
 * an in-flight bring-up of an older commit is not waited for). Keys are independent.
 *
 * Hand-written: queue libraries (p-queue, bottleneck) order and limit work but none replaces
 * waiting work or cancels running work by key, which is the whole point here.
 */
export interface LatestTask {
  /** What the task is (a commit, "destroy"): for logs and the `dropped` callback. */
  readonly label: string;
  run(signal: AbortSignal): Promise<void>;
  /** Called instead of `run` when a newer task took this one's place before it started. */
  dropped(by: LatestTask): void;
}

interface Slot {
  running: { task: LatestTask; controller: AbortController; done: Promise<void> } | null;
  waiting: LatestTask | null;
}

export class LatestWinsQueue {
  private readonly slots = new Map<string, Slot>();

  constructor(private readonly onError: (key: string, task: LatestTask, err: unknown) => void = () => undefined) {}

  /** Queues `task` for `key`: it runs after the current one stops; a task already waiting is dropped. */
  push(key: string, task: LatestTask): void {
    let slot = this.slots.get(key);
    if (!slot) this.slots.set(key, (slot = { running: null, waiting: null }));
    if (slot.waiting) slot.waiting.dropped(task);
    slot.waiting = task;
    if (slot.running) slot.running.controller.abort();
    else this.next(key, slot);
  }

  /** Whether anything runs or waits for `key`. */
  busy(key: string): boolean {
    return this.slots.has(key);
  }

  /** Resolves when every key is idle (tests, shutdown), or after `timeoutMs`. */
  async idle(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.slots.size > 0 && Date.now() < deadline) {
      await Promise.race([...this.slots.values()].map((s) => s.running?.done ?? Promise.resolve()));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Shutdown: aborts every running task and forgets the waiting ones (they never run). */
  abortAll(): void {
    for (const slot of this.slots.values()) {
      slot.waiting = null;
      slot.running?.controller.abort();
    }
  }

  private next(key: string, slot: Slot): void {
    const task = slot.waiting;
    slot.waiting = null;
    if (!task) {
      slot.running = null;
      this.slots.delete(key);
      return;
    }
    const controller = new AbortController();
    const done = Promise.resolve()
      .then(() => task.run(controller.signal))
      .catch((err: unknown) => this.onError(key, task, err))
      .finally(() => this.next(key, slot));
    slot.running = { task, controller, done };
  }
}
