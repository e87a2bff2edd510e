import { ApiException, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { kubeError } from './kube-errors.js';

/**
 * API discovery: whether the cluster serves a resource (a CRD's plural) at group/version. Asked
 * when a feature needs it, not cached when absent (CRDs may be installed while the server runs);
 * a resource once found is remembered (removing a CRD under a running server fails its calls).
 * Discovery needs no RBAC grant (system:discovery).
 */
export class Discovery {
  private readonly custom: CustomObjectsApi;
  private readonly found = new Set<string>();

  constructor(kubeConfig: KubeConfig) {
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async serves(group: string, version: string, plural: string): Promise<boolean> {
    const key = `${plural}.${group}/${version}`;
    if (this.found.has(key)) return true;
    try {
      const list = await this.custom.getAPIResources({ group, version });
      if (!list.resources.some((r) => r.name === plural)) return false;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return false;
      throw kubeError(`discovery of ${group}/${version}`, err);
    }
    this.found.add(key);
    return true;
  }

  /** Forgets what was found (a call failed with 404 for a resource once served: its CRD went). */
  forget(group: string, version: string, plural: string): void {
    this.found.delete(`${plural}.${group}/${version}`);
  }
}
