import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { REPO } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { core, K8S_LOCAL, kubeconfigPath, removeNamespace, uniqueNamespace } from './k8s-lib.js';
import { buildServerImage } from './server-image.js';

/**
 * deploy/helm/hutch: rendered by tests-k8s/helm-template (Helm's template engine: text/template +
 * sprig; no helm binary is reachable here), with the chart's defaults and with custom values;
 * every document parses, the server's RBAC is exactly deploy/kubernetes/rbac.yaml's, the
 * documents pass `kubectl apply --dry-run=server` (the 1.20 API's validation), and the chart
 * deployed with a server image built from this checkout runs the server in the cluster (in-cluster
 * config, keys from a Secret): /healthz answers on the pod IP, /v1/info with the Secret's admin
 * key shows the tiers read from the cluster.
 */
const CHART = join(REPO, 'deploy/helm/hutch');
const tmp = mkdtempSync('/var/tmp/hutch-helm-');
const renderer = join(tmp, 'helm-template');
const namespace = uniqueNamespace('hutch-helm');
const sandboxNamespace = `${namespace}-sbx`;
const clusterScoped: string[] = [];

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

const kubectl = (args: string[], input?: string): string =>
  execFileSync(`${K8S_LOCAL}/kubectl`, args, {
    encoding: 'utf8',
    ...(input ? { input } : {}),
    env: { ...process.env, KUBECONFIG: kubeconfigPath() },
  });

