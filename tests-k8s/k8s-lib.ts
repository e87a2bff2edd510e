import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { REPO, startServer, type TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';

/**
 * What the Kubernetes suite shares: the k8s-local cluster that scripts/test-k8s.sh brought up
 * (KUBECONFIG points at it), a client for checking pods, and a Hutch server in kubernetes mode
 * on a namespace of its own.
 */
export const K8S_LOCAL = process.env.HUTCH_K8S_LOCAL ?? resolve(REPO, '../shared/k8s-local');
/** k8s-local's import-image behind a wrapper that tells its false failures from real ones (see the script). */
export const IMPORT_IMAGE = resolve(REPO, 'tests-k8s/import-image.sh');

export function kubeconfigPath(): string {
  const path = process.env.KUBECONFIG;
  if (!path) throw new Error('KUBECONFIG is not set: run these tests through `npm run test:k8s`');
  return path;
}

let client: CoreV1Api | null = null;
export function core(): CoreV1Api {
  if (!client) {
    const config = new KubeConfig();
    config.loadFromFile(kubeconfigPath());
    client = config.makeApiClient(CoreV1Api);
  }
  return client;
}

export const uniqueNamespace = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

export async function pods(namespace: string, labelSelector?: string): Promise<V1Pod[]> {
  return (await core().listNamespacedPod({ namespace, ...(labelSelector ? { labelSelector } : {}) })).items;
}

export const sandboxSelector = (id: string): string => `hutch.dev/sandbox=${id}`;

type KubernetesTestSettings = NonNullable<Parameters<typeof startServer>[0]>['kubernetes'];

export async function startK8sServer(namespace: string, settings: KubernetesTestSettings = {}): Promise<TestServer> {
  return startServer({
    provider: 'kubernetes',
    kubernetes: { kubeconfig: kubeconfigPath(), namespace, imageImport: [IMPORT_IMAGE], ...settings },
  });
}

/** Deletes a test namespace (its pods first, at once) and waits until it is gone (bounded). */
export async function removeNamespace(namespace: string): Promise<void> {
  for (const pod of await pods(namespace).catch(() => [])) {
    await core()
      .deleteNamespacedPod({ name: pod.metadata!.name!, namespace, gracePeriodSeconds: 0 })
      .catch(() => undefined);
  }
  await core()
    .deleteNamespace({ name: namespace })
    .catch(() => undefined);
  await waitFor(
    () =>
      core()
        .readNamespace({ name: namespace })
        .then(
          () => false,
          () => true,
        ),
    60_000,
    500,
  );
}

/**
 * Registers the file's before/after hooks: a kubernetes-mode server on a namespace of its own
 * (handed to `started`), stopped afterwards (deleting what the tests left) with a check that no
 * pod is left, and the namespace removed. `beforeStop` runs first (e.g. deleting a pool).
 * Returns the namespace.
 */
export function k8sServerForFile(
  prefix: string,
  started: (server: TestServer) => void,
  beforeStop?: (server: TestServer) => Promise<unknown>,
  settings: KubernetesTestSettings = {},
): string {
  const namespace = uniqueNamespace(prefix);
  let server: TestServer | undefined;
  before(async () => {
    server = await startK8sServer(namespace, settings);
    started(server);
  });
  after(async () => {
    if (server && beforeStop) await beforeStop(server).catch(() => undefined);
    await server?.stop();
    const left = await pods(namespace).catch(() => []);
    await removeNamespace(namespace);
    assert.deepEqual(
      left.map((p) => p.metadata?.name),
      [],
      'no sandbox pod is left after the server deleted its sandboxes',
    );
  });
  return namespace;
}
