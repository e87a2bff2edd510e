import { mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { runTool } from './exec-tool.js';
import { isMounted, mount, unmount } from './overlay.js';

/**
 * Quota'd disks for sandboxes and volumes: a sparse file holding an ext4 filesystem of exactly the
 * quota's size, loop-mounted on the host. This host's kernel has no quota support at all (neither
 * ext4/xfs project quotas nor CONFIG_QUOTA), so a filesystem of its own is what makes a write past
 * the quota fail with ENOSPC — for the sandbox's upper layer and everything on it, /tmp included.
 * The file is sparse: only what is written takes host space, and `discard` gives deleted blocks
 * back. mkfs of a lazily initialised ext4 takes ≈ 5 ms and a loop mount ≈ 5 ms on this machine (through mount(8); less through the host-exec helper).
 */
export interface DiskUsage {
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/**
 * Creates a sparse image of `sizeMiB` with an ext4 filesystem whose root belongs to `owner`.
 * `background` runs mkfs at a low cpu priority (spares must not slow the creates they serve).
 */
export async function createDiskImage(
  image: string,
  sizeMiB: number,
  owner: { uid: number; gid: number },
  background = false,
): Promise<void> {
  const handle = await open(image, 'wx', 0o600);
  try {
    await handle.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await handle.close();
  }
  const mkfs = [
    'mkfs.ext4',
    '-q',
    '-F',
    // No blocks reserved for root: the quota is the size the sandbox gets.
    '-m',
    '0',
    '-E',
    `lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=${owner.uid}:${owner.gid}`,
    image,
  ];
  if (background) await runTool('nice', ['-n', '15', ...mkfs]);
  else await runTool(mkfs[0]!, mkfs.slice(1));
}

/**
 * Loop-mounts an image (the loop device is released on unmount: mount sets autoclear). nosuid and
 * nodev because the filesystem's content is written by the sandbox; overlayfs whiteouts are still
 * created there (creating a 0/0 device node is not opening one).
 */
export async function mountDiskImage(image: string, target: string): Promise<void> {
  if (await isMounted(target)) return;
  await mount({ loop: image, target, fstype: 'ext4', flags: ['nosuid', 'nodev', 'noatime'], data: 'discard' });
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

/**
 * Formatted images made ahead of time for the default disk size, so a create only renames one
 * into place (mkfs is ≈ 5 ms of the create path otherwise). Spares live in one directory on the
 * same filesystem as the sandboxes (rename), survive restarts, and are refilled in the background.
 */
const REFILL_DELAY_MS = 300;

export class SpareDisks {
  private readonly ready: string[] = [];
  private filling: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly sizeMiB: number,
    private readonly owner: { uid: number; gid: number },
    private readonly count = 4,
  ) {}

  /** Picks up spares a previous run left, then fills up in the background. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      const ok = name.endsWith('.img') && (await stat(path).catch(() => null))?.size === this.sizeMiB * 1024 * 1024;
      if (ok && this.ready.length < this.count) this.ready.push(path);
      else await rm(path, { force: true });
    }
    this.refill();
  }

  /** A ready image of `sizeMiB` to rename into place, or null (make one then). */
  take(sizeMiB: number): string | null {
    if (sizeMiB !== this.sizeMiB) return null;
    const path = this.ready.shift() ?? null;
    // Later, not now: the create that took this spare is still running.
    setTimeout(() => this.refill(), REFILL_DELAY_MS).unref();
    return path;
  }

  private refill(): void {
    if (this.filling || this.closed || this.ready.length >= this.count) return;
    this.filling = (async () => {
      while (!this.closed && this.ready.length < this.count) {
        const name = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
        const tmp = join(this.dir, `${name}.tmp`);
        await createDiskImage(tmp, this.sizeMiB, this.owner, true);
        const path = join(this.dir, `${name}.img`);
        await rename(tmp, path);
        this.ready.push(path);
      }
    })()
      .catch(() => undefined) // a failed spare only means the next create runs mkfs itself
      .finally(() => {
        this.filling = null;
      });
  }

  /** Stops refilling (server shutdown); ready spares stay for the next start. */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling;
  }
}
