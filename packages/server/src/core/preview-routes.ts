import { parseServiceLabel } from '../environments/preview-host.js';
import type { EnvironmentStore } from './environment.js';
import { notFound } from './errors.js';

/**
 * Per-service hosts (`{service}--{slug}.{preview-domain}`, `{service}-{port}--{slug}…`) to the
 * sandbox and port they stand for, looked up at each request: the environment's current sandbox of
 * that service (a redeploy may replace it; the host stays). Only the service's routes are served.
 */
export class PreviewRoutes {
  constructor(private readonly store: EnvironmentStore) {}

  /** The sandbox and port behind a host's first label; a 404 when it names nothing. */
  async resolve(label: string): Promise<{ sandboxId: string; port: number }> {
    const parts = parseServiceLabel(label);
    const unknown = notFound(`no environment service at ${label.slice(0, 63)}`);
    if (!parts) throw unknown;
    const record = await this.store.bySlug(parts.slug);
    if (!record) throw unknown;
    // A service name first (names may end in -<digits>), then `<service>-<port>`.
    const exact = record.services.find((s) => s.name === parts.service);
    if (exact) {
      const first = exact.routes[0];
      if (!first) throw unknown;
      return { sandboxId: exact.sandboxId, port: first.port };
    }
    const withPort = /^(.+)-(\d{1,5})$/.exec(parts.service);
    if (withPort) {
      const service = record.services.find((s) => s.name === withPort[1]);
      const port = Number(withPort[2]);
      if (service?.routes.some((r) => r.port === port)) return { sandboxId: service.sandboxId, port };
    }
    throw unknown;
  }
}
