import type { Hutch, TenantInfo, TenantQuotas } from '@hutch/sdk';
import { json, relativeTime, table } from '../format.js';
import { describeLimits } from './keys.js';

/** `hutch tenant create`: creates a tenant and prints it. */
export async function tenantCreate(hutch: Hutch, opts: { name: string; quotas?: TenantQuotas; json: boolean }): Promise<number> {
  const tenant = await hutch.tenants.create(opts.name, opts.quotas ? { quotas: opts.quotas } : {});
  process.stdout.write(opts.json ? json(tenant) : table(rowsOf([tenant])));
  return 0;
}

/** `hutch tenant ls`: one line per tenant with its quotas and what it holds. */
export async function tenantList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const tenants = await hutch.tenants.list();
  process.stdout.write(opts.json ? json(tenants) : table(rowsOf(tenants)));
  return 0;
}

/** `hutch tenant quotas`: replaces a tenant's quotas. */
export async function tenantQuotas(hutch: Hutch, opts: { name: string; quotas: TenantQuotas | null; json: boolean }): Promise<number> {
  const tenant = await hutch.tenants.setQuotas(opts.name, opts.quotas);
  process.stdout.write(opts.json ? json(tenant) : `${tenant.name}: ${describeLimits(tenant.quotas)}\n`);
  return 0;
}

/** `hutch tenant rm`: deletes tenants (their keys are revoked); exits 1 if one of them failed. */
export async function tenantRemove(hutch: Hutch, opts: { names: string[]; force: boolean }): Promise<number> {
  let status = 0;
  for (const name of opts.names) {
    try {
      const { deleted } = await hutch.tenants.delete(name, { force: opts.force });
      process.stdout.write(`${name}\n`);
      const what = Object.entries(deleted)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${n} ${k}`);
      if (what.length > 0) process.stderr.write(`${name}: deleted ${what.join(', ')} (keys revoked)\n`);
    } catch (err) {
      process.stderr.write(`hutch: ${(err as Error).message}\n`);
      status = 1;
    }
  }
  return status;
}

function rowsOf(tenants: TenantInfo[]): string[][] {
  const rows = [['NAME', 'SANDBOXES', 'CPU', 'MEMORY', 'STORAGE', 'KEYS', 'QUOTAS', 'CREATED']];
  for (const t of tenants)
    rows.push([
      t.name,
      String(t.usage.sandboxes),
      String(t.usage.cpu),
      `${t.usage.memoryMiB} MiB`,
      `${t.usage.diskMiB} MiB`,
      String(t.usage.keys),
      describeLimits(t.quotas),
      relativeTime(t.createdAt),
    ]);
  return rows;
}
