import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { EnvironmentCreateParams, EnvironmentInfo, EnvironmentSeedInfo, Hutch } from '@hutch/sdk';
import { create as tarCreate } from 'tar';
import { bytes, json, relativeTime, table } from '../format.js';
import type { Invocation } from '../invocation.js';

/** The server takes archives up to this size (base64 inside a JSON body). */
const MAX_ARCHIVE_BYTES = 48 * 1024 * 1024;

/** The project directory as a tar.gz: everything but `.git` (symlinks kept as links; the server skips them). */
async function archive(dir: string): Promise<{ data: Buffer; files: number }> {
  const chunks: Buffer[] = [];
  let files = 0;
  const stream = tarCreate(
    {
      cwd: dir,
      gzip: true,
      portable: true,
      filter: (path) => {
        const skip = path === './.git' || path.startsWith('./.git/');
        if (!skip) files++;
        return !skip;
      },
    },
    ['.'],
  );
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > MAX_ARCHIVE_BYTES) throw new Error(`${dir} is larger than ${bytes(MAX_ARCHIVE_BYTES)} compressed; use --git`);
    chunks.push(chunk as Buffer);
  }
  return { data: Buffer.concat(chunks), files };
}

/** `git rev-parse HEAD` in the directory, when it is a checkout. */
function headCommit(dir: string): string | undefined {
  const r = spawnSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const sha = r.status === 0 ? r.stdout.trim() : '';
  return /^[0-9a-f]{40,64}$/.test(sha) ? sha : undefined;
}

function progressLine(env: EnvironmentInfo): string {
  return env.services.map((s) => `${s.name}:${s.state}${s.note ? ` (${s.note})` : ''}`).join(' ');
}

/** `hutch env up [dir]`: uploads (or names a git source), then follows the services until running. */
export async function envUp(hutch: Hutch, opts: Extract<Invocation, { kind: 'env-up' }>): Promise<number> {
  const params: Omit<EnvironmentCreateParams, 'source'> = {
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.variables !== undefined ? { variables: opts.variables } : {}),
    ...(opts.profiles !== undefined ? { profiles: opts.profiles } : {}),
    ...(opts.prNumber !== undefined ? { prNumber: opts.prNumber } : {}),
    ...(opts.keep ? { keep: true } : {}),
  };
  let created: EnvironmentInfo;
  if (opts.git) {
    process.stderr.write(`hutch: creating an environment from ${opts.git.url} (${opts.git.ref})\n`);
    created = await hutch.environments.create({ ...params, source: { git: opts.git } });
  } else {
    const dir = resolve(opts.dir);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${opts.dir} is not a directory`);
    const { data, files } = await archive(dir);
    const gitSha = opts.gitSha ?? headCommit(dir);
    process.stderr.write(`hutch: uploading ${dir} (${files} entries, ${bytes(data.length)})\n`);
    created = await hutch.environments.create({ ...params, ...(gitSha ? { gitSha } : {}), source: { archive: data } });
  }
  for (const warning of created.warnings) process.stderr.write(`hutch: warning: ${warning}\n`);
  process.stderr.write(`hutch: environment ${created.id}: ${progressLine(created)}\n`);
  let env = created;
  let failed = false;
  if (opts.wait) {
    let last = progressLine(created);
    try {
      env = await hutch.environments.waitUntilReady(created.id, {
        onProgress: (e) => {
          const line = progressLine(e);
          if (line !== last) process.stderr.write(`hutch: ${line}\n`);
          last = line;
        },
      });
    } catch (err) {
      failed = true;
      env = await hutch.environments.get(created.id);
      process.stderr.write(`hutch: ${err instanceof Error ? err.message : String(err)}\n`);
      for (const s of env.services.filter((s) => s.error)) process.stderr.write(`hutch:   ${s.name}: ${s.error}\n`);
      process.stderr.write(`hutch: see \`hutch env logs ${env.id}\`; remove it with \`hutch env down ${env.id}\`\n`);
    }
    if (!failed) for (const s of env.services.filter((s) => s.url)) process.stderr.write(`hutch:   ${s.name}: ${s.url}\n`);
  }
  process.stdout.write(opts.json ? json(env) : `${env.id}\n`);
  return failed ? 1 : 0;
}

