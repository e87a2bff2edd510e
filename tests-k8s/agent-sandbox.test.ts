import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ApiextensionsV1Api, CustomObjectsApi, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import type { TestServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { k8sServerForFile, kubeconfigPath, pods } from './k8s-lib.js';

/**
 * kubernetes-sigs/agent-sandbox detection, through the real API: without its CRDs `/v1/info`
 * reports it missing; with minimal stand-in CRDs of its four resources (installed here,
 * cluster-scoped, removed afterwards) a restarted server reports it installed — and warm pools
 * still run as Hutch's own pre-created pods, creating no SandboxWarmPool or SandboxClaim (that
 * path is not built: docs/kubernetes.md, "agent-sandbox"). No controller runs here, and no custom
 * resource is written (k8s-local's API server crashes on custom-resource writes); the object
 * shapes are checked as pure functions (packages/server/test/kubernetes-objects.test.ts).
 */
const CRDS: Array<{ group: string; version: string; plural: string; kind: string }> = [
  { group: 'agents.x-k8s.io', version: 'v1alpha1', plural: 'sandboxes', kind: 'Sandbox' },
  { group: 'extensions.agents.x-k8s.io', version: 'v1alpha1', plural: 'sandboxtemplates', kind: 'SandboxTemplate' },
  { group: 'extensions.agents.x-k8s.io', version: 'v1alpha1', plural: 'sandboxclaims', kind: 'SandboxClaim' },
  { group: 'extensions.agents.x-k8s.io', version: 'v1alpha1', plural: 'sandboxwarmpools', kind: 'SandboxWarmPool' },
];
const SMALL = { template: 'minimal', cpu: 0.25, memoryMiB: 128 };

// Registered first: the CRDs go even if the server's own after hook fails.
const installed: string[] = [];
after(async () => {
  const { ext } = clients();
  for (const name of installed) await ext.deleteCustomResourceDefinition({ name }).catch(() => undefined);
  const gone = await waitFor(
    async () => {
      for (const name of installed)
        if (
          await ext.readCustomResourceDefinition({ name }).then(
            () => true,
            () => false,
          )
        )
          return false;
      return true;
    },
    60_000,
    500,
  );
  assert.ok(gone, 'the stand-in CRDs are removed');
});

let server!: TestServer;
const namespace = k8sServerForFile(
  'hutch-agentsbx',
  (s) => (server = s),
  (s) => s.api('DELETE', '/v1/pools/agentsbx'),
);

function clients(): { ext: ApiextensionsV1Api; custom: CustomObjectsApi } {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath());
  return { ext: config.makeApiClient(ApiextensionsV1Api), custom: config.makeApiClient(CustomObjectsApi) };
}

interface AgentSandboxInfo {
  installed: boolean;
  missing: string[];
  warmPools: string;
  note: string;
}
async function detected(): Promise<AgentSandboxInfo> {
  const info = await server.api<{ posture: { kubernetes: { agentSandbox: AgentSandboxInfo } } }>('GET', '/v1/info');
  assert.equal(info.status, 200);
  return info.body.posture.kubernetes.agentSandbox;
}

test('without the agent-sandbox CRDs, /v1/info reports them missing and warm pools are pods', async () => {
  const { ext } = clients();
  for (const c of CRDS) {
    const present = await ext.readCustomResourceDefinition({ name: `${c.plural}.${c.group}` }).then(
      () => true,
      () => false,
    );
    assert.equal(present, false, `${c.plural}.${c.group} is not on the local cluster (this test needs its absence)`);
  }
  const status = await detected();
  assert.equal(status.installed, false);
  assert.deepEqual(
    status.missing,
    CRDS.map((c) => `${c.plural}.${c.group}`),
  );
  assert.equal(status.warmPools, 'pods');
});

test(
  'with stand-in agent-sandbox CRDs a restarted server detects them; pools still make their own pods and no claim',
  { timeout: 240_000 },
  async () => {
    const { ext, custom } = clients();
    for (const c of CRDS) {
      const body: V1CustomResourceDefinition = {
        metadata: { name: `${c.plural}.${c.group}`, labels: { 'hutch.dev/test': 'stand-in' } },
        spec: {
          group: c.group,
          scope: 'Namespaced',
          names: { plural: c.plural, singular: c.kind.toLowerCase(), kind: c.kind, listKind: `${c.kind}List` },
          versions: [
            {
              name: c.version,
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
            },
          ],
        },
      };
      await ext.createCustomResourceDefinition({ body });
      installed.push(body.metadata!.name!);
    }
    for (const name of installed) {
      const established = await waitFor(
        async () =>
          (await ext.readCustomResourceDefinition({ name })).status?.conditions?.some(
            (x) => x.type === 'Established' && x.status === 'True',
          ),
        30_000,
        250,
      );
      assert.ok(established, `${name} is established`);
    }

    await server.restart();
    const status = await detected();
    assert.equal(status.installed, true, JSON.stringify(status));
    assert.deepEqual(status.missing, []);
    assert.equal(status.warmPools, 'pods');
    assert.match(status.note, /SandboxWarmPool\/SandboxClaim are not used yet/);

    const put = await server.api('PUT', '/v1/pools/agentsbx', { ...SMALL, min: 1, target: 1, max: 1 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const ready = await waitFor(async () => (await server.api<{ size: number }>('GET', '/v1/pools/agentsbx')).body.size >= 1, 120_000, 250);
    assert.ok(ready, 'the pool filled');
    const res = await server.api<{ id: string; warm?: boolean }>('POST', '/v1/sandboxes', SMALL);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.warm, true, 'served by the pool');
    assert.equal((await pods(namespace, `hutch.dev/sandbox=${res.body.id}`)).length, 1, 'the claimed member is a pod of Hutch');
    for (const c of CRDS.slice(1)) {
      const list = (await custom.listNamespacedCustomObject({ group: c.group, version: c.version, namespace, plural: c.plural })) as {
        items: unknown[];
      };
      assert.deepEqual(list.items, [], `no ${c.kind} was created`);
    }
    assert.equal((await server.api('DELETE', `/v1/sandboxes/${res.body.id}`)).status, 204);
    assert.equal((await server.api('DELETE', '/v1/pools/agentsbx')).status, 204);
    const gone = await waitFor(async () => (await pods(namespace)).length === 0, 60_000, 250);
    assert.ok(gone, 'no pod is left once the pool is deleted (a refill booting at the delete included)');
  },
);
