import { StringDecoder } from 'node:string_decoder';
import type { Logger } from './logger.js';
import { type AgentProcessMessage, toProcessEvent } from './process-events.js';

/**
 * Sandbox logs: the stdout and stderr of processes started through the API (exec, background and
 * streamed processes, E2B `commands.run`), kept per sandbox in the store with a size cap — when a
 * sandbox's log grows past it the oldest entries are dropped (and counted, so a reader sees that
 * output is missing). PTY output is not kept: a terminal carries keystroke echo and screen
 * redraws rather than a log, and what a user types there (a password at a prompt that echoes,
 * a pasted token) would end up in it.
 *
 * Output is kept as entries: the whole lines that arrived together (so a flood of short lines is
 * a few entries, not one per line), cut at a newline when longer than 16 KiB; a line without its
 * newline is written after a short wait, or in 16 KiB pieces. Every entry carries its time, the
 * process id and the stream. Entries are passed through
 * the sandbox's redactor, if one is configured (`redactorFor`), before they are kept or shown, and
 * written to the store in batches (every 100 ms) so a chatty process does not cost a write per
 * line. Readers that follow a log get entries as they are made.
 *
 * A process whose starter stops listening (a background start, a client that detaches) keeps
 * being followed over the same agent stream until it exits, at most `MAX_FOLLOWED` per sandbox;
 * a pause, stop or server restart ends that (processes running from before are not followed
 * again).
 */
export type LogStream = 'stdout' | 'stderr' | 'system';

export interface LogEntry {
  /**
   * Increases with every entry (across sandboxes): a cursor for `after`. Replicas sharing a store
   * number from blocks of their own (SandboxLogStore.reserveSeqBlock), so never the same seq.
   */
  seq: number;
  time: Date;
  pid: number;
  stream: LogStream;
  /** Whole lines (with their newlines) that arrived together, or a piece of a long or unfinished line. */
  text: string;
}

export interface StoredLogEntry extends LogEntry {
  sandboxId: string;
  bytes: number;
}

export interface LogDrops {
  /** Bytes and entries of this sandbox's output dropped by the cap (oldest first). */
  bytes: number;
  entries: number;
}

export interface LogReadQuery {
  /** Entries after this seq (oldest first, `limit` of them). */
  after?: number;
  /** Entries at or after this time. */
  since?: Date;
  limit: number;
}

export interface SandboxLogStore {
  append(entries: StoredLogEntry[]): Promise<void>;
  /** Without `after`: the newest `limit` matching entries; with it: the oldest `limit` after it. Both in order. */
  read(sandboxId: string, q: LogReadQuery): Promise<LogEntry[]>;
  /** Bytes kept per sandbox, and the largest seq (at start). */
  load(): Promise<{ sizes: Map<string, number>; maxSeq: number }>;
  /** Drops the oldest entries of a sandbox until at least `bytes` are freed; records and returns what it dropped. */
  trim(sandboxId: string, bytes: number): Promise<LogDrops>;
  drops(sandboxId: string): Promise<LogDrops>;
  /** Counts output that was never kept (over the rate) as dropped. */
  addDrops(sandboxId: string, drops: LogDrops): Promise<void>;
  remove(sandboxId: string): Promise<void>;
  /** Removes the logs of sandboxes that are deleted or unknown (a crash between delete and removal). */
  removeOrphans(): Promise<number>;
  /**
   * A block of seq numbers that no other writer of this store is given (several server replicas
   * on one database), above every seq issued before; null: this process is the only writer, and
   * counts on from load()'s maxSeq.
   */
  reserveSeqBlock?(): Promise<{ first: number; size: number } | null>;
}

/** `redactorFor(sandboxId)`: what replaces secrets in that sandbox's output before it is kept (null: nothing to redact). */
export type RedactorFor = (sandboxId: string) => ((text: string) => string) | null;

export interface SandboxLogOptions {
  /** Bytes of output kept per sandbox (default 1 MiB); 0 turns capture off. */
  capBytes?: number;
  redactorFor?: RedactorFor | null;
  /** Bytes per second kept per sandbox beyond a burst of `capBytes` (default 256 KiB). */
  rateBytes?: number;
  /** Batch interval (default 100 ms). */
  flushMs?: number;
}

