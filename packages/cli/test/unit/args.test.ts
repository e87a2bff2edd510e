import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError, commandFromWords, exitStatus, parseCopyTarget, parseKeyValue } from '../../src/args.js';

test('exit status: the code, 128+n for signals, 124 for the time limit', () => {
  assert.equal(exitStatus({ exitCode: 0, signal: null, timedOut: false }), 0);
  assert.equal(exitStatus({ exitCode: 3, signal: null, timedOut: false }), 3);
  assert.equal(exitStatus({ exitCode: -1, signal: 'SIGKILL', timedOut: false }), 137);
  assert.equal(exitStatus({ exitCode: -1, signal: 'SIGTERM', timedOut: false }), 143);
  assert.equal(exitStatus({ exitCode: -1, signal: 'SIGINT', timedOut: false }), 130);
  assert.equal(exitStatus({ exitCode: -1, signal: 'SIGKILL', timedOut: true }), 124);
  assert.equal(exitStatus({ exitCode: -1, signal: null, timedOut: false }), 1);
});

test('copy targets: id:path, -, local paths (a slash before the colon keeps it local)', () => {
  assert.deepEqual(parseCopyTarget('k3j5h2l9q8w7e6r5t4y3:/tmp/x'), { kind: 'sandbox', id: 'k3j5h2l9q8w7e6r5t4y3', path: '/tmp/x' });
  assert.deepEqual(parseCopyTarget('abc:rel/path'), { kind: 'sandbox', id: 'abc', path: 'rel/path' });
  assert.deepEqual(parseCopyTarget('-'), { kind: 'stdio' });
  assert.deepEqual(parseCopyTarget('./a:b'), { kind: 'local', path: './a:b' });
  assert.deepEqual(parseCopyTarget('/abs/file'), { kind: 'local', path: '/abs/file' });
  assert.deepEqual(parseCopyTarget('plain.txt'), { kind: 'local', path: 'plain.txt' });
  assert.throws(() => parseCopyTarget('abc:'), ArgumentError);
});

test('key=value pairs', () => {
  assert.deepEqual(parseKeyValue('A=1', 'env'), ['A', '1']);
  assert.deepEqual(parseKeyValue('A=', 'env'), ['A', '']);
  assert.deepEqual(parseKeyValue('owner.team=a=b', 'metadata'), ['owner.team', 'a=b']);
  assert.throws(() => parseKeyValue('=1', 'metadata'), ArgumentError);
  assert.throws(() => parseKeyValue('a.b=1', 'env'), ArgumentError);
});

test('command words', () => {
  assert.equal(commandFromWords(['echo hi']), 'echo hi');
  assert.deepEqual(commandFromWords(['echo', 'hi']), ['echo', 'hi']);
  assert.throws(() => commandFromWords([]), ArgumentError);
});
