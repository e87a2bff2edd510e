import { readFileSync, statfsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Allocation, LiveHostFigures } from '../../core/capacity.js';

/** The host's size and free resources, as the capacity ledger needs them (Linux /proc). */

const MiB = 1024 * 1024;

function readNumber(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

function meminfo(): { totalMiB: number | null; availableMiB: number | null } {
  try {
    const text = readFileSync('/proc/meminfo', 'utf8');
    const kib = (name: string): number | null => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
      return m ? Math.floor(Number(m[1]) / 1024) : null;
    };
    return { totalMiB: kib('MemTotal'), availableMiB: kib('MemAvailable') };
  } catch {
    return { totalMiB: null, availableMiB: null };
  }
}

function disk(dir: string): { totalMiB: number | null; freeMiB: number | null } {
  try {
    const s = statfsSync(dir);
    return { totalMiB: Math.floor((s.blocks * s.bsize) / MiB), freeMiB: Math.floor((s.bavail * s.bsize) / MiB) };
  } catch {
    return { totalMiB: null, freeMiB: null };
  }
}

function pidsMax(): number | null {
  const values = [readNumber('/proc/sys/kernel/pid_max'), readNumber('/proc/sys/kernel/threads-max')].filter(
    (n): n is number => n !== null,
  );
  return values.length > 0 ? Math.min(...values) : null;
}

/** Threads on the host right now: the 4th field of /proc/loadavg is "running/total". */
function pidsInUse(): number | null {
  try {
    const total = readFileSync('/proc/loadavg', 'utf8').split(' ')[3]?.split('/')[1];
    return total ? Number(total) : null;
  } catch {
    return null;
  }
}

export function nodeSize(dataDir: string): Allocation {
  return {
    cpu: availableParallelism(),
    memoryMiB: meminfo().totalMiB ?? 1024,
    pids: pidsMax() ?? 32_768,
    diskMiB: disk(dataDir).totalMiB ?? 10_240,
  };
}

export function liveHostFigures(dataDir: string): LiveHostFigures {
  return {
    memAvailableMiB: meminfo().availableMiB,
    diskFreeMiB: disk(dataDir).freeMiB,
    pidsInUse: pidsInUse(),
    pidsMax: pidsMax(),
  };
}
