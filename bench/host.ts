import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The machine the figures were measured on (printed with every result). */
export interface HostFacts {
  os: string;
  kernel: string;
  /** `v2`, `hybrid` (v1 controllers plus a cgroup2 mount) or `v1`; detected as the server does. */
  cgroup: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  runc: string | null;
  crun: string | null;
  runsc: string | null;
  podman: string | null;
  /** 1-minute load averages when the benchmark started and ended (other work on the host skews figures). */
  loadStart: number;
  loadEnd?: number;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function cgroupMode(root = '/sys/fs/cgroup'): string {
  if (existsSync(`${root}/cgroup.controllers`)) return 'v2';
  if (existsSync(`${root}/unified`)) return 'hybrid';
  return 'v1';
}

async function version(file: string, pattern: RegExp): Promise<string | null> {
  try {
    const { stdout } = await run(file, ['--version'], { timeout: 10_000 });
    return pattern.exec(stdout)?.[1] ?? stdout.split('\n')[0]!.trim();
  } catch {
    return null;
  }
}

export async function hostFacts(): Promise<HostFacts> {
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readText('/etc/os-release'))?.[1] ?? os.type();
  const debian = readText('/etc/debian_version').trim();
  const [runc, crun, runsc, podman] = await Promise.all([
    version('runc', /runc version (\S+)/),
    version('crun', /crun version (\S+)/),
    version('runsc', /runsc version (\S+)/),
    version('podman', /podman version (\S+)/),
  ]);
  const cpus = os.cpus();
  return {
    os: debian && !pretty.includes(debian) ? `${pretty} (${debian})` : pretty,
    kernel: os.release(),
    cgroup: cgroupMode(),
    cpus: os.availableParallelism?.() ?? cpus.length,
    cpuModel: (cpus[0]?.model ?? 'unknown').trim(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    runc,
    crun,
    runsc,
    podman,
    loadStart: os.loadavg()[0]!,
  };
}

export function describeHost(h: HostFacts): string {
  const cg = h.cgroup === 'hybrid' ? 'hybrid (v1 controllers + cgroup2 mount)' : h.cgroup;
  const load = h.loadEnd === undefined ? `${h.loadStart.toFixed(2)}` : `${h.loadStart.toFixed(2)} → ${h.loadEnd.toFixed(2)}`;
  return [
    `${h.os}, kernel ${h.kernel}, cgroup ${cg}`,
    `${h.cpus} CPU (${h.cpuModel}), ${h.memoryGiB} GiB RAM`,
    `runc ${h.runc ?? 'absent'}, crun ${h.crun ?? 'absent'} (the container tier uses crun when present), runsc ${h.runsc ?? 'absent'}, podman ${h.podman ?? 'absent'}, Node ${h.node}`,
    `load average (1 min) start → end: ${load}`,
  ].join('; ');
}
