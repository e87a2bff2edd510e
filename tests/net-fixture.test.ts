import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as dnsPromises } from 'node:dns';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, test } from 'node:test';
import { cleanupStaleTestInternets, RT_PROTO, startTestInternet, type TestInternet } from './net-fixture.js';

// Test-only pools, apart from Hutch's defaults so a Hutch server running meanwhile is unaffected.
const POOL4 = '10.251.0.0/16';
const POOL6 = 'fd74:6573:7400::/48';
/** A pool address the test puts on the fixture's own veth: IPv4 output lookups need a local source. */
const SRC4 = '10.251.255.254';
const SRC6 = 'fd74:6573:7400:2::2';
const STEP_MS = 5000;

function tableEmpty(family: '-4' | '-6', table: number): boolean {
  try {
    return ipOut(family, 'route', 'show', 'table', String(table)).trim() === '';
  } catch (e) {
    return /does not exist/.test(String((e as { stderr?: unknown }).stderr));
  }
}

function ipOut(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: STEP_MS, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `ip route get` only asks the kernel; it sends nothing. Returns the route or the error text. */
function routeGet(...args: string[]): string {
  try {
    return args[0] === '-6' ? ipOut('-6', 'route', 'get', ...args.slice(1)) : ipOut('route', 'get', ...args);
  } catch (e) {
    return `error: ${String((e as { stderr?: unknown }).stderr ?? e)}`;
  }
}

function httpGet(host: string, path: string, hostHeader: string): Promise<{ status: number; body: string; chunks: number[] }> {
  return new Promise((res, rej) => {
    const req = request({ host, port: 80, path, headers: { host: hostHeader }, timeout: STEP_MS, agent: false }, (resp) => {
      let body = '';
      const chunks: number[] = [];
      resp.setEncoding('utf8');
      resp.on('data', (d: string) => {
        body += d;
        chunks.push(Date.now());
      });
      resp.on('end', () => res({ status: resp.statusCode ?? 0, body, chunks }));
      resp.on('error', rej);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${path} timed out`)));
    req.on('error', rej);
    req.end();
  });
}

let inet: TestInternet;

before(async () => {
  await cleanupStaleTestInternets();
  inet = await startTestInternet({ sandboxPool4: POOL4, sandboxPool6: POOL6 });
});

after(async () => {
  await inet?.stop();
});

test('DNS: zone answers, wildcard, rebind name, TXT, NXDOMAIN', async () => {
  const r = new dnsPromises.Resolver({ timeout: 2000, tries: 2 });
  r.setServers([inet.dns]);
  assert.deepEqual(await r.resolve4('pypi-mirror.test'), [inet.hosts.pypi]);
  assert.deepEqual(await r.resolve6('pypi-mirror.test'), [inet.hosts.pypi6]);
  assert.deepEqual(await r.resolve4('secure.test'), [inet.hosts.secure]);
  assert.deepEqual(await r.resolve4('abc.wild.test'), [inet.hosts.other]);
  assert.deepEqual(await r.resolve4('a.b.wild.test'), [inet.hosts.other]);
  assert.deepEqual(await r.resolve4('rebind.test'), [inet.hosts.metadata]);
  assert.deepEqual(await r.resolveTxt('anything.example'), [['hutch-test-txt anything.example']]);
  await assert.rejects(r.resolve4('nope.test'), (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND');
  const events = await inet.events();
  assert.ok(events.some((e) => e.kind === 'dns' && e.detail === 'pypi-mirror.test A'));
});

test('HTTP: body names the address, Host and path; /stream is chunked over time; echo', async () => {
  const r = await httpGet(inet.hosts.pypi, '/simple/', 'pypi-mirror.test');
  assert.equal(r.status, 200);
  assert.equal(r.body, `hutch-test-host ${inet.hosts.pypi} pypi-mirror.test /simple/`);
  const v6 = await httpGet(inet.hosts.pypi6, '/x', 'pypi-mirror.test');
  assert.equal(v6.body, `hutch-test-host ${inet.hosts.pypi6} pypi-mirror.test /x`);

  const s = await httpGet(inet.hosts.other, '/stream', 'other.test');
  assert.equal(s.body.split('\n').filter(Boolean).length, 5);
  assert.ok(s.chunks.length >= 3, `expected separate chunks, got ${s.chunks.length}`);
  assert.ok(s.chunks.at(-1)! - s.chunks[0]! >= 150, 'chunks should arrive ~50 ms apart');

  const echoed = await new Promise<string>((res, rej) => {
    const sock = tcpConnect({ host: inet.hosts.other, port: 7000 }, () => sock.end('ping'));
    let got = '';
    sock.setTimeout(STEP_MS, () => sock.destroy(new Error('echo timed out')));
    sock.on('data', (d) => (got += d.toString()));
    sock.on('end', () => res(got));
    sock.on('error', rej);
  });
  assert.equal(echoed, 'ping');

  const hits = await inet.hits();
  assert.ok((hits[inet.hosts.pypi] ?? 0) >= 1);
  assert.ok((hits[inet.hosts.pypi6] ?? 0) >= 1);
  assert.ok((hits[inet.hosts.other] ?? 0) >= 2);
  assert.equal(hits[inet.hosts.metadata] ?? 0, 0, 'nothing reached the fake metadata service yet');
});

test('fake metadata service answers inside the namespace (the host has no route to it)', () => {
  const script = `
    const http = require('node:http');
    const get = (host) => new Promise((res, rej) => {
      http.get({ host, port: 80, path: '/latest/meta-data/', timeout: 3000 }, (r) => {
        let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => res(b));
      }).on('error', rej).on('timeout', () => rej(new Error('timeout')));
    });
    Promise.all([get('${inet.hosts.metadata}'), get('${inet.hosts.metadata6}')]).then((b) => console.log(b.join(',')), (e) => { console.error(e); process.exit(1); });
  `;
  const out = execFileSync('ip', ['netns', 'exec', inet.netns, process.execPath, '-e', script], { encoding: 'utf8', timeout: STEP_MS * 2 });
  assert.equal(out.trim(), 'metadata-secret,metadata-secret');
});

test('HTTPS: secure.test verifies against the test CA', async () => {
  const ca = readFileSync(inet.caCertPath);
  const body = await new Promise<string>((res, rej) => {
    const sock = tlsConnect({ host: inet.hosts.secure, port: 443, servername: 'secure.test', ca }, () => {
      sock.write('GET /tls HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n');
    });
    let got = '';
    sock.setTimeout(STEP_MS, () => sock.destroy(new Error('TLS timed out')));
    sock.on('data', (d) => (got += d.toString()));
    sock.on('end', () => res(got));
    sock.on('error', rej);
  });
  assert.match(body, /^HTTP\/1\.1 200/);
  assert.ok(body.endsWith(`hutch-test-host ${inet.hosts.secure} secure.test /tls`), body);

  // A name the certificate does not cover is rejected.
  await assert.rejects(
    new Promise<void>((res, rej) => {
      const sock = tlsConnect({ host: inet.hosts.secure, port: 443, servername: 'evil.test', ca }, () => {
        sock.end();
        res();
      });
      sock.setTimeout(STEP_MS, () => sock.destroy(new Error('TLS timed out')));
      sock.on('error', rej);
    }),
    /altnames|Hostname/i,
  );
});

test('policy routing: pool traffic reaches only the test net; main table untouched', () => {
  const rules4 = ipOut('-4', 'rule', 'show');
  const rules6 = ipOut('-6', 'rule', 'show');
  assert.match(rules4, new RegExp(`from ${POOL4.replace(/\./g, '\\.')} lookup ${inet.table} proto ${RT_PROTO}`));
  assert.match(rules6, new RegExp(`from ${POOL6} lookup ${inet.table} proto ${RT_PROTO}`));
  assert.match(rules4, new RegExp(`to ${POOL4.replace(/\./g, '\\.')} lookup main suppress_prefixlength 0`));

  // `ip route get` only asks the kernel (nothing is sent). For IPv4 the source must be local, so
  // put a pool address on the fixture's veth (it goes away with the veth).
  execFileSync('ip', ['addr', 'add', `${SRC4}/32`, 'dev', inet.hostVeth], { timeout: STEP_MS });
  const viaTable = new RegExp(`dev ${inet.hostVeth} table ${inet.table}`);
  const blocked = /unreachable|No route to host/i;
  assert.match(routeGet(inet.hosts.pypi, 'from', SRC4), viaTable);
  assert.match(routeGet(inet.hosts.metadata, 'from', SRC4), viaTable);
  assert.match(routeGet('8.8.8.8', 'from', SRC4), blocked);
  assert.match(routeGet('192.0.2.1', 'from', SRC4), blocked);
  assert.match(routeGet('10.251.9.9', 'from', SRC4), blocked, 'a pool address without a route must not take the default route');
  assert.match(routeGet('-6', inet.hosts.pypi6, 'from', SRC6), viaTable);
  assert.match(routeGet('-6', inet.hosts.metadata6, 'from', SRC6), viaTable);
  assert.match(routeGet('-6', '2001:4860::8888', 'from', SRC6), blocked);
  assert.match(routeGet('-6', 'fd00::1', 'from', SRC6), blocked);
  assert.match(routeGet('-6', 'fd74:6573:7400:5::2', 'from', SRC6), blocked);

  // The host reaches the test net through the main table, but not the fake metadata service.
  assert.match(routeGet(inet.hosts.pypi), new RegExp(`dev ${inet.hostVeth} src ${inet.gateway4}`));
  assert.match(routeGet('-6', inet.hosts.pypi6), new RegExp(`dev ${inet.hostVeth}`));
  assert.doesNotMatch(routeGet(inet.hosts.metadata), new RegExp(inet.hostVeth));
  assert.doesNotMatch(routeGet('-6', inet.hosts.metadata6), new RegExp(inet.hostVeth));
});

test('stop removes everything and is idempotent', async () => {
  const { netns, hostVeth, table, tmpDir } = inet;
  await inet.stop();
  await inet.stop();
  assert.ok(!ipOut('netns', 'list').includes(netns));
  assert.throws(() => ipOut('link', 'show', hostVeth));
  assert.doesNotMatch(ipOut('-4', 'rule', 'show'), new RegExp(`proto ${RT_PROTO}|lookup ${table}`));
  assert.doesNotMatch(ipOut('-6', 'rule', 'show'), new RegExp(`proto ${RT_PROTO}|lookup ${table}`));
  assert.ok(tableEmpty('-4', table));
  assert.ok(tableEmpty('-6', table));
  assert.doesNotMatch(routeGet('198.18.0.10'), /htinet/);
  assert.throws(() => readFileSync(`${tmpDir}/ca.crt`));
  assert.deepEqual(await inet.hits(), {});
});

test('a start that fails halfway leaves nothing behind; stale leftovers are removed', async () => {
  // Everything is set up, then the in-namespace program cannot be ready within 1 ms.
  await assert.rejects(startTestInternet({ sandboxPool4: POOL4, sandboxPool6: POOL6, readyTimeoutMs: 1 }), /not ready/);
  assert.doesNotMatch(ipOut('netns', 'list'), /hutchtest-inet/);
  assert.doesNotMatch(ipOut('-4', 'rule', 'show'), new RegExp(`proto ${RT_PROTO}`));
  assert.doesNotMatch(ipOut('link', 'show'), /htinet/);

  // A crashed run's leftovers: namespace, veth, rule and table route with our tag.
  execFileSync('ip', ['netns', 'add', 'hutchtest-inet-stale'], { timeout: STEP_MS });
  execFileSync('ip', ['link', 'add', 'htinetstale', 'type', 'veth', 'peer', 'name', 'p0', 'netns', 'hutchtest-inet-stale'], {
    timeout: STEP_MS,
  });
  execFileSync('ip', ['rule', 'add', 'from', POOL4, 'lookup', '71719', 'pref', '1799', 'protocol', String(RT_PROTO)], { timeout: STEP_MS });
  execFileSync('ip', ['route', 'add', 'unreachable', 'default', 'table', '71719', 'proto', String(RT_PROTO)], { timeout: STEP_MS });
  const removed = await cleanupStaleTestInternets();
  assert.ok(removed && removed.includes('netns hutchtest-inet-stale'), JSON.stringify(removed));
  assert.doesNotMatch(ipOut('netns', 'list'), /hutchtest-inet/);
  assert.doesNotMatch(ipOut('link', 'show'), /htinet/);
  assert.doesNotMatch(ipOut('-4', 'rule', 'show'), new RegExp(`proto ${RT_PROTO}`));
  assert.ok(tableEmpty('-4', 71719));
});
