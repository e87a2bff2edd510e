/**
 * Connections opened with an API key — requests in flight, NDJSON process streams, PTY and
 * proxied WebSockets, E2B data-plane streams — so that revoking the key ends them at once (H21).
 * The adapters register what they accept; the registry only knows how to close each one.
 */
export interface OpenStream {
  /** Stops tracking it (the connection ended by itself). Idempotent. */
  done(): void;
}

export class OpenStreams {
  private readonly byKey = new Map<string, Set<Entry>>();

  /** Tracks a connection of `keyId`; `close` ends it (it must be idempotent). */
  track(keyId: string, close: () => void): OpenStream {
    let set = this.byKey.get(keyId);
    if (!set) {
      set = new Set();
      this.byKey.set(keyId, set);
    }
    const entry = new Entry(close, () => {
      set.delete(entry);
      if (set.size === 0 && this.byKey.get(keyId) === set) this.byKey.delete(keyId);
    });
    set.add(entry);
    return entry;
  }

  /** Ends every tracked connection of the key but `keep` (the request that revokes it); returns how many. */
  closeKey(keyId: string, keep?: OpenStream): number {
    const set = this.byKey.get(keyId);
    if (!set) return 0;
    let closed = 0;
    for (const entry of [...set]) {
      if (entry === keep) continue;
      entry.done();
      try {
        entry.close();
      } catch {
        /* already closed */
      }
      closed++;
    }
    return closed;
  }

  /** Connections tracked for the key now. */
  count(keyId: string): number {
    return this.byKey.get(keyId)?.size ?? 0;
  }
}

class Entry implements OpenStream {
  private finished = false;

  constructor(
    readonly close: () => void,
    private readonly untrack: () => void,
  ) {}

  done(): void {
    if (this.finished) return;
    this.finished = true;
    this.untrack();
  }
}
