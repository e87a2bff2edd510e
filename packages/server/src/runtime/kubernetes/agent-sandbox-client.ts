import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  NetworkingV1Api,
  type V1NetworkPolicy,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { AgentClient } from '../agent/agent-client.js';
import { AGENT_SANDBOX_CORE, AGENT_SANDBOX_EXTENSIONS } from './agent-sandbox.js';
import type { AgentSandboxClient, AgentSandboxResource, TokenRotation } from './agent-sandbox-pools.js';
import { HutchError } from '../../core/errors.js';
import { withRetry } from './kube-errors.js';

/**
 * The real AgentSandboxClient: agent-sandbox's custom objects through CustomObjectsApi (Sandboxes
 * at the core group's served version, the rest at the extensions group's), Secrets, policies and
 * pods through the core and networking APIs, in one namespace. Not run against a cluster here
 * (docs/kubernetes.md, "agent-sandbox").
 */
export class KubeAgentSandboxClient implements AgentSandboxClient {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly networking: NetworkingV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    /** The served version of agents.x-k8s.io (v1alpha1 or v1beta1). */
    private readonly coreVersion: string,
  ) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.networking = kubeConfig.makeApiClient(NetworkingV1Api);
  }

  private where(resource: AgentSandboxResource): { group: string; version: string; namespace: string; plural: string } {
    return resource === 'sandboxes'
      ? { group: AGENT_SANDBOX_CORE.group, version: this.coreVersion, namespace: this.namespace, plural: resource }
      : { group: AGENT_SANDBOX_EXTENSIONS.group, version: AGENT_SANDBOX_EXTENSIONS.version, namespace: this.namespace, plural: resource };
  }

  async apply(resource: AgentSandboxResource, body: Record<string, unknown>): Promise<void> {
    const name = (body.metadata as { name: string }).name;
    await withRetry(`apply ${resource} ${name}`, async () => {
      const current = await this.get(resource, name);
      if (!current) return this.custom.createNamespacedCustomObject({ ...this.where(resource), body });
      const resourceVersion = (current.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
      return this.custom.replaceNamespacedCustomObject({
        ...this.where(resource),
        name,
        body: { ...body, metadata: { ...(body.metadata as object), resourceVersion } },
      });
    });
  }

  async get(resource: AgentSandboxResource, name: string): Promise<Record<string, unknown> | null> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...this.where(resource), name })) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return null;
      throw err;
    }
  }

  async remove(resource: AgentSandboxResource, name: string): Promise<void> {
    await ignoreMissing(() =>
      withRetry(`delete ${resource} ${name}`, () => this.custom.deleteNamespacedCustomObject({ ...this.where(resource), name })),
    );
  }

  async applySecret(body: Record<string, unknown>): Promise<void> {
    const secret = body as V1Secret;
    const name = secret.metadata!.name!;
    await withRetry(`apply secret ${name}`, async () => {
      try {
        return await this.core.replaceNamespacedSecret({ name, namespace: this.namespace, body: secret });
      } catch (err) {
        if (err instanceof ApiException && err.code === 404)
          return this.core.createNamespacedSecret({ namespace: this.namespace, body: secret });
        throw err;
      }
    });
  }

  async removeSecret(name: string): Promise<void> {
    await ignoreMissing(() =>
      withRetry(`delete secret ${name}`, () => this.core.deleteNamespacedSecret({ name, namespace: this.namespace })),
    );
  }

  async applyNetworkPolicy(body: V1NetworkPolicy): Promise<void> {
    const name = body.metadata!.name!;
    await withRetry(`apply network policy ${name}`, async () => {
      try {
        return await this.networking.replaceNamespacedNetworkPolicy({ name, namespace: this.namespace, body });
      } catch (err) {
        if (err instanceof ApiException && err.code === 404)
          return this.networking.createNamespacedNetworkPolicy({ namespace: this.namespace, body });
        throw err;
      }
    });
  }

  async removeNetworkPolicy(name: string): Promise<void> {
    await ignoreMissing(() =>
      withRetry(`delete network policy ${name}`, () => this.networking.deleteNamespacedNetworkPolicy({ name, namespace: this.namespace })),
    );
  }

  async readPod(name: string): Promise<V1Pod | null> {
    try {
      return await this.core.readNamespacedPod({ name, namespace: this.namespace });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return null;
      throw err;
    }
  }
}

async function ignoreMissing(call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (err) {
    if (err instanceof HutchError && err.kind === 'not_found') return;
    throw err;
  }
}

/** Token rotation through the agent's POST /hutch/access-token, authenticated by the current token. */
export const agentTokenRotation: TokenRotation = {
  async rotate(endpoint, current, next) {
    const client = new AgentClient({ host: endpoint.host, port: endpoint.port, token: current });
    try {
      await client.rotateToken(next);
    } finally {
      client.close();
    }
  },
};
