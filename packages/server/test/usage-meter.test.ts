import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { SandboxStats } from '../src/core/provider.js';
import { SampleRing } from '../src/core/sample-ring.js';
import {
  hourOf,
  type MeterRow,
  type RunningSandboxRow,
  splitByHour,
  type TenantUsageTotals,
  type UsageBucket,
  UsageMeter,
  type UsageStore,
  ZERO_USAGE,
} from '../src/core/usage-meter.js';

// The usage meter's accounting against a fake store and fake cgroup counters: deltas of the cpu
// counter per tenant and hour, counter resets, final readings, meters that outlive a restart (the
// gap is counted once), storage × time, and the sample window. No sandboxes, no clock games: each
// step reads the counters the test set.

const HOUR = 3_600_000;
const silent = { info() {}, warn() {}, error() {}, debug() {} };

class FakeStore implements UsageStore {
  meters = new Map<string, MeterRow>();
  hours = new Map<string, UsageBucket>();
  running_: RunningSandboxRow[] = [];
  storage = new Map<string, number>();
  clock: number | null = null;
  commits = 0;
  failNext = false;

  async loadMeters(): Promise<MeterRow[]> {
    return [...this.meters.values()].map((m) => ({ ...m }));
  }
  async running(): Promise<RunningSandboxRow[]> {
    return this.running_;
  }
  async storageMiB(): Promise<Map<string, number>> {
    return new Map(this.storage);
  }
  async storageAt(): Promise<number | null> {
    return this.clock;
  }
  async commit(change: { meters: MeterRow[]; closed: string[]; buckets: UsageBucket[]; storageAt: number | null }): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    this.commits++;
    for (const m of change.meters) this.meters.set(m.sandboxId, { ...m });
    for (const id of change.closed) this.meters.delete(id);
    for (const b of change.buckets) {
      const key = `${b.tenant}/${b.hour}`;
      const now = this.hours.get(key) ?? { tenant: b.tenant, hour: b.hour, amounts: { ...ZERO_USAGE } };
      for (const [k, v] of Object.entries(b.amounts)) now.amounts[k as keyof typeof ZERO_USAGE] += v;
      this.hours.set(key, now);
    }
    if (change.storageAt !== null) this.clock = change.storageAt;
  }
  async totals(range: { start: number; end: number; tenant: string | null }): Promise<TenantUsageTotals[]> {
    const out = new Map<string, TenantUsageTotals>();
    for (const b of this.hours.values()) {
      if (b.hour < range.start || b.hour >= range.end || (range.tenant !== null && b.tenant !== range.tenant)) continue;
      const t = out.get(b.tenant) ?? { tenant: b.tenant, ...ZERO_USAGE };
      for (const [k, v] of Object.entries(b.amounts)) t[k as keyof typeof ZERO_USAGE] += v;
      out.set(b.tenant, t);
    }
    return [...out.values()];
  }
  total(tenant: string): TenantUsageTotals {
    const t = { tenant, ...ZERO_USAGE };
    for (const b of this.hours.values())
      if (b.tenant === tenant) for (const [k, v] of Object.entries(b.amounts)) t[k as keyof typeof ZERO_USAGE] += v;
    return t;
  }
}

/** Counters the test sets per sandbox; null: no cgroup. */
class FakeProvider {
  counters = new Map<string, SandboxStats | null>();
  set(id: string, cpuSeconds: number, extra: Partial<SandboxStats> = {}): void {
    this.counters.set(id, {
      cpuNs: cpuSeconds * 1e9,
      memoryBytes: 64 * 1024 * 1024,
      memoryCacheBytes: 0,
      pids: 3,
      disk: null,
      net: null,
      ...extra,
    });
  }
  async stats(id: string): Promise<SandboxStats | null> {
    return this.counters.get(id) ?? null;
  }
}

const sandbox = (id: string, tenant = 'ta'): RunningSandboxRow => ({ id, tenant, isolation: 'container', cpu: 2, memoryMiB: 512 });
const near = (a: number, b: number, eps = 1e-6): boolean => Math.abs(a - b) <= eps;

