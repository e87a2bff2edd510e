import { Hutch } from '@hutch/sdk';
import type { Connection } from './invocation.js';

/** The SDK client for the global --url / --api-key options (else env and defaults, as the SDK). */
export function client(connection: Connection, timeoutMs?: number): Hutch {
  return new Hutch({ url: connection.url, apiKey: connection.apiKey, timeoutMs });
}
