import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BEGIN, END, writeDocs } from './report.js';
import { summarize } from './stats.js';

// Run with: node --import tsx --test bench/bench.test.ts (not part of npm test: no server needed).

test('summarize: median, nearest-rank p95, min, max', () => {
  assert.equal(summarize([]), null);
  assert.deepEqual(summarize([5]), { n: 1, median: 5, p95: 5, min: 5, max: 5, mean: 5 });
  const twenty = Array.from({ length: 20 }, (_, i) => 20 - i); // 20..1, unsorted
  const s = summarize(twenty)!;
  assert.equal(s.median, 10.5);
  assert.equal(s.p95, 19); // the 19th of 20
  assert.equal(s.min, 1);
  assert.equal(s.max, 20);
  assert.equal(summarize([1, 2, 3])!.median, 2);
});

test('writeDocs replaces only the block between the markers', () => {
  const dir = mkdtempSync('/tmp/bench-test-');
  try {
    const file = join(dir, 'b.md');
    writeFileSync(file, `# T\n\nintro\n\n<!-- bench:results:begin old -->\nold table\n${END}\n\nafter\n`);
    writeDocs(file, 'NEW');
    writeDocs(file, 'NEWER');
    const text = readFileSync(file, 'utf8');
    assert.equal(text, `# T\n\nintro\n\n${BEGIN}\n\nNEWER\n\n${END}\n\nafter\n`);
    writeFileSync(file, 'no markers');
    assert.throws(() => writeDocs(file, 'x'), /lacks the markers/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
