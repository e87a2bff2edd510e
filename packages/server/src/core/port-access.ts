import { createHmac, timingSafeEqual } from 'node:crypto';
import { isPortPublic } from './network.js';
import type { SandboxRecord } from './sandbox.js';

/**
 * Who may use a sandbox's ports through the ingress. Ports are private unless the sandbox (or
 * the port) is public; a private port needs the API key, the sandbox's access token, or a signed
 * token `<expiry>.<signature>` (HMAC-SHA256 keyed by the access token over id, port and expiry),
 * like Daytona's preview tokens: it can be handed to a browser without revealing any key.
 */
export const MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600;

function signature(record: SandboxRecord, port: number, expiresAt: number): string {
  return createHmac('sha256', record.accessToken).update(`hutch-port:${record.id}:${port}:${expiresAt}`).digest('base64url');
}

export function signPortToken(
  record: SandboxRecord,
  port: number,
  expiresInSeconds: number,
  now = Date.now(),
): { token: string; expiresAt: Date } {
  const expiresAt = Math.floor(now / 1000) + expiresInSeconds;
  return { token: `${expiresAt}.${signature(record, port, expiresAt)}`, expiresAt: new Date(expiresAt * 1000) };
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Valid, unexpired signed token for this sandbox and port. */
export function verifyPortToken(record: SandboxRecord, port: number, token: string, now = Date.now()): boolean {
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match || record.accessToken.length === 0) return false;
  const expiresAt = Number(match[1]);
  if (expiresAt * 1000 <= now) return false;
  return sameSecret(match[2]!, signature(record, port, expiresAt));
}

export function verifyAccessToken(record: SandboxRecord, token: string): boolean {
  return record.accessToken.length > 0 && sameSecret(token, record.accessToken);
}

export { isPortPublic };

/** Host routing settings (`hutch server --domain`): ports are `<port>-<id>.<host>`. */
export interface PortDomain {
  scheme: string;
  host: string;
  port: number | null;
}

/**
 * The ingress URL of a sandbox port (without a token): host routing with a domain, else path
 * routing under `origin` (the server's own URL as the client reached it).
 */
export function portUrl(domain: PortDomain | null, origin: string, id: string, port: number): string {
  if (domain) return `${domain.scheme}://${port}-${id}.${domain.host}${domain.port ? `:${domain.port}` : ''}/`;
  return `${origin}/v1/sandboxes/${id}/ports/${port}/`;
}
