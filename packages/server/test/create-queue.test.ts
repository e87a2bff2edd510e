import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CreateQueue, type QueueCaller } from '../src/core/create-queue.js';
import { HutchError } from '../src/core/errors.js';

// The create queue's order and bounds. Work items are promises the test settles by hand, so the
// order in which waiting creates start is observed exactly, independent of timing.

interface Gate {
  open: () => void;
  done: Promise<void>;
}
function gate(): Gate {
  let open!: () => void;
  const done = new Promise<void>((r) => (open = r));
  return { open, done };
}

/** Queues `callers` in this order behind one running create; returns the order they start in. */
async function startOrder(callers: QueueCaller[]): Promise<string[]> {
  const queue = new CreateQueue({ concurrency: 1, maxQueued: 100 });
  const started: string[] = [];
  const blocker = gate();
  const first = queue.run({ tenant: 'x', key: 'x' }, () => blocker.done);
  const all = callers.map((c, i) =>
    queue.run(c, async () => {
      started.push(`${c.tenant}/${c.key}#${i}`);
    }),
  );
  blocker.open();
  await Promise.all([first, ...all]);
  return started;
}

test('tenants are served in turn, however many keys or creates each has waiting', async () => {
  const a = (key: string): QueueCaller => ({ tenant: 'a', key });
  const b: QueueCaller = { tenant: 'b', key: 'k' };
  // Tenant a queues six creates over three keys before tenant b queues two.
  const order = await startOrder([a('k1'), a('k2'), a('k3'), a('k1'), a('k2'), a('k3'), b, b]);
  const tenants = order.map((s) => s[0]).join('');
  assert.equal(tenants, 'ababaaaa', order.join(' '));
});

test("within a tenant its keys are served in turn; each key's creates in arrival order", async () => {
  const k = (key: string): QueueCaller => ({ tenant: 't', key });
  const order = await startOrder([k('busy'), k('busy'), k('busy'), k('other')]);
  assert.deepEqual(order, ['t/busy#0', 't/other#3', 't/busy#1', 't/busy#2']);
});

test('a full queue, or a key over its share, is refused at once with Retry-After', async () => {
  const queue = new CreateQueue({ concurrency: 1, maxQueued: 3, maxQueuedPerCaller: 2 });
  const blocker = gate();
  const running = queue.run({ tenant: 't', key: 'k' }, () => blocker.done);
  const waiting = [queue.run({ tenant: 't', key: 'k' }, async () => {}), queue.run({ tenant: 't', key: 'k' }, async () => {})];
  await assert.rejects(
    queue.run({ tenant: 't', key: 'k' }, async () => {}),
    (err: unknown) =>
      err instanceof HutchError && err.kind === 'resource_exhausted' && /limit 2 per key/.test(err.message) && err.retryAfterSeconds! >= 1,
  );
  // Another key of the same tenant still has room, until the queue as a whole is full.
  waiting.push(queue.run({ tenant: 't', key: 'other' }, async () => {}));
  await assert.rejects(
    queue.run({ tenant: 'u', key: 'k' }, async () => {}),
    (err: unknown) => err instanceof HutchError && err.kind === 'resource_exhausted' && /queue full/.test(err.message),
  );
  assert.deepEqual(queue.stats, { running: 1, queued: 3, concurrency: 1, maxQueued: 3 });
  blocker.open();
  await Promise.all([running, ...waiting]);
  assert.deepEqual(queue.stats, { running: 0, queued: 0, concurrency: 1, maxQueued: 3 });
});
