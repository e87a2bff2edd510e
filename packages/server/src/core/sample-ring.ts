/**
 * A bounded series of numeric samples in one Float64Array (row-major: FIELDS numbers per sample),
 * oldest first. It starts small and doubles up to `max` samples, then overwrites the oldest: a
 * sandbox sampled every 5 s for an hour holds 721 rows of 10 numbers, 58 KB, and a short-lived
 * one a few hundred bytes. NaN stands for "unknown".
 */
export class SampleRing {
  private data: Float64Array;
  private capacity: number;
  private start = 0;
  private count = 0;

  constructor(
    private readonly fields: number,
    private readonly max: number,
    initial = 8,
  ) {
    this.capacity = Math.max(1, Math.min(initial, max));
    this.data = new Float64Array(this.capacity * fields);
  }

  get size(): number {
    return this.count;
  }

  /** Appends a row; field 0 is its time (ms), which must not go backwards. */
  push(row: ArrayLike<number>): void {
    if (this.count === this.capacity) {
      if (this.capacity < this.max) this.grow(Math.min(this.max, this.capacity * 2));
      else {
        this.start = (this.start + 1) % this.capacity;
        this.count--;
      }
    }
    const slot = (this.start + this.count) % this.capacity;
    for (let f = 0; f < this.fields; f++) this.data[slot * this.fields + f] = row[f] ?? NaN;
    this.count++;
  }

  /** Drops rows older than `before` (ms). */
  prune(before: number): void {
    while (this.count > 0 && this.data[this.start * this.fields]! < before) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  /** Time of the newest row, or null. */
  last(): number | null {
    if (this.count === 0) return null;
    return this.data[((this.start + this.count - 1) % this.capacity) * this.fields]!;
  }

  /** Rows with from <= time <= to, oldest first. */
  between(from: number, to: number): Float64Array[] {
    const out: Float64Array[] = [];
    for (let i = 0; i < this.count; i++) {
      const slot = (this.start + i) % this.capacity;
      const at = this.data[slot * this.fields]!;
      if (at < from || at > to) continue;
      out.push(this.data.slice(slot * this.fields, (slot + 1) * this.fields));
    }
    return out;
  }

  private grow(capacity: number): void {
    const next = new Float64Array(capacity * this.fields);
    for (let i = 0; i < this.count; i++) {
      const slot = (this.start + i) % this.capacity;
      next.set(this.data.subarray(slot * this.fields, (slot + 1) * this.fields), i * this.fields);
    }
    this.data = next;
    this.capacity = capacity;
    this.start = 0;
  }
}
