import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeAgentSandboxClient } from '../src/runtime/kubernetes/agent-sandbox-client.js';

// The real AgentSandboxClient (@kubernetes/client-node underneath) against a STAND-IN API server:
// a local HTTP server that stores objects by URL path and answers 404 Status for what it lacks,
// as kube-apiserver does. It checks the REST paths, verbs and create-or-replace logic, not
// agent-sandbox's validation or controller (no real API server can take custom resources here).

async function standInApiServer(): Promise<{
  url: string;
  calls: string[];
  objects: Map<string, Record<string, unknown>>;
  close: () => Promise<void>;
}> {
  const objects = new Map<string, Record<string, unknown>>();
  const calls: string[] = [];
  let version = 0;
  const notFound = (res: ServerResponse) => {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'not found' }));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0]!;
      calls.push(`${req.method} ${path}`);
      const reply = (code: number, body: unknown) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'GET') return objects.has(path) ? reply(200, objects.get(path)) : notFound(res);
      if (req.method === 'DELETE') return objects.delete(path) ? reply(200, { kind: 'Status', status: 'Success' }) : notFound(res);
      const body = JSON.parse(text) as { metadata: { name: string; resourceVersion?: string } };
      if (req.method === 'POST') {
        const at = `${path}/${body.metadata.name}`;
        if (objects.has(at)) return reply(409, { kind: 'Status', code: 409, message: 'exists' });
        body.metadata.resourceVersion = String(++version);
        objects.set(at, body);
        return reply(201, body);
      }
      if (req.method === 'PUT') {
        if (!objects.has(path)) return notFound(res);
        body.metadata.resourceVersion = String(++version);
        objects.set(path, body);
        return reply(200, body);
      }
      reply(405, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, calls, objects, close: () => new Promise((r) => server.close(() => r())) };
}

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
