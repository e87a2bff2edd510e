import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeInfo } from '../../src/commands/info.js';
import { describeUsage } from '../../src/commands/lifecycle.js';
import { describeGc } from '../../src/commands/snapshots.js';
import { describeLifecycle, stateLabel } from '../../src/commands/sandboxes.js';

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
