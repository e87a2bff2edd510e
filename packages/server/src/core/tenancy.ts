import { HutchError, notFound } from './errors.js';

/**
 * The tenancy model: every object (sandbox, volume, snapshot, pool, API key) belongs to one
 * tenant, and every call is made by a `Caller` — an API key of a tenant with a role:
 *  - `admin`: every tenant (lists show all of them, `?tenant=` narrows), plus the admin routes;
 *  - `member`: its own tenant, read and write;
 *  - `read-only`: its own tenant, reads only (and nothing that hands out access, such as a PTY,
 *    a port URL or a sandbox's access token).
 * Another tenant's objects do not exist for a caller: they answer 404, exactly as unknown ids do.
 */
export const ROLES = ['read-only', 'member', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The tenant existing keys and objects belong to, created by the store migration. */
export const DEFAULT_TENANT = 'default';

const TENANT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Resource caps of a tenant (its quotas) or of one API key (its own, narrower limits). Absent: unlimited. */
export interface ResourceLimits {
  /** Sandboxes (creating, running, paused or stopped) at once. */
  maxSandboxes?: number;
  /** Sum of the cpu limits of the running sandboxes. */
  cpu?: number;
  /** Sum of the memory limits of the running sandboxes. */
  memoryMiB?: number;
  /** Storage: the sandboxes' disk quotas (a tenant's also counts its volumes' sizes). */
  diskMiB?: number;
  createsPerMinute?: number;
}

/**
 * Who makes a call: recorded on what it creates (tenant, key) and checked on everything it
 * touches. Later work (audit, usage) records the same three fields.
 */
export interface Caller {
  tenant: string;
  keyId: string;
  role: Role;
  /** The key's own limits inside its tenant's quotas (null: none). */
  limits: ResourceLimits | null;
}

/** The server itself (reaper, reconcile, tests without an API key): admin of the default tenant. */
export const SYSTEM_CALLER: Caller = { tenant: DEFAULT_TENANT, keyId: 'system', role: 'admin', limits: null };

export function isTenantName(name: string): boolean {
  return TENANT_NAME.test(name);
}

export function rank(role: Role): number {
  return ROLES.indexOf(role);
}

/** Whether the caller may see an object of `tenant` (admins see every tenant's). */
export function canSee(caller: Caller, tenant: string): boolean {
  return caller.role === 'admin' || caller.tenant === tenant;
}

/** 404 (never 403) for another tenant's object: its existence is not revealed. */
export function requireVisible(caller: Caller, tenant: string, what: string): void {
  if (!canSee(caller, tenant)) throw notFound(`${what} not found`);
}

export function requireRole(caller: Caller, min: Role, action: string): void {
  if (rank(caller.role) < rank(min))
    throw new HutchError('permission_denied', `${action} needs a key with role ${min} or above (this key is ${caller.role})`);
}

/**
 * The tenant a list is narrowed to: null (every tenant) for an admin without `?tenant=`, the
 * named one for an admin with it, the caller's own otherwise. A non-admin naming another tenant
 * gets the same 404 as a tenant that does not exist.
 */
export function listScope(caller: Caller, requested: string | undefined): string | null {
  if (requested === undefined || requested === '') return caller.role === 'admin' ? null : caller.tenant;
  return namespaceOf(caller, requested);
}

/**
 * The tenant whose namespace a named object (volume, pool) is looked up in: the caller's own,
 * or for an admin the one named by `?tenant=`.
 */
export function namespaceOf(caller: Caller, requested: string | undefined): string {
  if (requested === undefined || requested === '' || requested === caller.tenant) return caller.tenant;
  if (!isTenantName(requested)) throw new HutchError('invalid_argument', `tenant: "${requested.slice(0, 70)}" is not a tenant name`);
  if (caller.role !== 'admin') throw notFound(`tenant ${requested} not found`);
  return requested;
}
