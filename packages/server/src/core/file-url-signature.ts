import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Signed file URLs, as E2B's SDK makes them (`uploadUrl()` / `downloadUrl()`): the signature is
 * `v1_` + base64(sha256("<path>:<read|write>:<user>:<token>[:<expiration>]")) without padding,
 * where `token` is the sandbox's envd access token and `expiration` a unix time in seconds.
 */
export interface SignedFileRequest {
  path: string;
  operation: 'read' | 'write';
  user: string;
  signature: string;
  /** Unix seconds, as given in the URL; null when the URL does not expire. */
  expiration: string | null;
}

/** Why a signed URL cannot be used whatever its sandbox, or null when it is still valid. */
export function signedFileUrlProblem(req: SignedFileRequest, nowMs = Date.now()): string | null {
  if (req.expiration === null) return null;
  const at = Number(req.expiration);
  if (!Number.isInteger(at)) return 'signature_expiration: not a unix time';
  return at * 1000 < nowMs ? 'the signed URL has expired' : null;
}

/** Whether `token` made the request's signature (constant time in the signature). */
export function signedBy(req: SignedFileRequest, token: string): boolean {
  const raw = `${req.path}:${req.operation}:${req.user}:${token}${req.expiration !== null ? `:${req.expiration}` : ''}`;
  const expected = Buffer.from(`v1_${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`);
  const given = Buffer.from(req.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
