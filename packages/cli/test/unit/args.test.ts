import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ArgumentError,
  commandFromWords,
  exitStatus,
  parseCopyTarget,
  parseKeyValue,
  parseOnTimeout,
  parseSandboxIdOrVerb,
  parseVolumeMount,
  parseVolumeName,
} from '../../src/args.js';

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

test('volume mounts: NAME:/PATH[:ro|:rw]', () => {
  assert.deepEqual(parseVolumeMount('data:/data'), { name: 'data', path: '/data' });
  assert.deepEqual(parseVolumeMount('data:/data:ro'), { name: 'data', path: '/data', readOnly: true });
  assert.deepEqual(parseVolumeMount('data:/data:rw'), { name: 'data', path: '/data' });
  assert.deepEqual(parseVolumeMount('a-b_c.d:/x/y:z'), { name: 'a-b_c.d', path: '/x/y:z' });
  for (const bad of ['data', 'data:', ':/x', 'data:x', 'data:/', 'data:/:ro', 'data::ro', '-x:/x', 'UP:/x'])
    assert.throws(() => parseVolumeMount(bad), ArgumentError, bad);
});

test('volume names and --on-timeout', () => {
  assert.equal(parseVolumeName('data-1.x_y'), 'data-1.x_y');
  assert.throws(() => parseVolumeName('a'.repeat(64)), /name: .* is not a volume name/);
  assert.throws(() => parseVolumeName('.hidden', '--volume'), /--volume: '.hidden' is not a volume name/);
  assert.equal(parseOnTimeout('pause'), 'pause');
  assert.equal(parseOnTimeout('delete'), 'delete');
  assert.throws(() => parseOnTimeout('Pause'), /--on-timeout: 'Pause' is not delete or pause/);
});

test('labels use --label in their messages', () => {
  assert.deepEqual(parseKeyValue('owner=me', 'label'), ['owner', 'me']);
  assert.throws(() => parseKeyValue('owner', 'label'), /--label expects KEY=VALUE/);
});

test('a sandbox id where a subcommand could stand: 20 of a-z0-9, else named as neither', () => {
  assert.equal(parseSandboxIdOrVerb('k3j5h2l9q8w7e6r5t4y3', 'snapshot', ['ls', 'rm']), 'k3j5h2l9q8w7e6r5t4y3');
  for (const bad of [
    'ls',
    'rm',
    'lss',
    'K3J5H2L9Q8W7E6R5T4Y3',
    'k3j5h2l9q8w7e6r5t4y',
    'k3j5h2l9q8w7e6r5t4y3x',
    'snap-0123456789abcdef',
    '',
  ])
    assert.throws(
      () => parseSandboxIdOrVerb(bad, 'snapshot', ['ls', 'rm']),
      (err: unknown) =>
        err instanceof ArgumentError &&
        err.message === `snapshot: '${bad}' is neither a sandbox id (20 characters of a-z, 0-9) nor a subcommand (ls, rm)`,
      bad,
    );
});
