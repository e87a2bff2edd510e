/**
 * Redaction of injected secret values from output the server keeps or prints (its own log lines;
 * kept sandbox logs call `redactor`/`streamRedactor` for the sandbox whose output they store).
 * Each value a sandbox was given (env or file; header values never enter a sandbox) is replaced by
 * `***`, and so is each line of a multi-line value. Values (and lines) shorter than
 * MIN_REDACTED_LENGTH are left alone: redacting "1" or "ab" would mangle ordinary output while
 * hiding nothing a reader could not guess. This guards against accidental disclosure — a process
 * that wants to print a value can always encode it first.
 */
export const REDACTED = '***';
export const MIN_REDACTED_LENGTH = 4;

/** The strings to hide for a set of values: each value and each of its lines, longest first. */
function needlesOf(values: Iterable<string>): string[] {
  const set = new Set<string>();
  for (const value of values) {
    if (value.length >= MIN_REDACTED_LENGTH) set.add(value);
    if (value.includes('\n'))
      for (const line of value.split(/\r?\n/)) {
        const trimmed = line.trim();
        if (trimmed.length >= MIN_REDACTED_LENGTH) set.add(trimmed);
      }
  }
  return [...set].sort((a, b) => b.length - a.length);
}

/** `text` with every needle replaced by `***` (longest first, so a whole value wins over its lines). */
export function redactText(text: string, needles: readonly string[]): string {
  let out = text;
  for (const needle of needles) if (out.includes(needle)) out = out.split(needle).join(REDACTED);
  return out;
}

/**
 * Redacts a byte stream chunk by chunk: a value split across chunks is still found, because the
 * tail of what came so far that could start a value is held back until the next chunk (or `end`).
 */
export class StreamRedactor {
  private readonly needles: Buffer[];
  private readonly mask = Buffer.from(REDACTED);
  private carry: Buffer = Buffer.alloc(0);

  constructor(needles: readonly string[]) {
    this.needles = needles.map((n) => Buffer.from(n, 'utf8'));
  }

  /** What may be emitted now. */
  push(chunk: Buffer): Buffer {
    if (this.needles.length === 0) return chunk;
    const data = this.replace(this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk);
    const keep = this.pendingPrefix(data);
    this.carry = Buffer.from(data.subarray(data.length - keep));
    return data.subarray(0, data.length - keep);
  }

  /** The held-back tail, at the end of the stream. */
  end(): Buffer {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    return rest;
  }

  private replace(data: Buffer): Buffer {
    let out = data;
    for (const needle of this.needles) {
      let at = out.indexOf(needle);
      if (at < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at >= 0) {
        parts.push(out.subarray(from, at), this.mask);
        from = at + needle.length;
        at = out.indexOf(needle, from);
      }
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }

  /** Length of the longest tail of `data` that is a proper prefix of a needle. */
  private pendingPrefix(data: Buffer): number {
    let longest = 0;
    for (const needle of this.needles) {
      for (let len = Math.min(needle.length - 1, data.length); len > longest; len--) {
        if (data.subarray(data.length - len).equals(needle.subarray(0, len))) {
          longest = len;
          break;
        }
      }
    }
    return longest;
  }
}

const identity = (text: string): string => text;

/**
 * The values injected into each running sandbox, in memory only (filled when secrets are injected:
 * at create, start and resume; emptied at stop and delete).
 */
export class SecretRedaction {
  private readonly bySandbox = new Map<string, string[]>();
  private all: string[] | null = [];

  /** Records what a sandbox was given (replacing what it had). */
  set(sandboxId: string, values: string[]): void {
    const needles = needlesOf(values);
    if (needles.length === 0) this.bySandbox.delete(sandboxId);
    else this.bySandbox.set(sandboxId, needles);
    this.all = null;
  }

  forget(sandboxId: string): void {
    if (this.bySandbox.delete(sandboxId)) this.all = null;
  }

  /** Whether any sandbox has a value to redact (the log hook's fast path). */
  get empty(): boolean {
    return this.bySandbox.size === 0;
  }

  /** A function hiding the sandbox's injected values in text (the identity when it has none). */
  redactor(sandboxId: string): (text: string) => string {
    const needles = this.bySandbox.get(sandboxId);
    return needles ? (text) => redactText(text, needles) : identity;
  }

  /**
   * The sandbox's redactor, or null when it was given no value to hide (the shape kept sandbox
   * logs take: `redactorFor: (id) => redaction.redactorFor(id)`).
   */
  redactorFor(sandboxId: string): ((text: string) => string) | null {
    const needles = this.bySandbox.get(sandboxId);
    return needles ? (text) => redactText(text, needles) : null;
  }

  /** A chunk-by-chunk redactor for a stream of the sandbox's output (its values as of now). */
  streamRedactor(sandboxId: string): StreamRedactor {
    return new StreamRedactor(this.bySandbox.get(sandboxId) ?? []);
  }

  /** Text with every running sandbox's injected values hidden (for output not tied to one sandbox). */
  redactAll(text: string): string {
    if (this.bySandbox.size === 0) return text;
    this.all ??= needlesOf([...this.bySandbox.values()].flat());
    return redactText(text, this.all);
  }
}

/**
 * A pino `hooks.logMethod`: every line the server logs has every running sandbox's injected values
 * hidden — strings in the log object (nested up to a few levels, errors included) and the message.
 */
export function redactingLogHook(redaction: SecretRedaction) {
  const redact = (text: string): string => redaction.redactAll(text);
  return function logMethod(this: unknown, args: unknown[], method: (...a: unknown[]) => void): void {
    if (redaction.empty) return method.apply(this, args);
    return method.apply(
      this,
      args.map((a) => redactValue(a, redact, 0)),
    );
  };
}

function redactValue(value: unknown, redact: (t: string) => string, depth: number): unknown {
  if (typeof value === 'string') return redact(value);
  if (depth >= 4 || typeof value !== 'object' || value === null) return value;
  if (value instanceof Error)
    return { type: value.name, message: redact(value.message), ...(value.stack ? { stack: redact(value.stack) } : {}) };
  if (Array.isArray(value)) return value.map((v) => redactValue(v, redact, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, redact, depth + 1);
  return out;
}
