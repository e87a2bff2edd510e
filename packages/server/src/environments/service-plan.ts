import { parse as shellWords } from 'shell-quote';
import { invalidArgument } from '../core/errors.js';
import { catalogEntryFor, contractForTemplate, type ImageContract } from './image-catalog.js';
import type { CommandSpec, EnvironmentModel, HealthcheckSpec, ServiceSpec } from './model.js';

/**
 * How one service runs on Hutch: its template, the argv of its main process, env, user, working
 * directory and healthcheck, after the image's contract (image-catalog.ts) and the Compose
 * service's own settings are combined the way Docker combines an image with a container's:
 * - `entrypoint` set in Compose replaces the image's and clears its default command;
 * - `command` replaces the image's default command and is appended to the entrypoint;
 * - a string runs under `/bin/sh -c` — except a string `command` passed to an entrypoint, which
 *   is split into words (as `docker compose` does; no shell runs between them);
 * - the service's `environment` goes over the image's env.
 */
/** What a plan needs of an image: a catalog entry's contract, or a built image's (user null: the template's default). */
export type PlanContract = Omit<ImageContract, 'repository' | 'version' | 'template' | 'user'> & { user: string | null };

/** A `build:` section turned into a template to build from and the built image's contract. */
export interface BuiltImage {
  /** Shown until the image is built (its snapshot id replaces it). */
  placeholder: string;
  contract: PlanContract;
}

export interface ServicePlan {
  name: string;
  template: string;
  argv: string[];
  env: Record<string, string>;
  /** null: the template's default user. */
  user: string | null;
  workingDir: string | null;
  healthcheck: HealthcheckSpec | null;
  contract: PlanContract | null;
}

function argvOf(spec: CommandSpec): string[] {
  return 'argv' in spec ? spec.argv : ['/bin/sh', '-c', spec.shell];
}

/** A string command given to an entrypoint: words, as Compose splits it. */
function words(text: string, field: string): string[] {
  const out: string[] = [];
  // Variables stay as written (Compose interpolated the file already; no shell runs here).
  for (const token of shellWords(text, (name) => `$${name}`)) {
    if (typeof token !== 'string')
      throw invalidArgument(
        `${field}: a string command given to an entrypoint is split into words (as docker compose does) and cannot contain shell operators; use the list form, e.g. ["sh", "-c", "…"]`,
      );
    out.push(token);
  }
  return out;
}

/**
 * The template and contract of a service: x-hutch's template, the environment's mapping, the
 * built image of its `build:` section, or the catalog.
 */
function templateOf(
  service: ServiceSpec,
  model: EnvironmentModel,
  built: BuiltImage | undefined,
): { template: string; contract: PlanContract | null } {
  const field = `services.${service.name}`;
  if (service.settings.template !== null)
    return {
      template: service.settings.template,
      contract: contractForTemplate(service.settings.template, service.source.kind === 'image' ? service.source.image : null),
    };
  if (service.source.kind === 'build') {
    if (!built) throw invalidArgument(`${field}.build: the image was not prepared`);
    return { template: built.placeholder, contract: built.contract };
  }
  const image = service.source.image;
  const explicit = model.settings.templates[image] ?? null;
  if (explicit !== null) return { template: explicit, contract: contractForTemplate(explicit, image) };
  const contract = catalogEntryFor(image, `${field}.image`);
  return { template: contract.template, contract };
}

export function planService(
  service: ServiceSpec,
  model: EnvironmentModel,
  injected: Record<string, string>,
  built?: BuiltImage,
): ServicePlan {
  const field = `services.${service.name}`;
  const { template, contract } = templateOf(service, model, built);
  let argv: string[];
  if (service.entrypoint && 'shell' in service.entrypoint) {
    // Docker's shell-form entrypoint ignores the command.
    argv = argvOf(service.entrypoint);
  } else {
    const entrypoint = service.entrypoint ? argvOf(service.entrypoint) : (contract?.entrypoint ?? []);
    const command = service.command
      ? entrypoint.length > 0 && 'shell' in service.command
        ? words(service.command.shell, `${field}.command`)
        : argvOf(service.command)
      : service.entrypoint
        ? []
        : (contract?.command ?? []);
    argv = [...entrypoint, ...command];
  }
  if (argv.length === 0) throw invalidArgument(`${field}: no command to run (the template ${template} has no default one); set command`);
  return {
    name: service.name,
    template,
    argv,
    env: { ...(contract?.env ?? {}), ...service.environment, ...injected },
    user: service.user ?? contract?.user ?? null,
    workingDir: service.workingDir ?? contract?.workingDir ?? null,
    healthcheck: service.healthcheck === 'disabled' ? null : (service.healthcheck ?? contract?.healthcheck ?? null),
    contract,
  };
}
