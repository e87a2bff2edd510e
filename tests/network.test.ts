import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';
import { startTestInternet, TEST_ADDRESSES as A, TEST_NAMES as N, type TestInternet } from './net-fixture.js';

/**
 * The sandbox network layer end to end (hostile workloads H12–H15 of
 * /work/shared/reference/hostile-workloads.md): egress policies (none, open, allowlists of
 * names and CIDRs), the platform resolver, the egress proxy, live policy changes, the ingress
 * (by path and by host, tokens, WebSockets), and clean-up after delete and after kill -9.
 *
 * Sandboxes only ever talk to the fake internet of net-fixture.ts (198.18.0.0/24, 2001:2::/64 and
 * a fake metadata service): its routing rules keep every packet from the sandbox pools on this
 * machine. Probes run inside the sandbox as one Python program per batch (see SANDBOX_PY), each
 * probe with a socket timeout of at most 3 s, in parallel, so a batch is bounded too.
 */

const POOL4 = '10.213.0.0/16';
const POOL6 = 'fd68:7574:6368::/48';
const GW4 = '10.213.0.1';
const GW6 = 'fd68:7574:6368::1';
const DOMAIN = 'sbx.test';
const TIERS = ['container', 'gvisor'] as const;
type Tier = (typeof TIERS)[number];

/** Runs inside sandboxes: `probe <json>`, `hold <tcp|http> <host> <port> <file> [name]`, `serve <port>`, `ulisten <name>`. */
const SANDBOX_PY = String.raw`
import json, os, socket, ssl, struct, sys, time
from concurrent.futures import ThreadPoolExecutor

T = 3.0

def err(e):
    if isinstance(e, socket.timeout):
        return 'timeout'
    if isinstance(e, socket.gaierror):
        return 'gaierror:%s' % e.errno
    if isinstance(e, ssl.SSLError):
        return 'ssl:%s' % (e.reason or type(e).__name__)
    return '%s:%s' % (type(e).__name__, getattr(e, 'errno', ''))

def fam(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET

def connect(host, port, t=T, src=None):
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    s.settimeout(t)
    if src:
        if fam(src) == socket.AF_INET:
            s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
        else:
            s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
        s.bind((src, 0))
    s.connect((host, port))
    return s

def response(s, host, path='/'):
    s.sendall(('GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' % (path, host)).encode())
    d = b''
    while len(d) < 65536:
        c = s.recv(4096)
        if not c:
            break
        d += c
    s.close()
    head, _, body = d.decode('utf-8', 'replace').partition('\r\n\r\n')
    if not head:
        return 'empty'
    return head.split('\r\n')[0].split(' ')[1] + ' ' + body.strip()[:300]

def p_tcp(host, port, t=T, src=None):
    connect(host, port, t, src).close()
    return 'ok'

def p_echo(host, port=7000, t=T, src=None):
    s = connect(host, port, t, src)
    s.sendall(b'hutch-echo\n')
    d = s.recv(100)
    s.close()
    return 'echo:' + d.decode().strip()

def p_http(host, port=80, hosthdr=None, path='/', t=T):
    default = '[%s]' % host if ':' in host else host
    return response(connect(host, port, t), hosthdr or default, path)

def family(f):
    return {4: socket.AF_INET, 6: socket.AF_INET6}.get(f, 0)

def p_resolve(name, f=0):
    infos = socket.getaddrinfo(name, None, family(f), socket.SOCK_STREAM)
    return 'ips:' + ','.join(sorted(set(i[4][0] for i in infos)))

def p_get(name, f=0, port=80, path='/', t=T):
    ai = socket.getaddrinfo(name, port, family(f), socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.settimeout(t)
    s.connect(ai[4])
    return response(s, name, path)

def p_tls(name, via=None, port=443, t=T):
    ctx = ssl.create_default_context(cafile='/tmp/ca.crt')
    raw = connect(via, port, t) if via else socket.create_connection((name, port), timeout=t)
    return response(ctx.wrap_socket(raw, server_hostname=name), name)

def p_dns(server, name, qtype='A', proto='udp', t=2.5):
    q = struct.pack('>HHHHHH', 0x4854, 0x0100, 1, 0, 0, 0)
    for label in name.split('.'):
        q += bytes([len(label)]) + label.encode()
    q += b'\x00' + struct.pack('>HH', {'A': 1, 'AAAA': 28, 'TXT': 16}[qtype], 1)
    if proto == 'udp':
        s = socket.socket(fam(server), socket.SOCK_DGRAM)
        s.settimeout(t)
        s.sendto(q, (server, 53))
        d = s.recv(4096)
    else:
        s = connect(server, 53, t)
        s.sendall(struct.pack('>H', len(q)) + q)
        d = s.recv(4096)[2:]
    s.close()
    return 'rcode:%d an:%d' % (d[3] & 15, struct.unpack('>H', d[6:8])[0])

def p_ifaces():
    return 'ifs:' + ','.join(sorted(n for _, n in socket.if_nameindex()))

def p_unix(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(T)
    s.connect('\0' + name)
    s.close()
    return 'ok'

def p_raw(kind):
    if kind == 'packet':
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.close()
    return 'ok'

PROBES = {k[2:]: v for k, v in globals().items() if k.startswith('p_')}

def one(p):
    try:
        return PROBES[p[0]](*p[1:])
    except Exception as e:
        return err(e)

def hold(mode, host, port, out, name=None):
    def w(s):
        with open(out + '.tmp', 'w') as f:
            f.write(s)
        os.replace(out + '.tmp', out)
    end = time.time() + 60
    n = 0
    try:
        if mode == 'tcp':
            s = connect(host, int(port))
            while time.time() < end:
                s.sendall(b'ping\n')
                if not s.recv(100):
                    raise EOFError('closed')
                n += 1
                w('ok %d' % n)
                time.sleep(0.2)
        else:
            import http.client
            c = http.client.HTTPConnection(host, int(port), timeout=T)
            while time.time() < end:
                c.request('GET', '/hold', headers={'Host': name or host})
                r = c.getresponse()
                r.read()
                n += 1
                w('ok %d %d' % (n, r.status))
                time.sleep(0.2)
        w('done %d' % n)
    except Exception as e:
        w('cut %d %s' % (n, err(e)))

def serve(port):
    import base64, hashlib, http.server
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        def log_message(self, *a):
            pass
        def do_GET(self):
            if self.headers.get('Upgrade', '').lower() == 'websocket':
                key = self.headers['Sec-WebSocket-Key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
                self.send_response(101)
                self.send_header('Upgrade', 'websocket')
                self.send_header('Connection', 'Upgrade')
                self.send_header('Sec-WebSocket-Accept', base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
                self.end_headers()
                self.wfile.flush()
                self.close_connection = True
                r = self.rfile
                while True:
                    h = r.read(2)
                    if len(h) < 2 or h[0] & 15 == 8:
                        return
                    n = h[1] & 127
                    mask = r.read(4) if h[1] & 128 else b'\0\0\0\0'
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
                    reply = b'echo:' + data
                    self.wfile.write(bytes([0x81, len(reply)]) + reply)
                    self.wfile.flush()
            body = json.dumps({'path': self.path, 'headers': {k.lower(): v for k, v in self.headers.items()}}).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    http.server.ThreadingHTTPServer(('0.0.0.0', int(port)), H).serve_forever()

def ulisten(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind('\0' + name)
    s.listen(8)
    s.settimeout(120)
    try:
        while True:
            s.accept()[0].close()
    except Exception:
        pass

if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'probe':
        probes = json.loads(sys.argv[2])
        with ThreadPoolExecutor(max_workers=24) as ex:
            print(json.dumps(list(ex.map(one, probes))))
    elif cmd == 'hold':
        hold(*sys.argv[2:])
    elif cmd == 'serve':
        serve(sys.argv[2])
    elif cmd == 'ulisten':
        ulisten(sys.argv[2])
`;

// ---------------------------------------------------------------------------------------------
// Helpers

interface NetworkSettings {
  egress: 'none' | 'open' | { allow: string[]; deny: string[] };
  public: boolean;
  publicPorts: number[];
}
interface Sandbox {
  id: string;
  state: string;
  isolation: Tier;
  network: NetworkSettings;
}
interface NetworkState extends NetworkSettings {
  ipv4: string | null;
  ipv6: string | null;
  dns: string | null;
  dnsLog: Array<{ name: string; type: string; verdict: 'allowed' | 'denied' | 'failed'; at: string }>;
  cut?: number;
}
interface Exec {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}
interface ApiError {
  error: { code: string; message: string };
}
interface PortUrl {
  url: string;
  port: number;
  public: boolean;
  expiresAt: string | null;
  headers: Record<string, string>;
}
type Probe = [string, ...Array<string | number | null>];

let server: TestServer;
let inet: TestInternet;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secret = (what: string): string => `${what}-${randomBytes(5).toString('hex')}`;
const apiPort = (): number => Number(new URL(server.url).port);

