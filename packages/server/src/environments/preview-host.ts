/**
 * Per-service preview hosts: one DNS label per service, so one wildcard certificate
 * (`*.{preview-domain}`) covers every service of every environment:
 *
 *   {service}--{slug}.{preview-domain}          the service's first route
 *   {service}-{port}--{slug}.{preview-domain}   another of its routes
 *
 * The slug is `pr-<n>--<project>` for a pull request's environment, else the environment's name,
 * else its id. A label is at most 63 characters of a-z, 0-9 and `-`; the slug is shortened to fit
 * the environment's longest service name with a port (a shortened slug may collide with another
 * environment's: the environment service then falls back to the id).
 */
export const MAX_LABEL = 63;
const SEPARATOR = '--';
/** `-65535`: room kept in the label for a port. */
const PORT_ROOM = 6;

/** Lower case, runs of anything but a-z 0-9 as one `-`, no `-` at either end. */
export function toLabel(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export interface SlugInput {
  id: string;
  name: string | null;
  prNumber: number | null;
  project: string | null;
  /** The environment's service names (the longest decides how long the slug may be). */
  services: string[];
}

/** The environment's slug, fitted to its service names (null when no label fits even the id). */
export function environmentSlug(input: SlugInput): string {
  const base =
    input.prNumber !== null && input.project
      ? `pr-${input.prNumber}${SEPARATOR}${toLabel(input.project)}`
      : input.name
        ? toLabel(input.name)
        : input.id;
  const longest = Math.max(0, ...input.services.map((s) => s.length));
  const room = MAX_LABEL - longest - PORT_ROOM - SEPARATOR.length;
  const slug = base.slice(0, room).replace(/-+$/g, '');
  return slug.length > 0 ? slug : input.id;
}

/** The first DNS label of a service's route host (`port` null: its first route). */
export function serviceLabel(service: string, slug: string, port: number | null): string {
  return `${service}${port === null ? '' : `-${port}`}${SEPARATOR}${slug}`;
}

/** Whether a service gets per-service hosts: its name has no `--` and its label fits. */
export function hasServiceHost(service: string, slug: string): boolean {
  return !service.includes(SEPARATOR) && `${service}-65535${SEPARATOR}${slug}`.length <= MAX_LABEL;
}

/**
 * The parts of a preview host's first label: the service part (a service name, or a service name
 * and `-<port>`: the caller tries both) and the slug. null when it is not one.
 */
export function parseServiceLabel(label: string): { service: string; slug: string } | null {
  const at = label.indexOf(SEPARATOR);
  if (at <= 0 || label.length > MAX_LABEL || !/^[a-z0-9-]+$/.test(label)) return null;
  const slug = label.slice(at + SEPARATOR.length);
  return slug.length > 0 ? { service: label.slice(0, at), slug } : null;
}
