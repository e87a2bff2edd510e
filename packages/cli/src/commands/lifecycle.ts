import type { Hutch, PauseResult, SandboxInfo, SandboxUsage } from '@hutch/sdk';
import { bytes, json, table } from '../format.js';
import type { LifecycleAction } from '../invocation.js';

/** Pausing with memory (a checkpoint) and starting can take a while on a busy host. */
const LIFECYCLE_TIMEOUT_MS = 5 * 60_000;

/**
 * `hutch pause|resume|stop|start <id>`: prints the resulting state (`<id> paused (memory)`), for
 * pause also the note that explains a files-only pause; `--json` prints what the server answered.
 */
export async function lifecycle(hutch: Hutch, opts: { kind: LifecycleAction; id: string; json: boolean }): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const call = { timeoutMs: LIFECYCLE_TIMEOUT_MS };
  switch (opts.kind) {
    case 'pause':
    case 'resume': {
      const result = opts.kind === 'pause' ? await sandbox.pause(call) : await sandbox.resume(call);
      process.stdout.write(opts.json ? json(result) : describePause(opts.kind, result));
      return 0;
    }
    case 'stop':
    case 'start': {
      const info = opts.kind === 'stop' ? await sandbox.stop(call) : await sandbox.start(call);
      process.stdout.write(opts.json ? json(info) : `${info.id} ${info.state}\n`);
      return 0;
    }
  }
}

function describePause(kind: 'pause' | 'resume', r: PauseResult): string {
  const mode = r.pauseMode ? (kind === 'pause' ? ` (${r.pauseMode})` : ` (from ${r.pauseMode})`) : '';
  let text = `${r.id} ${r.state}${mode}\n`;
  if (r.note) text += `note: ${r.note}\n`;
  return text;
}

/** `hutch usage <id>`: disk use of the sandbox's filesystem and of each mounted volume. */
export async function usage(hutch: Hutch, opts: { id: string; json: boolean }): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const u = await sandbox.usage();
  process.stdout.write(opts.json ? json(u) : describeUsage(sandbox.info, u));
  return 0;
}

export function describeUsage(info: Pick<SandboxInfo, 'state'>, u: SandboxUsage): string {
  const disk = u.disk
    ? `${bytes(u.disk.usedBytes)} used of ${bytes(u.disk.sizeBytes)} (${bytes(u.disk.availableBytes)} free)`
    : `- (not mounted while the sandbox is ${info.state})`;
  let text = `disk:     ${disk}\n`;
  if (u.volumes.length === 0) return `${text}volumes:  -\n`;
  text += 'volumes:\n';
  const rows = [['NAME', 'PATH', 'USED', 'SIZE']];
  for (const v of u.volumes) rows.push([v.name, v.path, bytes(v.usedBytes), bytes(v.sizeBytes)]);
  return text + table(rows).replace(/^(?=.)/gm, '  ');
}
