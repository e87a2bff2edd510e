/**
 * A private PostgreSQL cluster for tests, from Debian's packages: `initdb` as the `postgres` user
 * into a fresh directory under /var/tmp (prefix `hutch-pg-`), `pg_ctl start` listening only on
 * 127.0.0.1 and a socket in that directory, on a free port, with password (scram) auth. stop()
 * stops it (immediate mode) and removes the directory; a process that exits without calling
 * stop() still does it in an 'exit' handler, and start() removes clusters left by test processes
 * that died (each directory records the pid that owns it). The distribution's own cluster is
 * never touched.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './harness.js';

const ROOT = '/var/tmp';
const PREFIX = 'hutch-pg-';
const CMD_TIMEOUT_MS = 60_000;

export interface PgCluster {
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  password: string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs one statement as the superuser on `database` (default postgres) and returns its rows. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[], database?: string): Promise<T[]>;
  stop(): void;
}

/** The newest installed server's bin directory, or a clear error naming the package to install. */
export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin', 'initdb')) && existsSync(join(base, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      'PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (initdb, pg_ctl): run `bash scripts/setup.sh` or `apt-get install -y postgresql`',
    );
  let uid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  } catch {
    throw new Error('the `postgres` system user is missing (it comes with the Debian postgresql package): apt-get install -y postgresql');
  }
  if (!(uid > 0)) throw new Error('the `postgres` user must not be root');
  return join(base, versions[0]!, 'bin');
}

function asPostgres(bin: string, args: string[]): void {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', bin, ...args], { encoding: 'utf8', timeout: CMD_TIMEOUT_MS });
  if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function stopCluster(bin: string, dir: string): void {
  const data = join(dir, 'data');
  if (existsSync(join(data, 'postmaster.pid')))
    spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), 'stop', '-D', data, '-m', 'immediate', '-w', '-t', '30'], {
      stdio: 'ignore',
      timeout: CMD_TIMEOUT_MS,
    });
  rmSync(dir, { recursive: true, force: true });
}

/** Clusters of test processes that are gone (a crash or a kill -9 skipped their stop()). */
function removeAbandoned(bin: string): void {
  for (const name of readdirSync(ROOT)) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(ROOT, name);
    let owner = NaN;
    try {
      owner = Number(readFileSync(join(dir, 'owner.pid'), 'utf8'));
    } catch {
      /* being created, or not ours */
      continue;
    }
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) stopCluster(bin, dir);
  }
}

export async function startPostgres(): Promise<PgCluster> {
  const bin = postgresBinDir();
  removeAbandoned(bin);
  const dir = mkdtempSync(join(ROOT, PREFIX));
  writeFileSync(join(dir, 'owner.pid'), String(process.pid));
  const data = join(dir, 'data');
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stop);
    stopCluster(bin, dir);
  };
  process.on('exit', stop);
  try {
    const password = randomBytes(12).toString('hex');
    const pwfile = join(dir, 'pwfile');
    writeFileSync(pwfile, `${password}\n`);
    chmodSync(dir, 0o700);
    chownSync(dir, uidOf('postgres'), gidOf('postgres'));
    chownSync(pwfile, uidOf('postgres'), gidOf('postgres'));
    asPostgres(join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=scram-sha-256',
      `--pwfile=${pwfile}`,
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    rmSync(pwfile);
    const port = await freePort();
    // Loopback and the private socket only; durability is not what tests are about (fsync off).
    asPostgres(join(bin, 'pg_ctl'), [
      'start',
      '-D',
      data,
      '-w',
      '-t',
      '60',
      '-l',
      join(dir, 'server.log'),
      '-o',
      `-k ${dir} -h 127.0.0.1 -p ${port} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`,
    ]);
    const url = (database: string): string => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`;
    const query = async <T>(text: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> => {
      const client = new pg.Client({ connectionString: url(database) });
      await client.connect();
      try {
        return (await client.query(text, params)).rows as T[];
      } finally {
        await client.end();
      }
    };
    return {
      url: url('postgres'),
      port,
      password,
      async createDatabase(name: string): Promise<string> {
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: lower-case letters, digits and _ only`);
        await query(`CREATE DATABASE ${name}`);
        return url(name);
      },
      query,
      stop,
    };
  } catch (err) {
    const log = existsSync(join(dir, 'server.log')) ? readFileSync(join(dir, 'server.log'), 'utf8').slice(-2000) : '';
    stop();
    throw new Error(`${(err as Error).message}${log ? `\nserver log:\n${log}` : ''}`, { cause: err });
  }
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
}
function gidOf(user: string): number {
  return Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
}
