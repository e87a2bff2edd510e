import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeInfo } from '../../src/commands/info.js';
import { describeMetrics, describeUsageReport } from '../../src/commands/observability.js';
import { describeUsage } from '../../src/commands/lifecycle.js';
import { describeGc } from '../../src/commands/snapshots.js';
import { describeLifecycle, describeSecrets, stateLabel } from '../../src/commands/sandboxes.js';

test('state label shows the pause mode', () => {
  assert.equal(stateLabel({ state: 'paused', pauseMode: 'memory' }), 'paused (memory)');
  assert.equal(stateLabel({ state: 'paused', pauseMode: 'filesystem' }), 'paused (filesystem)');
  assert.equal(stateLabel({ state: 'running', pauseMode: null }), 'running');
});

test('lifecycle summary', () => {
  assert.equal(
    describeLifecycle({ persistent: true, onTimeout: 'pause', idleTimeoutSeconds: 120, autoDeleteAfterSeconds: null, autoResume: true }),
    'persistent, on timeout: pause, idle 120 s, no auto-delete, auto-resume',
  );
  assert.equal(
    describeLifecycle({
      persistent: false,
      onTimeout: 'delete',
      idleTimeoutSeconds: null,
      autoDeleteAfterSeconds: 86400,
      autoResume: false,
    }),
    'ephemeral, on timeout: delete, auto-delete 86400 s after stop/pause',
  );
  assert.equal(describeLifecycle(undefined), '-');
});

test('usage: disk line, volume table, unmounted disk', () => {
  const text = describeUsage(
    { state: 'running' },
    {
      disk: { sizeBytes: 2 * 1024 ** 3, usedBytes: 1536, availableBytes: 1024 ** 3 },
      volumes: [{ name: 'data', path: '/data', usedBytes: 4096, sizeBytes: null }],
    },
  );
  assert.equal(
    text,
    'disk:     1.5 KiB used of 2.0 GiB (1.0 GiB free)\nvolumes:\n  NAME  PATH   USED     SIZE\n  data  /data  4.0 KiB  -\n',
  );
  assert.equal(
    describeUsage({ state: 'stopped' }, { disk: null, volumes: [] }),
    'disk:     - (not mounted while the sandbox is stopped)\nvolumes:  -\n',
  );
});

test('gc: what was or would be removed, in one line', () => {
  const layer = 'a'.repeat(64);
  assert.equal(
    describeGc({ layers: [layer, 'b'.repeat(64)], objects: 17, bytes: 1536, staging: [], dryRun: true }),
    'would remove 2 layers, 17 objects, 1.5 KiB\n',
  );
  assert.equal(describeGc({ layers: [layer], objects: 1, bytes: 10, staging: [], dryRun: false }), 'removed 1 layer, 1 object, 10 B\n');
  assert.equal(describeGc({ layers: [], objects: 0, bytes: 0, staging: [], dryRun: false }), 'removed 0 layers, 0 objects, 0 B\n');
  assert.equal(
    describeGc({ layers: [], objects: 0, bytes: 0, staging: ['x'], dryRun: true }),
    'would remove 0 layers, 0 objects, 0 B, 1 leftover capture dir\n',
  );
});

test('info shows what pause keeps per tier, with the note saying why', () => {
  const text = describeInfo(
    {
      version: '0.1.0',
      serverId: 's',
      dataDir: '/d',
      defaultIsolation: 'container',
      templates: ['minimal'],
      posture: {},
      tiers: {
        container: {
          available: true,
          runtime: 'runc',
          version: '1.1.12',
          pause: { mode: 'filesystem', note: 'the container tier cannot keep memory on this host: CRIU is missing' },
        },
        gvisor: { available: true, runtime: 'runsc', pause: { mode: 'memory', note: 'memory kept for egress none' } },
        microvm: { available: false, reason: 'no KVM', pause: { mode: 'filesystem', note: 'never shown: the tier is unavailable' } },
      },
    },
    'http://127.0.0.1:7171',
  );
  assert.match(text, /container\s+yes\s+runc 1\.1\.12\s+files only/);
  assert.match(text, /gvisor\s+yes\s+runsc\s+memory \+ files/);
  assert.ok(
    text.endsWith(
      '\npause:\n  container: the container tier cannot keep memory on this host: CRIU is missing\n  gvisor: memory kept for egress none\n',
    ),
    text,
  );
  assert.doesNotMatch(text, /never shown/);
  assert.doesNotMatch(text, /^metrics:/m, 'an older server sends no observability settings');
  const bare = {
    version: '0.1.0',
    serverId: 's',
    dataDir: '/d',
    defaultIsolation: 'container' as const,
    templates: [],
    posture: {},
    tiers: {},
  };
  const withMetrics = describeInfo(
    { ...bare, observability: { sampleIntervalSeconds: 5, metricsWindowSeconds: 3600, metricsListen: '10.0.0.5:9464', tracing: null } },
    'http://127.0.0.1:7171',
  );
  assert.match(withMetrics, /^metrics:\s+a sample every 5 s, kept 3600 s; \/metrics also on 10\.0\.0\.5:9464$/m);
  assert.match(withMetrics, /^traces:\s+off$/m);
  assert.doesNotMatch(withMetrics, /^store:/m, 'an older server names no store');
  const replica = describeInfo({ ...bare, store: 'postgres', leader: false }, 'http://127.0.0.1:7171');
  assert.match(replica, /^store:\s+postgres \(another replica leads\)$/m);
});

