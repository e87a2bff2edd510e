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
export interface ServicePlan {
  name: string;
  template: string;
  argv: string[];
  env: Record<string, string>;
  /** null: the template's default user. */
  user: string | null;
  workingDir: string | null;
  healthcheck: HealthcheckSpec | null;
  contract: ImageContract | null;
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

/** The template and contract of a service: x-hutch's template, the environment's mapping, or the catalog. */
function templateOf(service: ServiceSpec, model: EnvironmentModel): { template: string; contract: ImageContract | null } {
  const field = `services.${service.name}`;
  if (service.source.kind === 'build')
    throw invalidArgument(
      `${field}.build: building images is not supported yet; use an image from the catalog or map the service to a template with ${field}.x-hutch.template`,
    );
  const image = service.source.image;
  const explicit = service.settings.template ?? model.settings.templates[image] ?? null;
  if (explicit !== null) return { template: explicit, contract: contractForTemplate(explicit, image) };
  const contract = catalogEntryFor(image, `${field}.image`);
  return { template: contract.template, contract };
}

export function planService(service: ServiceSpec, model: EnvironmentModel, injected: Record<string, string>): ServicePlan {
  const field = `services.${service.name}`;
  const { template, contract } = templateOf(service, model);
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
