import type { ApiKeyLimits, Hutch } from '@hutch/sdk';
import { json, relativeTime, table } from '../format.js';

/** `hutch keys create`: prints the new key (only shown now), or all of it as JSON. */
export async function keysCreate(
  hutch: Hutch,
  opts: { name: string; e2b?: boolean; limits?: ApiKeyLimits; json: boolean },
): Promise<number> {
  const created = await hutch.keys.create(opts.name, {
    ...(opts.e2b ? { e2b: true } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  process.stdout.write(opts.json ? json(created) : `${created.key}\n`);
  return 0;
}

/** `hutch keys ls`: id, name, when created and last used. */
export async function keysList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const keys = await hutch.keys.list();
  if (opts.json) {
    process.stdout.write(json(keys));
    return 0;
  }
  const rows = [['ID', 'NAME', 'CREATED', 'LAST USED', 'LIMITS']];
  for (const k of keys)
    rows.push([k.id, k.name, relativeTime(k.createdAt), k.lastUsedAt ? relativeTime(k.lastUsedAt) : '-', describeLimits(k.limits)]);
  process.stdout.write(table(rows));
  return 0;
}

/** `hutch keys limits <id>`: replaces the key's limits. */
export async function keysLimits(hutch: Hutch, opts: { id: string; limits: ApiKeyLimits | null }): Promise<number> {
  await hutch.keys.setLimits(opts.id, opts.limits);
  process.stdout.write(`${opts.id}: ${describeLimits(opts.limits)}\n`);
  return 0;
}

function describeLimits(limits: ApiKeyLimits | null): string {
  const parts = Object.entries(limits ?? {}).map(([k, v]) => `${k}=${String(v)}`);
  return parts.length > 0 ? parts.join(',') : 'unlimited';
}
