import { execFile } from 'node:child_process';
import { mkdir, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Readable as ReadableStream } from 'node:stream';
import { promisify } from 'node:util';
import { create as tarCreate, extract as tarExtract, type ReadEntry } from 'tar';
import { invalidArgument } from '../core/errors.js';

/** A URL without its credentials (`https://user:token@host/…` → `https://***@host/…`), for records and messages. */
export function redactUrlCredentials(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** Interpolation variables a caller may set: PREVIEW_* are Hutch's own. */
export function checkEnvironmentVariables(variables: Record<string, string> | undefined): void {
  for (const key of Object.keys(variables ?? {}))
    if (key.startsWith('PREVIEW_')) throw invalidArgument(`variables.${key}: PREVIEW_* variables are set by Hutch`);
}

/**
 * An environment's source tree on the server (`<dataDir>/environments/<id>/src`): an uploaded
 * archive extracted, or a git checkout. Only what the Compose project needs is read from it (the
 * Compose files, env files, and the paths of repository-relative binds, which are copied into the
 * services' sandboxes).
 */
const run = promisify(execFile);

/** Bounds of an uploaded archive's contents. */
export const ARCHIVE_LIMITS = { bytes: 512 * 1024 * 1024, entries: 50_000 };

/**
 * Extracts a tar (optionally gzip-compressed) into `dir`. Only regular files and directories are
 * taken: symlinks, hard links and devices are skipped (counted in the result), so nothing in the
 * tree can point outside it; absolute paths and `..` are refused by node-tar itself.
 */
export async function extractArchive(archive: Buffer, dir: string): Promise<{ files: number; skipped: number }> {
  await mkdir(dir, { recursive: true });
  let bytes = 0;
  let files = 0;
  let skipped = 0;
  let tooBig = false;
  const warnings: string[] = [];
  try {
    await pipeline(
      ReadableStream.from([archive]),
      tarExtract({
        cwd: dir,
        strict: true,
        preserveOwner: false,
        noChmod: false,
        filter: (_path: string, entry: unknown) => {
          const e = entry as ReadEntry;
          if (e.type !== 'File' && e.type !== 'OldFile' && e.type !== 'Directory') {
            skipped++;
            return false;
          }
          files++;
          bytes += e.size ?? 0;
          if (bytes > ARCHIVE_LIMITS.bytes || files > ARCHIVE_LIMITS.entries) tooBig = true;
          return !tooBig;
        },
        onwarn: (_code: string, message: string) => warnings.push(message),
      }),
    );
  } catch (err) {
    throw invalidArgument(`source.archive: not a valid tar or tar.gz archive (${(err as Error).message})`);
  }
  if (tooBig)
    throw invalidArgument(
      `source.archive: more than ${ARCHIVE_LIMITS.bytes / 1024 / 1024} MiB or ${ARCHIVE_LIMITS.entries} entries once extracted`,
    );
  if (files === 0) throw invalidArgument(`source.archive: the archive is empty${warnings.length ? ` (${warnings[0]})` : ''}`);
  return { files, skipped };
}

export interface GitOptions {
  /** Allow file:// URLs (and plain paths): reads repositories on the server's own disk. Tests and single-user setups only. */
  allowFileUrls: boolean;
  timeoutMs?: number;
}

// No ssh://: ssh would use the server's own keys (it reads ~/.ssh of the server's user, whatever HOME says).
const GIT_URL = /^(https?|git):\/\/[^\s]+$|^file:\/\/\/[^\s]+$/;

/**
 * Fetches `ref` (a branch, tag or commit) of `url` into `dir` and checks it out; returns the
 * commit. Git runs without the server's own configuration or credentials (credentials belong in
 * the URL) and never prompts; file:// URLs only when the server allows them.
 */
export async function fetchGit(url: string, ref: string, dir: string, options: GitOptions): Promise<{ sha: string }> {
  if (!GIT_URL.test(url))
    throw invalidArgument('source.git.url: must be an https://, http:// or git:// URL (credentials, if any, in the URL)');
  if (url.startsWith('file://') && !options.allowFileUrls)
    throw invalidArgument('source.git.url: file:// URLs are not allowed on this server (hutch server --git-allow-file-urls)');
  if (!/^[A-Za-z0-9._/-]{1,200}$/.test(ref) || ref.startsWith('-') || ref.includes('..'))
    throw invalidArgument('source.git.ref: must be a branch, tag or commit name');
  const protocols = ['https', 'http', 'git', ...(options.allowFileUrls ? ['file'] : [])].join(':');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ALLOW_PROTOCOL: protocols,
  };
  const timeout = options.timeoutMs ?? 300_000;
  const git = async (...args: string[]): Promise<string> => (await run('git', ['-C', dir, ...args], { env, timeout })).stdout;
  await mkdir(dir, { recursive: true });
  try {
    await git('init', '-q');
    try {
      await git('fetch', '-q', '--depth', '1', '--', url, ref);
    } catch {
      // A commit that the server will not hand out by name: fetch the branches and tags and look.
      await git('fetch', '-q', '--', url, '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*');
      await git('update-ref', 'FETCH_HEAD', `${ref}^{commit}`);
    }
    await git('-c', 'advice.detachedHead=false', 'checkout', '-q', 'FETCH_HEAD');
    return { sha: (await git('rev-parse', 'HEAD')).trim() };
  } catch (err) {
    const detail = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n').slice(-2).join(' ');
    throw invalidArgument(`source.git: could not fetch ${ref} from ${redactUrlCredentials(url)}: ${detail}`);
  }
}

/** A path of the project on the host, refusing anything that resolves outside it (symlinks). */
export async function insideProject(root: string, rel: string, field: string): Promise<string> {
  const base = await realpath(root);
  let real: string;
  try {
    real = await realpath(join(base, rel));
  } catch {
    throw invalidArgument(`${field}: "./${rel}" does not exist in the project`);
  }
  if (real !== base && !real.startsWith(base + sep)) throw invalidArgument(`${field}: "./${rel}" resolves outside the project`);
  return real;
}

/**
 * A tar stream of a directory's contents for copying into a sandbox. Ownership is left out (the
 * sandbox side extracts as its root); symlinks are kept as links, never followed.
 */
export function packForCopy(dir: string): Readable {
  return tarCreate({ cwd: dir, portable: true, follow: false, gzip: false }, ['.']) as unknown as Readable;
}
