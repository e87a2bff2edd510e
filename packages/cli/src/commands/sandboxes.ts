import type { Hutch, SandboxCreateParams, SandboxInfo, SandboxState } from '@hutch/sdk';
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
      s.state,
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

function describe(s: SandboxInfo): string {
  const rows: [string, string][] = [
    ['id', s.id],
    ['state', s.error ? `${s.state} (${s.error})` : s.state],
    ['template', s.template],
    ['isolation', String(s.isolation)],
    ['cpu', String(s.cpu)],
    ['memory', `${s.memoryMiB} MiB`],
    ['pids', String(s.pids)],
    ['timeout', `${s.timeoutSeconds} s`],
    ['created', `${s.createdAt} (${relativeTime(s.createdAt)})`],
    ['expires', s.expiresAt ? `${s.expiresAt} (${relativeTime(s.expiresAt)})` : '-'],
    ['env', labels(s.env)],
    ['metadata', labels(s.metadata)],
  ];
  return rows
    .map(([k, v]) => `${`${k}:`.padEnd(10)} ${v}`)
    .join('\n')
    .concat('\n');
}
