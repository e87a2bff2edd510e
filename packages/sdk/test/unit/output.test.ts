import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OutputBuffer } from '../../src/output.js';

test('text callbacks get whole characters even when a chunk splits one', () => {
  const texts: string[] = [];
  const raw: number[] = [];
  const out = new OutputBuffer(
    1024,
    (t) => texts.push(t),
    (b) => raw.push(...b),
  );
  const euro = Buffer.from('a€b', 'utf8'); // 61 e2 82 ac 62
  out.push(euro.subarray(0, 2));
  out.push(euro.subarray(2, 3));
  out.push(euro.subarray(3));
  out.flush();
  assert.equal(texts.join(''), 'a€b');
  assert.ok(!texts.join('').includes('\uFFFD'));
  assert.deepEqual(Buffer.from(raw), euro);
  assert.equal(out.text(), 'a€b');
});

test('the kept copy stops at maxBytes and says so; callbacks still see everything', () => {
  let seen = 0;
  const out = new OutputBuffer(5, undefined, (b) => (seen += b.length));
  out.push(Buffer.from('abc'));
  out.push(Buffer.from('defg'));
  out.push(Buffer.from('h'));
  assert.equal(out.text(), 'abcde');
  assert.equal(out.truncated, true);
  assert.equal(seen, 8);
});