async function upload(id: string, path: string, data: string | Buffer): Promise<void> {
  const res = await fetch(`${server.url}/v1/sandboxes/${id}/files?path=${encodeURIComponent(path)}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${server.key}`, 'content-type': 'application/octet-stream' },
    body: typeof data === 'string' ? Buffer.from(data) : data,
  });
  assert.equal(res.status, 200, `upload ${path}: ${await res.text()}`);
}

/** A sandbox of the base template with the probe program and the test CA in /tmp. */
async function create(network?: Record<string, unknown>, isolation: Tier = 'container'): Promise<Sandbox> {
  const res = await server.api<Sandbox & ApiError>('POST', '/v1/sandboxes', {
    template: 'base',
    isolation,
    timeoutSeconds: 900,
    ...(network ? { network } : {}),
  });
  assert.equal(res.status, 201, `create ${isolation} ${JSON.stringify(network)}: ${JSON.stringify(res.body)}`);
  linkNames(res.body.id);
  await upload(res.body.id, '/tmp/hn.py', SANDBOX_PY);
  await upload(res.body.id, '/tmp/ca.crt', readFileSync(inet.caCertPath));
  return res.body;
}

async function run(id: string, cmd: string | string[], opts: { user?: string; timeoutMs?: number } = {}): Promise<Exec> {
  const res = await server.api<Exec & ApiError>('POST', `/v1/sandboxes/${id}/exec`, { timeoutMs: 30_000, ...opts, cmd });
  assert.equal(res.status, 200, `exec ${JSON.stringify(cmd).slice(0, 200)}: ${JSON.stringify(res.body).slice(0, 500)}`);
  return res.body;
}

/** Runs probes in parallel inside the sandbox; returns one result string per probe. */
async function probe(id: string, probes: Probe[]): Promise<string[]> {
  const res = await run(id, ['python3', '/tmp/hn.py', 'probe', JSON.stringify(probes)]);
  assert.equal(res.exitCode, 0, `probe program failed: ${res.stderr}`);
  const out = JSON.parse(res.stdout) as string[];
  assert.equal(out.length, probes.length);
  // A bug in a probe must not pass for a blocked connection.
  const broken = out
    .map((r, i) => [r, probes[i]])
    .filter(([r]) => /^(AttributeError|TypeError|KeyError|NameError|IndexError|ValueError|UnboundLocalError):/.test(String(r)));
  assert.deepEqual(broken, [], 'probe program errors');
  return out;
}

/** Probes and a readable table of `probe => result` for assertion messages. */
async function probeMap(id: string, probes: Probe[]): Promise<{ r: string[]; show: string }> {
  const r = await probe(id, probes);
  return { r, show: probes.map((p, i) => `  ${JSON.stringify(p)} => ${r[i]}`).join('\n') };
}

/** A connection attempt that did not get through (error, timeout, reset), as opposed to any answer. */
function isFailure(result: string): boolean {
  return /^(timeout|gaierror|ssl:|[A-Za-z]*Error:|empty)/.test(result);
}

function assertAllFail(r: string[], show: string, what: string): void {
  r.forEach((result, i) => assert.ok(isFailure(result), `${what}: probe ${i} got through:\n${show}`));
}

