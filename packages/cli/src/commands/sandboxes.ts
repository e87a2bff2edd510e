import type { Hutch, SandboxCreateParams, SandboxInfo, SandboxLifecycle, SandboxState } from '@hutch/sdk';
import { json, labels, relativeTime, table } from '../format.js';

/** Creating may build a template on first use; give it longer than an ordinary call. */
export const CREATE_TIMEOUT_MS = 10 * 60_000;

/** `hutch create`: prints the new id (or the sandbox as JSON). */
export async function create(hutch: Hutch, opts: { params: SandboxCreateParams; json: boolean }): Promise<number> {
  const sandbox = await hutch.sandboxes.create({ ...opts.params, timeoutMs: CREATE_TIMEOUT_MS });
  process.stdout.write(opts.json ? json(sandbox.info) : `${sandbox.id}\n`);
  return 0;
}

/** `hutch ls`: a table, or a JSON array. */
export async function list(
  hutch: Hutch,
  opts: { state?: SandboxState[]; metadata: Record<string, string>; json: boolean },
): Promise<number> {
  const sandboxes = await hutch.sandboxes.list({ state: opts.state, metadata: opts.metadata });
  if (opts.json) {
    process.stdout.write(json(sandboxes));
    return 0;
  }
  const rows = [['ID', 'STATE', 'TEMPLATE', 'ISOLATION', 'CPU', 'MEMORY', 'CREATED', 'EXPIRES', 'METADATA']];
  for (const s of sandboxes) {
    rows.push([
      s.id,
      stateLabel(s),
      s.template,
      String(s.isolation),
      String(s.cpu),
      `${s.memoryMiB} MiB`,
      relativeTime(s.createdAt),
      relativeTime(s.expiresAt),
      labels(s.metadata),
    ]);
  }
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch get`. */
export async function get(hutch: Hutch, opts: { id: string; json: boolean }): Promise<number> {
  const { info } = await hutch.sandboxes.get(opts.id);
  process.stdout.write(opts.json ? json(info) : describe(info));
  return 0;
}

/** `hutch rm`: deletes each id, printing the ones deleted; fails (1) if any was unknown or failed. */
export async function remove(hutch: Hutch, opts: { ids: string[] }): Promise<number> {
  let status = 0;
  for (const id of opts.ids) {
    try {
      if (await hutch.sandboxes.kill(id)) process.stdout.write(`${id}\n`);
      else {
        process.stderr.write(`hutch: no sandbox with id ${id}\n`);
        status = 1;
      }
    } catch (err) {
      process.stderr.write(`hutch: ${id}: ${err instanceof Error ? err.message : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}

/** `hutch timeout`: the sandbox expires `seconds` from now. */
export async function setTimeout(hutch: Hutch, opts: { id: string; seconds: number; json: boolean }): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const info = await sandbox.setTimeout(opts.seconds);
  process.stdout.write(opts.json ? json(info) : `${info.id} expires ${info.expiresAt ?? '-'} (${relativeTime(info.expiresAt)})\n`);
  return 0;
}

/** `running`, `paused (memory)`, `error`… (older servers send no pauseMode). */
export function stateLabel(s: Pick<SandboxInfo, 'state' | 'pauseMode'>): string {
  return s.state === 'paused' && s.pauseMode ? `${s.state} (${s.pauseMode})` : s.state;
}

/** `persistent, on timeout: pause, idle 120 s, auto-delete 86400 s, auto-resume`. */
export function describeLifecycle(l: SandboxLifecycle | undefined): string {
  if (!l) return '-';
  const parts = [l.persistent ? 'persistent' : 'ephemeral', `on timeout: ${l.onTimeout}`];
  if (l.idleTimeoutSeconds !== null) parts.push(`idle ${l.idleTimeoutSeconds} s`);
  parts.push(l.autoDeleteAfterSeconds !== null ? `auto-delete ${l.autoDeleteAfterSeconds} s after stop/pause` : 'no auto-delete');
  if (l.autoResume) parts.push('auto-resume');
  return parts.join(', ');
}

/** `GITHUB_TOKEN=env:GITHUB_TOKEN, db=file:/run/secrets/db, api=header:api.example.com`: references, never values. */
export function describeSecrets(refs: SandboxInfo['secrets'] | undefined): string {
  if (!refs || refs.length === 0) return '-';
  return refs
    .map((r) => `${r.name}=${'env' in r ? `env:${r.env}` : 'file' in r ? `file:${r.file}` : `header:${r.injectHeader.host}`}`)
    .join(', ');
}

function describe(s: SandboxInfo): string {
  let state = s.error ? `${s.state} (${s.error})` : stateLabel(s);
  if (s.stateChangedAt) state += ` since ${s.stateChangedAt} (${relativeTime(s.stateChangedAt)})`;
  const volumes = (s.volumes ?? []).map((v) => `${v.name}:${v.path}${v.readOnly ? ':ro' : ''}`).join(', ');
  const rows: [string, string][] = [
    ['id', s.id],
    ['state', state],
    ['template', s.template],
    ['isolation', String(s.isolation)],
    ['cpu', String(s.cpu)],
    ['memory', `${s.memoryMiB} MiB`],
    ['pids', String(s.pids)],
    ['disk', s.diskMiB !== undefined ? `${s.diskMiB} MiB` : '-'],
    ['timeout', s.timeoutSeconds === null ? 'none' : `${s.timeoutSeconds} s`],
    ['lifecycle', describeLifecycle(s.lifecycle)],
    ['created', `${s.createdAt} (${relativeTime(s.createdAt)})`],
    ['expires', s.expiresAt ? `${s.expiresAt} (${relativeTime(s.expiresAt)})` : '-'],
    ['volumes', volumes || '-'],
    ['env', labels(s.env)],
    ['secrets', describeSecrets(s.secrets)],
    ['metadata', labels(s.metadata)],
  ];
  return rows
    .map(([k, v]) => `${`${k}:`.padEnd(10)} ${v}`)
    .join('\n')
    .concat('\n');
}
