import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { timedRun } from './proc.js';
import type { Tier } from './report.js';

const execFileP = promisify(execFile);

/** The baseline: `podman run --rm` of /bin/echo hi on a given root filesystem directory. */
export function podmanArgs(tier: Tier, rootfs: string): string[] {
  const runtime =
    tier === 'container' ? ['--runtime=runc'] : ['--runtime=runsc', '--runtime-flag=platform=ptrace', '--runtime-flag=network=none'];
  return [
    'run',
    '--rm',
    ...runtime,
    '--network=none',
    '--ulimit',
    'nofile=1024:1024',
    '--ulimit',
    'nproc=1024:1024',
    '--rootfs',
    rootfs,
    '/bin/echo',
    'hi',
  ];
}

/** One timed run; throws unless it printed exactly "hi". */
export async function podmanOnce(tier: Tier, rootfs: string): Promise<number> {
  const r = await timedRun('podman', podmanArgs(tier, rootfs), { timeoutMs: 60_000 });
  if (r.code !== 0 || r.stdout !== 'hi\n')
    throw new Error(`podman run (${tier}): exit ${r.code ?? r.signal}, stderr ${JSON.stringify(r.stderr.slice(0, 500))}`);
  return r.ms;
}

/**
 * An interrupted `podman run --rm` can leave its container behind (e.g. "Initialized"): remove
 * the containers whose root filesystem is our private copy, and no others.
 */
export async function removePodmanLeftovers(scratch: string, progress: (msg: string) => void = () => undefined): Promise<void> {
  const { stdout } = await execFileP('podman', ['ps', '-a', '-q', '--no-trunc'], { timeout: 30_000 });
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length === 0) return;
  const { stdout: info } = await execFileP('podman', ['inspect', '--format', '{{.ID}} {{.Rootfs}}', ...ids], { timeout: 30_000 });
  const ours = info
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([id, rootfs]) => id && rootfs?.startsWith(`${scratch}/`))
    .map(([id]) => id!);
  if (ours.length === 0) return;
  progress(`removing ${ours.length} podman container(s) an interrupted run left`);
  await execFileP('podman', ['rm', '-f', ...ours], { timeout: 60_000 });
}