/** `hutch env ls`: one row per environment, with each service's state and the main URL. */
export async function envList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const envs = await hutch.environments.list();
  if (opts.json) {
    process.stdout.write(json(envs));
    return 0;
  }
  const rows = [['ID', 'NAME', 'STATE', 'SERVICES', 'URL', 'CREATED']];
  for (const e of envs) rows.push([e.id, e.name ?? '-', e.state, progressLine(e) || '-', e.url ?? '-', relativeTime(e.createdAt)]);
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch env down`: destroys each environment, printing the ids; fails (1) if one was unknown. */
export async function envDown(hutch: Hutch, opts: { ids: string[] }): Promise<number> {
  let status = 0;
  for (const id of opts.ids) {
    try {
      if (await hutch.environments.delete(id)) process.stdout.write(`${id}\n`);
      else {
        process.stderr.write(`hutch: no environment ${id}\n`);
        status = 1;
      }
    } catch (err) {
      process.stderr.write(`hutch: ${id}: ${err instanceof Error ? err.message : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}

/** `hutch env logs <env> [service]`: each service's last lines under a header. */
export async function envLogs(hutch: Hutch, opts: { id: string; service?: string; tail?: number }): Promise<number> {
  const logs = await hutch.environments.logs(opts.id, {
    ...(opts.service !== undefined ? { service: opts.service } : {}),
    ...(opts.tail !== undefined ? { tail: opts.tail } : {}),
  });
  for (const { service, text } of logs) {
    if (opts.service === undefined) process.stdout.write(`==> ${service} <==\n`);
    process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
  }
  return 0;
}

/** A TTL in seconds as people write it: `30m`, `72h`, `off`. */
function ttlText(seconds: number): string {
  if (seconds === 0) return 'off';
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const)
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

/** `hutch env keep` / `hutch env ttl`: prints what now applies. */
export async function envUpdate(
  hutch: Hutch,
  opts: { id: string; keep?: boolean; ttl?: { idle?: string | null; delete?: string | null }; json: boolean },
): Promise<number> {
  const env = await hutch.environments.update(opts.id, {
    ...(opts.keep !== undefined ? { keep: opts.keep } : {}),
    ...(opts.ttl !== undefined ? { ttl: opts.ttl } : {}),
  });
  if (opts.json) {
    process.stdout.write(json(env));
    return 0;
  }
  const when = (at: string | null): string => (at ? ` (${at})` : '');
  process.stdout.write(
    `${env.id}: ${env.keep ? 'kept (no TTL applies)' : `idle ${ttlText(env.ttl.idleSeconds)}${when(env.sleepsAt)}, delete ${ttlText(env.ttl.deleteSeconds)}${when(env.deletesAt)}`}\n`,
  );
  return 0;
}

function seedTable(seeds: EnvironmentSeedInfo[]): string {
  const rows = [['PROJECT', 'BASE', 'VOLUME', 'SNAPSHOT', 'INPUTS', 'FROM', 'CREATED']];
  for (const s of seeds)
    rows.push([
      s.project,
      s.baseRef,
      s.volume,
      s.snapshotVolume,
      s.inputsHash.slice(0, 12),
      s.environment ?? '-',
      relativeTime(s.createdAt),
    ]);
  return table(rows);
}

/** `hutch env seeds`: the golden seed snapshots. */
export async function envSeeds(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const seeds = await hutch.environments.seeds();
  process.stdout.write(opts.json ? json(seeds) : seedTable(seeds));
  return 0;
}

/** `hutch env reseed <project> [--base ref]`: forgets them; prints those removed. */
export async function envReseed(hutch: Hutch, opts: { project: string; baseRef?: string; json: boolean }): Promise<number> {
  const removed = await hutch.environments.refreshSeeds(opts.project, opts.baseRef);
  if (opts.json) process.stdout.write(json(removed));
  else if (removed.length === 0) process.stderr.write(`hutch: no seed snapshots of ${opts.project}\n`);
  else process.stdout.write(seedTable(removed));
  return 0;
}
