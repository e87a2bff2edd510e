/**
 * One error type for the whole server, classified by kind (as containerd's errdefs do).
 * Services throw HutchError; the HTTP adapter maps a kind to a status in exactly one table.
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'tier_unavailable'
  | 'resource_exhausted'
  | 'internal'
  | 'unavailable';

export class HutchError extends Error {
  readonly kind: ErrorKind;
  /** Seconds a client should wait before retrying (resource_exhausted, unavailable). */
  readonly retryAfterSeconds?: number;
  /**
   * Why admission refused (a quota, the create queue or the node's capacity), as a short fixed
   * code such as `tenant_quota_cpu` or `node_memory`: a metrics label, never shown to clients.
   */
  readonly admissionReason?: string;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown; retryAfterSeconds?: number; admissionReason?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HutchError';
    this.kind = kind;
    if (options?.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
    if (options?.admissionReason !== undefined) this.admissionReason = options.admissionReason;
  }
}

export const invalidArgument = (message: string): HutchError => new HutchError('invalid_argument', message);
export const notFound = (message: string): HutchError => new HutchError('not_found', message);
export const conflict = (message: string): HutchError => new HutchError('conflict', message);
export const internal = (message: string, cause?: unknown): HutchError => new HutchError('internal', message, { cause });

export function isHutchError(err: unknown): err is HutchError {
  return err instanceof HutchError;
}

/**
 * Whether a store write failed on a unique key (a concurrent create of the same name): SQLite
 * says `SQLITE_CONSTRAINT_UNIQUE` / `…_PRIMARYKEY`, PostgreSQL SQLSTATE 23505.
 */
export function isDuplicateKey(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
