import { z } from 'zod';
import { invalidArgument } from '../core/errors.js';
import { normalizeEgressPolicy, type EgressPolicy } from '../core/network.js';

/**
 * Hutch's own settings in a Compose file, under the `x-hutch` extension key (Compose guarantees
 * other tools ignore `x-` keys, so the file still runs with `docker compose up`). Two places:
 *
 *   x-hutch:                      # top level: the whole environment
 *     templates:                  #   image reference → Hutch template (overrides the catalog)
 *       ghcr.io/acme/api:1: base
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
 * releases (triggers, TTLs, seeding) are refused the same way until they exist.
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

const EnvironmentSettingsSchema = z
  .object({
    templates: z.record(z.string().min(1).max(255), TEMPLATE).optional(),
  })
  .strict();

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

export function parseEnvironmentXHutch(node: unknown): { templates: Record<string, string> } {
  if (node === undefined || node === null) return { templates: {} };
  const parsed = EnvironmentSettingsSchema.safeParse(node);
  if (!parsed.success) fail('x-hutch', parsed.error);
  return { templates: parsed.data.templates ?? {} };
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
