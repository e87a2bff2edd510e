import { readFileSync } from 'node:fs';
import type { CgroupMode } from './host-probe.js';

/**
 * A sandbox's cgroup counters, on cgroup v1 (and hybrid hosts, whose controllers are v1) and on
 * cgroup v2. Both tiers use the cgroup `hutch/<id>`: runc puts the container's processes there,
 * runsc its sentry, gofer and (ptrace platform) stub processes, so for gVisor the figures are what
 * the whole sandbox costs the host, its user-space kernel included.
 *
 * Reads are synchronous on purpose: cgroupfs files are generated in memory and never block, and a
 * sampler reading a few files per sandbox every few seconds pays less without the promise machinery.
 */
export interface CgroupReading {
  /** Cumulative cpu time (v1 cpuacct.usage; v2 cpu.stat usage_usec × 1000). */
  cpuNs: number;
  /** v1 memory.usage_in_bytes; v2 memory.current. */
  memoryBytes: number;
  /** Page cache and shmem: v1 memory.stat `cache`; v2 memory.stat `file`. */
  memoryCacheBytes: number;
  /** pids.current; null when the pids controller is not there. */
  pids: number | null;
}

export interface CgroupFiles {
  cpu: string;
  memory: string;
  memoryStat: string;
  pids: string;
}

/** Where a sandbox's counters live under `root` (normally /sys/fs/cgroup). */
export function cgroupFiles(mode: CgroupMode, id: string, root = '/sys/fs/cgroup'): CgroupFiles {
  if (mode === 'v2') {
    const dir = `${root}/hutch/${id}`;
    return { cpu: `${dir}/cpu.stat`, memory: `${dir}/memory.current`, memoryStat: `${dir}/memory.stat`, pids: `${dir}/pids.current` };
  }
  return {
    cpu: `${root}/cpuacct/hutch/${id}/cpuacct.usage`,
    memory: `${root}/memory/hutch/${id}/memory.usage_in_bytes`,
    memoryStat: `${root}/memory/hutch/${id}/memory.stat`,
    pids: `${root}/pids/hutch/${id}/pids.current`,
  };
}

function read(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The named field of a `key value` per line file (memory.stat, cpu.stat). */
export function statField(text: string, key: string): number | null {
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}

/** The sandbox's counters; null when its cgroup does not exist (not running, or already removed). */
export function readCgroup(mode: CgroupMode, id: string, root = '/sys/fs/cgroup'): CgroupReading | null {
  const files = cgroupFiles(mode, id, root);
  const cpuText = read(files.cpu);
  const memText = read(files.memory);
  if (cpuText === null || memText === null) return null;
  const cpuNs = mode === 'v2' ? (statField(cpuText, 'usage_usec') ?? 0) * 1000 : Number(cpuText.trim());
  const statText = read(files.memoryStat) ?? '';
  const cache = statField(statText, mode === 'v2' ? 'file' : 'cache') ?? 0;
  const pidsText = read(files.pids);
  const pids = pidsText === null ? null : Number(pidsText.trim());
  return {
    cpuNs: Number.isFinite(cpuNs) ? cpuNs : 0,
    memoryBytes: Number(memText.trim()) || 0,
    memoryCacheBytes: cache,
    pids: pids !== null && Number.isFinite(pids) ? pids : null,
  };
}

/** A network interface's byte counters from sysfs; null when the interface does not exist. */
export function readLinkBytes(ifname: string, root = '/sys/class/net'): { rxBytes: number; txBytes: number } | null {
  const rx = read(`${root}/${ifname}/statistics/rx_bytes`);
  const tx = read(`${root}/${ifname}/statistics/tx_bytes`);
  if (rx === null || tx === null) return null;
  return { rxBytes: Number(rx.trim()) || 0, txBytes: Number(tx.trim()) || 0 };
}
