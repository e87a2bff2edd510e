import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapacityLedger } from '../src/core/capacity.js';
import { CreateQueue } from '../src/core/create-queue.js';
import { invalidArgument } from '../src/core/errors.js';
import type { Logger } from '../src/core/logger.js';
import { type PoolDefinition, PoolService, type PoolSpec, type PoolStore, type WarmSandboxes } from '../src/core/pool-service.js';

// The pool's own bookkeeping when the template under it changes or disappears: members of an
// older digest are replaced, members of a template that is gone are destroyed. The sandbox side
// is a stand-in recording what the pool asks of it (booting real sandboxes is what
// tests/pools.test.ts does); the pool service, capacity ledger and create queue are the real ones.
// A template's digest cannot change under a running server today (templates change with an
// upgrade, which restarts the pools; snapshots are immutable), so this is where it is exercised.

class StandInSandboxes implements WarmSandboxes {
  digest = 'sha256:one';
  gone = false;
  booted: Array<{ id: string; digest: string; pool?: string }> = [];
  destroyed: string[] = [];
  /** Pools the runtime was told were deleted, with how many members were destroyed by then. */
  removedPools: Array<{ tenant: string; pool: string; destroyedBefore: number }> = [];
  private n = 0;
  async templateDigest(template: string): Promise<string> {
    if (this.gone) throw invalidArgument(`template: unknown template or snapshot "${template}"`);
    return this.digest;
  }
  async bootWarm(id: string, _spec: PoolSpec, _tenant: string, pool?: string): Promise<{ digest: string }> {
    await new Promise((r) => setTimeout(r, 5));
    this.booted.push({ id, digest: this.digest, ...(pool !== undefined ? { pool } : {}) });
    return { digest: this.digest };
  }
  async poolRemoved(tenant: string, pool: string): Promise<void> {
    this.removedPools.push({ tenant, pool, destroyedBefore: this.destroyed.length });
  }
  async destroyWarm(id: string): Promise<void> {
    this.destroyed.push(id);
  }
  newId(): string {
    return `sb${++this.n}`;
  }
}

class MemoryPoolStore implements PoolStore {
  defs = new Map<string, PoolDefinition>();
  async list(): Promise<PoolDefinition[]> {
    return [...this.defs.values()];
  }
  async put(def: PoolDefinition): Promise<void> {
    this.defs.set(`${def.tenant}/${def.name}`, def);
  }
  async remove(tenant: string, name: string): Promise<void> {
    this.defs.delete(`${tenant}/${name}`);
  }
}

const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {} };

function setup(): { pools: PoolService; sandboxes: StandInSandboxes; capacity: CapacityLedger } {
  const sandboxes = new StandInSandboxes();
  const capacity = new CapacityLedger({
    node: { cpu: 64, memoryMiB: 1 << 20, pids: 1 << 20, diskMiB: 1 << 24 },
    overcommit: { cpu: 1, memoryMiB: 1, pids: 1, diskMiB: 1 },
    reserve: { memoryMiB: 0, diskMiB: 0, pids: 0 },
    retryAfterSeconds: 1,
    live: () => ({ memAvailableMiB: null, diskFreeMiB: null, pidsInUse: null, pidsMax: null }),
  });
  const queue = new CreateQueue({ concurrency: 2, maxQueued: 8 });
  const pools = new PoolService(new MemoryPoolStore(), sandboxes, capacity, queue, quiet, { tickMs: 10 });
  return { pools, sandboxes, capacity };
}

async function until(what: string, ok: () => boolean, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const spec: Pick<PoolSpec, 'template' | 'isolation' | 'cpu' | 'memoryMiB' | 'pids' | 'diskMiB'> = {
  template: 'tpl',
  isolation: 'container',
  cpu: 1,
  memoryMiB: 128,
  pids: 64,
  diskMiB: 256,
};

test('members of an older template digest are replaced by members of the new one', async () => {
  const { pools, sandboxes, capacity } = setup();
  pools.start();
  try {
    await pools.put('t1', 'p', { ...spec, min: 2, target: 2, max: 4 });
    await until('two members', () => pools.get('t1', 'p').size === 2);
    const first = sandboxes.booted.map((b) => b.id);

    sandboxes.digest = 'sha256:two';
    await until('old members destroyed', () => first.every((id) => sandboxes.destroyed.includes(id)));
    await until('two new members', () => pools.get('t1', 'p').size === 2);
    // A create of the old digest finds nothing to claim; one of the new digest gets a new member.
    assert.equal(pools.claim('t1', { ...spec, digest: 'sha256:one' }), null);
    const claimed = pools.claim('t1', { ...spec, digest: 'sha256:two' });
    assert.ok(claimed, 'a member of the new digest is claimed');
    assert.ok(!first.includes(claimed.id), 'never a member of the old digest');
    assert.equal(sandboxes.booted.find((b) => b.id === claimed.id)?.digest, 'sha256:two');
    // The destroyed members' capacity was given back: only live members (and the claim) hold some.
    await until('refilled', () => pools.get('t1', 'p').size === 2);
    assert.equal(capacity.allocated().cpu, 3, 'two ready members and the claimed one');
  } finally {
    pools.shutdown();
  }
});

test('fills name their pool (runtime-side pools); deleting a pool destroys its members, then tells the runtime', async () => {
  const { pools, sandboxes, capacity } = setup();
  pools.start();
  try {
    await pools.put('t1', 'p', { ...spec, min: 2, target: 2, max: 4 });
    await until('two members', () => pools.get('t1', 'p').size === 2);
    assert.deepEqual(
      sandboxes.booted.map((b) => b.pool),
      ['p', 'p'],
      'each fill says which pool it is for (agent-sandbox fills from that pool)',
    );
    await pools.delete('t1', 'p');
    assert.deepEqual(sandboxes.removedPools, [{ tenant: 't1', pool: 'p', destroyedBefore: 2 }]);
    assert.equal(capacity.allocated().cpu, 0, 'the members were released');
  } finally {
    pools.shutdown();
  }
});

test('members of a template that is gone are destroyed, and the pool says why', async () => {
  const { pools, sandboxes } = setup();
  pools.start();
  try {
    await pools.put('t1', 'p', { ...spec, min: 2, target: 2, max: 4 });
    await until('two members', () => pools.get('t1', 'p').size === 2);
    sandboxes.gone = true;
    await until('members destroyed', () => sandboxes.destroyed.length === 2);
    const view = pools.get('t1', 'p');
    assert.equal(view.size, 0);
    assert.match(view.lastError ?? '', /template tpl no longer exists/);
    const bootedBefore = sandboxes.booted.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sandboxes.booted.length, bootedBefore, 'no refill for a template that is gone');
  } finally {
    pools.shutdown();
  }
});

test('close destroys ready members and the ones still booting; no refill afterwards', async () => {
  const { pools, sandboxes, capacity } = setup();
  pools.start();
  await pools.put('t1', 'p', { ...spec, min: 3, target: 3, max: 4 });
  await until('a member ready and more booting', () => pools.get('t1', 'p').size >= 1);
  await pools.close();
  const booted = sandboxes.booted.map((b) => b.id).sort();
  assert.ok(booted.length >= 1);
  assert.deepEqual([...sandboxes.destroyed].sort(), booted, 'every member booted is destroyed');
  assert.equal(pools.get('t1', 'p').size, 0);
  assert.equal(capacity.allocated().cpu, 0, 'their capacity is released');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sandboxes.booted.length, booted.length, 'nothing boots after close');
});
