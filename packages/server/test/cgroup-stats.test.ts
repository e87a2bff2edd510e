import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { cgroupFiles, readCgroup, readLinkBytes } from '../src/runtime/local/cgroup-stats.js';

// The sampler's cgroup reader on both layouts, from fixture trees shaped like /sys/fs/cgroup (this
// test host may have either; the e2e tests cover the real one): v1 (and hybrid, whose controllers
// are v1) reads cpuacct.usage, memory.usage_in_bytes and memory.stat `cache`; v2 reads cpu.stat
// `usage_usec`, memory.current and memory.stat `file`. Both read pids.current.

const root = mkdtempSync(join(tmpdir(), 'hutch-cgroup-'));
after(() => rmSync(root, { recursive: true, force: true }));
const ID = 'abcdefghij0123456789';

function write(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

test('cgroup v1 / hybrid: cpuacct, memory and pids hierarchies', () => {
  const base = join(root, 'v1');
  write(`${base}/cpuacct/hutch/${ID}/cpuacct.usage`, '20123456789\n');
  write(`${base}/memory/hutch/${ID}/memory.usage_in_bytes`, '183701504\n');
  write(`${base}/memory/hutch/${ID}/memory.stat`, 'cache 164823040\nrss 13266944\nshmem 164806656\n');
  write(`${base}/pids/hutch/${ID}/pids.current`, '125\n');
  for (const mode of ['v1', 'hybrid'] as const) {
    assert.deepEqual(readCgroup(mode, ID, base), { cpuNs: 20123456789, memoryBytes: 183701504, memoryCacheBytes: 164823040, pids: 125 });
  }
  assert.equal(cgroupFiles('hybrid', ID, base).cpu, `${base}/cpuacct/hutch/${ID}/cpuacct.usage`);
});

test('cgroup v2: one directory, cpu.stat usage_usec', () => {
  const base = join(root, 'v2');
  write(`${base}/hutch/${ID}/cpu.stat`, 'usage_usec 20123456\nuser_usec 19000000\nsystem_usec 1123456\n');
  write(`${base}/hutch/${ID}/memory.current`, '52428800\n');
  write(`${base}/hutch/${ID}/memory.stat`, 'anon 41943040\nfile 10485760\nshmem 0\n');
  write(`${base}/hutch/${ID}/pids.current`, '7\n');
  assert.deepEqual(readCgroup('v2', ID, base), { cpuNs: 20123456000, memoryBytes: 52428800, memoryCacheBytes: 10485760, pids: 7 });
});

test('no cgroup: null; no pids controller: pids null', () => {
  assert.equal(readCgroup('v2', 'zzzzzzzzzzzzzzzzzzzz', join(root, 'v2')), null);
  const base = join(root, 'nopids');
  write(`${base}/hutch/${ID}/cpu.stat`, 'usage_usec 1\n');
  write(`${base}/hutch/${ID}/memory.current`, '1\n');
  assert.deepEqual(readCgroup('v2', ID, base), { cpuNs: 1000, memoryBytes: 1, memoryCacheBytes: 0, pids: null });
});

test('link byte counters from sysfs statistics; a missing interface is null', () => {
  const base = join(root, 'net');
  write(`${base}/hzab12s3/statistics/rx_bytes`, '306\n');
  write(`${base}/hzab12s3/statistics/tx_bytes`, '536\n');
  assert.deepEqual(readLinkBytes('hzab12s3', base), { rxBytes: 306, txBytes: 536 });
  assert.equal(readLinkBytes('hznope', base), null);
});
