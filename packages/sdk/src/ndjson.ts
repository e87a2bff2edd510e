import { HutchError } from './errors.js';

const NEWLINE = 0x0a;

/**
 * Splits a byte stream of newline-delimited JSON into parsed values, however the bytes are cut
 * into chunks (a line, or a multi-byte UTF-8 character, may span chunks). Blank lines are skipped;
 * a trailing `\r` is tolerated. A line that is not JSON throws a `HutchError` (`invalid_response`).
 */
export class NdjsonSplitter {
  private pending: Uint8Array[] = [];
  private readonly decoder = new TextDecoder('utf-8');

  /** Feeds a chunk; returns the values of every line it completed. */
  push(chunk: Uint8Array): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, start)) {
      this.pending.push(chunk.subarray(start, i));
      this.emit(out);
      start = i + 1;
    }
    if (start < chunk.length) this.pending.push(chunk.slice(start));
    return out;
  }

  /** Ends the input; returns the value of a last line that had no newline, if any. */
  end(): unknown[] {
    const out: unknown[] = [];
    this.emit(out);
    return out;
  }

  private emit(out: unknown[]): void {
    const parts = this.pending;
    this.pending = [];
    if (parts.length === 0) return;
    const bytes = parts.length === 1 ? parts[0]! : concat(parts);
    const line = this.decoder.decode(bytes).trim();
    if (line === '') return;
    try {
      out.push(JSON.parse(line));
    } catch (err) {
      throw new HutchError('invalid_response', `invalid NDJSON line from the server: ${line.slice(0, 120)}`, undefined, {
        cause: err,
      });
    }
  }
}

/** Parses an NDJSON byte stream incrementally, yielding each value as soon as its line is complete. */
export async function* readNdjson(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
  const splitter = new NdjsonSplitter();
  for await (const chunk of chunks) yield* splitter.push(chunk);
  yield* splitter.end();
}

function concat(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.byteLength;
  }
  return out;
}
