import { open, statfs } from 'node:fs/promises';
import { runTool } from './exec-tool.js';
import { isMounted, unmount } from './overlay.js';

/**
 * Quota'd disks for sandboxes and volumes: a sparse file holding an ext4 filesystem of exactly the
 * quota's size, loop-mounted on the host. This host's kernel has no quota support at all (neither
 * ext4/xfs project quotas nor CONFIG_QUOTA), so a filesystem of its own is what makes a write past
 * the quota fail with ENOSPC — for the sandbox's upper layer and everything on it, /tmp included.
 * The file is sparse: only what is written takes host space, and `discard` gives deleted blocks
 * back. mkfs of a lazily initialised ext4 takes ≈ 5 ms and a loop mount ≈ 5 ms on this machine.
 */
export interface DiskUsage {
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/** Creates a sparse image of `sizeMiB` with an ext4 filesystem whose root belongs to `owner`. */
export async function createDiskImage(image: string, sizeMiB: number, owner: { uid: number; gid: number }): Promise<void> {
  const handle = await open(image, 'wx', 0o600);
  try {
    await handle.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await handle.close();
  }
  await runTool('mkfs.ext4', [
    '-q',
    '-F',
    // No blocks reserved for root: the quota is the size the sandbox gets.
    '-m',
    '0',
    '-E',
    `lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=${owner.uid}:${owner.gid}`,
    image,
  ]);
}

/**
 * Loop-mounts an image (the loop device is released on unmount: mount sets autoclear). nosuid and
 * nodev because the filesystem's content is written by the sandbox; overlayfs whiteouts are still
 * created there (creating a 0/0 device node is not opening one).
 */
export async function mountDiskImage(image: string, target: string): Promise<void> {
  if (await isMounted(target)) return;
  await runTool('mount', ['-t', 'ext4', '-o', 'loop,discard,nosuid,nodev,noatime', image, target]);
}

export async function unmountDiskImage(target: string): Promise<void> {
  await unmount(target);
}

export async function diskUsage(target: string): Promise<DiskUsage> {
  const s = await statfs(target);
  const sizeBytes = s.blocks * s.bsize;
  const availableBytes = s.bavail * s.bsize;
  return { sizeBytes, usedBytes: sizeBytes - s.bfree * s.bsize, availableBytes };
}
