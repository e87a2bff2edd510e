/**
 * The test "internet": one program run inside the fixture's network namespace by
 * tests/net-fixture.ts (`ip netns exec <ns> node --import tsx tests/net-fixture-host.ts <json>`).
 * It serves
 * - DNS (UDP and TCP port 53), authoritative for the zone in the config;
 * - HTTP on port 80 of every test-host address: the body is
 *   `hutch-test-host <local address> <Host header> <path>`; `/stream` sends 5 chunks 50 ms apart,
 *   `/bytes/<n>` sends n bytes, `/headers` echoes the request headers as JSON, `/record…` keeps
 *   the request headers in its event (and answers `recorded`, echoing nothing);
 * - HTTPS on port 443 (same answers) with the fixture's test-CA certificate;
 * - a TCP echo on port 7000;
 * - a fake metadata service: HTTP port 80 on the metadata addresses, body `metadata-secret`.
 * Every accepted TCP connection and every DNS datagram counts as one hit on its local address;
 * hits and an event log go to `eventsFile`, rewritten (temp file + rename) synchronously before
 * the connection or query is answered, so whatever a client saw answered has been counted.
 * Prints `READY` once everything listens; exits when its stdin closes (the parent went away).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface ZoneRecords {
  A?: string[];
  AAAA?: string[];
  TXT?: string[];
}

export interface HostConfig {
  eventsFile: string;
  certFile: string;
  keyFile: string;
  /** Addresses answering HTTP (80), HTTPS (443) and the TCP echo (7000). */
  hosts: string[];
  /** Addresses of the fake metadata service (HTTP on 80 only). */
  metadata: string[];
  /** Addresses of the DNS server (UDP and TCP 53). */
  dns: string[];
  /** Names (lower case, no trailing dot; `*.x` for a wildcard) and their records. */
  zone: Record<string, ZoneRecords>;
}

export interface HitEvent {
  /** Milliseconds since the epoch. */
  t: number;
  kind: 'tcp' | 'udp' | 'http' | 'https' | 'metadata' | 'dns';
  local: string;
  port: number;
  remote: string;
  /** http/https/metadata: `<Host header> <path>`; dns: `<name> <type>`. */
  detail?: string;
  /** `/record…` requests: their headers. */
  headers?: Record<string, string | string[] | undefined>;
}

const TTL = 30;
const MAX_EVENTS = 5000;