export const DEFAULT_LOG_CAP_BYTES = 1024 * 1024;
export const MIN_LOG_CAP_BYTES = 16 * 1024;
/** Entries are at most this long (and at most a sixteenth of the cap, at least 1 KiB). */
const MAX_ENTRY_CHARS = 16 * 1024;
/** A line without its newline is written after this long (a prompt, a progress bar). */
const PARTIAL_AFTER_MS = 200;
/** Processes of one sandbox followed after their starter stopped listening (each holds an agent connection). */
export const MAX_FOLLOWED = 16;
/** A follower that cannot keep up loses entries beyond this many queued. */
export const MAX_FOLLOWER_QUEUE = 10_000;
/**
 * Output taken per sandbox per second once a burst of four times the cap is used up: a process
 * printing without pause costs the server at most this much work (what is over is counted as
 * dropped and noted in the log). Within a burst the cap keeps the newest output.
 */
export const DEFAULT_LOG_RATE_BYTES = 256 * 1024;

/** What a subscriber of a sandbox's log is told: a new entry, or that the log ended (the sandbox was deleted). */
export type LogEvent = { type: 'entry'; entry: LogEntry } | { type: 'end'; reason: string };

/** The output of one process, cut into entries. */
export class ProcessOutput {
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly partial = { stdout: '', stderr: '' };
  /** When the oldest unwritten partial line arrived (0: none). */
  partialSince = 0;
  ended = false;

  constructor(
    private readonly logs: SandboxLogs,
    readonly sandboxId: string,
    readonly pid: number,
  ) {}

  write(stream: 'stdout' | 'stderr', data: Buffer): void {
    if (this.ended || data.length === 0) return;
    // Over the sandbox's rate: not even decoded.
    if (!this.logs.admit(this.sandboxId, this.pid, data.length)) {
      this.partial[stream] = '';
      return;
    }
    const max = this.logs.maxEntryChars;
    const text = this.partial[stream] + this.decoders[stream].write(data);
    // The whole lines that came together make one entry (pieces of at most `max`, cut after a
    // newline where there is one): a flood of short lines is a few entries, not one per line.
    const complete = text.lastIndexOf('\n') + 1;
    let at = 0;
    while (complete - at > max) {
      const cut = text.lastIndexOf('\n', at + max - 1) + 1;
      const end = cut > at ? cut : at + max;
      this.logs.emit(this.sandboxId, this.pid, stream, text.slice(at, end));
      at = end;
    }
    if (complete > at) {
      this.logs.emit(this.sandboxId, this.pid, stream, text.slice(at, complete));
      at = complete;
    }
    // A line without its newline yet: kept for the next chunk (in pieces of `max` when long).
    while (text.length - at >= max) {
      this.logs.emit(this.sandboxId, this.pid, stream, text.slice(at, at + max));
      at += max;
    }
    this.partial[stream] = text.slice(at);
    if (!this.partial.stdout && !this.partial.stderr) this.partialSince = 0;
    else if (this.partialSince === 0) {
      this.partialSince = Date.now();
      this.logs.watchPartial(this);
    }
  }

  /** Writes partial lines (on a timer, and at the end). */
  flushPartial(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream].length > 0) this.logs.emit(this.sandboxId, this.pid, stream, this.partial[stream]);
      this.partial[stream] = '';
    }
    this.partialSince = 0;
  }

  /** The process ended (or is no longer followed): what is left is written. */
  end(): void {
    if (this.ended) return;
    for (const stream of ['stdout', 'stderr'] as const) this.partial[stream] += this.decoders[stream].end();
    this.flushPartial();
    this.ended = true;
  }
}

export class SandboxLogs {
  readonly capBytes: number;
  /** @internal The longest entry, in characters. */
  readonly maxEntryChars: number;
  private readonly redactorFor: RedactorFor | null;
  private readonly flushMs: number;
  private readonly rateBytes: number;
  /** Token bucket per sandbox: bytes it may still write now, refilled at rateBytes a second. */
  private readonly budget = new Map<string, { tokens: number; at: number; withheld: number }>();
  private seq = 0;
  /** The last seq of the reserved block (a store shared by replicas), Infinity otherwise. */
  private seqLast = Number.POSITIVE_INFINITY;
  /** The next block, reserved when half of the current one is used. */
  private nextBlock: { first: number; size: number } | null = null;
  private reserving: Promise<void> | null = null;
  private seqBlockSize = 0;
  private readonly sizes = new Map<string, number>();
  private pending: StoredLogEntry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly partials = new Set<ProcessOutput>();
  private partialTimer: NodeJS.Timeout | null = null;
  private readonly listeners = new Map<string, Set<(event: LogEvent) => void>>();
  /** Followed processes per sandbox, with how to stop following each. */
  private readonly followed = new Map<string, Set<() => void>>();
  /** Recently deleted sandboxes: late output for them is ignored. Bounded. */
  private readonly removed = new Set<string>();
  private closed = false;

