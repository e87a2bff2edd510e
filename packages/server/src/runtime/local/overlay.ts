import { readFile } from 'node:fs/promises';
import { helperMount, helperUnmount, runTool } from './exec-tool.js';
import type { HelperMount } from './host-exec.js';

/**
 * The host mounts of the local provider. Each goes through the host-exec helper's mount(2) and
 * umount(2) when it runs, else through mount(8)/umount(8) with the same options.
 */
export async function mount(m: HelperMount): Promise<void> {
  if (await helperMount(m)) return;
  const options = [...(m.loop ? ['loop'] : []), ...(m.flags ?? []), ...(m.data ? [m.data] : [])].join(',');
  const source = m.loop ?? m.source ?? m.fstype;
  await runTool('mount', ['-t', m.fstype, ...(options ? ['-o', options] : []), source, m.target], m.cwd ? { cwd: m.cwd } : {});
}

/** Unmounts `targets` in order; one still busy is detached lazily. */
async function umount(targets: string[]): Promise<void> {
  if (await helperUnmount(targets)) return;
  try {
    await runTool('umount', targets);
  } catch {
    for (const t of targets) {
      if (!(await isMounted(t))) continue;
      await runTool('umount', [t]).catch(() => runTool('umount', ['-l', t]));
    }
  }
}

/**
 * overlayfs mounts for sandbox root filesystems: read-only layers below (a snapshot's layers over
 * its template's), the sandbox's upper above. The options are given relative to `cwd` (the sandbox
 * directory, where `lower0`, `lower1`, … are symlinks to the layers, top first, and `disk` is the
 * sandbox's own filesystem): /proc/self/mountinfo inside the sandbox shows the option strings as
 * given, so absolute paths would reveal the host's data and layer directories.
 */
export async function mountOverlay(cwd: string, target: string, lowerCount: number): Promise<void> {
  const lowers = Array.from({ length: lowerCount }, (_, i) => `lower${i}`).join(':');
  await mount({ source: 'overlay', target, fstype: 'overlay', data: `lowerdir=${lowers},upperdir=disk/upper,workdir=disk/work`, cwd });
}

export async function isMounted(target: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => line.split(' ')[4] === target);
}

/** Unmounts if mounted; falls back to a lazy unmount when something still holds it busy. */
export async function unmount(target: string): Promise<void> {
  if (await isMounted(target)) await umount([target]);
}

/**
 * Unmounts those of `targets` that are mounted, in the given order (innermost first), in one call;
 * anything still busy falls back to a lazy unmount.
 */
export async function unmountAll(targets: string[]): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const mounted = new Set(info.split('\n').map((line) => line.split(' ')[4]));
  const present = targets.filter((t) => mounted.has(t));
  if (present.length > 0) await umount(present);
}

/** Mount points under `prefix` (for sweeping leftovers after a crash). */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.startsWith(prefix));
}