function main(): void {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: net-fixture-host.ts <json config>');
  const cfg = JSON.parse(arg) as HostConfig;
  const hits: Record<string, number> = {};
  const events: HitEvent[] = [];

  const record = (e: Omit<HitEvent, 't'>, countsAsHit: boolean): void => {
    if (countsAsHit) hits[e.local] = (hits[e.local] ?? 0) + 1;
    events.push({ t: Date.now(), ...e });
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
    const tmp = `${cfg.eventsFile}.tmp`;
    writeFileSync(tmp, JSON.stringify({ hits, events }));
    renameSync(tmp, cfg.eventsFile);
  };
  const norm = (a: string | undefined): string => (a ?? '').replace(/^::ffff:(?=\d+\.)/, '');
  const onConnection = (kind: HitEvent['kind'], port: number) => (s: Socket) => {
    s.on('error', () => {});
    record({ kind, local: norm(s.localAddress), port, remote: norm(s.remoteAddress) }, true);
  };

  const listening: Promise<void>[] = [];
  const listen = (srv: Server, port: number, host: string): void => {
    listening.push(
      new Promise((res, rej) => {
        srv.once('error', rej);
        srv.listen({ port, host, ipv6Only: host.includes(':') }, () => {
          srv.off('error', rej);
          res();
        });
      }),
    );
  };

  // HTTP(S) test hosts.
  const handler =
    (kind: 'http' | 'https') =>
    (req: IncomingMessage, res: ServerResponse): void => {
      const local = norm(req.socket.localAddress);
      const host = req.headers.host ?? '-';
      const path = req.url ?? '/';
      const recorded = path.startsWith('/record') ? { headers: req.headers } : {};
      record(
        { kind, local, port: req.socket.localPort ?? 0, remote: norm(req.socket.remoteAddress), detail: `${host} ${path}`, ...recorded },
        false,
      );
      if (path.startsWith('/record')) {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '8' });
        res.end('recorded');
        return;
      }
      const line = `hutch-test-host ${local} ${host} ${path}`;
      req.resume();
      if (path === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const tick = (): void => {
          res.write(`${line} chunk ${i}\n`);
          i += 1;
          if (i < 5) setTimeout(tick, 50);
          else res.end();
        };
        tick();
        return;
      }
      const bytes = /^\/bytes\/(\d+)$/.exec(path);
      if (bytes) {
        const n = Math.min(Number(bytes[1]), 512 * 1024 * 1024);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let left = n;
        const pump = (): void => {
          while (left > 0) {
            const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
            left -= piece.length;
            if (!res.write(piece)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (path === '/headers') {
        const json = JSON.stringify(req.headers);
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(json)) });
        res.end(json);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(line)) });
      res.end(line);
    };
  const tls = { cert: readFileSync(cfg.certFile), key: readFileSync(cfg.keyFile) };
  for (const addr of cfg.hosts) {
    const http = createHttpServer(handler('http'));
    http.on('connection', onConnection('tcp', 80));
    listen(http, 80, addr);
    const https = createHttpsServer(tls, handler('https'));
    https.on('connection', onConnection('tcp', 443));
    https.on('tlsClientError', () => {});
    listen(https, 443, addr);
    const echo = createTcpServer((s) => {
      onConnection('tcp', 7000)(s);
      s.pipe(s);
    });
    listen(echo, 7000, addr);
  }

  // Fake metadata service.
  for (const addr of cfg.metadata) {
    const md = createHttpServer((req, res) => {
      record(
        {
          kind: 'metadata',
          local: norm(req.socket.localAddress),
          port: 80,
          remote: norm(req.socket.remoteAddress),
          detail: `${req.headers.host ?? '-'} ${req.url ?? '/'}`,
        },
        false,
      );
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '15' });
      res.end('metadata-secret');
    });
    md.on('connection', onConnection('tcp', 80));
    listen(md, 80, addr);
  }

  // DNS.
  const answer = (query: Buffer, local: string, remote: string, transport: 'udp' | 'tcp'): Buffer | null => {
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(query);
    } catch {
      return null;
    }
    if (q.type !== 'query') return null;
    const question = q.questions?.[0];
    record(
      { kind: 'dns', local, port: 53, remote, detail: question ? `${question.name} ${question.type}` : '(no question)' },
      transport === 'udp',
    );
    const rd = q.flags !== undefined ? q.flags & dnsPacket.RECURSION_DESIRED : 0;
    const base = { type: 'response' as const, id: q.id, questions: q.questions };
    if (!question) return dnsPacket.encode({ ...base, flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | 1 /* FORMERR */ });
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const records = lookup(name);
    const answers: dnsPacket.Answer[] = [];
    const want = (t: string): boolean => question.type === t || (question.type as string) === 'ANY';
    if (want('A')) for (const data of records?.A ?? []) answers.push({ type: 'A', name: question.name, ttl: TTL, data });
    if (want('AAAA')) for (const data of records?.AAAA ?? []) answers.push({ type: 'AAAA', name: question.name, ttl: TTL, data });
    if (want('TXT')) {
      // TXT answers for any name at all (so exfiltration-by-lookup tests can see what arrived).
      const txt = records?.TXT ?? [`hutch-test-txt ${name}`];
      for (const data of txt) answers.push({ type: 'TXT', name: question.name, ttl: TTL, data });
    }
    const nxdomain = !records && answers.length === 0;
    const soa: dnsPacket.Answer = {
      type: 'SOA',
      name: 'test',
      ttl: TTL,
      data: { mname: 'ns.test', rname: 'hostmaster.test', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 5 },
    };
    return dnsPacket.encode({
      ...base,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | rd | (nxdomain ? 3 /* NXDOMAIN */ : 0),
      answers,
      authorities: answers.length === 0 ? [soa] : [],
    });
  };
  /** Exact name, else the closest `*.<suffix>` wildcard (any depth, as in RFC 4592). */
  function lookup(name: string): ZoneRecords | undefined {
    if (cfg.zone[name]) return cfg.zone[name];
    const labels = name.split('.');
    for (let i = 1; i < labels.length; i++) {
      const wild = cfg.zone[`*.${labels.slice(i).join('.')}`];
      if (wild) return wild;
    }
    return undefined;
  }
  for (const addr of cfg.dns) {
    const udp = createSocket(addr.includes(':') ? 'udp6' : 'udp4');
    udp.on('message', (msg, rinfo) => {
      const reply = answer(msg, addr, rinfo.address, 'udp');
      if (reply) udp.send(reply, rinfo.port, rinfo.address);
    });
    listening.push(
      new Promise((res, rej) => {
        udp.once('error', rej);
        udp.bind(53, addr, () => {
          udp.off('error', rej);
          udp.on('error', () => {});
          res();
        });
      }),
    );
    const tcp = createTcpServer((s) => {
      onConnection('tcp', 53)(s);
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) break;
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          const reply = answer(msg, addr, norm(s.remoteAddress), 'tcp');
          if (!reply) {
            s.destroy();
            return;
          }
          const out = Buffer.alloc(2 + reply.length);
          out.writeUInt16BE(reply.length, 0);
          reply.copy(out, 2);
          s.write(out);
        }
      });
    });
    listen(tcp, 53, addr);
  }

  Promise.all(listening).then(
    () => {
      writeFileSync(`${cfg.eventsFile}.tmp`, JSON.stringify({ hits, events }));
      renameSync(`${cfg.eventsFile}.tmp`, cfg.eventsFile);
      process.stdout.write(`READY ${process.pid}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`net-fixture-host: listen failed: ${String(err)}\n`);
      process.exit(1);
    },
  );

  // The parent keeps our stdin open; when it goes away (even SIGKILLed), so do we.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));
}

main();