test('splitByHour: shares per UTC hour add up to 1; an instant falls in its hour', () => {
  const h = hourOf(Date.UTC(2025, 0, 1, 10, 30));
  assert.equal(h, Date.UTC(2025, 0, 1, 10));
  assert.deepEqual(splitByHour(h + 10, h + 20), [{ hour: h, share: 1 }]);
  const parts = splitByHour(h + HOUR - 15 * 60_000, h + HOUR + 45 * 60_000);
  assert.deepEqual(
    parts.map((p) => p.hour),
    [h, h + HOUR],
  );
  assert.ok(near(parts[0]!.share, 0.25) && near(parts[1]!.share, 0.75));
  assert.equal(splitByHour(h - 2 * HOUR, h + HOUR).length, 3);
  assert.deepEqual(splitByHour(h + 5, h + 5), [{ hour: h, share: 1 }]);
});

test('SampleRing: grows, keeps the newest `max` rows, prunes by time, selects a range', () => {
  const ring = new SampleRing(2, 5, 2);
  for (let t = 1; t <= 7; t++) ring.push([t, t * 10]);
  assert.equal(ring.size, 5);
  assert.deepEqual(
    ring.between(0, 100).map((r) => [...r]),
    [
      [3, 30],
      [4, 40],
      [5, 50],
      [6, 60],
      [7, 70],
    ],
  );
  assert.deepEqual(
    ring.between(4, 5).map((r) => r[0]),
    [4, 5],
  );
  ring.prune(6);
  assert.equal(ring.size, 2);
  assert.equal(ring.last(), 7);
  ring.prune(100);
  assert.equal(ring.last(), null);
});

test('cpu is the counter’s growth between readings; reserved figures are the limits × time; samples keep the readings', async () => {
  const store = new FakeStore();
  const provider = new FakeProvider();
  const meter = new UsageMeter(store, provider, silent, { intervalMs: 1000, windowMs: 60_000 });
  await meter.load();
  store.running_ = [sandbox('s1')];
  provider.set('s1', 0);
  await meter.started({ id: 's1', tenant: 'ta', cpu: 2, memoryMiB: 512 }, 'zero');
  provider.set('s1', 1.5);
  await meter.tick();
  provider.set('s1', 4);
  await new Promise((r) => setTimeout(r, 20));
  await meter.tick();
  const t = store.total('ta');
  assert.ok(near(t.cpuSeconds, 4), `cpu ${t.cpuSeconds}`);
  assert.ok(t.sandboxSeconds > 0.015 && t.sandboxSeconds < 5);
  assert.ok(near(t.cpuReservedSeconds, 2 * t.sandboxSeconds));
  assert.ok(near(t.memoryGiBSeconds, 0.5 * t.sandboxSeconds));
  assert.ok(near(t.memoryUsedGiBSeconds, (64 / 1024) * t.sandboxSeconds));
  const samples = meter.samples('s1', 0, Date.now() + 1);
  assert.equal(samples.length, 2);
  assert.equal(samples[1]!.cpuSeconds, 4);
  assert.equal(samples[1]!.pids, 3);
  assert.equal(samples[1]!.netRxBytes, null);
  assert.ok(samples[1]!.cpuCores! > 0);
  // The meter is in the store with the counter as last accounted.
  assert.equal(store.meters.get('s1')?.cpuNs, 4e9);
});

test('a warm claim counts only what is used after it; a reset counter (new cgroup) counts from zero', async () => {
  const store = new FakeStore();
  const provider = new FakeProvider();
  const meter = new UsageMeter(store, provider, silent);
  await meter.load();
  store.running_ = [sandbox('w')];
  provider.set('w', 0.8); // booted in a pool
  await meter.started({ id: 'w', tenant: 'ta', cpu: 2, memoryMiB: 512 }, 'current');
  provider.set('w', 1.0);
  await meter.tick();
  assert.ok(near(store.total('ta').cpuSeconds, 0.2));
  provider.set('w', 0.3); // the counter went down: a new cgroup, all of it is new
  await meter.tick();
  assert.ok(near(store.total('ta').cpuSeconds, 0.5));
});

