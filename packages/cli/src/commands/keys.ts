import type { ApiKeyLimits, ApiKeyRole, Hutch } from '@hutch/sdk';
import { json, relativeTime, table } from '../format.js';

/** `hutch keys create`: prints the new key (only shown now), or all of it as JSON. */
export async function keysCreate(
  hutch: Hutch,
  opts: { name?: string; tenant?: string; role?: ApiKeyRole; e2b?: boolean; limits?: ApiKeyLimits; json: boolean },
): Promise<number> {
  const created = await hutch.keys.create({
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
    ...(opts.role !== undefined ? { role: opts.role } : {}),
    ...(opts.e2b ? { e2b: true } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  process.stdout.write(opts.json ? json(created) : `${created.key}\n`);
  if (!opts.json) process.stderr.write(`key ${created.id} (${created.tenant}, ${created.role}): store it now, it is not shown again\n`);
  return 0;
}

/** `hutch keys ls`: id, name, tenant, role, when created and last used. */
export async function keysList(hutch: Hutch, opts: { tenant?: string; json: boolean }): Promise<number> {
  const keys = await hutch.keys.list(opts.tenant !== undefined ? { tenant: opts.tenant } : {});
  if (opts.json) {
    process.stdout.write(json(keys));
    return 0;
  }
  const rows = [['ID', 'NAME', 'TENANT', 'ROLE', 'CREATED', 'LAST USED', 'LIMITS']];
  for (const k of keys)
    rows.push([
      k.id,
      k.name,
      k.tenant,
      k.role,
      relativeTime(k.createdAt),
      k.lastUsedAt ? relativeTime(k.lastUsedAt) : '-',
      describeLimits(k.limits),
    ]);
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch keys revoke`: revokes keys (their open streams close); exits 1 if one of them failed. */
export async function keysRevoke(hutch: Hutch, opts: { ids: string[] }): Promise<number> {
  let status = 0;
  for (const id of opts.ids) {
    try {
      const { closedConnections } = await hutch.keys.revoke(id);
      process.stdout.write(`${id}\n`);
      if (closedConnections > 0) process.stderr.write(`${id}: closed ${closedConnections} open connection(s)\n`);
    } catch (err) {
      process.stderr.write(`hutch: ${(err as Error).message}\n`);
      status = 1;
    }
  }
  return status;
}

/** `hutch keys limits <id>`: replaces the key's limits. */
export async function keysLimits(hutch: Hutch, opts: { id: string; limits: ApiKeyLimits | null }): Promise<number> {
  await hutch.keys.setLimits(opts.id, opts.limits);
  process.stdout.write(`${opts.id}: ${describeLimits(opts.limits)}\n`);
  return 0;
}

export function describeLimits(limits: ApiKeyLimits | null): string {
  const parts = Object.entries(limits ?? {}).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length > 0 ? parts.join(',') : 'unlimited';
}
