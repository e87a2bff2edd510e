import type { ExecResult } from '../packages/server/src/core/process-service.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestServer } from './harness.js';

/**
 * Shared helpers of the hostile-workload battery (docs: /work/shared/reference/hostile-workloads.md).
 * Everything here observes the sandbox from the host: cgroup files, /proc of the sandbox's own
 * processes, mounts, runtime state. It only ever reads what the test's own server created.
 */
export const TIERS = ['container', 'gvisor'] as const;
export type Tier = (typeof TIERS)[number];

export interface Sandbox {
  id: string;
  state: string;
  isolation: Tier;
  template: string;
  memoryMiB: number;
  pids: number;
  error: string | null;
}

/** The buffered exec result, as the server defines it. */
export type Exec = ExecResult;

export interface ApiError {
  error: { code: string; message: string };
}

export interface ExecBody {
  cmd: string | string[];
  user?: string;
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  timeoutMs?: number;
  maxOutputBytes?: number;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A sandbox for one test; delete it in a finally block (or an after hook). */
export async function createSandbox(server: TestServer, body: Record<string, unknown>): Promise<Sandbox> {
  const res = await server.api<Sandbox>('POST', '/v1/sandboxes', { timeoutSeconds: 600, ...body });
  assert.equal(res.status, 201, `create ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Deletes a sandbox, ignoring "already gone". Safe in finally blocks. */
export async function deleteSandbox(server: TestServer, id: string | undefined): Promise<number | null> {
  if (!id) return null;
  try {
    return (await server.api('DELETE', `/v1/sandboxes/${id}`)).status;
  } catch {
    return null;
  }
}

export async function exec(server: TestServer, id: string, body: ExecBody): Promise<{ status: number; body: Exec & ApiError }> {
  return server.api<Exec & ApiError>('POST', `/v1/sandboxes/${id}/exec`, body);
}

/** Runs a command and insists that the API answered 200 (a non-zero exit code is still fine). */
export async function run(server: TestServer, id: string, cmd: string | string[], opts: Omit<ExecBody, 'cmd'> = {}): Promise<Exec> {
  const res = await exec(server, id, { timeoutMs: 30_000, ...opts, cmd });
  assert.equal(res.status, 200, `exec ${JSON.stringify(cmd).slice(0, 200)}: ${JSON.stringify(res.body).slice(0, 500)}`);
  return res.body;
}

export async function putFile(
  server: TestServer,
  id: string,
  path: string,
  data: string | Uint8Array,
  user?: string,
): Promise<{ status: number; body: unknown }> {
  const q = new URLSearchParams({ path, ...(user ? { user } : {}) });
  const res = await fetch(`${server.url}/v1/sandboxes/${id}/files?${q}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${server.key}`, 'content-type': 'application/octet-stream' },
    body: typeof data === 'string' ? Buffer.from(data) : data,
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body };
}

/** Downloads a file; the body is read with a size cap so a misbehaving server cannot flood the test. */
export async function getFile(
  server: TestServer,
  id: string,
  path: string,
  limit = 4 * 1024 * 1024,
): Promise<{ status: number; body: Buffer; text: string }> {
  const q = new URLSearchParams({ path });
  const res = await fetch(`${server.url}/v1/sandboxes/${id}/files?${q}`, {
    headers: { authorization: `Bearer ${server.key}` },
    signal: AbortSignal.timeout(20_000),
  });
  const chunks: Buffer[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      chunks.push(Buffer.from(chunk));
      if (size > limit) break;
    }
  }
  const body = Buffer.concat(chunks);
  return { status: res.status, body, text: body.toString('utf8') };
}

/** Starts a background process (no stream); returns its pid inside the sandbox. */
export async function startProcess(server: TestServer, id: string, body: Record<string, unknown>): Promise<number> {
  const res = await server.api<{ pid: number } & ApiError>('POST', `/v1/sandboxes/${id}/processes`, body);
  assert.equal(res.status, 201, `start ${JSON.stringify(body).slice(0, 200)}: ${JSON.stringify(res.body)}`);
  return res.body.pid;
}

export function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Latencies (ms) of n sequential trivial execs in a sandbox. */
export async function execLatencies(server: TestServer, id: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const res = await exec(server, id, { cmd: ['true'], timeoutMs: 10_000 });
    out.push(performance.now() - started);
    assert.equal(res.status, 200, `neighbour exec: ${JSON.stringify(res.body)}`);
    assert.equal(res.body.exitCode, 0);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The host's view.

const CGROUP_ROOT = '/sys/fs/cgroup';
export const cgroupV2 = existsSync(join(CGROUP_ROOT, 'cgroup.controllers'));

/** The sandbox's cgroup directory for a v1 controller (or the unified directory on cgroup v2). */
export function cgroupDir(controller: 'pids' | 'memory' | 'devices' | 'cpu', id: string): string {
  return cgroupV2 ? join(CGROUP_ROOT, 'hutch', id) : join(CGROUP_ROOT, controller, 'hutch', id);
}

export function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Host pids of every process in the sandbox's cgroup. */
export function hostPids(id: string): number[] {
  const text = readText(join(cgroupDir('pids', id), 'cgroup.procs')) ?? '';
  return text.split('\n').filter(Boolean).map(Number);
}

export function pidsCurrent(id: string): number {
  return Number((readText(join(cgroupDir('pids', id), 'pids.current')) ?? '0').trim());
}

export function pidsMax(id: string): number {
  return Number((readText(join(cgroupDir('pids', id), 'pids.max')) ?? '0').trim());
}

/** How many forks the pids controller refused (`max` in pids.events). */
export function pidsRefused(id: string): number {
  const m = /^max (\d+)$/m.exec(readText(join(cgroupDir('pids', id), 'pids.events')) ?? '');
  return m ? Number(m[1]) : 0;
}

/** OOM kills in the sandbox's memory cgroup. */
export function oomKills(id: string): number {
  const file = cgroupV2 ? join(cgroupDir('memory', id), 'memory.events') : join(cgroupDir('memory', id), 'memory.oom_control');
  const m = /^oom_kill (\d+)$/m.exec(readText(file) ?? '');
  return m ? Number(m[1]) : 0;
}

export function memoryPeakBytes(id: string): number {
  const file = cgroupV2 ? join(cgroupDir('memory', id), 'memory.peak') : join(cgroupDir('memory', id), 'memory.max_usage_in_bytes');
  return Number((readText(file) ?? '0').trim());
}

/** /proc/<pid>/status as a map (null when the process is gone). */
export function procStatus(pid: number | string, task?: number | string): Record<string, string> | null {
  const text = readText(task === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${task}/status`);
  if (text === null) return null;
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export function tasksOf(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

export function cmdlineOf(pid: number | string): string {
  return (readText(`/proc/${pid}/cmdline`) ?? '').replaceAll('\0', ' ').trim();
}

/** The pid a host process has inside its innermost pid namespace (last NSpid field). */
export function innerPid(status: Record<string, string>): number {
  const fields = (status.NSpid ?? status.Pid ?? '').split(/\s+/).filter(Boolean);
  return Number(fields.at(-1));
}

/** Process state letter (R, S, Z, T…) from /proc/<pid>/stat. */
export function procState(pid: number): string | null {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return null;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
}

/**
 * The OCI runtime of a tier as a server with default options picks it: crun when installed, else
 * runc, for the container tier (local-provider.ts pickContainerRuntime); runsc for gVisor.
 */
export function tierRuntime(tier: Tier): 'runc' | 'crun' | 'runsc' {
  if (tier === 'gvisor') return 'runsc';
  return ['/usr/bin/crun', '/usr/sbin/crun', '/usr/local/bin/crun'].some((p) => existsSync(p)) ? 'crun' : 'runc';
}

/**
 * The command that runs a tier's runtime as the server does: crun on a hybrid cgroup host goes
 * through `hutch-agent legacy-cgroup-launch` (it refuses hybrid hosts otherwise).
 */
export function runtimeCommand(tier: Tier): string[] {
  const name = tierRuntime(tier);
  if (name === 'crun' && existsSync('/sys/fs/cgroup/unified') && !existsSync('/sys/fs/cgroup/cgroup.controllers'))
    return [fileURLToPath(new URL('../agent/bin/hutch-agent', import.meta.url)), 'legacy-cgroup-launch', '--', name];
  return [name];
}

/** The OCI runtime's state root of this server (one per data dir), as the local provider names it. */
export function runtimeRoot(server: Pick<TestServer, 'dataDir'>, tier: Tier): string {
  const key = createHash('sha256').update(server.dataDir).digest('hex').slice(0, 12);
  return `/run/hutch/${key}/${tierRuntime(tier)}`;
}

export function serverRssKiB(server: TestServer): number {
  const status = procStatus(server.child.pid!);
  return Number((status?.VmRSS ?? '0').replace(/\D/g, ''));
}

/**
 * Everything a deleted sandbox must not leave behind: cgroups, mounts, processes, runtime state,
 * its directory. Returns the problems found (empty when clean).
 */
export function leftovers(server: Pick<TestServer, 'dataDir'>, tier: Tier, id: string): string[] {
  return leftoversOfMany(server, tier, [id]);
}

/** `leftovers` of many sandboxes at once (one pass over /proc, mountinfo and the loop devices). */
export function leftoversOfMany(server: Pick<TestServer, 'dataDir'>, tier: Tier, ids: string[]): string[] {
  const problems: string[] = [];
  const roots = cgroupV2 ? [CGROUP_ROOT] : readdirSync(CGROUP_ROOT).map((c) => join(CGROUP_ROOT, c));
  for (const id of ids) {
    for (const root of roots) {
      const d = join(root, 'hutch', id);
      if (existsSync(d)) problems.push(`cgroup ${d} still exists`);
    }
    if (existsSync(join(runtimeRoot(server, tier), id))) problems.push(`runtime state ${join(runtimeRoot(server, tier), id)} still exists`);
    if (existsSync(join(server.dataDir, 'sandboxes', id))) problems.push(`sandbox directory of ${id} still exists`);
  }
  const named = (text: string): string | undefined => ids.find((id) => text.includes(id));
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) if (named(line)) problems.push(`mount: ${line}`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cg = readText(`/proc/${entry}/cgroup`);
    const inCgroup = cg ? named(cg) : undefined;
    if (inCgroup) problems.push(`process ${entry} (${cmdlineOf(entry).slice(0, 80)}) is still in a cgroup of ${inCgroup}`);
    else if (named(cmdlineOf(entry))) problems.push(`process ${entry} (${cmdlineOf(entry).slice(0, 80)}) names ${named(cmdlineOf(entry))}`);
  }
  for (const dev of readdirSync('/sys/block').filter((d) => d.startsWith('loop'))) {
    const backing = readText(`/sys/block/${dev}/loop/backing_file`);
    if (backing && named(backing)) problems.push(`loop device ${dev} still backs ${backing.trim()}`);
  }
  return problems;
}

/** Waits (bounded) until nothing of the sandbox is left on the host; asserts it. */
export async function assertNoLeftovers(server: TestServer, tier: Tier, id: string, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  let problems = leftovers(server, tier, id);
  while (problems.length > 0 && Date.now() < deadline) {
    await sleep(100);
    problems = leftovers(server, tier, id);
  }
  assert.deepEqual(problems, [], `leftovers of ${tier} sandbox ${id}`);
}

/** Polls until fn returns a truthy value or the time is up; returns the last value. */
export async function waitFor<T>(fn: () => T | Promise<T>, withinMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + withinMs;
  let value = await fn();
  while (!value && Date.now() < deadline) {
    await sleep(everyMs);
    value = await fn();
  }
  return value;
}

/** Parses `key: value` lines of a /proc status text. */
export function parseStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export const CAP_SETS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'] as const;
/** The agent's (PID 1) capabilities: CHOWN, DAC_OVERRIDE, FOWNER, KILL, SETGID, SETUID, SETPCAP. */
export const AGENT_CAP_MASK = (1n << 0n) | (1n << 1n) | (1n << 3n) | (1n << 5n) | (1n << 6n) | (1n << 7n) | (1n << 8n);

/**
 * A Python program for a sandbox: an HTTP server on 127.0.0.1:`port` that touches /tmp/ready when
 * it listens and /tmp/accepted when a request arrives, then holds that request `holdSeconds`
 * before answering `slow` (a connection that stays open through the ingress).
 */
export function slowHttpServer(port: number, holdSeconds: number): string {
  return [
    'import socket, time',
    's = socket.socket()',
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `s.bind(('127.0.0.1', ${port}))`,
    's.listen(4)',
    "open('/tmp/ready', 'w').close()",
    'while True:',
    '    c, _ = s.accept()',
    '    c.recv(65536)',
    "    open('/tmp/accepted', 'w').close()",
    `    time.sleep(${holdSeconds})`,
    "    c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\nslow')",
    '    c.close()',
  ].join('\n');
}