test('usage report and sandbox metrics tables', () => {
  const report = describeUsageReport({
    start: '2025-01-01T00:00:00.000Z',
    end: '2025-01-01T02:00:00.000Z',
    bucketSeconds: 3600,
    tenants: [
      {
        tenant: 'team-a',
        cpuSeconds: 20.04,
        cpuReservedSeconds: 7200,
        memoryGiBSeconds: 1800,
        memoryUsedGiBSeconds: 36,
        storageGiBHours: 2,
        sandboxSeconds: 3600,
        networkRxBytes: 2048,
        networkTxBytes: 0,
      },
    ],
  });
  assert.match(report, /^2025-01-01T00:00:00.000Z → 2025-01-01T02:00:00.000Z \(whole UTC hours\)\n/);
  assert.match(report, /^team-a\s+20\.0 s\s+2\.0 h\s+0\.500\s+0\.010\s+2\.000\s+60\.0 min\s+2\.0 KiB\s+0 B$/m);
  assert.match(describeUsageReport({ start: 'a', end: 'b', bucketSeconds: 3600, tenants: [] }), /no usage recorded/);

  const base = {
    sandboxId: 'abc',
    state: 'running',
    isolation: 'container',
    cpuLimit: 2,
    memoryLimitBytes: 512 * 1024 * 1024,
    intervalSeconds: 5,
    windowSeconds: 3600,
  };
  const sample = (i: number) => ({
    timestamp: `2025-01-01T00:00:0${i}.123Z`,
    cpuPercent: i === 0 ? null : 50,
    cpuCores: i === 0 ? null : 1,
    cpuSeconds: i,
    memoryBytes: 1024 * 1024,
    memoryCacheBytes: 0,
    pids: 4,
    diskUsedBytes: 4096,
    diskSizeBytes: 1 << 30,
    netRxBytes: null,
    netTxBytes: null,
  });
  const text = describeMetrics({ ...base, samples: [0, 1, 2].map(sample) }, 2);
  assert.match(text, /^abc running \(container; cpu 2, memory 512\.0 MiB\); a sample every 5 s, kept 3600 s\n/);
  assert.match(text, /1 earlier samples not shown/);
  assert.match(text, /^2025-01-01T00:00:02Z\s+50\.0%\s+2\.00 s\s+1\.0 MiB\s+4\s+4\.0 KiB\s+-\s+-$/m);
  assert.match(
    describeMetrics({ ...base, state: 'stopped', samples: [] }, 20),
    /no samples \(samples are taken while a sandbox runs; it is stopped\)/,
  );
});

test('info names the provider, with the namespace and API server of a kubernetes one', () => {
  const base = { version: '0.1.0', serverId: 's', dataDir: '/d', defaultIsolation: 'container' as const, templates: [], tiers: {} };
  assert.match(describeInfo({ ...base, provider: 'local', posture: {} }, 'http://h'), /^provider:\s+local$/m);
  assert.match(
    describeInfo(
      { ...base, provider: 'kubernetes', posture: { kubernetes: { namespace: 'sbx', server: 'https://k8s:6443' } } },
      'http://h',
    ),
    /^provider:\s+kubernetes \(namespace sbx at https:\/\/k8s:6443\)$/m,
  );
});

test('secrets: references only', () => {
  assert.equal(describeSecrets([]), '-');
  assert.equal(
    describeSecrets([
      { name: 'gh', env: 'GITHUB_TOKEN' },
      { name: 'db', file: '/run/secrets/db' },
      { name: 'api', injectHeader: { host: 'api.example.test', header: 'Authorization', format: 'Bearer {}' } },
    ]),
    'gh=env:GITHUB_TOKEN, db=file:/run/secrets/db, api=header:api.example.test',
  );
});
