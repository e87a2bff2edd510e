import type { CallOptions } from './config.js';
import { HutchError, TimeoutError } from './errors.js';
import type { Transport } from './http.js';
import { Sandbox, deleteSandbox } from './sandbox.js';
import type { SandboxCreateParams, SandboxInfo, SandboxState, TenantScope } from './types.js';

export interface SandboxCreateOptions extends SandboxCreateParams, CallOptions {}

export interface SandboxListOptions extends CallOptions, TenantScope {
  /** Only sandboxes in this state (or any of these states). */
  state?: SandboxState | SandboxState[];
  /** Only sandboxes whose metadata has every one of these key/value pairs. */
  metadata?: Record<string, string>;
}

const POLL_MS = 100;

/** `hutch.sandboxes`: create, find and list sandboxes. */
export class Sandboxes {
  /** @internal */
  constructor(private readonly transport: Transport) {}

  /**
   * Creates a sandbox and resolves once it is running. If it ends in the `error` state instead,
   * it is deleted and the call rejects with the server's reason.
   */
  async create(opts: SandboxCreateOptions = {}): Promise<Sandbox> {
    const { signal, timeoutMs, ...params } = opts;
    const started = Date.now();
    const deadline = timeoutMs ?? this.transport.config.timeoutMs;
    let info = await this.transport.json<SandboxInfo>({
      method: 'POST',
      path: '/v1/sandboxes',
      json: params,
      signal,
      timeoutMs: deadline,
    });
    const sandbox = new Sandbox(this.transport, info);
    while (info.state === 'creating') {
      const left = deadline - (Date.now() - started);
      if (left <= 0) {
        await sandbox.kill().catch(() => {});
        throw new TimeoutError('timeout', `sandbox ${info.id} was still creating after ${deadline} ms; it was deleted`);
      }
      await sleep(Math.min(POLL_MS, left), signal);
      info = await sandbox.refresh({ signal, timeoutMs: left });
    }
    if (info.state === 'error') {
      await sandbox.kill().catch(() => {});
      throw new HutchError('sandbox_failed', `sandbox ${info.id} failed to start: ${info.error ?? 'unknown reason'}`);
    }
    return sandbox;
  }

  /** Sandboxes matching the filters (all the key's tenant has by default; an admin's: every tenant's). */
  async list(opts: SandboxListOptions = {}): Promise<SandboxInfo[]> {
    const { signal, timeoutMs, state, metadata, tenant } = opts;
    const query: Record<string, string> = {};
    if (tenant !== undefined) query.tenant = tenant;
    if (state !== undefined) query.state = Array.isArray(state) ? state.join(',') : state;
    for (const [k, v] of Object.entries(metadata ?? {})) query[`metadata.${k}`] = v;
    const res = await this.transport.json<{ sandboxes: SandboxInfo[] }>({
      method: 'GET',
      path: '/v1/sandboxes',
      query,
      signal,
      timeoutMs,
    });
    return res.sandboxes;
  }

  /**
   * Deletes a sandbox by id. Idempotent: resolves `true` when this call deleted it, `false` when
   * there was no such sandbox.
   */
  kill(id: string, opts?: CallOptions): Promise<boolean> {
    return deleteSandbox(this.transport, id, opts);
  }

  /** A handle on an existing sandbox; rejects with `NotFoundError` when there is none. */
  async get(id: string, opts?: CallOptions): Promise<Sandbox> {
    const info = await this.transport.json<SandboxInfo>({
      method: 'GET',
      path: `/v1/sandboxes/${encodeURIComponent(id)}`,
      ...opts,
    });
    return new Sandbox(this.transport, info);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
