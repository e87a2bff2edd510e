import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import {
  decode,
  encode,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
  type Answer,
  type DecodedPacket,
  type RecordType,
} from 'dns-packet';
import { parseHostPort, parseUpstreams, PlatformResolver, type PlatformResolverOptions } from '../src/network/dns-resolver.js';
import type { DnsQueryRecord, SandboxEgressView, SandboxNetLookup } from '../src/network/types.js';

// The platform resolver against a fake upstream, all on loopback. The upstream answers from a
// table; a few names exercise special paths (truncation, spoofed replies).

const SANDBOX_IP = '127.0.0.1';

const A_RECORDS: Record<string, string[]> = {
  'allowed.example.test': ['192.0.2.10'],
  'www.example.test': ['192.0.2.11'],
  'rebind.example.test': ['169.254.169.254'],
  'mixed.example.test': ['192.0.2.20', '169.254.169.254', '10.1.2.3'],
  'spoofed.example.test': ['192.0.2.99'],
  'secret.other.test': ['192.0.2.66'],
  // 100 records: more than any UDP client accepts, so both hops need TCP
  'big.example.test': Array.from({ length: 100 }, (_, i) => `198.51.100.${i + 1}`),
};
const AAAA_RECORDS: Record<string, string[]> = {
  'allowed.example.test': ['2001:db8::10'],
  'rebind.example.test': ['::1'],
};
const TXT_RECORDS: Record<string, string[]> = { 'txt.example.test': ['hello'] };

/** A sandbox allowed `allowed.example.test` and `*.example.test`, kept off link-local/private/loopback. */
function testView(namesAsked: string[] = []): SandboxEgressView {
  return {
    sandboxId: 'sbx-1',
    mode: 'allowlist',
    allowsName(name) {
      namesAsked.push(name);
      return name === 'example.test' || name.endsWith('.example.test');
    },
    allowsResolvedAddress(ip) {
      return !/^(169\.254\.|10\.|127\.)/.test(ip) && ip !== '::1';
    },
  };
}

const onlySandbox =
  (view: SandboxEgressView): SandboxNetLookup =>
  (ip) =>
    ip === SANDBOX_IP ? view : null;

// ---------------------------------------------------------------------------------------------
// Fake upstream: UDP and TCP on one port, like a real name server.

interface FakeUpstream {
  address: string;
  /** Every question received, as `udp name` / `tcp name`. */
  received: string[];
}

function upstreamAnswer(query: DecodedPacket, protocol: 'udp' | 'tcp'): Buffer {
  const question = query.questions![0]!;
  const name = question.name.toLowerCase();
  const answers = recordsFor(name, question.type);
  const known = name in A_RECORDS || name in AAAA_RECORDS || name in TXT_RECORDS;
  const truncate = protocol === 'udp' && name === 'big.example.test';
  return encode({
    type: 'response',
    id: query.id,
    flags: RECURSION_DESIRED | RECURSION_AVAILABLE | (truncate ? TRUNCATED_RESPONSE : 0) | (known ? 0 : 3),
    questions: [question],
    answers: truncate ? [] : answers,
  });
}

function recordsFor(name: string, type: RecordType): Answer[] {
  if (type === 'A') return (A_RECORDS[name] ?? []).map((data) => ({ type: 'A', name, ttl: 60, data }));
  if (type === 'AAAA') return (AAAA_RECORDS[name] ?? []).map((data) => ({ type: 'AAAA', name, ttl: 60, data }));
  if (type === 'TXT') return (TXT_RECORDS[name] ?? []).map((data) => ({ type: 'TXT', name, ttl: 60, data }));
  return [];
}

/** Before the real answer to `spoofed.example.test`: a forged one from another port, and one with the wrong id. */
function sendForgeries(real: dgram.Socket, spoofer: dgram.Socket, query: DecodedPacket, to: dgram.RemoteInfo): void {
  const forged = (id: number): Buffer =>
    encode({
      type: 'response',
      id,
      flags: RECURSION_DESIRED,
      questions: query.questions!,
      answers: [{ type: 'A', name: 'spoofed.example.test', ttl: 60, data: '192.0.2.66' }],
    });
  spoofer.send(forged(query.id!), to.port, to.address);
  real.send(forged((query.id! + 1) & 0xffff), to.port, to.address);
}

