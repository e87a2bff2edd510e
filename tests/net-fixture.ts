/**
 * A fake "internet" for tests, entirely on this machine: test hosts live in a network namespace
 * behind a veth pair, with DNS, HTTP(S), a TCP echo and a fake metadata service (see
 * net-fixture-host.ts). Addresses come from the benchmark ranges 198.18.0.0/24 and 2001:2::/64
 * (plus 169.254.169.254 and fd00:ec2::254 for the fake metadata service, reachable only from the
 * sandbox pools).
 *
 * Safety: policy rules send everything *from the sandbox pools* to a dedicated routing table
 * that knows only the test hosts and otherwise says `unreachable`, so sandbox traffic cannot leave
 * the machine even if Hutch's firewall let it through. Traffic from a pool to a pool address
 * (host <-> sandbox, e.g. replies from the gateway address) is looked up in the main table first,
 * ignoring its default route (`suppress_prefixlength 0`).
 *
 * One test internet at a time per machine (the addresses are fixed): start takes an exclusive
 * lock (flock on LOCK_PATH, held by a child process so it dies with us) and clears leftovers of
 * crashed runs. Nothing here keeps the Node event loop alive; a process that exits without
 * calling stop() still removes everything in an 'exit' handler.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HitEvent, HostConfig, ZoneRecords } from './net-fixture-host.js';

export type { HitEvent, ZoneRecords } from './net-fixture-host.js';

const HERE = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
const REPO = resolve(HERE, '..');
const HOST_SCRIPT = join(HERE, 'net-fixture-host.ts');

/** Everything the fixture creates is named with one of these prefixes. */
export const NETNS_PREFIX = 'hutchtest-inet';
export const VETH_PREFIX = 'htinet';
const TMP_PREFIX = 'hutchtest-inet-';
const PEER_IF = 'inet0';
/** Routing tables the fixture may use; its routes and rules carry this routing protocol number. */
export const TABLE_RANGE = { first: 71710, last: 71719 } as const;
export const RT_PROTO = 171;
const PREF_CANDIDATES = [1717, 1727, 1737, 1747, 1757];
const LOCK_PATH = '/run/hutchtest-inet.lock';
const CMD_TIMEOUT_MS = 15_000;

export const TEST_ADDRESSES = {
  gateway4: '198.18.0.1',
  gateway6: '2001:2::1',
  pypi: '198.18.0.10',
  other: '198.18.0.20',
  secure: '198.18.0.30',
  dns: '198.18.0.53',
  pypi6: '2001:2::10',
  other6: '2001:2::20',
  secure6: '2001:2::30',
  metadata: '169.254.169.254',
  metadata6: 'fd00:ec2::254',
} as const;

export const TEST_NAMES = {
  pypi: 'pypi-mirror.test',
  other: 'other.test',
  secure: 'secure.test',
  rebind: 'rebind.test',
  /** `<anything>.wild.test` resolves to `other`. */
  wildSuffix: 'wild.test',
} as const;

const A = TEST_ADDRESSES;
const NET4 = '198.18.0.0/24';
const NET6 = '2001:2::/64';

export interface StartOptions {
  /** The sandbox pools whose traffic must stay on this machine, e.g. 10.213.0.0/16. */
  sandboxPool4: string;
  sandboxPool6: string;
  /** netns name; default `hutchtest-inet-<6 hex>`. Only `hutchtest-inet*` names are ever cleaned up as stale. */
  name?: string;
  /** Extra or replaced DNS records (lower-case names, `*.x` wildcards). */
  zone?: Record<string, ZoneRecords>;
  /** How long to wait for another test internet on this machine to go away (default 300 s). */
  lockTimeoutMs?: number;
  /** How long the in-namespace program may take to listen (default 30 s). */
  readyTimeoutMs?: number;
}