async function netState(id: string): Promise<NetworkState> {
  const res = await server.api<NetworkState>('GET', `/v1/sandboxes/${id}/network`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function putNetwork(id: string, body: unknown): Promise<{ status: number; body: NetworkState & ApiError }> {
  return server.api<NetworkState & ApiError>('PUT', `/v1/sandboxes/${id}/network`, body);
}

/** What the host holds for a sandbox's network. */
/** A sandbox's namespace and host link names, from its network record (kept once seen: delete removes the record). */
const knownNames = new Map<string, { netns: string; hostIf: string }>();
function linkNames(id: string): { netns: string; hostIf: string } {
  const record = `/run/hutch/${createHash('sha256').update(server.dataDir).digest('hex').slice(0, 12)}/net/${id}.json`;
  try {
    const r = JSON.parse(readFileSync(record, 'utf8')) as { netns?: string; hostIf?: string };
    if (r.netns && r.hostIf) knownNames.set(id, { netns: r.netns, hostIf: r.hostIf });
  } catch {
    /* no record (egress none, or deleted) */
  }
  // Without a record ever seen: the names older versions used (by sandbox id).
  return knownNames.get(id) ?? { netns: `hutch-${id}`, hostIf: `hz${id.slice(0, 13)}` };
}

function netResources(id: string): { netns: boolean; link: boolean; table: boolean } {
  const names = linkNames(id);
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
  return {
    netns: netns.split('\n').some((l) => l.split(' ')[0] === names.netns) || existsSync(`/run/netns/${names.netns}`),
    link: spawnSync('ip', ['link', 'show', names.hostIf], { stdio: 'ignore', timeout: 5000 }).status === 0,
    table: spawnSync('nft', ['list', 'table', 'inet', `hutch_${id}`], { stdio: 'ignore', timeout: 5000 }).status === 0,
  };
}

async function assertNetGone(id: string, what = 'after delete'): Promise<void> {
  const deadline = Date.now() + 5000;
  let left = netResources(id);
  while ((left.netns || left.link || left.table) && Date.now() < deadline) {
    await sleep(100);
    left = netResources(id);
  }
  assert.deepEqual(left, { netns: false, link: false, table: false }, `network of ${id} ${what}`);
}

/** Deletes a sandbox; with `check`, asserts the delete succeeded and left no network behind. */
async function destroy(id: string | undefined, check = true): Promise<void> {
  if (!id) return;
  linkNames(id);
  const res = await server.api('DELETE', `/v1/sandboxes/${id}`).catch(() => null);
  if (!check) return;
  assert.equal(res?.status, 204, `delete ${id}`);
  await assertNetGone(id);
}

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to the server's listener (ingress or API) with exactly these headers. */
function ingress(path: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: apiPort(), path, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 1 << 20) body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const bearer = (): Record<string, string> => ({ authorization: `Bearer ${server.key}` });
const portPath = (id: string, port: number, rest = '/'): string => `/v1/sandboxes/${id}/ports/${port}${rest}`;

/** Polls the ingress (bounded: 15 s) until the port answers 200. */
async function waitIngress(id: string, port: number): Promise<HttpResult> {
  const deadline = Date.now() + 15_000;
  let last: HttpResult = { status: 0, headers: {}, body: '' };
  for (let i = 0; i < 150 && Date.now() < deadline; i++) {
    last = await ingress(portPath(id, port), bearer()).catch((e: Error) => ({ status: 0, headers: {}, body: e.message }));
    if (last.status === 200) return last;
    await sleep(100);
  }
  assert.fail(`port ${port} of ${id} never answered through the ingress: ${last.status} ${last.body.slice(0, 300)}`);
}

/** Starts the header-echoing HTTP + WebSocket server of SANDBOX_PY in the background. */
async function serveInSandbox(id: string, port: number): Promise<void> {
  await run(id, `nohup python3 /tmp/hn.py serve ${port} >/dev/null 2>&1 &`);
  await waitIngress(id, port);
}

/** TCP listeners on the host's own addresses (same port everywhere) that count connections. */
async function hostListeners(): Promise<{ port: number; addresses: string[]; accepted: () => number; close: () => Promise<void> }> {
  const candidates = [GW4, GW6, A.gateway4, A.gateway6];
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (/^(hz|hg|htinet|lo)/.test(name)) continue;
    for (const a of list ?? []) if (!a.internal && !a.address.startsWith('fe80')) candidates.push(a.address);
  }
  let accepted = 0;
  const servers: Server[] = [];
  const addresses: string[] = [];
  const onConn = (s: Socket): void => {
    accepted++;
    s.destroy();
  };
  let port = 0;
  for (const address of [...new Set(candidates)]) {
    const srv = createServer(onConn);
    const ok = await new Promise<boolean>((res) => {
      srv.once('error', () => res(false));
      srv.listen({ host: address, port, ipv6Only: address.includes(':') }, () => res(true));
    });
    if (!ok) continue;
    if (port === 0) port = (srv.address() as { port: number }).port;
    servers.push(srv);
    addresses.push(address);
  }
  assert.ok(addresses.includes(GW4) && addresses.includes(A.gateway4), `host listeners bound: ${addresses.join(', ')}`);
  return {
    port,
    addresses,
    accepted: () => accepted,
    close: async () => {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

/** The fake internet's log of DNS questions and HTTP requests that mention `text`. */
async function fixtureSaw(text: string): Promise<string[]> {
  return (await inet.events()).filter((e) => (e.detail ?? '').includes(text)).map((e) => `${e.kind} ${e.remote} ${e.detail}`);
}

async function metadataHits(): Promise<number> {
  const hits = await inet.hits();
  const events = await inet.events();
  return (hits[A.metadata] ?? 0) + (hits[A.metadata6] ?? 0) + events.filter((e) => e.kind === 'metadata').length;
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  inet = await startTestInternet({ sandboxPool4: POOL4, sandboxPool6: POOL6 });
  server = await startServer({ dnsUpstreams: [A.dns], domain: DOMAIN });
  const info = await server.api<{ tiers: Record<string, { available: boolean; egress?: { available: boolean } }> }>('GET', '/v1/info');
  assert.equal(info.body.tiers.container?.available, true, 'container tier available');
  // Another Hutch server on this machine installs its own base table for every `hz*` link, which
  // would drop this server's DNS and proxy traffic: say so, it explains otherwise puzzling failures.
  const tables = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout ?? '';
  const key = createHash('sha256').update(server.dataDir).digest('hex').slice(0, 8);
  const foreign = tables.split('\n').filter((l) => l.includes('hutch_base_') && !l.includes(`hutch_base_${key}`));
  if (foreign.length)
    console.warn(`network.test: other Hutch servers run on this machine (${foreign.join('; ')}); results may be disturbed`);
});

after(async () => {
  try {
    await server?.stop();
  } finally {
    await inet?.stop();
  }
});

// ---------------------------------------------------------------------------------------------

describe('egress none (the default)', () => {
  for (const tier of TIERS) {
    test(`${tier}: only lo, no DNS, no connections, nothing on the host (H12, H13)`, { timeout: 60_000 }, async () => {
      const sb = await create(undefined, tier);
      try {
        assert.deepEqual(sb.network, { egress: 'none', public: false, publicPorts: [] });
        const state = await netState(sb.id);
        assert.equal(state.egress, 'none');
        assert.equal(state.ipv4, null);
        assert.equal(state.ipv6, null);
        assert.equal(state.dns, null);
        assert.deepEqual(state.dnsLog, []);
        assert.deepEqual(netResources(sb.id), { netns: false, link: false, table: false }, 'no namespace, link or table on the host');

        const resolv = await run(sb.id, 'cat /etc/resolv.conf');
        assert.doesNotMatch(resolv.stdout, /^nameserver/m, 'no name server configured');

        const name = secret('none-leak');
        const lookup = await run(sb.id, ['python3', '/tmp/hn.py', 'probe', JSON.stringify([['resolve', `${name}.${N.pypi}`]])]);
        assert.match(lookup.stdout, /gaierror/, 'name resolution fails');
        assert.ok(lookup.durationMs < 3000, `and fails fast (${lookup.durationMs} ms)`);

        const { r, show } = await probeMap(sb.id, [
          ['ifaces'],
          ['resolve', N.pypi],
          ['http', A.pypi],
          ['http', A.pypi6],
          ['echo', A.other],
          ['echo', A.other6],
          ['http', A.metadata],
          ['http', A.metadata6],
          ['dns', A.dns, `${name}.${N.other}`],
          ['dns', A.dns, `${name}.${N.other}`, 'A', 'tcp'],
          ['dns', GW4, N.other],
          ['tls', N.secure, A.secure],
          ['tcp', GW4, apiPort()],
          ['tcp', '127.0.0.1', apiPort()],
        ]);
        assert.equal(r[0], 'ifs:lo', `no interface besides lo:\n${show}`);
        assertAllFail(r.slice(1), show, 'egress none');
        assert.deepEqual(await fixtureSaw(name), [], 'nothing reached the fake internet');
      } finally {
        await destroy(sb.id);
      }
    });

    test(`${tier}: H14 sandboxes share no abstract unix socket and no /dev/shm`, { timeout: 60_000 }, async () => {
      const a = await create(undefined, tier);
      let b: Sandbox | undefined;
      try {
        b = await create(undefined, tier);
        const name = secret('h14-abstract');
        await run(a.id, `nohup python3 /tmp/hn.py ulisten ${name} >/dev/null 2>&1 &`);
        await run(a.id, `echo ${name} > /dev/shm/${name}`);
        // The listener is up in A (bounded wait) before B tries it.
        let own = '';
        for (let i = 0; i < 50 && own !== 'ok'; i++) {
          own = (await probe(a.id, [['unix', name]]))[0]!;
          if (own !== 'ok') await sleep(100);
        }
        assert.equal(own, 'ok', 'the abstract socket answers inside its own sandbox');
        const fromB = await probe(b.id, [['unix', name]]);
        assert.ok(isFailure(fromB[0]!), `another sandbox reached the abstract socket: ${fromB[0]}`);
        assert.equal((await run(a.id, `cat /dev/shm/${name}`)).stdout, `${name}\n`, "A's /dev/shm file exists");
        const shm = await run(b.id, `test -e /dev/shm/${name} && echo found || echo absent; ls -a /dev/shm`);
        assert.match(shm.stdout, /^absent\n/, `B sees A's /dev/shm file: ${shm.stdout}`);
      } finally {
        await destroy(a.id);
        await destroy(b?.id);
      }
    });
  }
});

describe('gvisor tier', () => {
  test(
    'a running gvisor sandbox keeps its network kind: none <-> a network is a 409, the policy unchanged',
    { timeout: 90_000 },
    async () => {
      const off = await create(undefined, 'gvisor');
      const on = await create({ egress: { allow: [`${A.other}/32`] } }, 'gvisor');
      try {
        const put = await putNetwork(off.id, { egress: 'open' });
        assert.equal(put.status, 409, JSON.stringify(put.body));
        assert.equal(put.body.error.code, 'conflict');
        assert.match(put.body.error.message, /network\.egress: .*gvisor/);
        assert.equal((await netState(off.id)).egress, 'none', 'the policy did not change');
        const { r, show } = await probeMap(off.id, [['ifaces'], ['echo', A.other], ['resolve', N.pypi]]);
        assert.equal(r[0], 'ifs:lo', show);
        assertAllFail(r.slice(1), show, 'gvisor after a refused PUT');
        assert.deepEqual(netResources(off.id), { netns: false, link: false, table: false });

        const down = await putNetwork(on.id, { egress: 'none' });
        assert.equal(down.status, 409, JSON.stringify(down.body));
        assert.match(down.body.error.message, /allowlist with no entries/);
        // An empty allowlist is the live way to block everything.
        const empty = await putNetwork(on.id, { egress: { allow: [] } });
        assert.equal(empty.status, 200, JSON.stringify(empty.body));
        const { r: r2, show: s2 } = await probeMap(on.id, [['ifaces'], ['echo', A.other, 7000, 2], ['resolve', N.pypi]]);
        assert.equal(r2[0], 'ifs:eth0,lo', s2);
        assertAllFail(r2.slice(1), s2, 'gvisor with an empty allowlist');
      } finally {
        await destroy(off.id);
        await destroy(on.id);
      }
    },
  );

  test(
    'pause with a network keeps the files (this runsc cannot checkpoint netstack); after resume the network works',
    { timeout: 120_000 },
    async () => {
      const sb = await create({ egress: 'open' }, 'gvisor');
      try {
        await run(sb.id, 'echo kept > /tmp/kept.txt');
        assert.equal((await probe(sb.id, [['echo', A.other]]))[0], 'echo:hutch-echo');
        const paused = await server.api<{ state: string; pauseMode: string; note: string | null }>('POST', `/v1/sandboxes/${sb.id}/pause`);
        assert.equal(paused.status, 200, JSON.stringify(paused.body));
        assert.equal(paused.body.pauseMode, 'filesystem');
        assert.match(paused.body.note ?? '', /network stack/);
        assert.deepEqual(netResources(sb.id), { netns: false, link: false, table: false }, 'a paused sandbox holds no network');
        const resumed = await server.api<{ state: string }>('POST', `/v1/sandboxes/${sb.id}/resume`);
        assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
        assert.equal((await run(sb.id, 'cat /tmp/kept.txt')).stdout, 'kept\n');
        await assertOpenEgress(sb.id, 4);
      } finally {
        await destroy(sb.id);
      }
    },
  );

  test('the ingress reaches a port of a gvisor sandbox (by path and by host)', { timeout: 60_000 }, async () => {
    const sb = await create(undefined, 'gvisor');
    try {
      await run(sb.id, 'echo gvisor-ingress-ok > /tmp/hello.txt; nohup python3 -m http.server 8000 --directory /tmp >/dev/null 2>&1 &');
      await waitIngress(sb.id, 8000);
      const byPath = await ingress(portPath(sb.id, 8000, '/hello.txt'), bearer());
      assert.equal(byPath.status, 200);
      assert.equal(byPath.body, 'gvisor-ingress-ok\n');
      const byHost = await ingress('/hello.txt', { ...bearer(), host: `8000-${sb.id}.${DOMAIN}` });
      assert.equal(byHost.status, 200);
      assert.equal(byHost.body, 'gvisor-ingress-ok\n');
      assert.equal((await ingress(portPath(sb.id, 8000, '/hello.txt'))).status, 401, 'private without credentials');
      assert.equal((await ingress(portPath(sb.id, 8001), bearer())).status, 502, 'nothing listening');
    } finally {
      await destroy(sb.id);
    }
  });

  test('H15: no runtime or orchestrator sockets or tokens inside', { timeout: 60_000 }, async () => {
    const sb = await create(undefined, 'gvisor');
    try {
      await assertNoRuntimeSockets(sb.id);
    } finally {
      await destroy(sb.id);
    }
  });
});

/** An open sandbox has eth0, reaches the test hosts directly and by name, and never the metadata service. */
async function assertOpenEgress(id: string, family: 4 | 6): Promise<void> {
  const { r, show } = await probeMap(id, [
    ['ifaces'],
    ['echo', A.other],
    ['echo', A.other6],
    ['get', N.pypi, family],
    ['http', A.metadata],
  ]);
  const host = family === 4 ? A.pypi : A.pypi6;
  assert.deepEqual(r.slice(0, 4), ['ifs:eth0,lo', 'echo:hutch-echo', 'echo:hutch-echo', `200 hutch-test-host ${host} ${N.pypi} /`], show);
  assert.ok(isFailure(r[4]!), show);
}

async function assertNoRuntimeSockets(id: string): Promise<void> {
  const res = await run(
    id,
    [
      'find / -xdev -type s 2>/dev/null; find /run /var/run /tmp /dev/shm -type s 2>/dev/null',
      'for p in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock /run/crio/crio.sock /run/podman/podman.sock /var/run/secrets/kubernetes.io /run/secrets/kubernetes.io /run/runc /run/runsc; do [ -e "$p" ] && echo "EXISTS $p"; done',
      // The control plane's database, key and state are not in the sandbox's file system, nor its key in any environment.
      `for p in ${server.dataDir} ${server.dataDir}/hutch.db ${server.dataDir}/admin.key /run/hutch/${createHash('sha256').update(server.dataDir).digest('hex').slice(0, 12)}; do [ -e "$p" ] && echo "EXISTS $p"; done`,
      `cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -F '${server.key}' && echo "API KEY in an environment"`,
      'echo end',
    ].join('\n'),
    { user: 'root' },
  );
  assert.match(res.stdout, /^end$/m, `the check ran: ${res.stderr}`);
  const lines = res.stdout.split('\n').filter((l) => l && l !== 'end');
  const unexpected = [...new Set(lines)].filter((l) => l !== '/run/hutch/agent.sock');
  assert.deepEqual(unexpected, [], 'sockets or runtime paths inside the sandbox');
}

for (const tier of TIERS) {
  describe(`egress open (${tier})`, () => {
    let sb: Sandbox;
    let neighbour: Sandbox;
    let mine: NetworkState;
    let theirs: NetworkState;

    before(async () => {
      sb = await create({ egress: 'open' }, tier);
      neighbour = await create({ egress: 'open' }, tier);
      mine = await netState(sb.id);
      theirs = await netState(neighbour.id);
      await serveInSandbox(neighbour.id, 8080);
    });
    after(async () => {
      await destroy(sb?.id, false);
      await destroy(neighbour?.id, false);
    });

    test('network state: pool addresses, the platform resolver, host plumbing', { timeout: 60_000 }, async () => {
      assert.equal(sb.network.egress, 'open');
      assert.equal(mine.egress, 'open');
      assert.match(mine.ipv4 ?? '', /^10\.213\.\d+\.\d+$/);
      assert.match(mine.ipv6 ?? '', /^fd68:7574:6368:[0-9a-f]+::2$/);
      assert.equal(mine.dns, GW4);
      assert.notEqual(mine.ipv4, theirs.ipv4);
      assert.notEqual(mine.ipv6, theirs.ipv6);
      assert.deepEqual(netResources(sb.id), { netns: true, link: true, table: true }, 'namespace, link and table exist');
      const resolv = await run(sb.id, 'cat /etc/resolv.conf');
      assert.match(resolv.stdout, new RegExp(`^nameserver ${GW4.replaceAll('.', '\\.')}$`, 'm'));
      const { r, show } = await probeMap(sb.id, [['ifaces']]);
      assert.equal(r[0], 'ifs:eth0,lo', show);
      const name = secret('log');
      await probe(sb.id, [['resolve', `${name}.${N.wildSuffix}`]]);
      const log = (await netState(sb.id)).dnsLog.filter((q) => q.name === `${name}.${N.wildSuffix}`);
      assert.ok(log.length > 0, 'the query is in the DNS log');
      for (const q of log) {
        assert.equal(q.verdict, 'allowed');
        assert.match(q.type, /^(A|AAAA)$/);
        assert.ok(!Number.isNaN(Date.parse(q.at)));
      }
    });

    test('reaches the test hosts by IP and by name, over IPv4 and IPv6', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['http', A.pypi],
        ['http', A.pypi6],
        ['echo', A.other],
        ['echo', A.other6],
        ['resolve', N.pypi, 4],
        ['resolve', N.pypi, 6],
        ['get', N.pypi, 4],
        ['get', N.pypi, 6],
        ['resolve', `a.${N.wildSuffix}`, 4],
        ['tls', N.secure],
      ]);
      assert.deepEqual(
        r.slice(0, 9),
        [
          `200 hutch-test-host ${A.pypi} ${A.pypi} /`,
          `200 hutch-test-host ${A.pypi6} [${A.pypi6}] /`,
          'echo:hutch-echo',
          'echo:hutch-echo',
          `ips:${A.pypi}`,
          `ips:${A.pypi6}`,
          `200 hutch-test-host ${A.pypi} ${N.pypi} /`,
          `200 hutch-test-host ${A.pypi6} ${N.pypi} /`,
          `ips:${A.other}`,
        ],
        show,
      );
      assert.match(r[9]!, new RegExp(`^200 hutch-test-host \\S+ ${N.secure} /$`), show);
    });

    test(
      'H12: the metadata service is unreachable by IPv4, IPv6, mapped and NAT64 forms, and by a rebound name',
      { timeout: 60_000 },
      async () => {
        const { r, show } = await probeMap(sb.id, [
          ['http', A.metadata],
          ['http', A.metadata6],
          ['http', `::ffff:${A.metadata}`],
          ['http', '64:ff9b::a9fe:a9fe'],
          ['tcp', A.metadata, 80],
          ['tcp', '169.254.1.1', 80],
          ['get', N.rebind],
          ['resolve', N.rebind],
        ]);
        assertAllFail(r, show, 'metadata');
        assert.equal(await metadataHits(), 0, 'the fake metadata service saw nothing');
      },
    );

    test('H12/H15: the host, its API port and its services are unreachable; only the resolver answers', { timeout: 60_000 }, async () => {
      const listeners = await hostListeners();
      try {
        const probes: Probe[] = listeners.addresses.map((a) => ['tcp', a, listeners.port, 2]);
        for (const a of [GW4, GW6, '127.0.0.1', '::1', A.gateway4, ...listeners.addresses]) probes.push(['tcp', a, apiPort(), 2]);
        probes.push(['tcp', GW4, 22, 2], ['http', GW4, 80, N.pypi, '/', 2]);
        const { r, show } = await probeMap(sb.id, probes);
        assertAllFail(r, show, 'host addresses');
        assert.equal(listeners.accepted(), 0, 'the host listeners accepted nothing');
        const dns = await probe(sb.id, [
          ['dns', GW4, N.pypi, 'AAAA'],
          ['dns', GW4, N.pypi, 'AAAA', 'tcp'],
        ]);
        assert.deepEqual(dns, ['rcode:0 an:1', 'rcode:0 an:1'], 'the platform resolver answers on the gateway (UDP and TCP)');
      } finally {
        await listeners.close();
      }
      await assertNoRuntimeSockets(sb.id);
    });

    test('H12: private ranges are blocked', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['tcp', '10.1.2.3', 80, 2],
        ['tcp', '172.16.0.1', 80, 2],
        ['tcp', '192.168.1.1', 80, 2],
        ['tcp', '100.64.0.1', 80, 2],
        ['tcp', 'fd12:3456::1', 80, 2],
      ]);
      assertAllFail(r, show, 'private ranges');
    });

    test(
      'H13: only the platform resolver answers, on both gateway addresses; direct DNS and DNS-over-TLS are blocked',
      { timeout: 60_000 },
      async () => {
        const name = secret('direct');
        const { r, show } = await probeMap(sb.id, [
          ['dns', A.dns, `${name}.${N.other}`],
          ['dns', A.dns, `${name}-tcp.${N.other}`, 'A', 'tcp'],
          ['dns', A.dns, `${name}-txt.${N.other}`, 'TXT'],
          ['tcp', A.dns, 853, 2],
          ['tcp', A.other, 853, 2],
          ['dns', GW4, N.other, 'A'],
          ['dns', GW4, N.other, 'AAAA'],
          ['dns', GW6, N.other, 'AAAA'],
          ['dns', GW6, N.other, 'AAAA', 'tcp'],
        ]);
        assertAllFail(r.slice(0, 5), show, 'direct DNS');
        assert.deepEqual(await fixtureSaw(name), [], 'no query sent directly from the sandbox arrived at the DNS server');
        assert.deepEqual(r.slice(5), ['rcode:0 an:1', 'rcode:0 an:1', 'rcode:0 an:1', 'rcode:0 an:1'], `platform resolver:\n${show}`);
      },
    );

    test('H14: other sandboxes are unreachable by address, by spoofed source, and by raw sockets', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['tcp', theirs.ipv4!, 8080, 2],
        ['tcp', theirs.ipv6!, 8080, 2],
        ['http', theirs.ipv4!, 8080, null, '/', 2],
        // Spoofed sources (IP_FREEBIND needs no privilege): the neighbour's addresses, another address
        // in this sandbox's own /64.
        ['echo', A.other, 7000, 2, theirs.ipv4!],
        ['echo', A.other6, 7000, 2, theirs.ipv6!],
        ['echo', A.other6, 7000, 2, mine.ipv6!.replace(/::2$/, '::99')],
        ['raw', 'packet'],
        ['raw', 'icmp'],
        // Controls: the same calls with the sandbox's own addresses work.
        ['echo', A.other, 7000, 3, mine.ipv4!],
        ['echo', A.other6, 7000, 3, mine.ipv6!],
      ]);
      assertAllFail(r.slice(0, 8), show, 'other sandboxes');
      assert.deepEqual(r.slice(8), ['echo:hutch-echo', 'echo:hutch-echo'], show);
      // The neighbour's server is up (the ingress reaches it), so the failures above are the policy's.
      assert.equal((await ingress(portPath(neighbour.id, 8080), bearer())).status, 200);
    });

    test('delete removes the namespace, the link and the table', { timeout: 60_000 }, async () => {
      assert.deepEqual(netResources(sb.id), { netns: true, link: true, table: true });
      await destroy(sb.id);
      await destroy(neighbour.id);
    });
  });
}

