import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeAgentSandboxClient } from '../src/runtime/kubernetes/agent-sandbox-client.js';
import { standInApiServer } from './kubernetes-agent-sandbox-fixtures.js';

// The real AgentSandboxClient (@kubernetes/client-node underneath) against a STAND-IN API server
// (kubernetes-agent-sandbox-fixtures.ts): it checks the REST paths, verbs and create-or-replace
// logic, not agent-sandbox's validation or controller (no real API server can take custom
// resources here).

test('KubeAgentSandboxClient: REST paths, create-or-replace, missing objects as null / nothing to delete', async () => {
  const api = await standInApiServer();
  try {
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [{ name: 'c', server: api.url, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u', namespace: 'ns' }],
      currentContext: 'x',
    });
    const client = new KubeAgentSandboxClient(config, 'ns', 'v1beta1');
    const ext = '/apis/extensions.agents.x-k8s.io/v1alpha1/namespaces/ns';
    const template = {
      apiVersion: 'extensions.agents.x-k8s.io/v1alpha1',
      kind: 'SandboxTemplate',
      metadata: { name: 't1' },
      spec: { a: 1 },
    };
    await client.apply('sandboxtemplates', template);
    assert.deepEqual(api.calls.splice(0), [`GET ${ext}/sandboxtemplates/t1`, `POST ${ext}/sandboxtemplates`]);
    await client.apply('sandboxtemplates', { ...template, spec: { a: 2 } });
    assert.deepEqual(api.calls.splice(0), [`GET ${ext}/sandboxtemplates/t1`, `PUT ${ext}/sandboxtemplates/t1`]);
    const stored = api.objects.get(`${ext}/sandboxtemplates/t1`) as { spec: unknown; metadata: { resourceVersion: string } };
    assert.deepEqual(stored.spec, { a: 2 }, 'replaced');
    assert.equal(stored.metadata.resourceVersion, '2', 'the replace carried the current resourceVersion');
    // Sandboxes are read at the core group's served version.
    assert.equal(await client.get('sandboxes', 'sb-1'), null);
    assert.deepEqual(api.calls.splice(0), ['GET /apis/agents.x-k8s.io/v1beta1/namespaces/ns/sandboxes/sb-1']);
    await client.remove('sandboxtemplates', 't1');
    await client.remove('sandboxtemplates', 't1'); // already gone: not an error
    assert.deepEqual(api.calls.splice(0), [`DELETE ${ext}/sandboxtemplates/t1`, `DELETE ${ext}/sandboxtemplates/t1`]);
    // Secrets and policies: replace, else create.
    await client.applySecret({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's1' }, stringData: { token: 'x' } });
    assert.deepEqual(api.calls.splice(0), ['PUT /api/v1/namespaces/ns/secrets/s1', 'POST /api/v1/namespaces/ns/secrets']);
    await client.applyNetworkPolicy({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'p1' },
      spec: { podSelector: {} },
    });
    await client.applyNetworkPolicy({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'p1' },
      spec: { podSelector: {} },
    });
    const np = '/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies';
    assert.deepEqual(api.calls.splice(0), [`PUT ${np}/p1`, `POST ${np}`, `PUT ${np}/p1`]);
    await client.removeSecret('s1');
    await client.removeNetworkPolicy('p1');
    await client.removeNetworkPolicy('p1');
    assert.equal(api.objects.size, 0, 'everything written was deleted');
    assert.equal(await client.readPod('nope'), null);
  } finally {
    await api.close();
  }
});
