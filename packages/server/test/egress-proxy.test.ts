import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import { EgressProxy, classifyName, normalizeSourceAddress, type EgressDecision } from '../src/network/egress-proxy.js';
import { MAX_SNIFF_BYTES, parseHttpHost, parseTlsClientHelloSni } from '../src/network/sniff.js';
import type { SandboxEgressView, SandboxNetLookup } from '../src/network/types.js';

// The egress proxy and its sniffers, on real sockets. All traffic stays on 127.0.0.1.

const LOCAL = '127.0.0.1';
const SANDBOX = 'sb-test';

// --- helpers -------------------------------------------------------------------------------------

async function listenOn(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOCAL, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The first TLS record a real Node TLS client sends (its ClientHello), captured by a plain TCP server. */
async function captureClientHello(servername?: string): Promise<Buffer> {
  const sockets: Socket[] = [];
  const server = net.createServer((s) => sockets.push(s));
  const port = await listenOn(server);
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (s: Socket) => {
        let buf = Buffer.alloc(0);
        s.on('data', (chunk: Buffer) => {
          buf = Buffer.concat([buf, chunk]);
          if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)));
        });
      });
      const client = tls.connect({ host: LOCAL, port, ...(servername !== undefined ? { servername } : {}), rejectUnauthorized: false });
      client.on('error', () => {});
      sockets.push(client);
      setTimeout(() => reject(new Error('no ClientHello captured')), 3000).unref();
    });
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  }
}

/** Re-frames a single-record ClientHello as two handshake records split at `at` bytes of the message. */
function splitIntoTwoRecords(hello: Buffer, at: number): Buffer {
  const message = hello.subarray(5);
  const record = (part: Buffer): Buffer => {
    const header = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    return Buffer.concat([header, part]);
  };
  return Buffer.concat([record(message.subarray(0, at)), record(message.subarray(at))]);
}

function view(names: string[], allowsAddress: (ip: string) => boolean = (ip) => ip === LOCAL): SandboxEgressView {
  return {
    sandboxId: SANDBOX,
    mode: 'allowlist',
    allowsName: (name) => names.some((p) => (p.startsWith('*.') ? name.endsWith(p.slice(1)) : name === p)),
    allowsResolvedAddress: allowsAddress,
  };
}

const NAMES: Record<string, string[]> = {
  'allowed.test': [LOCAL],
  'api.wild.test': [LOCAL],
  'evil.test': [LOCAL],
  'rebind.test': [LOCAL],
};

interface TlsUpstreamConn {
  socket: Socket;
  data: Buffer;
  ended: boolean;
  closed: boolean;
}

interface Harness {
  proxy: EgressProxy;
  httpPort: number;
  tlsPort: number;
  httpUpstreamPort: number;
  tlsUpstreamPort: number;
  httpRequests: { host: string | undefined; url: string | undefined }[];
  tlsConns: TlsUpstreamConn[];
  decisions: EgressDecision[];
}

/**
 * An HTTP upstream, a raw TCP "TLS upstream" (the proxy never terminates TLS, so recording the bytes
 * is enough) and a proxy in front of both. Everything is closed after the test.
 */
