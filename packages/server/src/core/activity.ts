/**
 * The idle clock of running sandboxes: when each was last used, and what holds it active right
 * now. A hold is something long that uses the sandbox (an exec, an attached output stream, a PTY,
 * a proxied connection, a keepAlive process): while any is held the sandbox is not idle, and its
 * release counts as activity, so the idle timeout runs from the moment the last one ended.
 *
 * In memory only: a server restart starts every clock again (and the holds that outlive it, the
 * keepAlive processes, are found again from the agent).
 */
export interface Hold {
  /** Ends the hold and counts as activity. Idempotent; a no-op after `forget`. */
  release(): void;
}

export class ActivityTracker {
  private readonly last = new Map<string, number>();
  /** What holds each sandbox: one token per hold, naming it. */
  private readonly holds = new Map<string, Map<symbol, string>>();

  /** Records activity now. */
  touch(id: string): void {
    this.last.set(id, Date.now());
  }

  /** Holds the sandbox active until the returned hold is released. */
  hold(id: string, what: string): Hold {
    this.touch(id);
    let held = this.holds.get(id);
    if (!held) {
      held = new Map();
      this.holds.set(id, held);
    }
    const token = Symbol(what);
    held.set(token, what);
    // Released against the set it was taken in: a hold from before a stop or pause (`forget`)
    // neither ends a later hold nor touches the clock.
    const taken = held;
    return {
      release: () => {
        if (!taken.delete(token) || this.holds.get(id) !== taken) return;
        if (taken.size === 0) this.holds.delete(id);
        this.touch(id);
      },
    };
  }

  /** What holds the sandbox now (empty when nothing does). */
  holders(id: string): string[] {
    return [...(this.holds.get(id)?.values() ?? [])];
  }

  /**
   * How long the sandbox has been idle, in ms: 0 while something holds it, null when its clock
   * has not started (first seen after a restart).
   */
  idleFor(id: string, now = Date.now()): number | null {
    if ((this.holds.get(id)?.size ?? 0) > 0) return 0;
    const last = this.last.get(id);
    return last === undefined ? null : Math.max(0, now - last);
  }

  /** Drops the clock and the holds of a sandbox that stopped running (stop, pause, delete). */
  forget(id: string): void {
    this.last.delete(id);
    this.holds.delete(id);
  }
}