for (const tier of TIERS) {
  describe(`egress allowlist (${tier})`, () => {
    const allow = [N.pypi, N.secure, `*.${N.wildSuffix}`, N.rebind, `${A.other}/32`];
    let sb: Sandbox;

    before(async () => {
      sb = await create({ egress: { allow } }, tier);
    });
    after(async () => {
      await destroy(sb?.id, false);
    });

    test('the policy is stored normalised and reported', { timeout: 60_000 }, async () => {
      assert.deepEqual(sb.network.egress, { allow, deny: [] });
      const state = await netState(sb.id);
      assert.deepEqual(state.egress, { allow, deny: [] });
      assert.equal(state.dns, GW4);
    });

    test('the resolver answers allowed names only; others are NXDOMAIN and logged as denied', { timeout: 60_000 }, async () => {
      const denied = secret('denied');
      const { r, show } = await probeMap(sb.id, [
        ['resolve', N.pypi, 4],
        ['resolve', N.pypi, 6],
        ['resolve', `a.${N.wildSuffix}`, 4],
        ['resolve', N.other],
        ['resolve', N.wildSuffix],
        ['resolve', `${denied}.test`],
        ['dns', GW4, N.other],
        ['dns', GW4, N.pypi, 'AAAA'],
      ]);
      assert.deepEqual(
        r,
        [`ips:${A.pypi}`, `ips:${A.pypi6}`, `ips:${A.other}`, 'gaierror:-2', 'gaierror:-2', 'gaierror:-2', 'rcode:3 an:0', 'rcode:0 an:1'],
        show,
      );
      const log = (await netState(sb.id)).dnsLog;
      const verdicts = (name: string): string[] => [...new Set(log.filter((q) => q.name === name).map((q) => q.verdict))];
      assert.deepEqual(verdicts(N.other), ['denied']);
      assert.deepEqual(verdicts(`${denied}.test`), ['denied']);
      assert.deepEqual(verdicts(N.wildSuffix), ['denied']);
      assert.deepEqual(verdicts(N.pypi), ['allowed']);
      assert.deepEqual(await fixtureSaw(denied), [], 'a denied name never reaches the upstream');
    });

    test('HTTP and HTTPS to allowed names go through the Host/SNI-checking proxy', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['get', N.pypi, 4],
        ['get', N.pypi, 6],
        ['get', `a.${N.wildSuffix}`],
        ['http', A.pypi, 80, N.pypi],
        ['http', A.pypi6, 80, N.pypi],
        ['tls', N.secure],
        ['tls', N.secure, A.secure],
      ]);
      assert.match(r[0]!, new RegExp(`^200 hutch-test-host \\S+ ${N.pypi} /$`), show);
      assert.match(r[1]!, new RegExp(`^200 hutch-test-host \\S+ ${N.pypi} /$`), show);
      assert.equal(r[2], `200 hutch-test-host ${A.other} a.${N.wildSuffix} /`, show);
      assert.match(r[3]!, new RegExp(`^200 hutch-test-host \\S+ ${N.pypi} /$`), show);
      assert.match(r[4]!, new RegExp(`^200 hutch-test-host \\S+ ${N.pypi} /$`), show);
      assert.match(r[5]!, new RegExp(`^200 hutch-test-host \\S+ ${N.secure} /$`), show);
      assert.match(r[6]!, new RegExp(`^200 hutch-test-host \\S+ ${N.secure} /$`), show);
    });

    test('domain entries allow names, not IPs: raw-IP connections to an allowed name’s address fail', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['http', A.pypi],
        ['http', A.pypi6],
        ['echo', A.pypi, 7000, 2],
        ['echo', A.pypi6, 7000, 2],
        ['echo', A.secure, 7000, 2],
        ['tcp', A.pypi, 22, 2],
      ]);
      assert.match(r[0]!, /^403 /, show);
      assert.match(r[1]!, /^403 /, show);
      assertAllFail(r.slice(2), show, 'raw IP');
    });

    test('a spoofed Host header, SNI or /etc/hosts entry cannot reach a forbidden name', { timeout: 60_000 }, async () => {
      const path = `/${secret('spoof')}`;
      const { r, show } = await probeMap(sb.id, [
        ['http', A.pypi, 80, N.other, path],
        ['http', A.pypi6, 80, N.other, path],
        ['http', A.pypi, 80, A.other, path],
        ['http', A.pypi, 80, `${N.pypi}.evil`, path],
        ['tls', N.other, A.secure],
        ['tls', N.other, A.pypi],
      ]);
      for (const i of [0, 1, 2, 3]) assert.match(r[i]!, /^403 /, show);
      assertAllFail(r.slice(4), show, 'TLS with a forbidden SNI');
      assert.deepEqual(await fixtureSaw(path), [], 'no spoofed request reached a test host');
      const hosts = await run(sb.id, `echo "${A.other} ${N.other} ${N.pypi}" >> /etc/hosts; echo rc=$?`, { user: 'root' });
      assert.match(hosts.stdout, /rc=[1-9]/, `/etc/hosts is read-only: ${hosts.stdout} ${hosts.stderr}`);
      assert.doesNotMatch((await run(sb.id, 'cat /etc/hosts')).stdout, new RegExp(N.other));
    });

    test('a CIDR entry allows any port on that address, and only that address', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['echo', A.other],
        ['http', A.other],
        ['echo', A.other6, 7000, 2],
        ['echo', A.secure, 7000, 2],
      ]);
      assert.equal(r[0], 'echo:hutch-echo', show);
      assert.equal(r[1], `200 hutch-test-host ${A.other} ${A.other} /`, show);
      assertAllFail(r.slice(2), show, 'addresses outside the CIDR');
    });

    test('a name resolving to the metadata address never connects (resolver filters, proxy refuses)', { timeout: 60_000 }, async () => {
      const { r, show } = await probeMap(sb.id, [
        ['resolve', N.rebind],
        ['get', N.rebind],
        ['http', A.pypi, 80, N.rebind],
        ['http', A.pypi6, 80, N.rebind],
        ['tls', N.rebind, A.secure],
        ['http', A.metadata],
      ]);
      assertAllFail([r[0]!, r[1]!, r[4]!], show, 'rebind.test');
      for (const i of [2, 3, 5]) assert.ok(isFailure(r[i]!) || /^403 /.test(r[i]!), `rebind.test / metadata got through:\n${show}`);
      assert.equal(await metadataHits(), 0);
    });

    test('H13: names outside the allowlist never reach the upstream; direct DNS is dropped', { timeout: 60_000 }, async () => {
      const name = secret('exfil');
      const { r, show } = await probeMap(sb.id, [
        ['dns', GW4, `${name}.${N.other}`, 'TXT'],
        ['dns', GW4, `${name}.${N.other}`, 'A', 'tcp'],
        ['resolve', `${name}.example.test`],
        ['dns', A.dns, `${name}.${N.pypi}`],
        ['dns', A.dns, `${name}.${N.pypi}`, 'A', 'tcp'],
        ['tls', N.other],
      ]);
      assert.deepEqual(r.slice(0, 3), ['rcode:3 an:0', 'rcode:3 an:0', 'gaierror:-2'], show);
      assertAllFail(r.slice(3), show, 'direct DNS and DNS-over-HTTPS to a forbidden name');
      assert.deepEqual(await fixtureSaw(name), [], 'the encoded names never reached the fake internet');
    });

    test('H12/H14: always-blocked ranges win over CIDR entries that cover them', { timeout: 60_000 }, async () => {
      const wide = await create({ egress: { allow: ['0.0.0.0/0', '::/0'] } }, tier);
      const listeners = await hostListeners();
      try {
        const target = await netState(sb.id);
        await serveInSandbox(sb.id, 8080);
        const probes: Probe[] = [
          ['http', A.metadata],
          ['http', A.metadata6],
          ['tcp', target.ipv4!, 8080, 2],
          ['tcp', target.ipv6!, 8080, 2],
          ['dns', A.dns, secret('wide')],
          ...listeners.addresses.map((a): Probe => ['tcp', a, listeners.port, 2]),
          ['tcp', GW4, apiPort(), 2],
        ];
        const { r, show } = await probeMap(wide.id, [...probes, ['echo', A.other], ['echo', A.other6]]);
        assertAllFail(r.slice(0, probes.length), show, 'always-blocked');
        assert.deepEqual(r.slice(probes.length), ['echo:hutch-echo', 'echo:hutch-echo'], show);
        assert.equal(listeners.accepted(), 0, 'the host listeners accepted nothing');
        assert.equal(await metadataHits(), 0);
      } finally {
        await listeners.close();
        await destroy(wide.id);
      }
    });

    test('delete removes the namespace, the link and the table', { timeout: 60_000 }, async () => {
      assert.deepEqual(netResources(sb.id), { netns: true, link: true, table: true });
      await destroy(sb.id);
    });
  });
}

