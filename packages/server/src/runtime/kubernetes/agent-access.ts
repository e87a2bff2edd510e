import { connect } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { AgentEndpoint } from '../../core/agent.js';
import type { Logger } from '../../core/logger.js';
import { openPortForward } from './port-forward.js';

/**
 * How the server reaches sandbox agents (`--kubernetes-agent-access`):
 * - `pod-ip`: TCP to the pod IP (a pooled keep-alive connection; the server must be on the pod
 *   network, e.g. in the cluster);
 * - `api-server`: a stream per request through the API server's port-forward (port-forward.ts):
 *   works wherever the API server is reachable, at the cost of a WebSocket (and a kubelet stream)
 *   per request;
 * - `auto` (the default): one bounded TCP connect to the first running pod's agent port decides,
 *   once for the server's lifetime: a connection or a refusal means pod IPs are routable (pod-ip);
 *   a timeout or an unreachable host/network means they are not (api-server). Once per server,
 *   not per sandbox: routability is a property of where the server runs, and a per-sandbox
 *   fallback on failure would also send a pod that is merely slow or dying through the slower path
 *   and hide a misconfigured network.
 * The agent's token travels in its header either way.
 */
export type AgentAccessMode = 'pod-ip' | 'api-server' | 'auto';
export const AGENT_ACCESS_MODES: readonly AgentAccessMode[] = ['pod-ip', 'api-server', 'auto'];
type Path = 'pod-ip' | 'api-server';

/** Errors of a connect that mean "no route to pod IPs from here". */
const UNROUTABLE = new Set(['ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

export interface AgentAccessOptions {
  mode: AgentAccessMode;
  kubeConfig: KubeConfig;
  namespace: string;
  log: Logger;
  /** The bounded connect of `auto` (default 3 s). */
  probeTimeoutMs?: number;
}

export class AgentAccess {
  private path: Path | null;
  private deciding: Promise<Path> | null = null;

  constructor(private readonly options: AgentAccessOptions) {
    this.path = options.mode === 'auto' ? null : options.mode;
  }

  /** For /v1/info: the mode asked for and the path in use (null: auto, not decided yet). */
  posture(): { mode: AgentAccessMode; using: Path | null } {
    return { mode: this.options.mode, using: this.path };
  }

  /** Decides `auto` with a probe of `ip` (once; later calls get the same answer). */
  decide(ip: string, port: number): Promise<Path> {
    if (this.path) return Promise.resolve(this.path);
    this.deciding ??= probe(ip, port, this.options.probeTimeoutMs ?? 3000).then((result) => {
      this.path = result.routable ? 'pod-ip' : 'api-server';
      this.options.log.info(
        { probe: `${ip}:${port}`, outcome: result.outcome, agentAccess: this.path },
        this.path === 'pod-ip'
          ? 'pod IPs are reachable: agents are reached by pod IP'
          : 'pod IPs are not reachable: agents are reached through the API server',
      );
      return this.path;
    });
    return this.deciding;
  }

  /**
   * The endpoint of a pod's agent. Undecided (auto, before any pod ran: the provider decides at
   * connect and after each create, so only a call racing the first probe sees this) is pod IP,
   * the default path.
   */
  endpoint(pod: string, ip: string, port: number, token: string): AgentEndpoint {
    if (this.path !== 'api-server') return { host: ip, port, token };
    const { kubeConfig, namespace } = this.options;
    return { open: () => openPortForward(kubeConfig, namespace, pod, port), token };
  }
}

/** One TCP connect bounded by `timeoutMs`: routable unless it times out or has no route. */
export function probe(host: string, port: number, timeoutMs: number): Promise<{ routable: boolean; outcome: string }> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (routable: boolean, outcome: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ routable, outcome });
    };
    const timer = setTimeout(() => done(false, `no answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(true, 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(!UNROUTABLE.has(err.code ?? ''), err.code ?? err.message));
  });
}
