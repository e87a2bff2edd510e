import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ActivityTracker } from '../src/core/activity.js';

// The idle clock's bookkeeping: holds keep a sandbox at zero idle time, their release counts as
// activity, and a stop or pause (`forget`) ends every hold without later releases reviving it.
// Times are passed in (`idleFor(id, now)`), so nothing here depends on how fast the test runs.

test('a sandbox never seen has no clock; a touch starts it', () => {
  const activity = new ActivityTracker();
  assert.equal(activity.idleFor('a'), null);
  activity.touch('a');
  assert.ok(activity.idleFor('a', Date.now() + 5000)! >= 5000);
});

test('while any hold is taken the sandbox is not idle; the last release restarts the clock', () => {
  const activity = new ActivityTracker();
  const exec = activity.hold('a', 'exec');
  const stream = activity.hold('a', 'process stream');
  const later = Date.now() + 60_000;
  assert.equal(activity.idleFor('a', later), 0);
  assert.deepEqual(activity.holders('a').sort(), ['exec', 'process stream']);
  exec.release();
  exec.release(); // idempotent: does not end the other hold
  assert.equal(activity.idleFor('a', later), 0);
  assert.deepEqual(activity.holders('a'), ['process stream']);
  const before = Date.now();
  stream.release();
  assert.deepEqual(activity.holders('a'), []);
  const idle = activity.idleFor('a', later)!;
  assert.ok(idle > 0 && idle <= later - before, `the clock restarted at the release: ${idle}`);
});

test('forget ends the holds of a sandbox that stopped running; their late releases change nothing', () => {
  const activity = new ActivityTracker();
  const old = activity.hold('a', 'terminal');
  activity.forget('a');
  assert.equal(activity.idleFor('a'), null);
  old.release();
  assert.equal(activity.idleFor('a'), null, 'a release after forget does not touch the clock');
  const fresh = activity.hold('a', 'exec');
  old.release();
  assert.equal(activity.idleFor('a', Date.now() + 60_000), 0, 'nor end a hold taken since');
  fresh.release();
  assert.ok(activity.idleFor('a')! >= 0);
});

test('holds are per sandbox', () => {
  const activity = new ActivityTracker();
  activity.hold('a', 'exec');
  activity.touch('b');
  assert.equal(activity.idleFor('a', Date.now() + 60_000), 0);
  assert.ok(activity.idleFor('b', Date.now() + 60_000)! >= 60_000);
});
