import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { V1NetworkPolicy, V1Pod } from '@kubernetes/client-node';
import { AgentClient } from '../src/runtime/agent/agent-client.js';
import type { AgentSandboxClient, AgentSandboxResource } from '../src/runtime/kubernetes/agent-sandbox-pools.js';

// Stand-ins for the agent-sandbox unit tests. Neither is a Kubernetes API server nor the
// agent-sandbox controller: the first is an in-memory store behind the AgentSandboxClient
// interface whose "controller" binds claims when a test says so; the second a local HTTP server
// that stores objects by URL path and answers 404 Status for what it lacks, as kube-apiserver does.

/** In-memory stand-in for the provider's custom-resource client; records every write in order. */
export class StandInAgentSandboxClient implements AgentSandboxClient {
  readonly objects = new Map<string, Record<string, unknown>>();
  readonly secrets = new Map<string, Record<string, unknown>>();
  readonly policies = new Map<string, V1NetworkPolicy>();
  readonly pods = new Map<string, V1Pod>();
  readonly writes: string[] = [];

  async apply(resource: AgentSandboxResource, body: Record<string, unknown>): Promise<void> {
    const name = (body.metadata as { name: string }).name;
    this.writes.push(`apply ${resource} ${name}`);
    this.objects.set(`${resource}/${name}`, structuredClone(body));
  }
  async get(resource: AgentSandboxResource, name: string): Promise<Record<string, unknown> | null> {
    return this.objects.get(`${resource}/${name}`) ?? null;
  }
  async remove(resource: AgentSandboxResource, name: string): Promise<void> {
    this.writes.push(`remove ${resource} ${name}`);
    this.objects.delete(`${resource}/${name}`);
  }
  async applySecret(body: Record<string, unknown>): Promise<void> {
    const name = (body.metadata as { name: string }).name;
    this.writes.push(`apply secret ${name}`);
    this.secrets.set(name, body);
  }
  async removeSecret(name: string): Promise<void> {
    this.writes.push(`remove secret ${name}`);
    this.secrets.delete(name);
  }
  async applyNetworkPolicy(body: V1NetworkPolicy): Promise<void> {
    this.writes.push(`apply networkpolicy ${body.metadata!.name!}`);
    this.policies.set(body.metadata!.name!, body);
  }
  async removeNetworkPolicy(name: string): Promise<void> {
    this.writes.push(`remove networkpolicy ${name}`);
    this.policies.delete(name);
  }
  async readPod(name: string): Promise<V1Pod | null> {
    return this.pods.get(name) ?? null;
  }

  /** What the agent-sandbox controller would do: bind the claim to a Sandbox adopted from the pool. */
  bind(claim: string, sandbox: string, pod: string, field: 'name' | 'Name' = 'name'): void {
    const c = this.objects.get(`sandboxclaims/${claim}`);
    assert.ok(c, `claim ${claim} exists`);
    c.status = { sandbox: { [field]: sandbox } };
    this.objects.set(`sandboxes/${sandbox}`, { metadata: { name: sandbox, annotations: { 'agents.x-k8s.io/pod-name': pod } } });
  }
}

/**
 * A local HTTP server storing objects by path (POST creates, PUT replaces, PATCH merges, GET and
 * DELETE by name, GET with a labelSelector lists, 404 Status otherwise), recording every call.
 */
export async function standInApiServer(): Promise<{
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
      const selector = new URL(req.url ?? '/', 'http://x').searchParams.get('labelSelector');
      if (req.method === 'GET' && selector !== null) {
        // A list by label selector (k=v,…) of the objects directly under the path.
        const wanted = selector
          .split(',')
          .filter(Boolean)
          .map((kv) => kv.split('='));
        const items = [...objects.entries()]
          .filter(([at]) => at.startsWith(`${path}/`) && !at.slice(path.length + 1).includes('/'))
          .map(([, o]) => o)
          .filter((o) => {
            const labels = (o.metadata as { labels?: Record<string, string> } | undefined)?.labels ?? {};
            return wanted.every(([k, v]) => labels[k!] === v);
          });
        return reply(200, { kind: 'List', apiVersion: 'v1', metadata: {}, items });
      }
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
      if (req.method === 'PATCH') {
        // A JSON merge patch (RFC 7386), as the provider sends for a claimed pod's labels.
        const current = objects.get(path);
        if (!current) return notFound(res);
        const merged = mergePatch(current, body) as Record<string, unknown>;
        objects.set(path, merged);
        return reply(200, merged);
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

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** The agent binary (`cd agent && go build …`); tests using it are skipped without it. */
export const AGENT = fileURLToPath(new URL('../../../agent/bin/hutch-agent', import.meta.url));

/** A TCP port on 127.0.0.1 free at the time of asking. */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** A real hutch-agent on 127.0.0.1 over TCP started with `token`, answering before this resolves. */
export async function startAgent(token: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(AGENT, ['--listen', `tcp:127.0.0.1:${port}`, '--default-user', 'root'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HUTCH_AGENT_ACCESS_TOKEN: token },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  };
  const probe = new AgentClient({ host: '127.0.0.1', port, token });
  try {
    const deadline = Date.now() + 10_000;
    while (!(await probe.health(AbortSignal.timeout(500)).catch(() => false))) {
      assert.ok(Date.now() < deadline, 'the agent did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    probe.close();
  }
  return { port, stop };
}
