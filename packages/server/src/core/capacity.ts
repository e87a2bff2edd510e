import { HutchError } from './errors.js';

/**
 * Admission by capacity: what the node has, what its sandboxes are allowed to use, and whether
 * one more fits. Two checks, because limits and use differ:
 *  - allocation: the sum of the live sandboxes' limits (cpu, memory, pids, disk) against the
 *    node's size times an overcommit ratio (limits are ceilings; idle sandboxes use little);
 *  - live: the host's actual free memory, free disk and free pids never go below a reserve.
 * The ledger is in memory and updated synchronously, so concurrent creates cannot both take the
 * last slot (a check and its reservation happen without an await in between).
 */

export interface Allocation {
  cpu: number;
  memoryMiB: number;
  pids: number;
  diskMiB: number;
}

export type CapacityResource = keyof Allocation;
export const CAPACITY_RESOURCES: CapacityResource[] = ['cpu', 'memoryMiB', 'pids', 'diskMiB'];

/** What the host reports right now (null fields: unknown, not checked). */
export interface LiveHostFigures {
  memAvailableMiB: number | null;
  diskFreeMiB: number | null;
  /** Threads in use and the most there can be (kernel.pid_max / threads-max). */
  pidsInUse: number | null;
  pidsMax: number | null;
}

export interface CapacityOptions {
  /** The node's size. */
  node: Allocation;
  /** Allocation may exceed the node's size by these factors. */
  overcommit: Allocation;
  /** Never admit when less than this is actually free. */
  reserve: { memoryMiB: number; diskMiB: number; pids: number };
  /** Seconds a refused caller is told to wait. */
  retryAfterSeconds: number;
  live: () => LiveHostFigures;
}

/** Whose a sandbox is, for quotas: its tenant and the API key that created it. */
export interface Owner {
  tenant: string;
  key: string | null;
}

/** Narrows a sum or count to one tenant's or one key's sandboxes. */
export type OwnerFilter = { tenant: string } | { key: string };

interface Entry extends Allocation {
  /** Stopped and paused sandboxes hold only their disk. */
  running: boolean;
  /** Null for warm-pool members not yet claimed, and for deleted sandboxes still tearing down. */
  owner: Owner | null;
}

function matches(owner: Owner | null, filter: OwnerFilter | undefined): boolean {
  if (filter === undefined) return true;
  if (owner === null) return false;
  return 'tenant' in filter ? owner.tenant === filter.tenant : owner.key === filter.key;
}

export interface CapacityReport {
  node: Allocation;
  overcommit: Allocation;
  allocatable: Allocation;
  allocated: Allocation;
  sandboxes: { running: number; resting: number };
  live: LiveHostFigures;
  reserve: CapacityOptions['reserve'];
}

const zero = (): Allocation => ({ cpu: 0, memoryMiB: 0, pids: 0, diskMiB: 0 });
const UNIT: Record<CapacityResource, string> = { cpu: 'cores', memoryMiB: 'MiB', pids: 'pids', diskMiB: 'MiB' };
const NAME: Record<CapacityResource, string> = { cpu: 'cpu', memoryMiB: 'memory', pids: 'pids', diskMiB: 'disk' };

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2));

export class CapacityLedger {
  private readonly entries = new Map<string, Entry>();
  private liveCache: { at: number; figures: LiveHostFigures } | null = null;

  constructor(private readonly options: CapacityOptions) {}

  allocatable(): Allocation {
    const { node, overcommit } = this.options;
    return {
      cpu: node.cpu * overcommit.cpu,
      memoryMiB: node.memoryMiB * overcommit.memoryMiB,
      pids: node.pids * overcommit.pids,
      diskMiB: node.diskMiB * overcommit.diskMiB,
    };
  }

  /** Sum of the live sandboxes' limits (running ones: all; resting ones: disk), optionally of one owner. */
  allocated(filter?: OwnerFilter): Allocation {
    const sum = zero();
    for (const e of this.entries.values()) {
      if (!matches(e.owner, filter)) continue;
      sum.diskMiB += e.diskMiB;
      if (!e.running) continue;
      sum.cpu += e.cpu;
      sum.memoryMiB += e.memoryMiB;
      sum.pids += e.pids;
    }
    return sum;
  }