/**
 * A UDP socket and a TCP server on one free port. The UDP port is free by construction; the same
 * number may be taken for TCP (e.g. by an outgoing connection), so that is retried (bounded).
 * Whatever was opened is closed at the end of the test, also when this fails.
 */
async function bindUdpAndTcp(t: TestContext, tcp: net.Server): Promise<{ udp: dgram.Socket; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const port = udp.address().port;
    const listened = await new Promise<Error | null>((resolve) => {
      tcp.once('error', resolve);
      tcp.listen(port, '127.0.0.1', () => {
        tcp.off('error', resolve);
        resolve(null);
      });
    });
    if (!listened) {
      t.after(() => new Promise<void>((r) => udp.close(() => r())));
      return { udp, port };
    }
    await new Promise<void>((r) => udp.close(() => r()));
    if ((listened as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw listened;
  }
}

async function startUpstream(t: TestContext): Promise<FakeUpstream> {
  const received: string[] = [];
  const spoofer = dgram.createSocket('udp4');
  await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => spoofer.close(() => r())));
  const connections = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    socket.on('data', (chunk) => {
      // the resolver writes each query in one piece; good enough for a fake
      const query = decode(chunk.subarray(2));
      received.push(`tcp ${query.questions![0]!.name.toLowerCase()}`);
      socket.write(lengthPrefixed(upstreamAnswer(query, 'tcp')));
    });
  });
  const { udp, port } = await bindUdpAndTcp(t, tcp);
  t.after(async () => {
    for (const socket of connections) socket.destroy();
    await new Promise((r) => tcp.close(r));
  });
  udp.on('message', (message, remote) => {
    const query = decode(message);
    const name = query.questions![0]!.name.toLowerCase();
    received.push(`udp ${name}`);
    if (name === 'spoofed.example.test') sendForgeries(udp, spoofer, query, remote);
    setTimeout(() => udp.send(upstreamAnswer(query, 'udp'), remote.port, remote.address), name === 'spoofed.example.test' ? 30 : 0);
  });
  return { address: `127.0.0.1:${port}`, received };
}

/** A UDP "name server" that reads queries and never answers. */
async function startSilentUpstream(t: TestContext): Promise<string> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => socket.close(r)));
  return `127.0.0.1:${socket.address().port}`;
}

// ---------------------------------------------------------------------------------------------
// Resolver under test and clients.

interface Harness {
  resolver: PlatformResolver;
  port: number;
  records: DnsQueryRecord[];
}

async function startResolver(
  t: TestContext,
  options: Partial<PlatformResolverOptions> & Pick<PlatformResolverOptions, 'upstreams'>,
  hosts = ['127.0.0.1'],
): Promise<Harness> {
  const records: DnsQueryRecord[] = [];
  const resolver = new PlatformResolver({
    lookup: onlySandbox(testView()),
    timeoutMs: 300,
    onQuery: (record) => records.push(record),
    ...options,
  });
  t.after(() => resolver.close());
  await resolver.listen(hosts.map((host) => ({ host, port: 0 })));
  const port = resolver.addresses()[0]!.port;
  return { resolver, port, records };
}

