import type { FastifyRequest, RouteOptions } from 'fastify';
import { type Caller, namespaceOf, type Role, requireRole } from '../core/tenancy.js';
import type { Services } from './services.js';

/**
 * Authorization of a request, in one place for every route: the caller's role must allow the
 * method (reads: any role; anything else: member or admin; a route may ask for more with
 * `config.minRole`), and the object named by the route's parameters must belong to the caller's
 * tenant (admins: any tenant) — another tenant's object is a 404, exactly as an unknown id. It runs
 * right after authentication, before a body is read. Routes whose parameters name an object must
 * be listed below: `checkRoute` refuses to register one that is not (fail closed).
 */
declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role the route needs (default: read-only for GET, member otherwise). */
    minRole?: Role;
    /** A webhook receiver: authenticated by the delivery's signature, not by an API key. */
    webhook?: boolean;
  }
}

type Params = Record<string, string | undefined>;

/** Route patterns whose parameters name a tenant's object, and how to check the caller may see it. */
const OBJECT_RULES: Array<{ pattern: RegExp; check: (s: Services, c: Caller, p: Params) => Promise<unknown> }> = [
  // /v1/sandboxes/:id/… and the E2B control plane's /sandboxes/:id/…, /v2/sandboxes/:id/…
  { pattern: /^(\/v[12])?\/sandboxes\/:id(\/|$)/, check: (s, c, p) => s.sandboxes.getFor(c, p.id ?? '') },
  { pattern: /^\/v1\/snapshots\/:snapshotId$/, check: (s, c, p) => s.snapshots.getFor(c, p.snapshotId ?? '') },
  // E2B deletes snapshots as templates.
  { pattern: /^\/templates\/:templateID$/, check: (s, c, p) => s.snapshots.getFor(c, p.templateID ?? '') },
  { pattern: /^\/v1\/keys\/:id(\/|$)/, check: (s, c, p) => s.keys.get(c, p.id ?? '') },
  { pattern: /^\/v1\/environments\/:id(\/|$)/, check: (s, c, p) => s.environments.visible(c, p.id ?? '') },
  { pattern: /^\/v1\/hooks\/projects\/:id$/, check: (s, c, p) => s.hooks.project(c, p.id ?? '') },
];

/** Routes whose parameter is a name in the caller's tenant (or `?tenant=` for admins), resolved by the handler. */
const NAMESPACED: RegExp[] = [
  /^\/v1\/(volumes|pools|secrets)\/:name$/,
  /^\/v1\/volumes\/:name\/snapshots(\/:snapshot)?$/,
  /^\/v1\/admin\/tenants\/:name(\/|$)/,
];

/** The role a method needs unless the route says otherwise. */
function roleFor(method: string, configured: Role | undefined): Role {
  if (configured) return configured;
  return method === 'GET' || method === 'HEAD' ? 'read-only' : 'member';
}

export async function authorize(services: Services, req: FastifyRequest, caller: Caller): Promise<void> {
  const url = req.routeOptions.url;
  if (url === undefined) return; // no such route: the not-found handler answers
  const role = roleFor(req.method, req.routeOptions.config.minRole);
  requireRole(caller, role, `${req.method} ${url}`);
  const rule = OBJECT_RULES.find((r) => r.pattern.test(url));
  if (rule) await rule.check(services, caller, req.params as Params);
}

/** The tenant a named object is created in (`?tenant=` for admins), which must exist. */
export async function creationNamespace(services: Services, caller: Caller, requested: string | undefined): Promise<string> {
  const tenant = namespaceOf(caller, requested);
  if (tenant !== caller.tenant) await services.tenants.require(tenant);
  return tenant;
}

/** Throws at registration for a route that names an object without a tenancy rule. */
export function checkRoute(route: RouteOptions): void {
  const url = route.url;
  if (!url.includes(':')) return;
  if (OBJECT_RULES.some((r) => r.pattern.test(url)) || NAMESPACED.some((r) => r.test(url))) return;
  throw new Error(`route ${url} names an object but api/access.ts has no tenancy rule for it`);
}
