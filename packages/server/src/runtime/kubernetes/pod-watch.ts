import { type CoreV1Api, type Informer, type KubeConfig, makeInformer, type ObjectCache, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../core/logger.js';
import { LABELS } from './pod-spec.js';

/** What the provider reads pod state from (PodWatch; a stand-in in unit tests). */
export interface PodCache {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The pod labelled with sandbox `id`. */
  pod(id: string): V1Pod | undefined;
  pods(): readonly V1Pod[];
  until<T>(test: () => T | undefined, timeoutMs: number): Promise<T | undefined>;
}

/**
 * One watch (informer) over the installation's sandbox pods in a namespace: the provider reads
 * pod state from its cache and waits on its events, never polling or watching per sandbox. A
 * broken watch is restarted (list + watch again) after a short pause.
 */
export class PodWatch implements PodCache {
  private readonly informer: Informer<V1Pod> & ObjectCache<V1Pod>;
  private readonly waiters = new Set<() => void>();
  private stopped = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private lastError: unknown = null;

  constructor(
    kubeConfig: KubeConfig,
    core: CoreV1Api,
    private readonly namespace: string,
    selector: string,
    private readonly log: Logger,
  ) {
    this.informer = makeInformer<V1Pod>(
      kubeConfig,
      `/api/v1/namespaces/${namespace}/pods`,
      () => core.listNamespacedPod({ namespace, labelSelector: selector }),
      selector,
    );
    const wake = (): void => {
      for (const w of [...this.waiters]) w();
    };
    this.informer.on('add', wake);
    this.informer.on('update', wake);
    this.informer.on('delete', wake);
    this.informer.on('error', (err: unknown) => {
      this.lastError = err;
      if (this.stopped) return;
      this.log.warn({ namespace, err: String((err as Error)?.message ?? err) }, 'pod watch failed: restarting in 2 s');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (!this.stopped) void this.informer.start().catch(() => undefined);
      }, 2000);
      this.restartTimer.unref();
    });
  }

  /** Lists and starts watching; rejects when the first list fails (no access, no namespace). */
  async start(): Promise<void> {
    this.lastError = null;
    await this.informer.start();
    if (this.lastError) {
      const err = this.lastError as { code?: number; body?: unknown; message?: string };
      await this.stop();
      throw new Error(`cannot list pods in namespace ${this.namespace}: ${err.message ?? String(err)}`);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.informer.stop();
    for (const w of [...this.waiters]) w();
  }

  pod(id: string): V1Pod | undefined {
    return this.informer.list(this.namespace).find((p) => p.metadata?.labels?.[LABELS.sandbox] === id);
  }

  pods(): readonly V1Pod[] {
    return this.informer.list(this.namespace);
  }

  /**
   * Resolves with `test`'s first non-undefined answer, evaluated now and on every pod event, or
   * undefined after `timeoutMs` (or when the watch stops).
   */
  until<T>(test: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    return new Promise((resolve) => {
      const check = (): void => {
        const value = this.stopped ? undefined : test();
        if (value === undefined && !this.stopped) return;
        finish(value);
      };
      // Also re-checked every second: some answers depend on time (how long a pod has waited).
      const tick = setInterval(check, 1000);
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const finish = (value: T | undefined): void => {
        this.waiters.delete(check);
        clearInterval(tick);
        clearTimeout(timer);
        resolve(value);
      };
      this.waiters.add(check);
      check();
    });
  }
}
