import { z } from 'zod';
import { invalidArgument } from '../core/errors.js';
import { normalizeEgressPolicy, type EgressPolicy } from '../core/network.js';
import { parseTtl } from './ttl.js';

/**
 * Hutch's own settings in a Compose file, under the `x-hutch` extension key (Compose guarantees
 * other tools ignore `x-` keys, so the file still runs with `docker compose up`). Two places:
 *
 *   x-hutch:                      # top level: the whole environment
 *     templates:                  #   image reference → Hutch template (overrides the catalog)
 *       ghcr.io/acme/api:1: base
 *     ttl:                        #   idle → sleep, then → delete (default: the server's; "off")
 *       idle: 30m
 *       delete: 72h
 *     seed:                       #   golden seed snapshot: the seed job runs once per base branch
 *       strategy: snapshot        #     and its volume is copied into later environments
 *       volume: db-data
 *       job: seed
 *   services:
 *     api:
 *       x-hutch:                  # one service
 *         template: base          #   run this service on this template (no catalog version check)
 *         routes: [8000]          #   the ports that get URLs (default: ports + expose)
 *         public: true            #   routes reachable without a token (default: private)
 *         egress: open            #   beyond the environment's network: none (default), open, {allow: [...]}
 *         cpu: 1                  #   resources of the service's sandbox
 *         memoryMiB: 512
 *         diskMiB: 2048
 *
 * Unknown keys are refused (naming them), so a typo is not silently ignored; settings of later
 * releases (triggers, fork policy) are refused the same way until they exist.
 */
const TEMPLATE = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be a template or snapshot name');
const PORT = z.number().int().min(1).max(65535);

const ServiceSettingsSchema = z
  .object({
    template: TEMPLATE.optional(),
    routes: z.array(PORT).max(64).optional(),
    public: z.boolean().optional(),
    egress: z.unknown().optional(),
    cpu: z.number().positive().max(64).optional(),
    memoryMiB: z.number().int().min(16).max(262144).optional(),
    diskMiB: z.number().int().min(64).max(1048576).optional(),
  })
  .strict();

const DURATION = z.union([z.string().max(32), z.number()]);

const EnvironmentSettingsSchema = z
  .object({
    templates: z.record(z.string().min(1).max(255), TEMPLATE).optional(),
    ttl: z.object({ idle: DURATION.optional(), delete: DURATION.optional() }).strict().optional(),
    seed: z
      .object({
        strategy: z.enum(['snapshot', 'job']),
        volume: z.string().min(1).max(63),
        job: z.string().min(1).max(63),
      })
      .strict()
      .optional(),
  })
  .strict();

/** The top-level settings: TTLs in ms (null: the server's default, 0: off). */
export interface EnvironmentXHutch {
  templates: Record<string, string>;
  ttl: { idleMs: number | null; deleteMs: number | null };
  seed: { strategy: 'snapshot' | 'job'; volume: string; job: string } | null;
}

export interface ServiceXHutch {
  template?: string;
  routes?: number[];
  public?: boolean;
  egress?: EgressPolicy;
  cpu?: number;
  memoryMiB?: number;
  diskMiB?: number;
}

function fail(where: string, error: z.ZodError): never {
  const issue = error.issues[0];
  const path = issue?.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('') ?? '';
  const message =
    issue?.code === 'unrecognized_keys'
      ? `unknown setting${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (see docs/environments.md)`
      : (issue?.message ?? 'is invalid');
  throw invalidArgument(`${where}${path}: ${message}`);
}

export function parseEnvironmentXHutch(node: unknown): EnvironmentXHutch {
  if (node === undefined || node === null) return { templates: {}, ttl: { idleMs: null, deleteMs: null }, seed: null };
  const parsed = EnvironmentSettingsSchema.safeParse(node);
  if (!parsed.success) fail('x-hutch', parsed.error);
  const { ttl, seed, templates } = parsed.data;
  return {
    templates: templates ?? {},
    ttl: {
      idleMs: ttl?.idle === undefined ? null : parseTtl(ttl.idle, 'x-hutch.ttl.idle'),
      deleteMs: ttl?.delete === undefined ? null : parseTtl(ttl.delete, 'x-hutch.ttl.delete'),
    },
    seed: seed ?? null,
  };
}

export function parseServiceXHutch(node: unknown, service: string): ServiceXHutch {
  if (node === undefined || node === null) return {};
  const where = `services.${service}.x-hutch`;
  const parsed = ServiceSettingsSchema.safeParse(node);
  if (!parsed.success) fail(where, parsed.error);
  const { egress, ...rest } = parsed.data;
  const out: ServiceXHutch = { ...rest } as ServiceXHutch;
  if (egress !== undefined) out.egress = normalizeEgressPolicy(egress, `${where}.egress`);
  return out;
}
