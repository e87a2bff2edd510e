/**
 * One output stream of a process (stdout or stderr): forwards each chunk to the caller's callbacks
 * (raw bytes, and text decoded as UTF-8 with a streaming decoder so a character split across
 * chunks arrives whole) and keeps the first `maxBytes` bytes for the final result.
 */
export class OutputBuffer {
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  private readonly decoder = new TextDecoder('utf-8');
  /** True when more than `maxBytes` arrived and the rest was dropped from the kept copy. */
  truncated = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onText?: (text: string) => void,
    private readonly onBytes?: (bytes: Uint8Array) => void,
  ) {}

  push(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    const room = this.maxBytes - this.size;
    if (bytes.byteLength <= room) {
      this.chunks.push(bytes);
      this.size += bytes.byteLength;
    } else {
      if (room > 0) {
        this.chunks.push(bytes.subarray(0, room));
        this.size += room;
      }
      this.truncated = true;
    }
    this.onBytes?.(bytes);
    if (this.onText) {
      const text = this.decoder.decode(bytes, { stream: true });
      if (text) this.onText(text);
    }
  }

  /** Delivers an incomplete trailing character (as U+FFFD) at the end of the stream. */
  flush(): void {
    if (!this.onText) return;
    const text = this.decoder.decode();
    if (text) this.onText(text);
  }

  /** Everything kept so far, decoded as UTF-8. */
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
