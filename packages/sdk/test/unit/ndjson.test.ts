import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HutchError } from '../../src/errors.js';
import { NdjsonSplitter, readNdjson } from '../../src/ndjson.js';

const events = [
  { type: 'start', pid: 12 },
  { type: 'stdout', data: Buffer.from('héllo €\n').toString('base64') },
  { type: 'stderr', data: 'x', note: 'naïve — 日本語' },
  { type: 'exit', exitCode: 0, signal: null, timedOut: false },
];
const wire = Buffer.from(events.map((e) => JSON.stringify(e)).join('\n') + '\n', 'utf8');

test('every single cut point of the stream gives the same events', () => {
  for (let cut = 0; cut <= wire.length; cut++) {
    const s = new NdjsonSplitter();
    const out = [...s.push(wire.subarray(0, cut)), ...s.push(wire.subarray(cut)), ...s.end()];
    assert.deepEqual(out, events, `cut at ${cut}`);
  }
});

test('byte-by-byte chunks, including inside multi-byte UTF-8 characters', () => {
  const s = new NdjsonSplitter();
  const out: unknown[] = [];
  for (const byte of wire) out.push(...s.push(Uint8Array.of(byte)));
  out.push(...s.end());
  assert.deepEqual(out, events);
});

test('several lines in one chunk come out together, in order', () => {
  const s = new NdjsonSplitter();
  assert.deepEqual(s.push(wire), events);
  assert.deepEqual(s.end(), []);
});

test('blank lines and CRLF are tolerated; a last line without newline is flushed by end()', () => {
  const s = new NdjsonSplitter();
  const out = s.push(Buffer.from('\n{"a":1}\r\n\r\n  \n{"b":2}'));
  assert.deepEqual(out, [{ a: 1 }]);
  assert.deepEqual(s.end(), [{ b: 2 }]);
});

test('a line that is not JSON is an invalid_response HutchError', () => {
  const s = new NdjsonSplitter();
  assert.throws(
    () => s.push(Buffer.from('{"ok":true}\nnot json\n')),
    (err: unknown) => err instanceof HutchError && err.code === 'invalid_response',
  );
});

test('readNdjson yields each value as soon as its line completes', async () => {
  const seen: string[] = [];
  async function* source(): AsyncGenerator<Uint8Array> {
    seen.push('chunk1');
    yield Buffer.from('{"n":1}\n{"n"');
    seen.push('chunk2');
    yield Buffer.from(':2}\n');
    seen.push('chunk3');
    yield Buffer.from('{"n":3}');
  }
  const out: unknown[] = [];
  for await (const v of readNdjson(source())) {
    out.push(v);
    seen.push(`value${(v as { n: number }).n}`);
  }
  assert.deepEqual(out, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.deepEqual(seen, ['chunk1', 'value1', 'chunk2', 'value2', 'chunk3', 'value3']);
});
