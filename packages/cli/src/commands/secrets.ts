import { readFile } from 'node:fs/promises';
import type { Hutch } from '@hutch/sdk';
import { CliError } from '../fail.js';
import { bytes, json, relativeTime, table } from '../format.js';
import type { SecretSource } from '../invocation.js';

/** The value of `hutch secret put`: the flag, a file as is, or stdin without one trailing newline. */
async function readValue(source: SecretSource): Promise<string> {
  if (source.kind === 'value') return source.value;
  if (source.kind === 'file') {
    try {
      return await readFile(source.path, 'utf8');
    } catch (err) {
      throw new CliError(`--from-file ${source.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (process.stdin.isTTY)
    throw new CliError('give the value with --value or --from-file, or on stdin (e.g. `printf %s "$TOKEN" | hutch secret put NAME`)');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** `hutch secret put`: prints the name (or the metadata as JSON); never the value. */
export async function secretPut(
  hutch: Hutch,
  opts: { name: string; source: SecretSource; tenant?: string; json: boolean },
): Promise<number> {
  const value = await readValue(opts.source);
  const result = await hutch.secrets.put(opts.name, value, opts.tenant !== undefined ? { tenant: opts.tenant } : {});
  process.stdout.write(opts.json ? json(result) : `${result.name}\n`);
  return 0;
}

/** `hutch secret ls`: a table, or a JSON array. */
export async function secretList(hutch: Hutch, opts: { tenant?: string; json: boolean }): Promise<number> {
  const secrets = await hutch.secrets.list(opts.tenant !== undefined ? { tenant: opts.tenant } : {});
  if (opts.json) {
    process.stdout.write(json(secrets));
    return 0;
  }
  const rows = [['NAME', 'TENANT', 'SIZE', 'CREATED', 'UPDATED']];
  for (const s of secrets) rows.push([s.name, s.tenant, bytes(s.sizeBytes), relativeTime(s.createdAt), relativeTime(s.updatedAt)]);
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch secret rm`: deletes each secret, printing the ones deleted; fails (1) if any was unknown. */
export async function secretRemove(hutch: Hutch, opts: { names: string[]; tenant?: string }): Promise<number> {
  let status = 0;
  for (const name of opts.names) {
    try {
      if (await hutch.secrets.delete(name, opts.tenant !== undefined ? { tenant: opts.tenant } : {})) process.stdout.write(`${name}\n`);
      else {
        process.stderr.write(`hutch: no secret named ${name}\n`);
        status = 1;
      }
    } catch (err) {
      process.stderr.write(`hutch: ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}
