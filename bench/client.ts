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

export class Api {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private readonly target: URL;

  constructor(
    url: string,
    private readonly key: string,
  ) {
    this.target = new URL(url);
  }

  close(): void {
    this.agent.destroy();
  }

  /** Sends one request; resolves with the parsed body of a 2xx, rejects with ApiError otherwise. */
  call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const what = `${method} ${path}`;
    return new Promise<T>((resolve, reject) => {
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
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(parsed as T);
          else reject(new ApiError(status, parsed, what));
        });
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${what}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