function nodeResolver(port: number, host = '127.0.0.1'): Resolver {
  const resolver = new Resolver({ timeout: 3000, tries: 1 });
  resolver.setServers([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`]);
  return resolver;
}

function queryPacket(name: string, type: RecordType = 'A', id = 0x1234): Buffer {
  return encode({ type: 'query', id, flags: RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

function lengthPrefixed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length);
  return Buffer.concat([prefix, message]);
}

/** Sends datagrams and resolves with the first reply, or null after `waitMs`. */
async function udpExchange(port: number, messages: Buffer[], { host = '127.0.0.1', waitMs = 3000 } = {}): Promise<DecodedPacket | null> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), waitMs);
      socket.on('message', (reply) => {
        clearTimeout(timer);
        resolve(decode(reply));
      });
      for (const message of messages) socket.send(message, port, host);
    });
  } finally {
    socket.close();
  }
}

async function tcpExchange(port: number, message: Buffer): Promise<DecodedPacket> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    return await new Promise((resolve, reject) => {
      let received = Buffer.alloc(0);
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('connection closed before a reply')));
      socket.on('data', (chunk) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) resolve(decode(received.subarray(2)));
      });
      socket.write(lengthPrefixed(message));
    });
  } finally {
    socket.destroy();
  }
}

const addressesOf = (packet: DecodedPacket | null): string[] =>
  (packet?.answers ?? []).flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : []));

const rcodeOf = (packet: DecodedPacket | null): string | undefined => (packet as { rcode?: string } | null)?.rcode;

// ---------------------------------------------------------------------------------------------

test('an allowed name resolves through the upstream; the reply keeps the client id', async (t) => {
  const upstream = await startUpstream(t);
  const { port, records } = await startResolver(t, { upstreams: [upstream.address] });

  assert.deepEqual(await nodeResolver(port).resolve4('allowed.example.test'), ['192.0.2.10']);
  assert.deepEqual(await nodeResolver(port).resolve6('allowed.example.test'), ['2001:db8::10']);
  assert.deepEqual(await nodeResolver(port).resolveTxt('txt.example.test'), [['hello']]);

  const reply = await udpExchange(port, [queryPacket('www.example.test', 'A', 0xbeef)]);
  assert.equal(reply?.id, 0xbeef);
  assert.equal(reply?.flag_ra, true);
  assert.deepEqual(addressesOf(reply), ['192.0.2.11']);

  assert.deepEqual(
    records.map((r) => [r.sandboxId, r.name, r.type, r.verdict]),
    [
      ['sbx-1', 'allowed.example.test', 'A', 'allowed'],
      ['sbx-1', 'allowed.example.test', 'AAAA', 'allowed'],
      ['sbx-1', 'txt.example.test', 'TXT', 'allowed'],
      ['sbx-1', 'www.example.test', 'A', 'allowed'],
    ],
  );
  assert.ok(records.every((r) => !Number.isNaN(Date.parse(r.at))));
});

test('a name the view denies → NXDOMAIN, never forwarded', async (t) => {
  const upstream = await startUpstream(t);
  const { port, records } = await startResolver(t, { upstreams: [upstream.address] });

  await assert.rejects(nodeResolver(port).resolve4('secret.other.test'), { code: 'ENOTFOUND' });
  const reply = await udpExchange(port, [queryPacket('secret.other.test', 'A', 0x4242)]);
  assert.equal(reply?.id, 0x4242);
  assert.equal(rcodeOf(reply), 'NXDOMAIN');
  assert.equal(reply?.flag_rd, true, 'RD is echoed');
  assert.equal(reply?.flag_ra, true);
  assert.deepEqual(reply?.questions, [{ name: 'secret.other.test', type: 'A', class: 'IN' }]);

  assert.deepEqual(upstream.received, []);
  assert.deepEqual(
    records.map((r) => [r.name, r.verdict]),
    [
      ['secret.other.test', 'denied'],
      ['secret.other.test', 'denied'],
    ],
  );
});

test('names reach the view lower-cased without the trailing dot; the reply echoes the original case', async (t) => {
  const upstream = await startUpstream(t);
  const namesAsked: string[] = [];
  const { port } = await startResolver(t, { upstreams: [upstream.address], lookup: onlySandbox(testView(namesAsked)) });

  const reply = await udpExchange(port, [queryPacket('ALLOWED.Example.TEST')]);
  assert.deepEqual(addressesOf(reply), ['192.0.2.10']);
  assert.equal(reply?.questions?.[0]?.name, 'ALLOWED.Example.TEST');
  assert.deepEqual(await nodeResolver(port).resolve4('www.example.test.'), ['192.0.2.11']);

  const denied = await udpExchange(port, [queryPacket('SECRET.Other.Test')]);
  assert.equal(rcodeOf(denied), 'NXDOMAIN');
  assert.equal(denied?.questions?.[0]?.name, 'SECRET.Other.Test');

  assert.deepEqual(namesAsked, ['allowed.example.test', 'www.example.test', 'secret.other.test']);
});

test('a label containing a dot cannot pass for a longer allowed name', async (t) => {
  const upstream = await startUpstream(t);
  const namesAsked: string[] = [];
  const { port, records } = await startResolver(t, { upstreams: [upstream.address], lookup: onlySandbox(testView(namesAsked)) });

  // labels ["exfil.example", "test"]: as text "exfil.example.test", which the view would allow
  const name = Buffer.concat([Buffer.from([13]), Buffer.from('exfil.example'), Buffer.from([4]), Buffer.from('test'), Buffer.from([0])]);
  const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const typeAndClass = Buffer.from([0, 1, 0, 1]);
  const reply = await udpExchange(port, [Buffer.concat([header, name, typeAndClass])]);

  assert.equal(rcodeOf(reply), 'NXDOMAIN');
  assert.deepEqual(namesAsked, []);
  assert.deepEqual(upstream.received, []);
  assert.equal(records[0]?.verdict, 'denied');
});

test('a source that is not a sandbox → REFUSED without recursion, never forwarded, not recorded', async (t) => {
  const upstream = await startUpstream(t);
  const { port, records } = await startResolver(t, { upstreams: [upstream.address], lookup: () => null });

  await assert.rejects(nodeResolver(port).resolve4('allowed.example.test'), { code: 'EREFUSED' });
  const reply = await udpExchange(port, [queryPacket('allowed.example.test')]);
  assert.equal(rcodeOf(reply), 'REFUSED');
  assert.equal(reply?.flag_ra, false);
  assert.deepEqual(reply?.answers, []);
  assert.deepEqual(upstream.received, []);
  assert.deepEqual(records, []);
});

test('on a second address (::1) a source the lookup does not know is refused', async (t) => {
  if (!(await loopbackV6Available())) {
    t.skip('no ::1 on this host');
    return;
  }
  const upstream = await startUpstream(t);
  const { resolver } = await startResolver(t, { upstreams: [upstream.address] }, ['127.0.0.1', '::1']);
  const endpoints = resolver.addresses();
  assert.deepEqual(
    endpoints.map((e) => [e.host, e.protocol]),
    [
      ['127.0.0.1', 'udp'],
      ['127.0.0.1', 'tcp'],
      ['::1', 'udp'],
      ['::1', 'tcp'],
    ],
  );
  const v4Port = endpoints[0]!.port;
  const v6Port = endpoints[2]!.port;
  assert.equal(endpoints[1]!.port, v4Port, 'UDP and TCP share a port');

  assert.deepEqual(await nodeResolver(v4Port).resolve4('allowed.example.test'), ['192.0.2.10']);
  await assert.rejects(nodeResolver(v6Port, '::1').resolve4('allowed.example.test'), { code: 'EREFUSED' });
});

test('upstream timeout → SERVFAIL in bounded time; the next upstream is tried first', async (t) => {
  const silent = await startSilentUpstream(t);
  const upstream = await startUpstream(t);

  const alone = await startResolver(t, { upstreams: [silent], timeoutMs: 200 });
  let started = Date.now();
  const reply = await udpExchange(alone.port, [queryPacket('allowed.example.test')]);
  assert.equal(rcodeOf(reply), 'SERVFAIL');
  assert.ok(Date.now() - started < 1500, `took ${Date.now() - started} ms`);
  assert.deepEqual(
    alone.records.map((r) => r.verdict),
    ['failed'],
  );

  const withFallback = await startResolver(t, { upstreams: [silent, upstream.address], timeoutMs: 200 });
  started = Date.now();
  assert.deepEqual(await nodeResolver(withFallback.port).resolve4('allowed.example.test'), ['192.0.2.10']);
  assert.ok(Date.now() - started >= 150, 'the silent upstream was asked first');
  assert.deepEqual(
    withFallback.records.map((r) => r.verdict),
    ['allowed'],
  );
});

test('beyond the in-flight cap a query gets SERVFAIL at once', async (t) => {
  const silent = await startSilentUpstream(t);
  const { port, records } = await startResolver(t, { upstreams: [silent], timeoutMs: 1000, maxInFlight: 1 });

  const first = udpExchange(port, [queryPacket('allowed.example.test', 'A', 1)]);
  await new Promise((r) => setTimeout(r, 50));
  const started = Date.now();
  const second = await udpExchange(port, [queryPacket('www.example.test', 'A', 2)]);
  assert.equal(rcodeOf(second), 'SERVFAIL');
  assert.ok(Date.now() - started < 500, 'not queued behind the first');
  assert.equal(rcodeOf(await first), 'SERVFAIL');
  assert.deepEqual(
    records.map((r) => [r.name, r.verdict]),
    [
      ['www.example.test', 'failed'],
      ['allowed.example.test', 'failed'],
    ],
  );
});

test('A/AAAA answers the view rejects are removed (DNS rebinding)', async (t) => {
  const upstream = await startUpstream(t);
  const { port, records } = await startResolver(t, { upstreams: [upstream.address] });
  const client = nodeResolver(port);

  await assert.rejects(client.resolve4('rebind.example.test'), { code: 'ENODATA' });
  await assert.rejects(client.resolve6('rebind.example.test'), { code: 'ENODATA' });
  assert.deepEqual(await client.resolve4('mixed.example.test'), ['192.0.2.20']);

  const reply = await udpExchange(port, [queryPacket('rebind.example.test', 'A', 0x7777)]);
  assert.equal(reply?.id, 0x7777);
  assert.equal(rcodeOf(reply), 'NOERROR');
  assert.deepEqual(reply?.answers, []);
  assert.ok(records.every((r) => r.verdict === 'allowed'));
});

test('forged upstream replies (other source port, wrong id) are ignored', async (t) => {
  const upstream = await startUpstream(t);
  const { port } = await startResolver(t, { upstreams: [upstream.address] });
  assert.deepEqual(await nodeResolver(port).resolve4('spoofed.example.test'), ['192.0.2.99']);
});

test('TCP queries work, and a truncated upstream answer is fetched again over TCP', async (t) => {
  const upstream = await startUpstream(t);
  const { port } = await startResolver(t, { upstreams: [upstream.address] });

  const overTcp = await tcpExchange(port, queryPacket('allowed.example.test', 'A', 0x5151));
  assert.equal(overTcp.id, 0x5151);
  assert.deepEqual(addressesOf(overTcp), ['192.0.2.10']);

  // Over UDP the full answer is too big for the client: it gets TC and no records...
  const overUdp = await udpExchange(port, [queryPacket('big.example.test')]);
  assert.equal(overUdp?.flag_tc, true);
  assert.deepEqual(overUdp?.answers, []);
  // ...and a real client then retries over TCP and gets all of it.
  const all = await nodeResolver(port).resolve4('big.example.test');
  assert.equal(all.length, 100);
  assert.ok(upstream.received.includes('tcp big.example.test'), 'the upstream was asked over TCP');
});

test('pipelined TCP queries beyond the per-connection cap are all answered, whatever the chunking', async (t) => {
  const upstream = await startUpstream(t);
  const { port } = await startResolver(t, { upstreams: [upstream.address] });
  const ids = Array.from({ length: 40 }, (_, i) => i + 1);
  const stream = Buffer.concat(ids.map((id) => lengthPrefixed(queryPacket('allowed.example.test', 'A', id))));

  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  const replies = new Promise<number[]>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const seen: number[] = [];
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        const end = 2 + received.readUInt16BE(0);
        const reply = decode(received.subarray(2, end));
        assert.deepEqual(addressesOf(reply), ['192.0.2.10']);
        seen.push(reply.id!);
        received = received.subarray(end);
      }
      if (seen.length === ids.length) resolve(seen);
    });
  });
  // split inside a length prefix, then send the rest at once
  socket.write(stream.subarray(0, 1));
  await new Promise((r) => setTimeout(r, 20));
  socket.write(stream.subarray(1));
  assert.deepEqual(
    (await replies).sort((a, b) => a - b),
    ids,
  );
});

test('malformed packets are dropped (UDP) or end the connection (TCP); the resolver keeps serving', async (t) => {
  const upstream = await startUpstream(t);
  const { port, records } = await startResolver(t, { upstreams: [upstream.address] });

  const garbage = [
    Buffer.from('not dns'),
    Buffer.alloc(0),
    Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f]), // a label running off the end
    encode({ type: 'response', id: 9, flags: 0, questions: [{ type: 'A', name: 'allowed.example.test' }] }),
    Buffer.concat([queryPacket('allowed.example.test'), Buffer.alloc(5000)]), // over the UDP size cap
  ];
  assert.equal(await udpExchange(port, garbage, { waitMs: 300 }), null);

  const socket = net.connect(port, '127.0.0.1');
  const closed = new Promise((r) => socket.on('close', r));
  socket.on('error', () => {});
  socket.write(lengthPrefixed(Buffer.from('garbage garbage')));
  await closed;

  assert.deepEqual(await nodeResolver(port).resolve4('allowed.example.test'), ['192.0.2.10']);
  assert.deepEqual(
    records.map((r) => r.verdict),
    ['allowed'],
  );
});

test('an idle TCP connection is closed', async (t) => {
  const upstream = await startUpstream(t);
  const { port } = await startResolver(t, { upstreams: [upstream.address], tcpIdleTimeoutMs: 200 });
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  const started = Date.now();
  await new Promise((r) => socket.on('close', r));
  assert.ok(Date.now() - started < 2000);
});

test('close() is idempotent and stops serving', async (t) => {
  const upstream = await startUpstream(t);
  const { resolver, port } = await startResolver(t, { upstreams: [upstream.address] });
  await Promise.all([resolver.close(), resolver.close()]);
  await resolver.close();
  assert.equal(await udpExchange(port, [queryPacket('allowed.example.test')], { waitMs: 300 }), null);
  await assert.rejects(resolver.listen([{ host: '127.0.0.1', port: 0 }]));
});

test('the constructor rejects an empty or unusable upstream list', () => {
  const lookup: SandboxNetLookup = () => null;
  assert.throws(() => new PlatformResolver({ lookup, upstreams: [] }), { kind: 'invalid_argument' });
  assert.throws(() => new PlatformResolver({ lookup, upstreams: ['dns.example'] }), { kind: 'invalid_argument' });
});

test('parseHostPort', () => {
  assert.deepEqual(parseHostPort('1.2.3.4'), { host: '1.2.3.4', port: 53 });
  assert.deepEqual(parseHostPort('1.2.3.4:5353'), { host: '1.2.3.4', port: 5353 });
  assert.deepEqual(parseHostPort('::1'), { host: '::1', port: 53 });
  assert.deepEqual(parseHostPort('[::1]:5353'), { host: '::1', port: 5353 });
  assert.deepEqual(parseHostPort('[2001:db8::1]'), { host: '2001:db8::1', port: 53 });
  assert.deepEqual(parseHostPort('10.0.0.1', 5300), { host: '10.0.0.1', port: 5300 });
  for (const bad of ['', 'dns.example', '1.2.3.4:', '1.2.3.4:99999', '[1.2.3.4]:53', '[::1]:x', '1.2.3.4:53:53']) {
    assert.throws(() => parseHostPort(bad), { kind: 'invalid_argument' }, bad);
  }
});

test('parseUpstreams reads nameserver lines, in order, loopback stubs included', () => {
  const conf = [
    '# generated by something',
    'search example.internal',
    'nameserver 127.0.0.53',
    '  nameserver 9.9.9.9  # quad9',
    'nameserver 2001:db8::53',
    'nameserver not-an-ip',
    ';nameserver 8.8.8.8',
    'options edns0 trust-ad',
  ].join('\n');
  assert.deepEqual(parseUpstreams(conf), ['127.0.0.53', '9.9.9.9', '2001:db8::53']);
  assert.deepEqual(parseUpstreams(''), []);
});

async function loopbackV6Available(): Promise<boolean> {
  const socket = dgram.createSocket('udp6');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '::1', resolve);
    });
    return true;
  } catch {
    return false;
  } finally {
    try {
      socket.close();
    } catch {
      // a failed bind already closed it
    }
  }
}

test("a peer's name (another service of the environment) is answered by the resolver itself, over UDP and TCP", async (t) => {
  const upstream = await startUpstream(t);
  const view: SandboxEgressView = {
    ...testView(),
    peer: (name) => (name === 'db' ? { ipv4: '10.213.0.7', ipv6: 'fd68:7574:6368:7::2' } : null),
  };
  const { port, records } = await startResolver(t, { upstreams: [upstream.address], lookup: onlySandbox(view) });

  assert.deepEqual(await nodeResolver(port).resolve4('db'), ['10.213.0.7']);
  assert.deepEqual(await nodeResolver(port).resolve6('DB'), ['fd68:7574:6368:7::2']);
  const viaTcp = await tcpExchange(port, queryPacket('db', 'A', 0x4242));
  assert.equal(viaTcp.id, 0x4242);
  assert.equal(viaTcp.flag_aa, true, 'authoritative');
  assert.deepEqual(addressesOf(viaTcp), ['10.213.0.7']);
  const txt = await udpExchange(port, [queryPacket('db', 'TXT')]);
  assert.equal(rcodeOf(txt), 'NOERROR');
  assert.deepEqual(txt?.answers ?? [], [], 'other types: no records');
  // Not a peer, not allowed: refused as before; peers never go upstream.
  assert.equal(rcodeOf(await udpExchange(port, [queryPacket('cache')])), 'NXDOMAIN');
  assert.deepEqual(
    upstream.received.filter((q) => / (db|cache)$/.test(q)),
    [],
  );
  assert.deepEqual(
    records.map((r) => `${r.name} ${r.type} ${r.verdict}`),
    ['db A allowed', 'db AAAA allowed', 'db A allowed', 'db TXT allowed', 'cache A denied'],
  );
});
