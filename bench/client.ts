import http from 'node:http';

/**
 * A minimal keep-alive JSON client for the REST API over node:http (what the SDK uses too;
 * not fetch), so the client adds as little as possible to the round trips being measured.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    what: string,
  ) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
    super(`${what} → ${status}${err ? ` ${err.code}: ${err.message}` : ''}`);
    this.name = 'ApiError';
  }
}

export interface RawAnswer<T> {
  status: number;
  body: T;
  retryAfter: string | null;
}

export class Api {
  private readonly agent: http.Agent;
  private readonly target: URL;

  /** `maxSockets`: requests in flight at once (the load bench's burst needs many). */
  constructor(
    url: string,
    private readonly key: string,
    maxSockets = 4,
  ) {
    this.target = new URL(url);
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  close(): void {
    this.agent.destroy();
  }

  /** Sends one request; resolves with the parsed body of a 2xx, rejects with ApiError otherwise. */
  async call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
    const answer = await this.request<T>(method, path, body, timeoutMs);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    throw new ApiError(answer.status, answer.body, `${method} ${path}`);
  }

  /** Sends one request; resolves with whatever status came back (rejects only when none did). */
  request<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<RawAnswer<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const what = `${method} ${path}`;
    return new Promise<RawAnswer<T>>((resolve, reject) => {
      const req = http.request({ host: this.target.hostname, port: this.target.port, method, path, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          if (text && (res.headers['content-type'] ?? '').includes('json')) {
            try {
              parsed = JSON.parse(text);
            } catch {
              /* keep the text */
            }
          }
          const retryAfter = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, body: parsed as T, retryAfter: typeof retryAfter === 'string' ? retryAfter : null });
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${what}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