export interface TestInternet {
  netns: string;
  hostVeth: string;
  /** The policy-routing table and the priority of the first of its two rules (per family). */
  table: number;
  rulePriority: number;
  tmpDir: string;
  /** PEM of the test CA that signed the HTTPS certificate (secure.test, pypi-mirror.test, other.test). */
  caCertPath: string;
  dns: string;
  hosts: {
    pypi: string;
    other: string;
    secure: string;
    pypi6: string;
    other6: string;
    secure6: string;
    metadata: string;
    metadata6: string;
  };
  /** The host side of the veth: where replies to the test hosts go. */
  gateway4: string;
  gateway6: string;
  /**
   * Hits per local address (test host, DNS server, metadata): one per accepted TCP connection and
   * per DNS datagram, counted before anything is answered.
   */
  hits(): Promise<Record<string, number>>;
  /** Every hit plus each HTTP request and DNS query (with Host/path or name/type), oldest first. */
  events(): Promise<HitEvent[]>;
  /** Removes everything; idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Commands

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((res) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      res({ code, stdout: String(stdout), stderr: String(stderr) || (err && !stderr ? err.message : '') });
    });
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

const ip = (...args: string[]): Promise<string> => must('ip', args);

async function ipJson<T>(...args: string[]): Promise<T[]> {
  const out = (await ip('-j', ...args)).trim();
  return out ? (JSON.parse(out) as T[]) : [];
}

/** Routes of table `t` (empty when the kernel has no such table yet). */
async function tableRoutes(family: '-4' | '-6', t: number): Promise<string> {
  const r = await run('ip', [family, 'route', 'show', 'table', String(t)]);
  if (r.code !== 0 && /does not exist/i.test(r.stderr)) return '';
  if (r.code !== 0) throw new Error(`ip ${family} route show table ${t}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

function cidrFamily(cidr: string): 4 | 6 {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) throw new Error(`not a CIDR: ${cidr}`);
  return m[1]!.includes(':') ? 6 : 4;
}

// ---------------------------------------------------------------------------------------------
// Machine-wide lock

interface Lock {
  release(): Promise<void>;
}

/** Holds flock(LOCK_PATH) in a child; null when `waitMs` is 0 and someone else holds it. */
function acquireLock(waitMs: number): Promise<Lock | null> {
  const args = waitMs <= 0 ? ['-n'] : ['-w', String(Math.max(1, Math.ceil(waitMs / 1000)))];
  const child = spawn('flock', [...args, '-E', '75', LOCK_PATH, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const release = async (): Promise<void> => {
    child.stdin!.end();
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      if (!(await waitGone(child.pid, 2000))) child.kill('SIGKILL');
    }
  };
  return new Promise((res, rej) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('locked\n')) {
        child.stdout!.off('data', onData);
        child.removeListener('exit', onExit);
        // Never keep the event loop alive; the lock dies with this process (cat sees EOF).
        child.unref();
        for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
        res({ release });
      }
    };
    const onExit = (code: number | null): void => {
      if (code === 75 && waitMs <= 0) res(null);
      else if (code === 75) rej(new Error(`another test internet held ${LOCK_PATH} for more than ${waitMs} ms`));
      else rej(new Error(`flock ${LOCK_PATH} failed (${code}): ${stderr.trim()}`));
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', rej);
  });
}

// ---------------------------------------------------------------------------------------------
// Leftovers

interface RuleJson {
  priority: number;
  table?: string;
  protocol?: string;
}

async function netnsPids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** SIGKILLs whatever still runs inside our namespace `ns`, then deletes it. */
async function deleteNetns(ns: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const pids = await netnsPids(ns);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await Promise.all(pids.map((p) => waitGone(p, 2000)));
  }
  const r = await run('ip', ['netns', 'del', ns]);
  if (r.code !== 0 && !/No such file|not found/i.test(r.stderr)) throw new Error(`ip netns del ${ns}: ${r.stderr.trim()}`);
}

async function ourRules(family: '-4' | '-6'): Promise<RuleJson[]> {
  const rules = await ipJson<RuleJson>(family, 'rule', 'show');
  return rules.filter((r) => r.protocol === String(RT_PROTO));
}

async function deleteOurRules(): Promise<void> {
  for (const family of ['-4', '-6'] as const) {
    for (const r of await ourRules(family)) {
      await run('ip', [family, 'rule', 'del', 'pref', String(r.priority), 'protocol', String(RT_PROTO)]);
    }
  }
}

async function flushOurTables(): Promise<void> {
  for (let t = TABLE_RANGE.first; t <= TABLE_RANGE.last; t++) {
    await run('ip', ['-4', 'route', 'flush', 'table', String(t), 'proto', String(RT_PROTO)]);
    await run('ip', ['-6', 'route', 'flush', 'table', String(t), 'proto', String(RT_PROTO)]);
  }
}

/** Removes everything with our names or our routing-protocol tag. Caller holds the lock. */
async function removeLeftovers(): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = await ipJson<{ name: string }>('netns', 'list');
  for (const { name } of namespaces) {
    if (!name.startsWith(NETNS_PREFIX)) continue;
    await deleteNetns(name);
    removed.push(`netns ${name}`);
  }
  for (const { ifname } of await ipJson<{ ifname: string }>('link', 'show')) {
    if (!ifname.startsWith(VETH_PREFIX)) continue;
    await run('ip', ['link', 'del', ifname]);
    removed.push(`link ${ifname}`);
  }
  const rules = [...(await ourRules('-4')), ...(await ourRules('-6'))];
  if (rules.length) removed.push(`${rules.length} ip rules`);
  await deleteOurRules();
  await flushOurTables();
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(TMP_PREFIX)) continue;
    rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    removed.push(`dir ${entry}`);
  }
  return removed;
}

/**
 * Removes leftovers of crashed runs (our netns, veths, rules, table routes, temp dirs). Does
 * nothing and returns null while a test internet is running (this process or another).
 */
export async function cleanupStaleTestInternets(): Promise<string[] | null> {
  const lock = await acquireLock(0);
  if (!lock) return null;
  try {
    return await removeLeftovers();
  } finally {
    await lock.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Certificates

async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const names = [TEST_NAMES.secure, TEST_NAMES.pypi, TEST_NAMES.other];
  const ips = [A.secure, A.pypi, A.other, A.secure6, A.pypi6, A.other6];
  const cnf = join(dir, 'openssl.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = Hutch Test CA',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[v3_leaf]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      `subjectAltName = ${[...names.map((n) => `DNS:${n}`), ...ips.map((i) => `IP:${i}`)].join(', ')}`,
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  const ca = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const key = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'server.crt');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  // prettier-ignore
  await must('openssl', [
    'req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-days', '3', '-config', cnf, '-extensions', 'v3_ca', '-subj', '/CN=Hutch Test CA',
  ]);
  await must('openssl', ['req', '-new', ...ec, '-keyout', key, '-out', csr, '-config', cnf, '-subj', `/CN=${TEST_NAMES.secure}`]);
  // prettier-ignore
  await must('openssl', [
    'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '3', '-extfile', cnf, '-extensions', 'v3_leaf', '-out', cert,
  ]);
  chmodSync(ca, 0o644);
  return { ca, cert, key };
}

// ---------------------------------------------------------------------------------------------
// Start / stop

interface State {
  netns: string;
  hostVeth: string;
  lock: Lock | null;
  tmpDir: string | null;
  netnsCreated: boolean;
  vethCreated: boolean;
  table: number | null;
  /** `ip rule add` argument lists we added, to delete them exactly. */
  rules: string[][];
  child: ChildProcess | null;
}

function defaultZone(): Record<string, ZoneRecords> {
  return {
    [TEST_NAMES.pypi]: { A: [A.pypi], AAAA: [A.pypi6] },
    [TEST_NAMES.other]: { A: [A.other], AAAA: [A.other6] },
    [TEST_NAMES.secure]: { A: [A.secure], AAAA: [A.secure6] },
    [TEST_NAMES.rebind]: { A: [A.metadata], AAAA: [A.metadata6] },
    [`*.${TEST_NAMES.wildSuffix}`]: { A: [A.other] },
  };
}

async function pickTableAndPref(): Promise<{ table: number; pref: number }> {
  const rules = [...(await ipJson<RuleJson>('-4', 'rule', 'show')), ...(await ipJson<RuleJson>('-6', 'rule', 'show'))];
  let table: number | null = null;
  for (let t = TABLE_RANGE.first; t <= TABLE_RANGE.last && table === null; t++) {
    if (rules.some((r) => r.table === String(t))) continue;
    if (!(await tableRoutes('-4', t)) && !(await tableRoutes('-6', t))) table = t;
  }
  if (table === null) throw new Error(`no free routing table in ${TABLE_RANGE.first}-${TABLE_RANGE.last}`);
  const pref = PREF_CANDIDATES.find((p) => !rules.some((r) => r.priority === p || r.priority === p + 1));
  if (pref === undefined) throw new Error(`no free rule priority among ${PREF_CANDIDATES.join(', ')}`);
  return { table, pref };
}

async function spawnHost(s: State, cfg: HostConfig, timeoutMs: number): Promise<ChildProcess> {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  const child = spawn('ip', ['netns', 'exec', s.netns, process.execPath, '--import', 'tsx', HOST_SCRIPT, JSON.stringify(cfg)], {
    cwd: REPO,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  s.child = child;
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  await new Promise<void>((res, rej) => {
    let out = '';
    const timer = setTimeout(() => done(new Error(`net-fixture-host not ready after ${timeoutMs} ms: ${stderr.trim()}`)), timeoutMs);
    const done = (err?: Error): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) rej(err);
      else res();
    };
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (/^READY /m.test(out)) done();
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`net-fixture-host exited (${code ?? signal}) before ready: ${stderr.trim()}`));
    const onError = (e: Error): void => done(e);
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
  child.stdout!.resume();
  child.unref();
  for (const st of [child.stdin, child.stdout, child.stderr]) (st as unknown as { unref?: () => void }).unref?.();
  return child;
}

async function teardown(s: State): Promise<void> {
  const problems: string[] = [];
  const child = s.child;
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    if (!(await waitGone(child.pid, 3000))) {
      child.kill('SIGKILL');
      if (!(await waitGone(child.pid, 3000))) problems.push(`net-fixture-host pid ${child.pid} did not exit`);
    }
  }
  s.child = null;
  if (s.netnsCreated) {
    try {
      await deleteNetns(s.netns);
    } catch (e) {
      problems.push(String(e));
    }
  }
  if (s.vethCreated) {
    // Normally gone with the namespace (its peer lived there).
    const r = await run('ip', ['link', 'del', s.hostVeth]);
    if (r.code !== 0 && !/Cannot find device/i.test(r.stderr)) problems.push(`ip link del ${s.hostVeth}: ${r.stderr.trim()}`);
  }
  // Rules go last but one: while they exist, pool traffic can only reach the (now dead) test net.
  for (const rule of s.rules.slice().reverse()) {
    const r = await run('ip', [rule[0]!, 'rule', 'del', ...rule.slice(1)]);
    if (r.code !== 0 && !/No such file/i.test(r.stderr)) problems.push(`ip rule del ${rule.join(' ')}: ${r.stderr.trim()}`);
  }
  s.rules = [];
  if (s.table !== null) {
    await run('ip', ['-4', 'route', 'flush', 'table', String(s.table), 'proto', String(RT_PROTO)]);
    await run('ip', ['-6', 'route', 'flush', 'table', String(s.table), 'proto', String(RT_PROTO)]);
  }
  if (s.tmpDir) rmSync(s.tmpDir, { recursive: true, force: true });
  s.tmpDir = null;

  // Verify.
  if (s.netnsCreated && (await ipJson<{ name: string }>('netns', 'list')).some((n) => n.name === s.netns)) {
    problems.push(`netns ${s.netns} still exists`);
  }
  if (s.vethCreated && (await run('ip', ['link', 'show', s.hostVeth])).code === 0) problems.push(`link ${s.hostVeth} still exists`);
  if (s.table !== null) {
    const left = `${await tableRoutes('-4', s.table)}${await tableRoutes('-6', s.table)}`;
    if (left) problems.push(`table ${s.table} still has routes: ${left}`);
  }
  const rulesLeft = [...(await ourRules('-4')), ...(await ourRules('-6'))];
  if (rulesLeft.length) problems.push(`ip rules left: ${JSON.stringify(rulesLeft)}`);
  s.netnsCreated = false;
  s.vethCreated = false;
  s.table = null;

  if (s.lock) await s.lock.release();
  s.lock = null;
  if (problems.length) throw new Error(`test internet cleanup incomplete:\n${problems.join('\n')}`);
}

/** Best effort, synchronous, for the process 'exit' handler. */
function teardownSync(s: State): void {
  const q = (args: string[]): void => {
    try {
      execFileSync('ip', args, { stdio: 'ignore', timeout: 5000 });
    } catch {
      /* best effort */
    }
  };
  if (s.child?.pid !== undefined) {
    try {
      process.kill(s.child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (s.netnsCreated) q(['netns', 'del', s.netns]);
  if (s.vethCreated) q(['link', 'del', s.hostVeth]);
  for (const rule of s.rules.slice().reverse()) q([rule[0]!, 'rule', 'del', ...rule.slice(1)]);
  if (s.table !== null) {
    q(['-4', 'route', 'flush', 'table', String(s.table), 'proto', String(RT_PROTO)]);
    q(['-6', 'route', 'flush', 'table', String(s.table), 'proto', String(RT_PROTO)]);
  }
  if (s.tmpDir) rmSync(s.tmpDir, { recursive: true, force: true });
}

export async function startTestInternet(opts: StartOptions): Promise<TestInternet> {
  if (cidrFamily(opts.sandboxPool4) !== 4) throw new Error(`sandboxPool4 ${opts.sandboxPool4} is not IPv4`);
  if (cidrFamily(opts.sandboxPool6) !== 6) throw new Error(`sandboxPool6 ${opts.sandboxPool6} is not IPv6`);
  if (opts.name !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(opts.name)) throw new Error(`bad netns name ${opts.name}`);
  const suffix = opts.name ? createHash('sha256').update(opts.name).digest('hex').slice(0, 6) : randomBytes(3).toString('hex');
  const s: State = {
    netns: opts.name ?? `${NETNS_PREFIX}-${suffix}`,
    hostVeth: `${VETH_PREFIX}${suffix}`,
    lock: null,
    tmpDir: null,
    netnsCreated: false,
    vethCreated: false,
    table: null,
    rules: [],
    child: null,
  };
  s.lock = await acquireLock(opts.lockTimeoutMs ?? 300_000);
  const onExit = (): void => teardownSync(s);
  process.on('exit', onExit);
  try {
    await removeLeftovers();
    const tmp = mkdtempSync(join(tmpdir(), TMP_PREFIX));
    s.tmpDir = tmp;
    chmodSync(tmp, 0o755);
    const certs = await makeCerts(tmp);

    const { table, pref } = await pickTableAndPref();

    // Namespace and veth.
    await ip('netns', 'add', s.netns);
    s.netnsCreated = true;
    await ip('link', 'add', s.hostVeth, 'type', 'veth', 'peer', 'name', PEER_IF, 'netns', s.netns);
    s.vethCreated = true;
    await ip('addr', 'add', `${A.gateway4}/24`, 'dev', s.hostVeth);
    await ip('-6', 'addr', 'add', `${A.gateway6}/64`, 'dev', s.hostVeth, 'nodad');
    await ip('link', 'set', s.hostVeth, 'up');
    const n = (...args: string[]): Promise<string> => ip('-n', s.netns, ...args);
    await n('link', 'set', 'lo', 'up');
    for (const a of [A.pypi, A.other, A.secure, A.dns]) await n('addr', 'add', `${a}/24`, 'dev', PEER_IF);
    await n('addr', 'add', `${A.metadata}/32`, 'dev', PEER_IF);
    for (const a of [A.pypi6, A.other6, A.secure6]) await n('-6', 'addr', 'add', `${a}/64`, 'dev', PEER_IF, 'nodad');
    await n('-6', 'addr', 'add', `${A.metadata6}/128`, 'dev', PEER_IF, 'nodad');
    await n('link', 'set', PEER_IF, 'up');
    await n('route', 'add', 'default', 'via', A.gateway4, 'dev', PEER_IF);
    await n('-6', 'route', 'add', 'default', 'via', A.gateway6, 'dev', PEER_IF);

    // Safety table: the test hosts and the fake metadata service, nothing else.
    s.table = table;
    const T = String(table);
    const proto = ['proto', String(RT_PROTO)];
    await ip('-4', 'route', 'add', NET4, 'dev', s.hostVeth, 'table', T, ...proto);
    await ip('-4', 'route', 'add', `${A.metadata}/32`, 'dev', s.hostVeth, 'table', T, ...proto);
    await ip('-4', 'route', 'add', 'unreachable', 'default', 'table', T, ...proto);
    await ip('-6', 'route', 'add', NET6, 'dev', s.hostVeth, 'table', T, ...proto);
    await ip('-6', 'route', 'add', `${A.metadata6}/128`, 'dev', s.hostVeth, 'table', T, ...proto);
    await ip('-6', 'route', 'add', 'unreachable', 'default', 'table', T, ...proto);
    const rp = ['protocol', String(RT_PROTO)];
    const ruleSets: string[][] = [
      ['-4', 'from', opts.sandboxPool4, 'lookup', T, 'pref', String(pref + 1), ...rp],
      ['-6', 'from', opts.sandboxPool6, 'lookup', T, 'pref', String(pref + 1), ...rp],
      [
        '-4',
        'from',
        opts.sandboxPool4,
        'to',
        opts.sandboxPool4,
        'lookup',
        'main',
        'suppress_prefixlength',
        '0',
        'pref',
        String(pref),
        ...rp,
      ],
      [
        '-6',
        'from',
        opts.sandboxPool6,
        'to',
        opts.sandboxPool6,
        'lookup',
        'main',
        'suppress_prefixlength',
        '0',
        'pref',
        String(pref),
        ...rp,
      ],
    ];
    for (const rule of ruleSets) {
      await ip(rule[0]!, 'rule', 'add', ...rule.slice(1));
      s.rules.push(rule);
    }

    // The servers.
    const eventsFile = join(tmp, 'events.json');
    const zone = { ...defaultZone(), ...(opts.zone ?? {}) };
    await spawnHost(
      s,
      {
        eventsFile,
        certFile: certs.cert,
        keyFile: certs.key,
        hosts: [A.pypi, A.other, A.secure, A.pypi6, A.other6, A.secure6],
        metadata: [A.metadata, A.metadata6],
        dns: [A.dns],
        zone,
      },
      opts.readyTimeoutMs ?? 30_000,
    );

    const readEvents = async (): Promise<{ hits: Record<string, number>; events: HitEvent[] }> => {
      try {
        return JSON.parse(await readFile(eventsFile, 'utf8')) as { hits: Record<string, number>; events: HitEvent[] };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { hits: {}, events: [] };
        throw e;
      }
    };
    let stopping: Promise<void> | null = null;
    return {
      netns: s.netns,
      hostVeth: s.hostVeth,
      table,
      rulePriority: pref,
      tmpDir: tmp,
      caCertPath: certs.ca,
      dns: A.dns,
      hosts: {
        pypi: A.pypi,
        other: A.other,
        secure: A.secure,
        pypi6: A.pypi6,
        other6: A.other6,
        secure6: A.secure6,
        metadata: A.metadata,
        metadata6: A.metadata6,
      },
      gateway4: A.gateway4,
      gateway6: A.gateway6,
      hits: async () => (await readEvents()).hits,
      events: async () => (await readEvents()).events,
      stop: () => {
        stopping ??= teardown(s).finally(() => process.off('exit', onExit));
        return stopping;
      },
    };
  } catch (e) {
    try {
      await teardown(s);
    } catch (cleanupErr) {
      process.off('exit', onExit);
      throw new AggregateError([e, cleanupErr], `test internet start failed: ${String(e)}; cleanup also failed`);
    }
    process.off('exit', onExit);
    throw e;
  }
}
