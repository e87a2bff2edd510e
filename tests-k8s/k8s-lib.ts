import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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

/**
 * Applies deploy/kubernetes/rbac.yaml for `namespace` (which must exist) and writes a kubeconfig
 * holding only its ServiceAccount's token (as a server in a pod would have) to `dir`; returns its
 * path. removeRbac deletes the cluster-scoped part afterwards (the rest goes with the namespace).
 */
async function rbacKubeconfig(namespace: string, dir: string): Promise<string> {
  const manifest = readFileSync(join(REPO, 'deploy/kubernetes/rbac.yaml'), 'utf8').replaceAll('NAMESPACE', namespace);
  kubectl(['apply', '-f', '-'], manifest);
  // Kubernetes 1.20 makes a token Secret for every ServiceAccount.
  const secretName = await waitFor(
    async () => (await core().readNamespacedServiceAccount({ name: 'hutch-server', namespace })).secrets?.[0]?.name,
    30_000,
    250,
  );
  assert.ok(secretName, 'the ServiceAccount has its token');
  const secret = await core().readNamespacedSecret({ name: secretName, namespace });
  const admin = new KubeConfig();
  admin.loadFromFile(kubeconfigPath());
  const limited = new KubeConfig();
  limited.loadFromOptions({
    clusters: [{ name: 'k8s', server: admin.getCurrentCluster()!.server, caData: secret.data!['ca.crt']! }],
    users: [{ name: 'hutch-server', token: Buffer.from(secret.data!.token!, 'base64').toString() }],
    contexts: [{ name: 'hutch', cluster: 'k8s', user: 'hutch-server', namespace }],
    currentContext: 'hutch',
  });
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, limited.exportConfig(), { mode: 0o600 });
  return file;
}

function removeRbac(namespace: string): void {
  kubectl(['delete', 'clusterrole,clusterrolebinding', `hutch-server-${namespace}`, '--ignore-not-found']);
}

/**
 * Like k8sServerForFile, for a server holding only deploy/kubernetes/rbac.yaml's permissions (a
 * ServiceAccount token): `started` gets the server and that kubeconfig. Afterwards the server is
 * stopped, no pod may be left, and the namespace and the RBAC objects are removed.
 */
export function rbacServerForFile(
  prefix: string,
  started: (server: TestServer, kubeconfig: string) => void,
  settings: KubernetesTestSettings = {},
): string {
  const namespace = uniqueNamespace(prefix);
  const tmp = mkdtempSync(`/var/tmp/${prefix}-`);
  let server: TestServer | undefined;
  before(async () => {
    await core().createNamespace({ body: { metadata: { name: namespace } } });
    const kubeconfig = await rbacKubeconfig(namespace, tmp);
    server = await startServer({ provider: 'kubernetes', kubernetes: { kubeconfig, namespace, imageImport: [IMPORT_IMAGE], ...settings } });
    started(server, kubeconfig);
  });
  after(async () => {
    await server?.stop();
    const left = await pods(namespace).catch(() => []);
    await removeNamespace(namespace);
    removeRbac(namespace);
    rmSync(tmp, { recursive: true, force: true });
    assert.deepEqual(
      left.map((p) => p.metadata?.name),
      [],
      'no sandbox pod is left after the server deleted its sandboxes',
    );
  });
  return namespace;
}

const kubectl = (args: string[], input?: string): string =>
  execFileSync(`${K8S_LOCAL}/kubectl`, args, {
    encoding: 'utf8',
    ...(input ? { input } : {}),
    env: { ...process.env, KUBECONFIG: kubeconfigPath() },
  });