for (const tier of TIERS) {
  describe(`live policy changes (${tier})`, () => {
    /** Reads the state files of `hold` processes (bounded wait until `until` holds for all). */
    async function holdStates(id: string, files: string[], until: (states: string[]) => boolean, withinMs = 8000): Promise<string[]> {
      const deadline = Date.now() + withinMs;
      let states: string[] = [];
      for (let i = 0; i < 100; i++) {
        const res = await run(id, files.map((f) => `echo "$(cat ${f} 2>/dev/null)"`).join('; '));
        states = res.stdout.split('\n').slice(0, files.length);
        if (until(states) || Date.now() > deadline) break;
        await sleep(200);
      }
      return states;
    }
    const count = (state: string): number => Number(/^ok (\d+)/.exec(state)?.[1] ?? -1);

    test('PUT replaces the policy at once and cuts the connections it forbids, keeping allowed ones', { timeout: 90_000 }, async () => {
      const sb = await create({ egress: 'open' }, tier);
      try {
        // [name, mode, address, port, Host header]: two allowed by the new policy, three forbidden.
        const holds: Array<[string, string, string, number, string]> = [
          ['keep4', 'tcp', A.other, 7000, ''],
          ['keep6', 'tcp', A.other6, 7000, ''],
          ['cut4', 'tcp', A.pypi, 7000, ''],
          ['cut6', 'tcp', A.pypi6, 7000, ''],
          ['cuthttp', 'http', A.pypi6, 80, N.pypi],
        ];
        const files = holds.map(([n]) => `/tmp/hold-${n}`);
        await run(
          sb.id,
          holds
            .map(
              ([n, mode, host, port, name]) =>
                `nohup python3 /tmp/hn.py hold ${mode} ${host} ${port} /tmp/hold-${n} ${name} >/dev/null 2>&1 &`,
            )
            .join('\n'),
        );
        const up = await holdStates(sb.id, files, (s) => s.every((x) => count(x) >= 2));
        assert.ok(
          up.every((x) => count(x) >= 2),
          `connections up before the change: ${up.join(' | ')}`,
        );

        const put = await putNetwork(sb.id, { egress: { allow: [`${A.other}/32`, `${A.other6}/128`] } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        assert.deepEqual(put.body.egress, { allow: [`${A.other}/32`, `${A.other6}/128`], deny: [] });
        assert.ok((put.body.cut ?? 0) >= 3, `cut: ${put.body.cut}`);
        const atChange = await holdStates(sb.id, files, () => true);

        const later = await holdStates(
          sb.id,
          files,
          (s) => s.slice(2).every((x) => x.startsWith('cut')) && [0, 1].every((i) => count(s[i]!) > count(atChange[i]!) + 3),
        );
        const show = holds.map(([n], i) => `${n}: ${atChange[i]} -> ${later[i]}`).join('\n');
        for (const i of [2, 3, 4]) {
          assert.match(
            later[i]!,
            /^cut \d+ (ConnectionResetError|ConnectionAbortedError|BrokenPipeError|RemoteDisconnected|EOFError)/,
            `forbidden connection not cut (reset/abort):\n${show}`,
          );
        }
        for (const i of [0, 1]) assert.ok(count(later[i]!) > count(atChange[i]!) + 3, `allowed connection was cut:\n${show}`);

        const { r, show: s2 } = await probeMap(sb.id, [
          ['echo', A.other],
          ['echo', A.other6],
          ['echo', A.pypi, 7000, 2],
          ['http', A.pypi6, 80, N.pypi, '/', 2],
        ]);
        assert.deepEqual(r.slice(0, 2), ['echo:hutch-echo', 'echo:hutch-echo'], s2);
        assertAllFail(r.slice(2), s2, 'new connections under the new policy');
        assert.deepEqual((await netState(sb.id)).egress, { allow: [`${A.other}/32`, `${A.other6}/128`], deny: [] });
      } finally {
        await destroy(sb.id);
      }
    });

    test('removing a name cuts connections proxied for it', { timeout: 90_000 }, async () => {
      const sb = await create({ egress: { allow: [N.pypi, N.secure] } }, tier);
      try {
        await run(sb.id, `nohup python3 /tmp/hn.py hold http ${A.pypi6} 80 /tmp/hold-proxied ${N.pypi} >/dev/null 2>&1 &`);
        const up = await holdStates(sb.id, ['/tmp/hold-proxied'], (s) => count(s[0]!) >= 2);
        assert.match(up[0]!, /^ok \d+ 200$/, `proxied connection up: ${up[0]}`);
        const put = await putNetwork(sb.id, { egress: { allow: [N.secure] } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        assert.ok((put.body.cut ?? 0) >= 1, `cut: ${put.body.cut}`);
        const cut = await holdStates(sb.id, ['/tmp/hold-proxied'], (s) => s[0]!.startsWith('cut'));
        assert.match(cut[0]!, /^cut /, `the proxied connection was not cut: ${cut[0]}`);
        const { r, show } = await probeMap(sb.id, [
          ['resolve', N.pypi],
          ['http', A.pypi6, 80, N.pypi],
          ['tls', N.secure],
        ]);
        assert.equal(r[0], 'gaierror:-2', show);
        assert.match(r[1]!, /^403 /, show);
        assert.match(r[2]!, /^200 hutch-test-host /, show);
      } finally {
        await destroy(sb.id);
      }
    });
  });
}

describe('spare networks (container)', () => {
  /** Namespaces of this server that no sandbox record names: the prepared spares. */
  function spareNamespaces(): string[] {
    const key = createHash('sha256').update(server.dataDir).digest('hex').slice(0, 12);
    const recordsDir = `/run/hutch/${key}/net`;
    const owned = new Set(
      spawnSync('ls', [recordsDir], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter((f) => f.endsWith('.json'))
        .map((f) => (JSON.parse(readFileSync(`${recordsDir}/${f}`, 'utf8')) as { netns?: string }).netns),
    );
    const all = (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '')
      .split('\n')
      .map((l) => l.split(' ')[0]!);
    return all.filter((n) => n.startsWith(`hutch-${key.slice(0, 8)}-`) && !owned.has(n));
  }

  test('after a networked create, spares are prepared; the next create takes one and works', { timeout: 60_000 }, async () => {
    const first = await create({ egress: 'open' });
    let second: Sandbox | undefined;
    try {
      let spares: string[] = [];
      for (let i = 0; i < 100 && spares.length === 0; i++) {
        spares = spareNamespaces();
        if (spares.length === 0) await sleep(100);
      }
      assert.ok(spares.length > 0, 'spare namespaces are prepared after the first networked create');
      second = await create({ egress: 'open' });
      assert.ok(
        spares.includes(linkNames(second.id).netns),
        `the create took a spare (${linkNames(second.id).netns} in ${spares.join(', ')})`,
      );
      assert.ok(!spareNamespaces().includes(linkNames(second.id).netns), 'a claimed spare is no longer a spare');
      await assertOpenEgress(second.id, 4);
      await assertOpenEgress(second.id, 6);
    } finally {
      await destroy(second?.id);
      await destroy(first.id);
    }
  });
});

describe('live policy changes (container): egress on and off, invalid settings', () => {
  test('egress can be turned on and off on a running sandbox', { timeout: 90_000 }, async () => {
    const sb = await create();
    try {
      assert.equal((await probe(sb.id, [['ifaces']]))[0], 'ifs:lo');
      const on = await putNetwork(sb.id, { egress: 'open' });
      assert.equal(on.status, 200, JSON.stringify(on.body));
      assert.equal(on.body.egress, 'open');
      assert.match(on.body.ipv4 ?? '', /^10\.213\./);
      assert.deepEqual(netResources(sb.id), { netns: true, link: true, table: true });
      assert.match((await run(sb.id, 'cat /etc/resolv.conf')).stdout, /^nameserver /m);
      await assertOpenEgress(sb.id, 6);

      const off = await putNetwork(sb.id, { egress: 'none' });
      assert.equal(off.status, 200, JSON.stringify(off.body));
      assert.equal(off.body.egress, 'none');
      assert.equal(off.body.ipv4, null);
      await assertNetGone(sb.id, 'after egress none');
      assert.doesNotMatch((await run(sb.id, 'cat /etc/resolv.conf')).stdout, /^nameserver /m);
      const { r: r2, show: s2 } = await probeMap(sb.id, [['ifaces'], ['echo', A.other, 7000, 2], ['resolve', N.pypi]]);
      assert.equal(r2[0], 'ifs:lo', s2);
      assertAllFail(r2.slice(1), s2, 'after egress none');
    } finally {
      await destroy(sb.id);
    }
  });

  test('invalid settings are refused with 400 naming the field', { timeout: 60_000 }, async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ egress: 'everything' }, /egress/],
      [{ egress: { allow: ['not a name!'] } }, /egress\.allow\[0\]/],
      [{ egress: { allow: ['10.0.0.0/33'] } }, /egress\.allow\[0\]/],
      [{ egress: { deny: [42] } }, /egress/],
      [{ egress: { allow: [], extra: [] } }, /extra|Unrecognized|egress/i],
      [{ publicPorts: [0] }, /publicPorts/],
      [{ public: 'yes' }, /public/],
      [{ firewall: true }, /firewall|Unrecognized/i],
    ];
    for (const [network, pattern] of cases) {
      const res = await server.api<ApiError>('POST', '/v1/sandboxes', { template: 'base', network });
      assert.equal(res.status, 400, `create with ${JSON.stringify(network)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'invalid_argument');
      assert.match(res.body.error.message, pattern);
    }
    const sb = await create();
    try {
      for (const [network, pattern] of cases) {
        const res = await putNetwork(sb.id, network);
        assert.equal(res.status, 400, `PUT ${JSON.stringify(network)}: ${JSON.stringify(res.body)}`);
        assert.match(res.body.error.message, pattern);
      }
      assert.deepEqual((await netState(sb.id)).egress, 'none');
    } finally {
      await destroy(sb.id);
    }
  });
});

describe('ingress (container)', () => {
  let sb: Sandbox;
  const seen = (r: HttpResult): { path: string; headers: Record<string, string> } => {
    assert.equal(r.status, 200, `expected the sandbox's answer: ${r.status} ${r.body.slice(0, 300)}`);
    return JSON.parse(r.body) as { path: string; headers: Record<string, string> };
  };

  before(async () => {
    // Ingress does not need egress: the sandbox has no network interface at all.
    sb = await create();
    await serveInSandbox(sb.id, 8080);
  });
  after(async () => {
    await destroy(sb?.id, false);
  });

  test('private ports need the API key, the access token or a signed URL', { timeout: 60_000 }, async () => {
    const anon = await ingress(portPath(sb.id, 8080));
    assert.equal(anon.status, 401);
    assert.equal(JSON.parse(anon.body).error.code, 'unauthenticated');
    assert.equal(anon.headers['www-authenticate'], 'Bearer');
    assert.equal((await ingress(portPath(sb.id, 8080), { authorization: 'Bearer hutch_wrong' })).status, 401);
    assert.equal((await ingress(portPath(sb.id, 8080), bearer())).status, 200);

    const url = await server.api<PortUrl>('GET', `/v1/sandboxes/${sb.id}/url?port=8080&expiresIn=600`);
    assert.equal(url.status, 200, JSON.stringify(url.body));
    assert.equal(url.body.port, 8080);
    assert.equal(url.body.public, false);
    assert.ok(url.body.expiresAt && Math.abs(Date.parse(url.body.expiresAt) - Date.now() - 600_000) < 5000, url.body.expiresAt ?? '');
    const token = url.body.headers['X-Hutch-Access-Token']!;
    assert.ok(token, 'the access token header is given');
    assert.equal((await ingress(portPath(sb.id, 8080), { 'x-hutch-access-token': token })).status, 200);
    assert.equal((await ingress(portPath(sb.id, 8080), { 'x-hutch-access-token': `${token}x` })).status, 401);

    // The signed URL is host-routed (the server runs with a domain); follow it against our listener.
    const signed = new URL(url.body.url);
    assert.equal(signed.hostname, `8080-${sb.id}.${DOMAIN}`);
    const sig = signed.searchParams.get('hutch_token')!;
    assert.match(sig, /^\d+\.[A-Za-z0-9_-]{43}$/);
    const viaHost = await ingress(`${signed.pathname}${signed.search}`, { host: signed.host });
    assert.equal(seen(viaHost).path, '/', 'the token is removed from the path the sandbox sees');
    const cookie = String(viaHost.headers['set-cookie'] ?? '');
    assert.match(cookie, new RegExp(`hutch_port_token=${sig.replace('.', '\\.')};`));
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /Path=\/;/);
    const withCookie = await ingress('/again', { host: signed.host, cookie: `hutch_port_token=${sig}` });
    assert.equal(seen(withCookie).path, '/again', 'the cookie alone is enough');

    const viaPath = await ingress(`${portPath(sb.id, 8080, '/p')}?a=1&hutch_token=${sig}`);
    assert.equal(seen(viaPath).path, '/p?a=1');
    assert.match(String(viaPath.headers['set-cookie'] ?? ''), new RegExp(`Path=/v1/sandboxes/${sb.id}/ports/8080/;`));

    // A token is bound to its port, its sandbox and its expiry.
    const other = await server.api<PortUrl>('GET', `/v1/sandboxes/${sb.id}/url?port=8081`);
    const otherSig = new URL(other.body.url).searchParams.get('hutch_token')!;
    assert.equal((await ingress(`${portPath(sb.id, 8080)}?hutch_token=${otherSig}`)).status, 401, 'a token for another port');
    const [exp, mac] = sig.split('.');
    assert.equal((await ingress(`${portPath(sb.id, 8080)}?hutch_token=${Number(exp) + 1000}.${mac}`)).status, 401, 'a changed expiry');
    const short = await server.api<PortUrl>('GET', `/v1/sandboxes/${sb.id}/url?port=8080&expiresIn=1`);
    const shortSig = new URL(short.body.url).searchParams.get('hutch_token')!;
    await sleep(2100);
    assert.equal((await ingress(`${portPath(sb.id, 8080)}?hutch_token=${shortSig}`)).status, 401, 'an expired token');
    assert.equal((await ingress(portPath(sb.id, 8080), { cookie: `hutch_port_token=${shortSig}` })).status, 401, 'an expired cookie');
  });

  test('routing by path and by host; trailing-slash redirect; 502 when nothing listens', { timeout: 60_000 }, async () => {
    const noSlash = await ingress(`/v1/sandboxes/${sb.id}/ports/8080?x=1`, bearer());
    assert.equal(noSlash.status, 308);
    assert.equal(noSlash.headers.location, `/v1/sandboxes/${sb.id}/ports/8080/?x=1`);
    assert.equal(seen(await ingress(portPath(sb.id, 8080, '/a/b?c=d'), bearer())).path, '/a/b?c=d');
    const byHost = seen(await ingress('/h/i?j=k', { ...bearer(), host: `8080-${sb.id}.${DOMAIN}` }));
    assert.equal(byHost.path, '/h/i?j=k');
    assert.equal(seen(await ingress('/', { ...bearer(), host: `8080-${sb.id}.${DOMAIN}:${apiPort()}` })).path, '/');
    const nothing = await ingress(portPath(sb.id, 8099), bearer());
    assert.equal(nothing.status, 502);
    assert.equal(JSON.parse(nothing.body).error.code, 'unavailable');
    assert.equal((await ingress('/', { ...bearer(), host: `8099-${sb.id}.${DOMAIN}` })).status, 502);
    assert.equal((await ingress('/', { ...bearer(), host: `8080-aaaaaaaaaaaaaaaaaaaa.${DOMAIN}` })).status, 404, 'unknown sandbox');
    assert.equal((await ingress(portPath('aaaaaaaaaaaaaaaaaaaa', 8080), bearer())).status, 404, 'unknown sandbox by path');
    assert.equal((await ingress(portPath(sb.id, 70000), bearer())).status, 400, 'port out of range');
    // Another host name is not routed to the sandbox: the API answers.
    const api = await ingress('/healthz', { host: `8080-${sb.id}.elsewhere.test` });
    assert.equal(api.status, 200);
    assert.doesNotMatch(api.body, /"headers"/);
  });

  test('the API key and the access token never reach the sandbox', { timeout: 60_000 }, async () => {
    const url = await server.api<PortUrl>('GET', `/v1/sandboxes/${sb.id}/url?port=8080`);
    const token = url.body.headers['X-Hutch-Access-Token']!;
    const sig = new URL(url.body.url).searchParams.get('hutch_token')!;
    const leaks = (h: Record<string, string>): string[] =>
      Object.entries(h)
        .filter(
          ([k, v]) =>
            k === 'authorization' || k === 'x-hutch-access-token' || v.includes(server.key) || v.includes(token) || v.includes(sig),
        )
        .map(([k, v]) => `${k}: ${v}`);
    const cases: Array<[string, string, Record<string, string>]> = [
      ['API key', portPath(sb.id, 8080), bearer()],
      ['access token', portPath(sb.id, 8080), { 'x-hutch-access-token': token }],
      ['access token and API key', portPath(sb.id, 8080), { 'x-hutch-access-token': token, ...bearer() }],
      ['signed URL and API key', `${portPath(sb.id, 8080)}?hutch_token=${sig}`, bearer()],
      ['cookie and API key', portPath(sb.id, 8080), { cookie: `a=1; hutch_port_token=${sig}; b=2`, ...bearer() }],
      ['API key by host', '/', { ...bearer(), host: `8080-${sb.id}.${DOMAIN}` }],
    ];
    // Every case is tried before asserting, so a failure lists all the leaking ones.
    const found: string[] = [];
    for (const [what, path, headers] of cases) {
      const got = seen(await ingress(path, headers));
      for (const leak of leaks(got.headers)) found.push(`${what}: ${leak}`);
      if (got.path.includes('hutch_token')) found.push(`${what}: path ${got.path}`);
    }
    const cookies = seen(await ingress(portPath(sb.id, 8080), { cookie: `a=1; hutch_port_token=${sig}; b=2` }));
    assert.equal(cookies.headers.cookie, 'a=1; b=2', 'other cookies pass, the port cookie does not');

    // A public port: no credentials needed, but an API key sent anyway still stays out.
    const pub = await putNetwork(sb.id, { publicPorts: [8080] });
    assert.equal(pub.status, 200, JSON.stringify(pub.body));
    try {
      const got = seen(await ingress(portPath(sb.id, 8080), bearer()));
      for (const leak of leaks(got.headers)) found.push(`public port with API key: ${leak}`);
    } finally {
      await putNetwork(sb.id, { publicPorts: [] });
    }
    assert.deepEqual(found, [], 'credentials reached the sandbox');
  });

  test('public ports and public sandboxes need no credentials', { timeout: 60_000 }, async () => {
    try {
      const pub = await putNetwork(sb.id, { publicPorts: [8080] });
      assert.equal(pub.status, 200, JSON.stringify(pub.body));
      assert.deepEqual(pub.body.publicPorts, [8080]);
      assert.equal(seen(await ingress(portPath(sb.id, 8080, '/open'))).path, '/open');
      assert.equal((await ingress('/', { host: `8080-${sb.id}.${DOMAIN}` })).status, 200);
      assert.equal((await ingress(portPath(sb.id, 8099))).status, 401, 'other ports stay private');
      const url = await server.api<PortUrl>('GET', `/v1/sandboxes/${sb.id}/url?port=8080`);
      assert.deepEqual(url.body, { url: `http://8080-${sb.id}.${DOMAIN}/`, port: 8080, public: true, expiresAt: null, headers: {} });

      const all = await putNetwork(sb.id, { public: true, publicPorts: [] });
      assert.equal(all.status, 200, JSON.stringify(all.body));
      assert.equal(all.body.public, true);
      assert.equal((await ingress(portPath(sb.id, 8099))).status, 502, 'every port is public: past auth, nothing listens');
      assert.equal((await ingress(portPath(sb.id, 8080))).status, 200);

      const closed = await putNetwork(sb.id, { public: false });
      assert.equal(closed.status, 200);
      assert.equal((await ingress(portPath(sb.id, 8080))).status, 401, 'private again');
    } finally {
      await putNetwork(sb.id, { public: false, publicPorts: [] });
    }
  });

  test('WebSocket upgrades pass through', { timeout: 60_000 }, async () => {
    const ws = (path: string, headers: Record<string, string>): Promise<{ status: number; reply?: string }> =>
      new Promise((resolve, reject) => {
        const key = randomBytes(16).toString('base64');
        const req = request({
          host: '127.0.0.1',
          port: apiPort(),
          path,
          agent: false,
          timeout: 10_000,
          headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13', ...headers },
        });
        req.on('timeout', () => req.destroy(new Error('websocket timed out')));
        req.on('error', reject);
        req.on('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0 });
        });
        req.on('upgrade', (res, socket, head) => {
          const expected = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
          const payload = Buffer.from('hello through the ingress');
          const mask = randomBytes(4);
          const frame = Buffer.concat([
            Buffer.from([0x81, 0x80 | payload.length]),
            mask,
            Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!)),
          ]);
          let buf = Buffer.from(head);
          const timer = setTimeout(() => socket.destroy(new Error('no websocket reply')), 5000);
          socket.on('data', (d: Buffer) => {
            buf = Buffer.concat([buf, d]);
            if (buf.length >= 2 && buf.length >= 2 + (buf[1]! & 127)) {
              clearTimeout(timer);
              socket.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
              socket.destroy();
              if (res.headers['sec-websocket-accept'] !== expected) reject(new Error('bad Sec-WebSocket-Accept'));
              else resolve({ status: res.statusCode ?? 0, reply: buf.subarray(2, 2 + (buf[1]! & 127)).toString() });
            }
          });
          socket.on('error', reject);
          socket.write(frame);
        });
        req.end();
      });
    const byPath = await ws(portPath(sb.id, 8080, '/ws'), bearer());
    assert.equal(byPath.status, 101);
    assert.equal(byPath.reply, 'echo:hello through the ingress');
    const byHost = await ws('/ws', { ...bearer(), host: `8080-${sb.id}.${DOMAIN}` });
    assert.equal(byHost.reply, 'echo:hello through the ingress');
    const anon = await ws(portPath(sb.id, 8080, '/ws'), {});
    assert.equal(anon.status, 401, 'an upgrade without credentials is refused');
  });
});

