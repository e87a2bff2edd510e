import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type LatestTask, LatestWinsQueue } from '../src/core/preview-queue.js';

// The preview reconciler's ordering: one serial queue per key, the newest task wins.

interface Log {
  events: string[];
}

/** A task that records its start, end, abort or drop, and runs until released or aborted. */
function task(log: Log, label: string): LatestTask & { release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  return {
    label,
    release: () => release(),
    dropped: (by) => log.events.push(`${label} dropped by ${by.label}`),
    run: async (signal) => {
      log.events.push(`${label} start`);
      await Promise.race([released, new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }))]);
      log.events.push(`${label} ${signal.aborted ? 'aborted' : 'done'}`);
    },
  };
}

test('the newest commit wins: a waiting older one is dropped, a running one is aborted, tasks never overlap per key', async () => {
  const log: Log = { events: [] };
  const q = new LatestWinsQueue();
  const a = task(log, 'sha-a');
  const b = task(log, 'sha-b');
  const c = task(log, 'sha-c');
  q.push('pr-1', a);
  await new Promise((r) => setImmediate(r));
  q.push('pr-1', b); // a is running: aborted, b waits
  q.push('pr-1', c); // b never started: dropped
  await new Promise((r) => setImmediate(r));
  c.release();
  await q.idle(5000);
  assert.deepEqual(log.events, ['sha-a start', 'sha-b dropped by sha-c', 'sha-a aborted', 'sha-c start', 'sha-c done']);
  assert.equal(q.busy('pr-1'), false);
});

test('keys are independent; a failing task does not stop the next one', async () => {
  const log: Log = { events: [] };
  const errors: string[] = [];
  const q = new LatestWinsQueue((key, t, err) => errors.push(`${key} ${t.label}: ${(err as Error).message}`));
  const one = task(log, 'one');
  const two = task(log, 'two');
  q.push('pr-1', one);
  q.push('pr-2', two);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log.events, ['one start', 'two start'], 'both keys run at once');
  two.release();
  one.release();
  q.push('pr-3', {
    label: 'boom',
    dropped: () => undefined,
    run: async () => {
      throw new Error('broke');
    },
  });
  const after = task(log, 'after');
  q.push('pr-3', after);
  await new Promise((r) => setImmediate(r));
  after.release();
  await q.idle(5000);
  assert.deepEqual(errors, ['pr-3 boom: broke']);
  assert.ok(log.events.includes('after done'));
});

test('shutdown aborts running tasks and forgets waiting ones', async () => {
  const log: Log = { events: [] };
  const q = new LatestWinsQueue();
  q.push('k', task(log, 'running'));
  await new Promise((r) => setImmediate(r));
  q.push('k', task(log, 'waiting'));
  q.abortAll();
  await q.idle(5000);
  assert.deepEqual(log.events, ['running start', 'running aborted']);
});
