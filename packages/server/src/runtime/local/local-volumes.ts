import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskUsage, VolumeBackend, VolumeCloner } from '../../core/provider.js';
import { createDiskImage, diskUsage, mountDiskImage, unmountDiskImage } from './disk-image.js';
import { runTool } from './exec-tool.js';
import { isMounted } from './overlay.js';
import { ID_MAP_BASE } from './oci-spec.js';

/**
 * Volumes on this machine: `<dataDir>/volumes/<name>/volume.img`, an ext4 image of the volume's
 * size (the quota), loop-mounted at `…/mnt` while the server needs it; sandboxes bind-mount
 * `…/mnt/data`. Every sandbox mounting a volume sees the same host filesystem, so writes are
 * visible to the others at once (container tier) — gVisor caches file attributes in its sentry,
 * so there a change made by another sandbox can take a moment to show (see docs/persistence.md).
 */
export class LocalVolumes implements VolumeBackend, VolumeCloner {
  private readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'volumes');
  }

  private paths(name: string): { dir: string; image: string; mnt: string; data: string } {
    const dir = join(this.root, name);
    return { dir, image: join(dir, 'volume.img'), mnt: join(dir, 'mnt'), data: join(dir, 'mnt', 'data') };
  }

  async create(name: string, sizeMiB: number): Promise<void> {
    const p = this.paths(name);
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    // Searchable: gVisor's gofer opens bind sources below it without root's privileges.
    await chmod(this.root, 0o711);
    await chmod(p.dir, 0o711);
    await createDiskImage(p.image, sizeMiB, { uid: ID_MAP_BASE, gid: ID_MAP_BASE });
    await this.attach(name);
  }

  async attach(name: string): Promise<string> {
    const p = this.paths(name);
    if (!existsSync(p.image)) throw new Error(`volume ${name} has no image on this host`);
    await mkdir(p.mnt, { recursive: true });
    await mountDiskImage(p.image, p.mnt);
    if (!existsSync(p.data)) {
      // Sandbox root owns the data dir; mode 0777 so every sandbox user (root or the template's
      // default user) can write, as on a shared disk.
      await mkdir(p.data);
      await chown(p.data, ID_MAP_BASE, ID_MAP_BASE);
      await chmod(p.data, 0o777);
    }
    return p.data;
  }

  async usage(name: string): Promise<DiskUsage | null> {
    const p = this.paths(name);
    if (!(await isMounted(p.mnt))) {
      if (!existsSync(p.image)) return null;
      await this.attach(name);
    }
    return diskUsage(p.mnt);
  }

  /**
   * A copy of a volume's image: the source's filesystem is frozen (fsfreeze: writes flushed and
   * held) while `cp --reflink=auto --sparse=always` copies it — a copy-on-write clone where the
   * data dir's filesystem supports reflinks (btrfs, XFS), else a sparse full copy (only the
   * blocks in use are written). Frozen, the image is a crash-consistent point in time even while
   * a database in a sandbox writes to it.
   */
  async cloneVolume(source: string, target: string): Promise<void> {
    const s = this.paths(source);
    const t = this.paths(target);
    if (existsSync(t.dir)) throw new Error(`volume ${target} already exists on this host`);
    await this.attach(source);
    await mkdir(t.dir, { recursive: true, mode: 0o700 });
    await chmod(t.dir, 0o711);
    try {
      await runTool('fsfreeze', ['--freeze', s.mnt]);
      try {
        // Bounded: writers in the source's sandboxes wait while it is frozen.
        await runTool('cp', ['--reflink=auto', '--sparse=always', s.image, t.image], { timeoutMs: 300_000 });
      } finally {
        await runTool('fsfreeze', ['--unfreeze', s.mnt]);
      }
      await this.attach(target);
    } catch (err) {
      await this.remove(target).catch(() => undefined);
      throw err;
    }
  }

  async remove(name: string): Promise<void> {
    const p = this.paths(name);
    await unmountDiskImage(p.mnt);
    if (await isMounted(p.mnt)) throw new Error(`volume ${name} is still mounted at ${p.mnt}`);
    await rm(p.dir, { recursive: true, force: true });
  }
}