for (const tier of TIERS) {
  describe(`restart and cleanup (${tier})`, () => {
    test(
      'after kill -9 and restart a networked sandbox is reattached with its policy; delete leaves nothing',
      { timeout: 120_000 },
      async () => {
        const sb = await create({ egress: { allow: [N.pypi, `${A.other}/32`] } }, tier);
        const key = createHash('sha256').update(server.dataDir).digest('hex').slice(0, 12);
        const record = `/run/hutch/${key}/net/${sb.id}.json`;
        try {
          const check = async (when: string): Promise<void> => {
            const { r, show } = await probeMap(sb.id, [
              ['echo', A.other],
              ['get', N.pypi, 6],
              ['resolve', N.other],
              ['echo', A.secure, 7000, 2],
              ['http', A.metadata],
              ['http', A.pypi6, 80, N.other],
            ]);
            assert.equal(r[0], 'echo:hutch-echo', `${when}:\n${show}`);
            // Through the egress proxy, which may reach the name over either family.
            assert.match(r[1]!, new RegExp(`^200 hutch-test-host \\S+ ${N.pypi} /$`), `${when}:\n${show}`);
            assert.equal(r[2], 'gaierror:-2', `${when}:\n${show}`);
            assert.ok(isFailure(r[3]!), `${when}:\n${show}`);
            assert.ok(isFailure(r[4]!) || /^403 /.test(r[4]!), `${when}:\n${show}`);
            assert.match(r[5]!, /^403 /, `${when}:\n${show}`);
          };
          const before = await netState(sb.id);
          await check('before the restart');
          assert.ok(existsSync(record), `the network record ${record} exists`);

          await server.kill9();
          await server.restart();

          const state = await netState(sb.id);
          assert.equal(state.ipv4, before.ipv4, 'same addresses after the restart');
          assert.equal(state.ipv6, before.ipv6);
          assert.deepEqual(state.egress, before.egress);
          assert.deepEqual(netResources(sb.id), { netns: true, link: true, table: true });
          await check('after the restart');
          const put = await putNetwork(sb.id, { egress: { allow: [`${A.other}/32`] } });
          assert.equal(put.status, 200, JSON.stringify(put.body));
          const { r, show } = await probeMap(sb.id, [
            ['echo', A.other],
            ['get', N.pypi],
          ]);
          assert.equal(r[0], 'echo:hutch-echo', show);
          assert.ok(isFailure(r[1]!), show);
        } finally {
          await destroy(sb.id);
        }
        // The record goes last (after the conntrack flush), a moment after the link: bounded wait.
        for (let i = 0; i < 50 && existsSync(record); i++) await sleep(100);
        assert.ok(!existsSync(record), 'the network record is removed');
      },
    );
  });
}

test('the fake metadata service was never reached, over the whole file', async () => {
  assert.equal(await metadataHits(), 0);
});
