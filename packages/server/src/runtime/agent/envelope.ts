/**
 * Connect protocol envelopes (streaming RPCs): 1 flag byte, 4-byte big-endian length, payload.
 * Flag 0x02 marks the end-of-stream message. The agent is untrusted, so the decoder bounds the
 * size of every message it accepts.
 */
export const END_STREAM_FLAG = 0x02;
export const MAX_ENVELOPE_BYTES = 8 * 1024 * 1024;

export interface Envelope {
  flags: number;
  data: Buffer;
}

export function encodeEnvelope(message: unknown, flags = 0): Buffer {
  const payload = Buffer.from(JSON.stringify(message), 'utf8');
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

/** Splits a byte stream into envelopes; feed chunks, collect complete envelopes. */
export class EnvelopeDecoder {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  push(chunk: Buffer): Envelope[] {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    const out: Envelope[] = [];
    for (;;) {
      if (this.bufferedBytes < 5) break;
      const head = this.peek(5);
      const length = head.readUInt32BE(1);
      if (length > MAX_ENVELOPE_BYTES) throw new Error(`agent sent an oversized message (${length} bytes)`);
      if (this.bufferedBytes < 5 + length) break;
      const whole = this.take(5 + length);
      out.push({ flags: whole.readUInt8(0), data: whole.subarray(5) });
    }
    return out;
  }

  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  private peek(n: number): Buffer {
    if (this.buffered[0]!.length < n) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.buffered = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return head;
  }
}
