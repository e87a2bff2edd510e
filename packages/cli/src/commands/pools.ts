import type { Hutch, PoolInfo, PoolSpec } from '@hutch/sdk';
import { json, table } from '../format.js';

/** `hutch pool put`: defines (or replaces) a warm pool and prints its state. */
export async function poolPut(hutch: Hutch, opts: { name: string; spec: PoolSpec; json: boolean }): Promise<number> {
  const pool = await hutch.pools.put(opts.name, opts.spec);
  process.stdout.write(opts.json ? json(pool) : table(rowsOf([pool])));
  return 0;
}

/** `hutch pool ls`: one line per pool with its figures. */
export async function poolList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const pools = await hutch.pools.list();
  process.stdout.write(opts.json ? json(pools) : table(rowsOf(pools)));
  return 0;
}

/** `hutch pool rm`: removes pools; exits 1 if one of them did not exist. */
export async function poolRemove(hutch: Hutch, opts: { names: string[] }): Promise<number> {
  let status = 0;
  for (const name of opts.names) {
    if (await hutch.pools.delete(name)) process.stdout.write(`${name}\n`);
    else {
      process.stderr.write(`hutch: pool ${name} not found\n`);
      status = 1;
    }
  }
  return status;
}

function rowsOf(pools: PoolInfo[]): string[][] {
  const rows = [
    ['NAME', 'TEMPLATE', 'ISOLATION', 'CPU', 'MEMORY', 'READY', 'BOOTING', 'DESIRED', 'MIN/TARGET/MAX', 'HITS', 'MISSES', 'NOTE'],
  ];
  for (const p of pools)
    rows.push([
      p.name,
      p.spec.template,
      p.spec.isolation,
      String(p.spec.cpu),
      `${p.spec.memoryMiB} MiB`,
      String(p.size),
      String(p.starting),
      String(p.desired),
      `${p.spec.min}/${p.spec.target}/${p.spec.max}`,
      String(p.hits),
      String(p.misses),
      p.lastError ?? '',
    ]);
  return rows;
}