  constructor(
    private readonly store: SandboxLogStore,
    private readonly log: Logger,
    options: SandboxLogOptions = {},
  ) {
    const cap = options.capBytes ?? DEFAULT_LOG_CAP_BYTES;
    this.capBytes = cap <= 0 ? 0 : Math.max(MIN_LOG_CAP_BYTES, cap);
    this.maxEntryChars = Math.max(1024, Math.min(MAX_ENTRY_CHARS, Math.floor(this.capBytes / 16)));
    this.redactorFor = options.redactorFor ?? null;
    this.flushMs = options.flushMs ?? 100;
    this.rateBytes = options.rateBytes ?? DEFAULT_LOG_RATE_BYTES;
  }

  /** @internal Whether `bytes` more of the sandbox's output may be taken now (see DEFAULT_LOG_RATE_BYTES). */
  admit(sandboxId: string, pid: number, bytes: number): boolean {
    const now = Date.now();
    const burst = 4 * this.capBytes;
    let b = this.budget.get(sandboxId);
    if (!b) {
      b = { tokens: burst, at: now, withheld: 0 };
      this.budget.set(sandboxId, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * this.rateBytes);
    b.at = now;
    if (b.tokens < bytes) {
      b.withheld += bytes;
      return false;
    }
    b.tokens -= bytes;
    if (b.withheld > 0) {
      const withheld = b.withheld;
      b.withheld = 0;
      this.store.addDrops(sandboxId, { bytes: withheld, entries: 0 }).catch(() => undefined);
      this.push(
        sandboxId,
        pid,
        'system',
        `[hutch] ${withheld} bytes of output were not kept: the sandbox wrote more than ${Math.round(this.rateBytes / 1024)} KiB/s\n`,
      );
    }
    return true;
  }

  get enabled(): boolean {
    return this.capBytes > 0;
  }

  /** Loads sizes and the last seq; removes the logs of sandboxes deleted while the server was down. */
  async load(): Promise<void> {
    const orphans = await this.store.removeOrphans();
    if (orphans > 0) this.log.info({ entries: orphans }, 'sandbox logs: removed the logs of deleted sandboxes');
    const { sizes, maxSeq } = await this.store.load();
    for (const [id, size] of sizes) this.sizes.set(id, size);
    this.seq = Math.max(this.seq, maxSeq);
    const block = (await this.store.reserveSeqBlock?.()) ?? null;
    if (block) this.useBlock(block);
  }

  private useBlock(block: { first: number; size: number }): void {
    this.seq = block.first - 1;
    this.seqLast = block.first + block.size - 1;
    this.seqBlockSize = block.size;
  }

  /** The next seq; with reserved blocks the next block is fetched half-way through the current one. */
  private nextSeq(): number {
    if (this.seqLast !== Number.POSITIVE_INFINITY) {
      if (this.seq >= this.seqLast && this.nextBlock) {
        this.useBlock(this.nextBlock);
        this.nextBlock = null;
      }
      if (!this.nextBlock && !this.reserving && this.seqLast - this.seq <= this.seqBlockSize / 2) this.reserveNext();
      // Past the block with the next one not there yet (the store did not answer in half a block):
      // counting on may collide with another replica's block; that batch then fails, logged.
    }
    return ++this.seq;
  }

  private reserveNext(): void {
    this.reserving = (this.store.reserveSeqBlock?.() ?? Promise.resolve(null))
      .then((block) => {
        this.nextBlock = block;
      })
      .catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'sandbox logs: reserving seq numbers failed'))
      .finally(() => {
        this.reserving = null;
      });
  }

  /** A writer for the output of process `pid`, or null when capture is off. */
  open(sandboxId: string, pid: number): ProcessOutput | null {
    if (!this.enabled || this.closed || this.removed.has(sandboxId)) return null;
    return new ProcessOutput(this, sandboxId, pid);
  }

  /** @internal Makes an entry of a piece of output. */
  emit(sandboxId: string, pid: number, stream: LogStream, raw: string): void {
    if (this.closed || this.removed.has(sandboxId) || raw.length === 0) return;
    let text = raw;
    const redact = this.redactorFor?.(sandboxId);
    if (redact) {
      try {
        text = redact(text);
      } catch (err) {
        // Failing closed: output that could not be redacted is not kept.
        this.log.error({ sandbox: sandboxId, err: (err as Error).message }, 'sandbox logs: the redactor failed; entry withheld');
        text = '[hutch: output withheld: redaction failed]\n';
      }
    }
    this.push(sandboxId, pid, stream, text);
  }

  private push(sandboxId: string, pid: number, stream: LogStream, text: string, bytes = Buffer.byteLength(text)): void {
    const entry: StoredLogEntry = { seq: this.nextSeq(), time: new Date(), pid, stream, text, sandboxId, bytes };
    this.pending.push(entry);
    this.sizes.set(sandboxId, (this.sizes.get(sandboxId) ?? 0) + entry.bytes);
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
    const listeners = this.listeners.get(sandboxId);
    if (listeners) {
      const { sandboxId: _s, bytes: _b, ...shown } = entry;
      for (const fn of listeners) fn({ type: 'entry', entry: shown });
    }
  }

  /** A note from the server itself in a sandbox's log (stream `system`). */
  note(sandboxId: string, pid: number, text: string): void {
    if (this.enabled) this.emit(sandboxId, pid, 'system', `[hutch] ${text}\n`);
  }

  /** @internal A writer holds a partial line: written after PARTIAL_AFTER_MS unless completed. */
  watchPartial(output: ProcessOutput): void {
    this.partials.add(output);
    if (this.partialTimer) return;
    this.partialTimer = setInterval(() => {
      const now = Date.now();
      for (const o of this.partials) {
        if (o.partialSince === 0) this.partials.delete(o);
        else if (now - o.partialSince >= PARTIAL_AFTER_MS) {
          o.flushPartial();
          this.partials.delete(o);
        }
      }
      if (this.partials.size === 0 && this.partialTimer) {
        clearInterval(this.partialTimer);
        this.partialTimer = null;
      }
    }, PARTIAL_AFTER_MS / 2);
    this.partialTimer.unref();
  }

  /** Writes queued entries, then trims sandboxes over the cap. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return this.writing;
    this.writing = this.writing.then(async () => {
      try {
        const live = this.withinCap(batch.filter((e) => !this.removed.has(e.sandboxId)));
        await this.store.append(live);
        for (const id of new Set(live.map((e) => e.sandboxId))) {
          const excess = (this.sizes.get(id) ?? 0) - this.capBytes;
          if (excess <= 0 || this.removed.has(id)) continue;
          const dropped = await this.store.trim(id, excess);
          this.sizes.set(id, Math.max(0, (this.sizes.get(id) ?? 0) - dropped.bytes));
        }
      } catch (err) {
        this.log.error({ err: (err as Error).message, entries: batch.length }, 'sandbox logs: writing entries failed; they are lost');
      }
    });
    return this.writing;
  }

  /**
   * A batch without the oldest entries of any sandbox that made more than the cap in it: those
   * would be trimmed right after being written, so they are counted as dropped instead.
   */
  private withinCap(batch: StoredLogEntry[]): StoredLogEntry[] {
    const total = new Map<string, number>();
    for (const e of batch) total.set(e.sandboxId, (total.get(e.sandboxId) ?? 0) + e.bytes);
    const over = new Map<string, number>();
    for (const [id, size] of total) if (size > this.capBytes) over.set(id, size - this.capBytes);
    if (over.size === 0) return batch;
    const kept: StoredLogEntry[] = [];
    const dropped = new Map<string, LogDrops>();
    for (const e of batch) {
      const excess = over.get(e.sandboxId) ?? 0;
      if (excess > 0) {
        over.set(e.sandboxId, excess - e.bytes);
        const d = dropped.get(e.sandboxId) ?? { bytes: 0, entries: 0 };
        d.bytes += e.bytes;
        d.entries++;
        dropped.set(e.sandboxId, d);
        this.sizes.set(e.sandboxId, (this.sizes.get(e.sandboxId) ?? 0) - e.bytes);
      } else kept.push(e);
    }
    for (const [id, d] of dropped) this.store.addDrops(id, d).catch(() => undefined);
    return kept;
  }

  /** Kept entries (see LogReadQuery) and what the cap dropped. */
  async read(sandboxId: string, q: LogReadQuery): Promise<{ entries: LogEntry[]; dropped: LogDrops }> {
    await this.flush();
    const [entries, dropped] = await Promise.all([this.store.read(sandboxId, q), this.store.drops(sandboxId)]);
    return { entries, dropped };
  }

  /** Calls `fn` with every new entry of the sandbox (and `end` when it is deleted) until unsubscribed. */
  subscribe(sandboxId: string, fn: (event: LogEvent) => void): () => void {
    let set = this.listeners.get(sandboxId);
    if (!set) {
      set = new Set();
      this.listeners.set(sandboxId, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(sandboxId) === set) this.listeners.delete(sandboxId);
    };
  }

  /**
   * Follows the rest of a process's agent stream into its log after its starter stopped
   * listening: `first` is a read already in flight, if any. False (and nothing followed) when the
   * sandbox has MAX_FOLLOWED processes followed already; the caller then closes the stream.
   */
  adopt(
    output: ProcessOutput,
    messages: AsyncIterator<AgentProcessMessage>,
    first: Promise<IteratorResult<AgentProcessMessage>> | null,
    stop: () => void,
  ): boolean {
    const release = this.claim(output.sandboxId, stop);
    if (!release) {
      this.note(
        output.sandboxId,
        output.pid,
        `output of process ${output.pid} is no longer kept: ${MAX_FOLLOWED} processes of this sandbox are followed already`,
      );
      output.end();
      return false;
    }
    void (async () => {
      try {
        let next = first ?? messages.next();
        for (;;) {
          const result = await next;
          if (result.done) break;
          const event = toProcessEvent(result.value, () => false);
          if (event?.type === 'stdout' || event?.type === 'stderr') output.write(event.type, Buffer.from(event.data, 'base64'));
          else if (event?.type === 'exit') break;
          next = messages.next();
        }
      } catch {
        // The agent went away (pause, stop, delete, restart): nothing more to follow.
      } finally {
        output.end();
        release();
        await messages.return?.(undefined)?.catch(() => undefined);
      }
    })();
    return true;
  }

  /**
   * Takes one of the sandbox's follower places (for a stream followed elsewhere, like the E2B data
   * plane's); null when none is free. `stop` ends the following (sandbox deleted, server closing).
   */
  claim(sandboxId: string, stop: () => void): (() => void) | null {
    if (!this.enabled || this.closed || this.removed.has(sandboxId)) return null;
    let set = this.followed.get(sandboxId);
    if (!set) {
      set = new Set();
      this.followed.set(sandboxId, set);
    }
    if (set.size >= MAX_FOLLOWED) return null;
    set.add(stop);
    return () => {
      set.delete(stop);
      if (set.size === 0 && this.followed.get(sandboxId) === set) this.followed.delete(sandboxId);
    };
  }

  /** The sandbox is deleted: its log goes, followers of it are told, late output is ignored. */
  async remove(sandboxId: string): Promise<void> {
    this.removed.add(sandboxId);
    if (this.removed.size > 10_000) this.removed.delete(this.removed.values().next().value!);
    for (const stop of this.followed.get(sandboxId) ?? []) stop();
    this.followed.delete(sandboxId);
    for (const fn of this.listeners.get(sandboxId) ?? []) fn({ type: 'end', reason: 'the sandbox was deleted' });
    this.listeners.delete(sandboxId);
    this.sizes.delete(sandboxId);
    this.budget.delete(sandboxId);
    this.pending = this.pending.filter((e) => e.sandboxId !== sandboxId);
    await this.writing;
    await this.store.remove(sandboxId).catch((err: unknown) => {
      this.log.error({ sandbox: sandboxId, err: (err as Error).message }, 'sandbox logs: removing a deleted sandbox log failed');
    });
  }

  /** Writes partial lines and queued entries; stops following (server shutdown). */
  async close(): Promise<void> {
    for (const o of this.partials) o.flushPartial();
    this.partials.clear();
    if (this.partialTimer) clearInterval(this.partialTimer);
    this.partialTimer = null;
    for (const set of this.followed.values()) for (const stop of set) stop();
    this.followed.clear();
    for (const [, set] of this.listeners) for (const fn of set) fn({ type: 'end', reason: 'the server is shutting down' });
    this.listeners.clear();
    await this.flush();
    this.closed = true;
  }
}
