import type { CallOptions } from './config.js';
import type { Transport } from './http.js';
import type { TemplateInfo } from './types.js';

/** `hutch.templates`: the root filesystems sandboxes are created from. */
export class Templates {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /** Every template the server knows, with its build state. */
  async list(opts?: CallOptions): Promise<TemplateInfo[]> {
    const res = await this.transport.json<{ templates: TemplateInfo[] }>({ method: 'GET', path: '/v1/templates', ...opts });
    return res.templates;
  }
}
