import { chmod, lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Shifts every file's owner into the sandbox uid/gid range (uid → base + uid). runc 1.1 has no
 * idmapped mounts, so a layer shared by user-namespaced sandboxes must be owned by the mapped
 * range on disk. chown clears setuid/setgid bits, so modes are restored afterwards (they grant
 * nothing inside a sandbox: every process runs with no_new_privs).
 */
export async function shiftOwnership(root: string, base: number): Promise<number> {
  let count = 0;
  const stack = [root];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const st = await lstat(path);
    if (st.uid < base) {
      await lchown(path, st.uid + base, st.gid + base);
      if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) await chmod(path, st.mode & 0o7777);
    }
    count++;
    if (st.isDirectory()) {
      for (const name of await readdir(path)) stack.push(join(path, name));
    }
  }
  return count;
}

export async function treeSize(root: string): Promise<number> {
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const st = await lstat(path);
    total += st.isDirectory() ? 0 : st.size;
    if (st.isDirectory()) for (const name of await readdir(path)) stack.push(join(path, name));
  }
  return total;
}