test('final() accounts the last reading before the cgroup goes and closes the meter; it is written at once', async () => {
  const store = new FakeStore();
  const provider = new FakeProvider();
  const meter = new UsageMeter(store, provider, silent);
  await meter.load();
  store.running_ = [sandbox('d')];
  provider.set('d', 0);
  await meter.started({ id: 'd', tenant: 'tb', cpu: 1, memoryMiB: 256 }, 'zero');
  provider.set('d', 2);
  await meter.tick();
  provider.set('d', 3.25); // used between the last sample and the delete
  const commits = store.commits;
  await meter.final('d', { forget: true });
  assert.ok(store.commits > commits, 'written before final() returns');
  assert.ok(near(store.total('tb').cpuSeconds, 3.25));
  assert.equal(store.meters.has('d'), false);
  assert.deepEqual(meter.samples('d', 0, Date.now() + 1), []);
  // A late sampling round that still lists it does not meter it again.
  provider.set('d', 9);
  await meter.tick();
  assert.ok(near(store.total('tb').cpuSeconds, 3.25));
});

test('a restart: meters come back from the store; what ran meanwhile is counted once', async () => {
  const store = new FakeStore();
  const provider = new FakeProvider();
  let meter = new UsageMeter(store, provider, silent);
  await meter.load();
  store.running_ = [sandbox('r')];
  provider.set('r', 0);
  await meter.started({ id: 'r', tenant: 'ta', cpu: 2, memoryMiB: 512 }, 'zero');
  provider.set('r', 1);
  await meter.tick();
  // kill -9: nothing more is written; the sandbox keeps running and burns 5 s.
  provider.set('r', 6);
  meter = new UsageMeter(store, provider, silent);
  await meter.load();
  await meter.tick();
  assert.ok(near(store.total('ta').cpuSeconds, 6));
  await meter.tick();
  assert.ok(near(store.total('ta').cpuSeconds, 6));
});

test('a meter whose sandbox stopped running without final() is closed without a charge; a running sandbox without one is metered from now', async () => {
  const store = new FakeStore();
  const provider = new FakeProvider();
  store.meters.set('gone', {
    sandboxId: 'gone',
    tenant: 'ta',
    cpu: 1,
    memoryMiB: 128,
    at: Date.now() - 10_000,
    cpuNs: 0,
    netRx: 0,
    netTx: 0,
  });
  const meter = new UsageMeter(store, provider, silent);
  await meter.load();
  provider.set('gone', 50);
  provider.set('old', 100); // ran before this version
  store.running_ = [sandbox('old')];
  await meter.tick();
  assert.equal(store.meters.has('gone'), false);
  assert.ok(near(store.total('ta').cpuSeconds, 0));
  provider.set('old', 101);
  await meter.tick();
  assert.ok(near(store.total('ta').cpuSeconds, 1));
});

test('storage: allocated MiB × time per tenant; network bytes from link counters; a failed write is retried', async () => {
  const store = new FakeStore();
  const provider = new FakeProvider();
  const meter = new UsageMeter(store, provider, silent);
  await meter.load();
  store.storage.set('ta', 2048);
  await meter.tick(); // starts the storage clock
  const start = store.clock!;
  await new Promise((r) => setTimeout(r, 50));
  store.running_ = [sandbox('n')];
  provider.set('n', 0, { net: { rxBytes: 1000, txBytes: 10 } });
  await meter.started({ id: 'n', tenant: 'ta', cpu: 1, memoryMiB: 128 }, 'zero');
  provider.set('n', 0, { net: { rxBytes: 1500, txBytes: 30 } });
  store.failNext = true;
  await meter.tick(); // the write fails: kept
  await meter.tick();
  const t = store.total('ta');
  const seconds = (store.clock! - start) / 1000;
  assert.ok(near(t.storageGiBSeconds, 2 * seconds, 1e-3), `${t.storageGiBSeconds} vs ${2 * seconds}`);
  assert.equal(t.netRxBytes, 1500);
  assert.equal(t.netTxBytes, 30);
});

test('@opentelemetry is only ever imported dynamically or for types (a server without tracing loads none of it)', () => {
  const root = join(import.meta.dirname, '../src');
  const files = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
  for (const file of files(root).filter((f) => f.endsWith('.ts'))) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (/^\s*import\s[^(]*['"]@opentelemetry\//.test(line)) assert.match(line, /^\s*import type /, `${file}: ${line}`);
    }
  }
});
