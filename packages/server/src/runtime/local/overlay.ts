import { readFile } from 'node:fs/promises';
import { helperMount, helperUnmount, runTool } from './exec-tool.js';

/**
 * overlayfs mounts for sandbox root filesystems: read-only layers below (a snapshot's layers over
 * its template's), the sandbox's upper above. The options are given relative to `cwd` (the sandbox
 * directory, where `lower0`, `lower1`, … are symlinks to the layers, top first, and `disk` is the
 * sandbox's own filesystem): /proc/self/mountinfo inside the sandbox shows the option strings as
 * given, so absolute paths would reveal the host's data and layer directories.
 */
export async function mountOverlay(cwd: string, target: string, lowerCount: number): Promise<void> {
  const lowers = Array.from({ length: lowerCount }, (_, i) => `lower${i}`).join(':');
  const data = `lowerdir=${lowers},upperdir=disk/upper,workdir=disk/work`;
  if (await helperMount({ source: 'overlay', target, fstype: 'overlay', data, cwd })) return;
  await runTool('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowers},upperdir=disk/upper,workdir=disk/work`, target], {
    cwd,
  });
}

export async function isMounted(target: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === target);
}

/** Unmounts if mounted; falls back to a lazy unmount when something still holds it busy. */
export async function unmount(target: string): Promise<void> {
  if (!(await isMounted(target))) return;
  if (await helperUnmount([target])) return;
  try {
    await runTool('umount', [target]);
  } catch {
    await runTool('umount', ['-l', target]);
  }
}

/**
 * Unmounts those of `targets` that are mounted, in the given order (innermost first), with one
 * `umount` process; anything still busy falls back to a lazy unmount.
 */
export async function unmountAll(targets: string[]): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const mounted = new Set(info.split('\n').map((line) => line.split(' ')[4]));
  const present = targets.filter((t) => mounted.has(t));
  if (present.length === 0) return;
  if (await helperUnmount(present)) return;
  try {
    await runTool('umount', present);
  } catch {
    for (const t of present) await unmount(t);
  }
}

/** Mount points under `prefix` (for sweeping leftovers after a crash). */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.startsWith(prefix));
}