  /** Sandboxes (running or resting) an owner has. */
  count(filter: OwnerFilter): number {
    let n = 0;
    for (const e of this.entries.values()) if (matches(e.owner, filter)) n++;
    return n;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  /**
   * Throws 503 naming the resource when `want` (a running sandbox's limits) does not fit, else
   * records it under `id`. `headroom` keeps that fraction of allocatable capacity free (the warm
   * pools fill only while foreground creates would still fit).
   */
  admit(id: string, want: Allocation, owner: Owner | null, headroom = 0): void {
    const problem = this.problem(want, headroom);
    if (problem) throw this.refusal(problem);
    this.entries.set(id, { ...want, running: true, owner });
  }

  /** Records a sandbox without checking (reattached at start, or one being deleted anyway). */
  record(id: string, alloc: Allocation, running: boolean, owner: Owner | null): void {
    this.entries.set(id, { ...alloc, running, owner });
  }

  /** A running sandbox stopped or paused: it keeps its disk only. */
  rest(id: string): void {
    const e = this.entries.get(id);
    if (e) e.running = false;
  }

  /** A resting sandbox is started again: it needs its cpu, memory and pids back. */
  wake(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.running) return;
    const problem = this.problem(e, 0);
    if (problem) throw this.refusal(problem);
    e.running = true;
  }

  /** Null: no owner's limits count it any more (a deleted sandbox whose teardown is running). */
  setOwner(id: string, owner: Owner | null): void {
    const e = this.entries.get(id);
    if (e) e.owner = owner;
  }

  release(id: string): void {
    this.entries.delete(id);
  }

  report(): CapacityReport {
    let running = 0;
    for (const e of this.entries.values()) if (e.running) running++;
    return {
      node: this.options.node,
      overcommit: this.options.overcommit,
      allocatable: this.allocatable(),
      allocated: this.allocated(),
      sandboxes: { running, resting: this.entries.size - running },
      live: this.live(),
      reserve: this.options.reserve,
    };
  }

  private live(): LiveHostFigures {
    const now = Date.now();
    // The host's figures are read at most every 250 ms: a burst of creates costs one read.
    if (!this.liveCache || now - this.liveCache.at > 250) this.liveCache = { at: now, figures: this.options.live() };
    return this.liveCache.figures;
  }

  private refusal(problem: { message: string; reason: string }): HutchError {
    return new HutchError('unavailable', problem.message, {
      retryAfterSeconds: this.options.retryAfterSeconds,
      admissionReason: problem.reason,
    });
  }

  /** Why `want` does not fit (message and admission reason), or null. */
  private problem(want: Allocation, headroom: number): { message: string; reason: string } | null {
    const allocatable = this.allocatable();
    const allocated = this.allocated();
    for (const r of CAPACITY_RESOURCES) {
      const limit = allocatable[r] * (1 - headroom);
      if (allocated[r] + want[r] > limit + 1e-9) {
        const message =
          `node capacity exhausted: ${NAME[r]} — ${fmt(allocated[r])} of ${fmt(allocatable[r])} ${UNIT[r]} allocated ` +
          `(node ${fmt(this.options.node[r])} × overcommit ${fmt(this.options.overcommit[r])}), this sandbox needs ${fmt(want[r])}` +
          (headroom > 0 ? ` and warm pools keep ${Math.round(headroom * 100)}% free` : '');
        return { message, reason: `node_${NAME[r]}` };
      }
    }
    const live = this.live();
    const { reserve } = this.options;
    if (live.memAvailableMiB !== null && live.memAvailableMiB < reserve.memoryMiB)
      return {
        message: `node capacity exhausted: memory — only ${live.memAvailableMiB} MiB actually available on the host (reserve ${reserve.memoryMiB} MiB)`,
        reason: 'host_memory',
      };
    if (live.diskFreeMiB !== null && live.diskFreeMiB < reserve.diskMiB)
      return {
        message: `node capacity exhausted: disk — only ${live.diskFreeMiB} MiB free in the data directory (reserve ${reserve.diskMiB} MiB)`,
        reason: 'host_disk',
      };
    if (live.pidsInUse !== null && live.pidsMax !== null && live.pidsMax - live.pidsInUse < reserve.pids)
      return {
        message: `node capacity exhausted: pids — ${live.pidsInUse} of ${live.pidsMax} in use on the host (reserve ${reserve.pids})`,
        reason: 'host_pids',
      };
    return null;
  }
}
