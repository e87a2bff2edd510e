import { readFile, writeFile } from 'node:fs/promises';

/**
 * Host settings the sandboxes need, raised (never lowered) at server start.
 *
 * Every container sandbox gets a session keyring (runc), owned by the sandbox's mapped root — the
 * same host uid for all of them — and the kernel's per-user key quota for non-root users defaults
 * to 200 keys / 20 000 bytes: creates past about 200 sandboxes fail with "unable to join session
 * keyring: disk quota exceeded". (Sharing the server's keyring instead, runc --no-new-keyring,
 * would let sandboxes possess the host's keys.)
 */
const MINIMUMS: Array<[path: string, value: number]> = [
  ['/proc/sys/kernel/keys/maxkeys', 1_000_000],
  ['/proc/sys/kernel/keys/maxbytes', 25_000_000],
];

export async function raiseHostLimits(log: (msg: string) => void): Promise<void> {
  for (const [path, minimum] of MINIMUMS) {
    try {
      const current = Number((await readFile(path, 'utf8')).trim());
      if (Number.isFinite(current) && current >= minimum) continue;
      await writeFile(path, String(minimum));
      log(`raised ${path.replace('/proc/sys/', '').replaceAll('/', '.')} from ${current} to ${minimum}`);
    } catch (err) {
      log(`could not raise ${path}: ${(err as Error).message} (sandboxes past a few hundred may fail to start)`);
    }
  }
}