async function setup(
  t: TestContext,
  options: { lookup?: SandboxNetLookup; sniffTimeoutMs?: number; maxConnectionsPerSandbox?: number } = {},
): Promise<Harness> {
  const httpRequests: Harness['httpRequests'] = [];
  const httpUpstream = http.createServer((req, res) => {
    httpRequests.push({ host: req.headers.host, url: req.url });
    if (req.url === '/big') {
      const chunk = Buffer.alloc(64 * 1024, 'x');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(16 * chunk.length) });
      let sent = 0;
      const pump = (): void => {
        while (sent < 16) {
          sent++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    const text = `upstream saw host ${req.headers.host} path ${req.url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(text)) });
    res.end(text);
  });
  const httpUpstreamPort = await listenOn(httpUpstream);

  const tlsConns: TlsUpstreamConn[] = [];
  const tlsUpstream = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn: TlsUpstreamConn = { socket, data: Buffer.alloc(0), ended: false, closed: false };
    tlsConns.push(conn);
    socket.on('error', () => {});
    socket.write('hello-from-upstream\n');
    socket.on('data', (chunk: Buffer) => (conn.data = Buffer.concat([conn.data, chunk])));
    socket.on('end', () => {
      conn.ended = true;
      socket.end(`got ${conn.data.length}\n`);
    });
    socket.on('close', () => (conn.closed = true));
  });
  const tlsUpstreamPort = await listenOn(tlsUpstream);

  const decisions: EgressDecision[] = [];
  const proxy = new EgressProxy({
    lookup: options.lookup ?? ((ip) => (ip === LOCAL ? view(['allowed.test', '*.wild.test', 'rebind.test']) : null)),
    resolve: async (name) => {
      const found = NAMES[name];
      if (!found) throw new Error(`ENOTFOUND ${name}`);
      return found;
    },
    sniffTimeoutMs: options.sniffTimeoutMs ?? 5000,
    connectTimeoutMs: 2000,
    ...(options.maxConnectionsPerSandbox !== undefined ? { maxConnectionsPerSandbox: options.maxConnectionsPerSandbox } : {}),
    onDecision: (d) => decisions.push(d),
  });
  t.after(async () => {
    await proxy.close();
    for (const c of tlsConns) c.socket.destroy();
    httpUpstream.closeAllConnections();
    await Promise.all([new Promise((r) => httpUpstream.close(r)), new Promise((r) => tlsUpstream.close(r))]);
  });
  const [httpPort, tlsPort] = await proxy.listen([
    { host: LOCAL, port: 0, targetPort: httpUpstreamPort, kind: 'http' },
    { host: LOCAL, port: 0, targetPort: tlsUpstreamPort, kind: 'tls' },
  ]);
  assert.deepEqual(proxy.boundPorts(), [httpPort, tlsPort]);
  return { proxy, httpPort: httpPort!, tlsPort: tlsPort!, httpUpstreamPort, tlsUpstreamPort, httpRequests, tlsConns, decisions };
}

/** A raw client: connects, writes `chunks` (one write each, a tick apart), collects until closed. */
interface RawClient {
  socket: Socket;
  received: () => Buffer;
  closed: Promise<Buffer>;
}

function rawClient(t: TestContext, port: number, chunks: (Buffer | string)[] = [], end = false): RawClient {
  const socket = net.connect({ host: LOCAL, port });
  t.after(() => socket.destroy());
  let data = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (data = Buffer.concat([data, chunk])));
  socket.on('error', () => {});
  const closed = new Promise<Buffer>((resolve) => socket.once('close', () => resolve(data)));
  socket.once('connect', async () => {
    for (const chunk of chunks) {
      if (socket.destroyed) return;
      socket.write(chunk);
      await new Promise((r) => setTimeout(r, 2));
    }
    if (end && !socket.destroyed) socket.end();
  });
  return { socket, received: () => data, closed };
}

async function httpExchange(t: TestContext, port: number, head: string): Promise<string> {
  return (await rawClient(t, port, [head]).closed).toString('utf8');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref())]);
}

// --- sniffers ------------------------------------------------------------------------------------

test('TLS sniffer: a real ClientHello yields its SNI, and every prefix of it asks for more', async () => {
  const hello = await captureClientHello('api.example.test');
  assert.deepEqual(parseTlsClientHelloSni(hello), { status: 'ok', serverName: 'api.example.test' });
  for (let i = 0; i < hello.length; i++) {
    assert.deepEqual(parseTlsClientHelloSni(hello.subarray(0, i)), { status: 'need-more' }, `prefix of ${i} bytes`);
  }
  // Trailing bytes after the hello (a client that already sent more) do not matter.
  assert.deepEqual(parseTlsClientHelloSni(Buffer.concat([hello, Buffer.from([0x14, 3, 3, 0, 1, 1])])), {
    status: 'ok',
    serverName: 'api.example.test',
  });
});

test('TLS sniffer: a ClientHello spread over two records, and one without SNI', async () => {
  const hello = await captureClientHello('api.example.test');
  for (const at of [1, 3, 4, 40, 100, hello.length - 6]) {
    const split = splitIntoTwoRecords(hello, at);
    assert.deepEqual(parseTlsClientHelloSni(split), { status: 'ok', serverName: 'api.example.test' }, `split at ${at}`);
    assert.deepEqual(parseTlsClientHelloSni(split.subarray(0, split.length - 1)), { status: 'need-more' });
  }
  const bare = await captureClientHello(); // Node sends no SNI when connecting to an IP
  assert.deepEqual(parseTlsClientHelloSni(bare), { status: 'ok', serverName: null });
});

test('TLS sniffer: not a ClientHello, malformed or oversized → invalid', async () => {
  const hello = await captureClientHello('api.example.test');
  const invalid = { status: 'invalid' };
  assert.deepEqual(parseTlsClientHelloSni(Buffer.from('GET / HTTP/1.1\r\n')), invalid);
  assert.deepEqual(parseTlsClientHelloSni(Buffer.from([0x16, 0x02])), invalid); // record version major ≠ 3
  const serverHello = Buffer.from(hello);
  serverHello[5] = 2;
  assert.deepEqual(parseTlsClientHelloSni(serverHello), invalid);
  const badExtensions = Buffer.from(hello);
  // Corrupt the handshake length so the body no longer ends where the record does.
  badExtensions.writeUIntBE(badExtensions.readUIntBE(6, 3) - 1, 6, 3);
  assert.equal(parseTlsClientHelloSni(badExtensions).status, 'invalid');
  const zeroRecord = Buffer.from([0x16, 3, 1, 0, 0]);
  assert.deepEqual(parseTlsClientHelloSni(zeroRecord), invalid);
  // A handshake message announcing more than the sniff budget.
  assert.deepEqual(parseTlsClientHelloSni(Buffer.from([0x16, 3, 1, 0x10, 0, 1, 0, 0x80, 0])), invalid);
  // Incomplete records past the budget.
  const tooMuch = Buffer.alloc(MAX_SNIFF_BYTES);
  Buffer.from([0x16, 3, 1, 0x40, 0, 1, 0, 0x30, 0]).copy(tooMuch);
  assert.deepEqual(parseTlsClientHelloSni(tooMuch), invalid);
});

test('HTTP sniffer: Host header, case-insensitive, port stripped, IPv6 brackets, need-more', () => {
  const ok = (host: string | null) => ({ status: 'ok', host });
  const head = 'GET /path?q=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: Allowed.Test:8080\r\nAccept: */*\r\n\r\n';
  assert.deepEqual(parseHttpHost(Buffer.from(head)), ok('Allowed.Test'));
  for (let i = 0; i < head.length; i++) {
    assert.deepEqual(parseHttpHost(Buffer.from(head.slice(0, i))), { status: 'need-more' }, `prefix of ${i} bytes`);
  }
  assert.deepEqual(parseHttpHost(Buffer.from('POST / HTTP/1.1\r\nhOsT:allowed.test\r\n\r\nbody')), ok('allowed.test'));
  assert.deepEqual(parseHttpHost(Buffer.from('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n')), ok('::1'));
  assert.deepEqual(parseHttpHost(Buffer.from('GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n')), ok('2001:db8::1'));
  assert.deepEqual(parseHttpHost(Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')), ok('127.0.0.1'));
  assert.deepEqual(parseHttpHost(Buffer.from('GET / HTTP/1.0\r\nAccept: */*\r\n\r\n')), ok(null));
  assert.deepEqual(parseHttpHost(Buffer.from('GET / HTTP/1.1\r\nHost:\r\n\r\n')), ok(null));
  // Absolute-form: the request target's authority wins and must agree with Host.
  assert.deepEqual(parseHttpHost(Buffer.from('GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n')), ok('allowed.test'));
  assert.deepEqual(parseHttpHost(Buffer.from('GET http://allowed.test:81/x HTTP/1.1\r\n\r\n')), ok('allowed.test'));
});

test('HTTP sniffer: ambiguous or non-HTTP heads → invalid', () => {
  const invalid = { status: 'invalid' };
  const check = (head: string | Buffer, why: string) => assert.deepEqual(parseHttpHost(Buffer.from(head)), invalid, why);
  check('GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n', 'two Host headers');
  check('GET / HTTP/1.1\r\nHost: a.test\r\n folded\r\n\r\n', 'obs-fold');
  check('GET / HTTP/1.1\r\nHost : a.test\r\n\r\n', 'space before colon');
  check('GET / HTTP/1.1\r\nHost: user@a.test\r\n\r\n', 'userinfo');
  check('GET / HTTP/1.1\r\nHost: a.test:80:80\r\n\r\n', 'two ports');
  check('GET / HTTP/1.1\r\nHost: a.test:http\r\n\r\n', 'port not numeric');
  check('GET http://evil.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n', 'absolute-form disagreeing with Host');
  check('GET / HTTP/1.1\r\nHost: a.test\0\r\n\r\n', 'NUL');
  check(Buffer.from([0x16, 3, 1, 0, 10]), 'TLS on the HTTP port');
  check('GET /\r\n', 'HTTP/0.9 request line');
  check('GET / HTTP/1.1\r\n' + 'X-Pad: ' + 'a'.repeat(MAX_SNIFF_BYTES) + '\r\n', 'head over the budget');
});

test('name classification and source addresses', () => {
  assert.deepEqual(classifyName('Allowed.Test.'), { kind: 'name', name: 'allowed.test' });
  assert.deepEqual(classifyName('127.0.0.1'), { kind: 'ip', name: '127.0.0.1' });
  assert.deepEqual(classifyName('::1'), { kind: 'ip', name: '::1' });
  assert.equal(classifyName('127.1').kind, 'ip');
  assert.equal(classifyName('0x7f.1').kind, 'ip');
  assert.equal(classifyName('a..b').kind, 'invalid');
  assert.equal(classifyName('a b.test').kind, 'invalid');
  assert.equal(classifyName('é.test').kind, 'invalid');
  assert.equal(classifyName('').kind, 'invalid');
  assert.equal(normalizeSourceAddress('::ffff:10.213.0.5'), '10.213.0.5');
  assert.equal(normalizeSourceAddress('fd00::5'), 'fd00::5');
  assert.equal(normalizeSourceAddress(undefined), null);
});

// --- proxy: HTTP ---------------------------------------------------------------------------------

test('HTTP: an allowed Host reaches the upstream and the response streams back', async (t) => {
  const h = await setup(t);
  const reply = await httpExchange(t, h.httpPort, 'GET /hello HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 200 OK/);
  assert.match(reply, /upstream saw host allowed\.test path \/hello$/);
  assert.deepEqual(h.decisions, [{ sandboxId: SANDBOX, name: 'allowed.test', port: h.httpUpstreamPort, verdict: 'allowed' }]);

  // A wildcard match, with a port in the Host header.
  const wild = await httpExchange(t, h.httpPort, 'GET / HTTP/1.1\r\nHost: API.wild.test:80\r\nConnection: close\r\n\r\n');
  assert.match(wild, /upstream saw host API\.wild\.test:80/);

  // 1 MiB through Node's HTTP client, with backpressure along the way.
  const body = await new Promise<Buffer>((resolve, reject) => {
    const req = http.get({ host: LOCAL, port: h.httpPort, path: '/big', headers: { host: 'allowed.test' }, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  assert.equal(body.length, 1024 * 1024);
  assert.ok(body.every((b) => b === 0x78));
  await waitFor('all proxied connections to be released', () => h.proxy.activeConnections === 0);
});

test('HTTP: a Host outside the allowlist gets 403 and never reaches the upstream', async (t) => {
  const h = await setup(t);
  const reply = await httpExchange(t, h.httpPort, 'GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(reply, /host evil\.test is not in this sandbox's egress allowlist/);
  assert.equal(h.httpRequests.length, 0);
  assert.equal(h.decisions.length, 1);
  assert.deepEqual(h.decisions[0], {
    sandboxId: SANDBOX,
    name: 'evil.test',
    port: h.httpUpstreamPort,
    verdict: 'denied',
    reason: 'not allowed',
  });

  // The bare apex does not match '*.wild.test'; no Host at all is refused too.
  assert.match(await httpExchange(t, h.httpPort, 'GET / HTTP/1.1\r\nHost: wild.test\r\n\r\n'), /^HTTP\/1\.1 403 /);
  const noHost = await httpExchange(t, h.httpPort, 'GET / HTTP/1.0\r\n\r\n');
  assert.match(noHost, /^HTTP\/1\.1 403 /);
  assert.match(noHost, /no Host header/);
  assert.equal(h.httpRequests.length, 0);
  await waitFor('all connections to be released', () => h.proxy.activeConnections === 0);
});

test('HTTP: a raw IP as Host gets 403 (names are enforced, not addresses)', async (t) => {
  const h = await setup(t);
  for (const host of ['127.0.0.1', '127.0.0.1:80', '[::1]:80', '127.1']) {
    const reply = await httpExchange(t, h.httpPort, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    assert.match(reply, /^HTTP\/1\.1 403 Forbidden/, host);
    assert.equal(h.decisions.at(-1)!.reason, 'ip literal', host);
  }
  assert.equal(h.httpRequests.length, 0);
});

test('HTTP: a name that resolves only to blocked addresses is denied', async (t) => {
  const h = await setup(t, { lookup: (ip) => (ip === LOCAL ? view(['allowed.test', 'rebind.test'], () => false) : null) });
  const reply = await httpExchange(t, h.httpPort, 'GET / HTTP/1.1\r\nHost: rebind.test\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 403 Forbidden/);
  assert.match(reply, /rebind\.test resolves only to addresses this sandbox may not reach/);
  assert.equal(h.decisions.at(-1)!.reason, 'resolved address blocked');
  assert.equal(h.decisions.at(-1)!.verdict, 'denied');
  assert.equal(h.httpRequests.length, 0);

  // Same over TLS: just closed, the upstream never sees a connection.
  const hello = await captureClientHello('rebind.test');
  const client = rawClient(t, h.tlsPort, [hello]);
  assert.equal((await client.closed).length, 0);
  assert.equal(h.decisions.at(-1)!.reason, 'resolved address blocked');
  assert.equal(h.tlsConns.length, 0);
});

test('HTTP: an allowed name that does not resolve gets 502', async (t) => {
  const h = await setup(t, { lookup: () => view(['nowhere.test']) });
  const reply = await httpExchange(t, h.httpPort, 'GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 502 Bad Gateway/);
  assert.equal(h.decisions.at(-1)!.reason, 'resolution failed');
});

// --- proxy: TLS ----------------------------------------------------------------------------------

test('TLS: an allowed SNI reaches the upstream with the ClientHello intact, both ways', async (t) => {
  const h = await setup(t);
  const hello = await captureClientHello('allowed.test');
  // Sent in pieces (a record header split, then the rest) so the proxy has to wait for more.
  const client = rawClient(t, h.tlsPort, [hello.subarray(0, 3), hello.subarray(3, 50), hello.subarray(50), 'after-hello']);
  await waitFor('the upstream to receive the hello', () => (h.tlsConns[0]?.data.length ?? 0) >= hello.length + 'after-hello'.length);
  assert.deepEqual(h.tlsConns[0]!.data, Buffer.concat([hello, Buffer.from('after-hello')]));
  await waitFor('the upstream greeting', () => client.received().toString().includes('hello-from-upstream'));
  assert.deepEqual(h.proxy.connections(SANDBOX), [{ name: 'allowed.test', address: LOCAL, port: h.tlsUpstreamPort }]);
  assert.deepEqual(h.proxy.connections('someone-else'), []);
  assert.deepEqual(h.decisions, [{ sandboxId: SANDBOX, name: 'allowed.test', port: h.tlsUpstreamPort, verdict: 'allowed' }]);
  client.socket.destroy();
  await waitFor('the upstream side to close', () => h.tlsConns[0]!.closed);
  await waitFor('the connection to be released', () => h.proxy.activeConnections === 0);
  assert.deepEqual(h.proxy.connections(SANDBOX), []);
});

test('TLS: half-close is passed through (client FIN, upstream answers, then closes)', async (t) => {
  const h = await setup(t);
  const hello = await captureClientHello('allowed.test');
  const client = rawClient(t, h.tlsPort, [hello], true);
  const received = (await withTimeout(client.closed, 3000, 'client close')).toString();
  assert.equal(received, `hello-from-upstream\ngot ${hello.length}\n`);
  assert.equal(h.tlsConns[0]!.ended, true);
  await waitFor('the connection to be released', () => h.proxy.activeConnections === 0);
});

test('TLS: a disallowed SNI, no SNI, or non-TLS bytes → closed, upstream never contacted', async (t) => {
  const h = await setup(t);
  for (const [payload, reason] of [
    [await captureClientHello('evil.test'), 'not allowed'],
    [await captureClientHello(), 'no name'],
    [Buffer.from('GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n'), 'unparseable'],
  ] as const) {
    const client = rawClient(t, h.tlsPort, [payload]);
    const got = await withTimeout(client.closed, 3000, reason);
    assert.equal(got.length, 0, reason);
    assert.equal(h.decisions.at(-1)!.reason, reason);
    assert.equal(h.decisions.at(-1)!.verdict, 'denied');
  }
  assert.equal(h.tlsConns.length, 0);
  await waitFor('all connections to be released', () => h.proxy.activeConnections === 0);
});

// --- proxy: sources, limits, timeouts, cut, close ------------------------------------------------

test('an unknown source is closed at once (never an open relay)', async (t) => {
  const h = await setup(t, { lookup: () => null });
  const hello = await captureClientHello('allowed.test');
  const tlsClient = rawClient(t, h.tlsPort, [hello]);
  const httpClient = rawClient(t, h.httpPort, ['GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n']);
  assert.equal((await withTimeout(tlsClient.closed, 3000, 'tls close')).length, 0);
  assert.equal((await withTimeout(httpClient.closed, 3000, 'http close')).length, 0);
  assert.equal(h.tlsConns.length, 0);
  assert.equal(h.httpRequests.length, 0);
  assert.ok(h.decisions.length >= 2);
  for (const d of h.decisions)
    assert.deepEqual({ ...d, port: 0 }, { sandboxId: null, name: null, port: 0, verdict: 'denied', reason: 'unknown source' });
  assert.equal(h.proxy.activeConnections, 0);
});

test('a client that sends nothing (or half a ClientHello) is closed after sniffTimeoutMs', async (t) => {
  const h = await setup(t, { sniffTimeoutMs: 150 });
  const hello = await captureClientHello('allowed.test');
  const started = Date.now();
  const silent = rawClient(t, h.tlsPort);
  const partial = rawClient(t, h.tlsPort, [hello.subarray(0, 20)]);
  const slowHttp = rawClient(t, h.httpPort, ['GET / HTTP/1.1\r\nHost: allowed.test\r\n']);
  await withTimeout(Promise.all([silent.closed, partial.closed, slowHttp.closed]), 3000, 'sniff timeout');
  assert.ok(Date.now() - started >= 100);
  assert.equal(h.decisions.filter((d) => d.reason === 'sniff timeout').length, 3);
  assert.equal(h.tlsConns.length, 0);
  await waitFor('all connections to be released', () => h.proxy.activeConnections === 0);
});

test('connections per sandbox are capped', async (t) => {
  const h = await setup(t, { maxConnectionsPerSandbox: 2 });
  rawClient(t, h.tlsPort);
  rawClient(t, h.tlsPort);
  await waitFor('two sniffing connections', () => h.proxy.activeConnections === 2);
  const third = rawClient(t, h.tlsPort);
  await withTimeout(third.closed, 3000, 'third connection refused');
  assert.equal(h.decisions.at(-1)!.reason, 'too many connections');
  assert.equal(h.proxy.activeConnections, 2);
});

test('cut() closes live connections that are no longer allowed and reports how many', async (t) => {
  const h = await setup(t);
  const hello = await captureClientHello('allowed.test');
  const first = rawClient(t, h.tlsPort, [hello]);
  await waitFor('a proxied connection', () => h.proxy.connections(SANDBOX).length === 1);
  const target = { name: 'allowed.test', address: LOCAL, port: h.tlsUpstreamPort };

  const seen: unknown[] = [];
  assert.equal(
    h.proxy.cut(SANDBOX, (c) => {
      seen.push(c);
      return true;
    }),
    0,
  );
  assert.deepEqual(seen, [target]);
  assert.equal(h.proxy.cut('another-sandbox'), 0);
  assert.equal(h.proxy.connections(SANDBOX).length, 1);

  assert.equal(
    h.proxy.cut(SANDBOX, (c) => c.name !== 'allowed.test'),
    1,
  );
  await withTimeout(first.closed, 3000, 'cut client');
  await waitFor('the upstream side to close', () => h.tlsConns[0]!.closed);
  assert.deepEqual(h.proxy.connections(SANDBOX), []);

  // Without a predicate everything goes (sandbox deleted), including connections still sniffing.
  const second = rawClient(t, h.tlsPort, [hello]);
  const sniffing = rawClient(t, h.tlsPort);
  await waitFor('a proxied and a sniffing connection', () => h.proxy.connections(SANDBOX).length === 1 && h.proxy.activeConnections === 2);
  assert.equal(h.proxy.cut(SANDBOX), 2);
  await withTimeout(Promise.all([second.closed, sniffing.closed]), 3000, 'cut all');
  await waitFor('everything to be released', () => h.proxy.activeConnections === 0);
});

test('close() stops listening and destroys live connections', async (t) => {
  const h = await setup(t);
  const hello = await captureClientHello('allowed.test');
  const client = rawClient(t, h.tlsPort, [hello]);
  await waitFor('a proxied connection', () => h.proxy.connections(SANDBOX).length === 1);
  await withTimeout(h.proxy.close(), 3000, 'proxy close');
  await withTimeout(client.closed, 3000, 'client closed by close()');
  await waitFor('all connections to be released', () => h.proxy.activeConnections === 0);
  const refused = net.connect({ host: LOCAL, port: h.tlsPort });
  await new Promise<void>((resolve) => refused.once('error', () => resolve()));
  refused.destroy();
});
