import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_TIMEOUT_MS, DEFAULT_URL, resolveConfig } from '../../src/config.js';

const files = (map: Record<string, string>) => (path: string) => map[path];

test('defaults: local URL, admin key from /var/lib/hutch/admin.key when readable', () => {
  const c = resolveConfig({}, {}, files({ '/var/lib/hutch/admin.key': 'adminkey\n' }));
  assert.deepEqual(c, { url: DEFAULT_URL, apiKey: 'adminkey', timeoutMs: DEFAULT_TIMEOUT_MS });
  assert.equal(DEFAULT_URL, 'http://127.0.0.1:7171');
});

test('no key anywhere: apiKey is undefined (the server will answer 401)', () => {
  assert.equal(resolveConfig({}, {}, files({})).apiKey, undefined);
});

test('HUTCH_DATA_DIR moves the admin key file', () => {
  const c = resolveConfig({}, { HUTCH_DATA_DIR: '/srv/h' }, files({ '/srv/h/admin.key': ' k2 ', '/var/lib/hutch/admin.key': 'no' }));
  assert.equal(c.apiKey, 'k2');
});

test('environment beats the key file and the defaults', () => {
  const c = resolveConfig({}, { HUTCH_URL: 'http://h:1/', HUTCH_API_KEY: 'envkey' }, files({ '/var/lib/hutch/admin.key': 'filekey' }));
  assert.equal(c.url, 'http://h:1');
  assert.equal(c.apiKey, 'envkey');
});

test('explicit options beat the environment', () => {
  const c = resolveConfig(
    { url: 'https://x.example///', apiKey: 'optkey', timeoutMs: 5 },
    { HUTCH_URL: 'http://h:1', HUTCH_API_KEY: 'envkey' },
    files({ '/var/lib/hutch/admin.key': 'filekey' }),
  );
  assert.deepEqual(c, { url: 'https://x.example', apiKey: 'optkey', timeoutMs: 5 });
});

test('empty strings count as unset', () => {
  const c = resolveConfig({ url: '', apiKey: '' }, { HUTCH_URL: '', HUTCH_API_KEY: '' }, files({ '/var/lib/hutch/admin.key': 'filekey' }));
  assert.equal(c.url, DEFAULT_URL);
  assert.equal(c.apiKey, 'filekey');
});

test('a non-positive timeout is rejected', () => {
  assert.throws(() => resolveConfig({ timeoutMs: 0 }, {}, files({})), RangeError);
});
