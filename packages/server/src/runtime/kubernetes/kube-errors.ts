import { ApiException } from '@kubernetes/client-node';
import { HutchError } from '../../core/errors.js';

/**
 * Kubernetes API failures as Hutch errors, mapped here and nowhere else: 404 not_found, 409
 * conflict, 422 invalid_argument (the API server refused the object), 429 and quota refusals
 * resource_exhausted (with Retry-After), 5xx and transport errors unavailable.
 */
export function kubeError(what: string, err: unknown): HutchError {
  if (err instanceof HutchError) return err;
  const code = err instanceof ApiException ? err.code : undefined;
  const detail = apiMessage(err);
  const message = `kubernetes: ${what}: ${detail}`;
  if (code === 404) return new HutchError('not_found', message, { cause: err });
  if (code === 409) return new HutchError('conflict', message, { cause: err });
  if (code === 422 || code === 400) return new HutchError('invalid_argument', message, { cause: err });
  if (code === 429 || (code === 403 && /exceeded quota/i.test(detail)))
    return new HutchError('resource_exhausted', message, { cause: err, retryAfterSeconds: retryAfter(err) ?? 5 });
  if (code === 401 || code === 403) return new HutchError('internal', `${message} (check the server's RBAC permissions)`, { cause: err });
  return new HutchError('unavailable', message, { cause: err, retryAfterSeconds: 5 });
}

/** The API server's own message (a Status object's `message`), else the error's. */
function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    try {
      const status = (typeof body === 'string' ? JSON.parse(body) : body) as { message?: unknown };
      if (typeof status?.message === 'string') return `${status.message} (HTTP ${err.code})`;
    } catch {
      /* not JSON */
    }
    return `HTTP ${err.code}`;
  }
  return (err as Error)?.message ?? String(err);
}

function retryAfter(err: unknown): number | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const value = Number(err.headers?.['retry-after']);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** Whether a call may be retried as is: throttled (429) or the API server briefly unavailable. */
export function retryable(err: unknown): boolean {
  if (err instanceof ApiException) return err.code === 429 || err.code >= 500;
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT';
}

/**
 * Runs an idempotent API call, retrying throttling and transient failures a few times with
 * backoff (at most ~3 s in all), then maps the failure.
 */
export async function withRetry<T>(what: string, call: () => Promise<T>): Promise<T> {
  const delays = [200, 800, 2000];
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= delays.length || !retryable(err)) throw kubeError(what, err);
      await new Promise((r) => setTimeout(r, retryAfterMs(err) ?? delays[attempt]));
    }
  }
}

function retryAfterMs(err: unknown): number | undefined {
  const seconds = retryAfter(err);
  return seconds === undefined ? undefined : Math.min(seconds, 5) * 1000;
}
