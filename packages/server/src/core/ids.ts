import { randomBytes } from 'node:crypto';

/**
 * Sandbox ids are 20 characters of [a-z0-9]: safe as a runc container id, a cgroup name, a
 * directory name and a DNS label (`<port>-<id>.<domain>` host routing). Anything else is
 * rejected before it names a file, cgroup or runtime object.
 */
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const SANDBOX_ID_PATTERN = /^[a-z0-9]{20}$/;

export function newSandboxId(): string {
  return randomSuffix(20);
}

/** Snapshot ids: `snap-` and 16 characters of [a-z0-9] (valid as template names too). */
export const SNAPSHOT_ID_PATTERN = /^snap-[a-z0-9]{16}$/;

export function newSnapshotId(): string {
  return `snap-${randomSuffix(16)}`;
}

function randomSuffix(length: number): string {
  const bytes = randomBytes(length);
  let id = '';
  // 256 % 36 leaves a small bias; irrelevant for unguessable-enough ids with ~103 bits.
  for (const b of bytes) id += ID_ALPHABET[b % ID_ALPHABET.length];
  return id;
}

export function isSandboxId(value: string): boolean {
  return SANDBOX_ID_PATTERN.test(value);
}

/** Webhook project ids: `prj-` and 16 characters of [a-z0-9]. */
export const PROJECT_ID_PATTERN = /^prj-[a-z0-9]{16}$/;

export function newProjectId(): string {
  return `prj-${randomSuffix(16)}`;
}