function render(values: unknown | null, release = 'hutch'): { text: string; objects: K8sObject[] } {
  const args = ['--name', release, '--namespace', namespace];
  if (values !== null) {
    const file = join(tmp, `values-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, JSON.stringify(values));
    args.push('-f', file);
  }
  const text = execFileSync(renderer, [...args, CHART], { encoding: 'utf8' });
  const objects = parseAllDocuments(text).map((doc) => {
    assert.deepEqual(doc.errors, [], 'every rendered document is valid YAML');
    return doc.toJS() as K8sObject;
  });
  return { text, objects: objects.filter((o) => o !== null) };
}

const find = (objects: K8sObject[], kind: string, name?: string): K8sObject => {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  assert.ok(found, `a ${kind}${name ? ` ${name}` : ''} is rendered`);
  return found;
};

type Container = { args: string[]; env?: Array<{ name: string; value?: string; valueFrom?: unknown }>; [k: string]: unknown };
const serverContainer = (objects: K8sObject[]): Container =>
  (find(objects, 'Deployment') as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec
    .containers[0]!;
const argAfter = (args: string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];

before(() => {
  // GOPATH mode: sprig and yaml.v2 come from Debian's golang-*-dev packages (scripts/setup.sh).
  execFileSync('go', ['build', '-o', renderer, '.'], {
    cwd: join(REPO, 'tests-k8s/helm-template'),
    env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOFLAGS: '' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
});
after(async () => {
  await removeNamespace(namespace);
  await removeNamespace(sandboxNamespace);
  for (const object of clusterScoped) kubectl(['delete', object, '--ignore-not-found']);
  rmSync(tmp, { recursive: true, force: true });
});

test('the chart renders with its defaults: server, RBAC, Service, default-deny policy; no RuntimeClass', () => {
  const { objects } = render(null);
  assert.deepEqual(objects.map((o) => o.kind).sort(), [
    'ClusterRole',
    'ClusterRoleBinding',
    'Deployment',
    'NetworkPolicy',
    'Role',
    'RoleBinding',
    'Service',
    'ServiceAccount',
  ]);
  const deployment = find(objects, 'Deployment') as unknown as {
    spec: {
      replicas: number;
      template: { spec: { serviceAccountName: string; volumes: Array<{ name: string; secret?: { secretName: string } }> } };
    };
  };
  assert.equal(deployment.spec.replicas, 1);
  assert.equal(deployment.spec.template.spec.serviceAccountName, 'hutch');
  assert.equal(deployment.spec.template.spec.volumes.find((v) => v.name === 'keys')?.secret?.secretName, 'hutch-keys');
  const container = serverContainer(objects);
  assert.equal(argAfter(container.args, '--provider'), 'kubernetes');
  assert.equal(argAfter(container.args, '--namespace'), namespace, 'sandboxes in the release namespace by default');
  assert.equal(argAfter(container.args, '--admin-key-file'), '/etc/hutch/keys/admin.key');
  assert.equal(argAfter(container.args, '--secrets-key-file'), '/etc/hutch/keys/secrets.key');
  assert.equal(container.env, undefined, 'no HUTCH_STORE without a store Secret (SQLite in the data dir)');
  for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
    assert.deepEqual((container[probe] as { httpGet: unknown }).httpGet, { path: '/healthz', port: 'http' });
  const policy = find(objects, 'NetworkPolicy') as unknown as { spec: { podSelector: unknown; policyTypes: string[]; ingress?: unknown } };
  assert.deepEqual(policy.spec.podSelector, { matchLabels: { 'app.kubernetes.io/managed-by': 'hutch' } });
  assert.deepEqual(policy.spec.policyTypes, ['Ingress', 'Egress']);
  assert.equal(policy.spec.ingress, undefined, 'deny all: no rule');
  for (const o of objects)
    assert.notEqual(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'hutch', `${o.kind} is not labelled as a sandbox`);
});

test('the chart with custom values: PostgreSQL from a Secret, replicas, sandbox namespace, RuntimeClasses', () => {
  const { objects } = render(
    {
      replicas: 3,
      image: { repository: 'registry.example/hutch', tag: '9.9.9' },
      store: { existingSecret: 'pg', key: 'dsn' },
      keys: { existingSecret: 'my-keys' },
      sandboxNamespace,
      createSandboxNamespace: true,
      serviceAccount: { name: 'sa-x' },
      server: {
        gvisorRuntimeClass: 'sandboxed',
        volumeStorageClass: 'fast',
        volumeSnapshotClass: 'csi-snap',
        imageRepository: 'registry.example/sbx',
        extraArgs: ['--sample-interval', '2'],
      },
      runtimeClasses: {
        create: true,
        gvisor: { name: 'sandboxed', handler: 'runsc-kvm' },
        microvm: { enabled: true, handler: 'kata-qemu' },
      },
      networkPolicies: { enabled: false },
      data: { existingClaim: 'hutch-data' },
    },
    'prod',
  );
  const container = serverContainer(objects);
  assert.deepEqual(container.env, [{ name: 'HUTCH_STORE', valueFrom: { secretKeyRef: { name: 'pg', key: 'dsn' } } }]);
  assert.equal(container.image, 'registry.example/hutch:9.9.9');
  assert.equal(argAfter(container.args, '--namespace'), sandboxNamespace);
  assert.equal(argAfter(container.args, '--runtime-class-gvisor'), 'sandboxed');
  assert.equal(argAfter(container.args, '--volume-storage-class'), 'fast');
  assert.equal(argAfter(container.args, '--volume-snapshot-class'), 'csi-snap');
  assert.equal(argAfter(container.args, '--image-repository'), 'registry.example/sbx');
  assert.deepEqual(container.args.slice(-2), ['--sample-interval', '2']);
  const deployment = find(objects, 'Deployment', 'prod-hutch') as unknown as {
    spec: {
      replicas: number;
      template: {
        spec: { volumes: Array<{ name: string; persistentVolumeClaim?: { claimName: string }; secret?: { secretName: string } }> };
      };
    };
  };
  assert.equal(deployment.spec.replicas, 3);
  const volumes = deployment.spec.template.spec.volumes;
  assert.equal(volumes.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, 'hutch-data');
  assert.equal(volumes.find((v) => v.name === 'keys')?.secret?.secretName, 'my-keys');
  assert.equal(find(objects, 'Namespace').metadata.name, sandboxNamespace);
  assert.equal(find(objects, 'Role').metadata.namespace, sandboxNamespace, 'the Role is granted where the sandboxes are');
  const binding = find(objects, 'RoleBinding') as unknown as { subjects: Array<{ name: string; namespace: string }> };
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'sa-x', namespace }]);
  const classes = objects.filter((o) => o.kind === 'RuntimeClass') as unknown as Array<{ metadata: { name: string }; handler: string }>;
  assert.deepEqual(
    classes.map((c) => [c.metadata.name, c.handler]),
    [
      ['sandboxed', 'runsc-kvm'],
      ['microvm', 'kata-qemu'],
    ],
  );
  assert.equal(objects.filter((o) => o.kind === 'NetworkPolicy').length, 0);
});

test('several replicas without a shared store are refused at render time', () => {
  const file = join(tmp, 'replicas.yaml');
  writeFileSync(file, 'replicas: 2\n');
  const result = spawnSync(renderer, ['-f', file, CHART], { encoding: 'utf8' });
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /replicas > 1 needs a shared store: set store.existingSecret/);
});

test("the chart's RBAC rules are exactly deploy/kubernetes/rbac.yaml's", () => {
  const reference = parseAllDocuments(
    readFileSync(join(REPO, 'deploy/kubernetes/rbac.yaml'), 'utf8').replaceAll('NAMESPACE', namespace),
  ).map((d) => d.toJS() as K8sObject & { rules?: unknown });
  const { objects } = render(null);
  for (const kind of ['Role', 'ClusterRole']) {
    const ours = find(objects, kind) as K8sObject & { rules: unknown };
    const theirs = reference.find((o) => o.kind === kind)!;
    assert.deepEqual(ours.rules, theirs.rules, `${kind} rules`);
  }
  for (const kind of ['RoleBinding', 'ClusterRoleBinding']) {
    const ours = find(objects, kind) as K8sObject & { roleRef: { kind: string } };
    assert.equal(ours.roleRef.kind, kind.replace('Binding', ''));
  }
});

test('the rendered documents pass the API server validation (kubectl apply --dry-run=server)', async () => {
  await core().createNamespace({ body: { metadata: { name: namespace } } });
  await core().createNamespace({ body: { metadata: { name: sandboxNamespace } } });
  for (const values of [
    null,
    { sandboxNamespace, store: { existingSecret: 'pg' }, replicas: 2, runtimeClasses: { create: true, microvm: { enabled: true } } },
  ]) {
    const { text, objects } = render(values);
    const out = kubectl(['apply', '--dry-run=server', '-f', '-'], text);
    for (const o of objects)
      assert.match(out, new RegExp(`${o.metadata.name} (created|configured) \\(server dry run\\)`), `${o.kind} ${o.metadata.name}`);
  }
});

test(
  'deployed with a server image of this checkout, the server runs in the cluster and answers /healthz on its pod IP',
  { timeout: 300_000 },
  async () => {
    const image = buildServerImage();
    const adminKey = execFileSync('openssl', ['rand', '-hex', '24'], { encoding: 'utf8' }).trim();
    const secretsKey = execFileSync('openssl', ['rand', '-hex', '32'], { encoding: 'utf8' }).trim();
    await core()
      .createNamespace({ body: { metadata: { name: namespace } } })
      .catch(() => undefined);
    await core().createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'hutch-keys' }, stringData: { 'admin.key': adminKey, 'secrets.key': secretsKey } },
    });
    const { text } = render({
      image: { repository: 'localhost/hutch/server', tag: image.tag, pullPolicy: 'Never' },
      // The local cluster has no kube-proxy: the `kubernetes` Service address the kubelet puts in
      // KUBERNETES_SERVICE_HOST does not route; the API server is reached at the bridge address.
      server: {
        extraEnv: [
          { name: 'KUBERNETES_SERVICE_HOST', value: '198.18.0.1' },
          { name: 'KUBERNETES_SERVICE_PORT', value: '6443' },
        ],
      },
    });
    clusterScoped.push(`clusterrole/hutch-${namespace}`, `clusterrolebinding/hutch-${namespace}`);
    kubectl(['apply', '-f', '-'], text);
    const ready = await waitFor(
      async () => {
        const list = await core().listNamespacedPod({ namespace, labelSelector: 'app.kubernetes.io/instance=hutch' });
        return list.items.find((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      },
      120_000,
      1000,
    );
    const logs = async (): Promise<string> => {
      const list = await core().listNamespacedPod({ namespace });
      const name = list.items[0]?.metadata?.name;
      return name
        ? await core()
            .readNamespacedPodLog({ name, namespace })
            .catch((e: unknown) => String(e))
        : 'no pod';
    };
    assert.ok(ready, `the server pod is Ready (its probes on /healthz pass); logs: ${ready ? '' : await logs()}`);
    const ip = ready.status!.podIP!;
    const health = await fetch(`http://${ip}:7171/healthz`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(health.status, 200);
    const healthBody = (await health.json()) as { ok: boolean; leader?: boolean };
    assert.equal(healthBody.ok, true);
    assert.equal(healthBody.leader, true, 'one replica on its own store leads');
    const info = await fetch(`http://${ip}:7171/v1/info`, {
      headers: { authorization: `Bearer ${adminKey}` },
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(info.status, 200, 'the admin key from the Secret is the server admin key');
    const body = (await info.json()) as {
      provider: string;
      tiers: Record<string, { available: boolean }>;
      capacity: { node: { cpu: number } };
    };
    assert.equal(body.provider, 'kubernetes');
    assert.equal(body.tiers.gvisor!.available, true, 'in-cluster config and the chart RBAC read the RuntimeClass');
    assert.ok(body.capacity.node.cpu > 0, 'the chart RBAC lists nodes');
    const wrong = await fetch(`http://${ip}:7171/v1/info`, {
      headers: { authorization: 'Bearer nope' },
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(wrong.status, 401);
    const output = await logs();
    assert.match(output, /admin key: from \/etc\/hutch\/keys\/admin.key/);
    assert.ok(!output.includes(adminKey), 'the admin key is not printed in the pod log');
    assert.doesNotMatch(output, /forbidden/i);
    kubectl(['delete', '-f', '-', '--wait=true', '--timeout=60s'], text);
  },
);
