import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { AgentEndpoint } from '../src/core/agent.js';
import type { Logger } from '../src/core/logger.js';
import type { SandboxSpec } from '../src/core/provider.js';
import { AgentClient } from '../src/runtime/agent/agent-client.js';
import { detectAgentSandbox, requireAgentSandbox, usingAgentSandbox } from '../src/runtime/kubernetes/agent-sandbox.js';
import { agentTokenRotation } from '../src/runtime/kubernetes/agent-sandbox-client.js';
import { AgentSandboxPools, poolObjectName, type TokenRotation } from '../src/runtime/kubernetes/agent-sandbox-pools.js';
import { KubernetesProvider } from '../src/runtime/kubernetes/kubernetes-provider.js';
import type { Discovery } from '../src/runtime/kubernetes/discovery.js';
import type { PodImages } from '../src/runtime/kubernetes/pod-images.js';
import { LABELS } from '../src/runtime/kubernetes/pod-spec.js';
import type { PodCache } from '../src/runtime/kubernetes/pod-watch.js';
import { AGENT, StandInAgentSandboxClient, standInApiServer, startAgent } from './kubernetes-agent-sandbox-fixtures.js';

// The agent-sandbox warm-pool path WIRED into the kubernetes provider's warm-pool hooks (what
// `--kubernetes-warm-pools agent-sandbox` turns on): a fill (create with `warmPool`) → a
// SandboxClaim from the pool's SandboxWarmPool, the agent token rotated to the sandbox's own; the
// claim hook labels the adopted pod; delete and the restart sweep delete the claim, never the pod.
// Everything around the provider is a STAND-IN: the agent-sandbox objects and "controller" (an
// in-memory store that adopts a warm pod for each claim and deletes it with its claim), the core
// and networking APIs (a local HTTP server storing objects by path) and the pod watch (reading the
// stand-in's pods). The agent in the first test is a real hutch-agent over TCP.

const NS = 'ns';
const INSTALLATION = 'inst';
const POOL = { tenant: 'team-a', name: 'py' };
const OBJECT = poolObjectName(INSTALLATION, POOL.tenant, POOL.name);
const POOL_TOKEN = 'pool-token-0123456789abcdefghijklmnopqrstuv';
const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {} };

/** The stand-in "controller": warm pods of applied warm pools, adopted by claims, deleted with them. */
class StandInController extends StandInAgentSandboxClient {
  private n = 0;
  /** Whether claims get bound at all (false: a warm pool with no room). */
  binding = true;

  constructor(
    private readonly api: { objects: Map<string, Record<string, unknown>> },
    private readonly podIP: string,
  ) {
    super();
  }

  /** A Ready warm pod of the pool's template (its labels, no sandbox label), known to the API too. */
  private warmPod(): V1Pod {
    const template = this.objects.get(`sandboxtemplates/${OBJECT}`) as {
      spec: { podTemplate: { metadata: { labels: Record<string, string> } } };
    };
    const name = `warm-${++this.n}`;
    const pod: V1Pod = {
      metadata: { name, namespace: NS, labels: { ...template.spec.podTemplate.metadata.labels } },
      status: {
        phase: 'Running',
        podIP: this.podIP,
        startTime: new Date(),
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [
          { name: 'sandbox', ready: true, restartCount: 0, image: 'i', imageID: 'i', state: { running: { startedAt: new Date() } } },
        ],
      },
    };
    this.api.objects.set(`/api/v1/namespaces/${NS}/pods/${name}`, pod as Record<string, unknown>);
    return pod;
  }

  /** Binds every unbound claim to a new warm pod, labelled as the claim asks. */
  adopt(): void {
    if (!this.binding) return;
    for (const [key, claim] of this.objects) {
      if (!key.startsWith('sandboxclaims/') || claim.status) continue;
      const pod = this.warmPod();
      const extra = (claim.spec as { additionalPodMetadata: { labels: Record<string, string> } }).additionalPodMetadata.labels;
      pod.metadata!.labels = { ...pod.metadata!.labels, ...extra };
      this.pods.set(pod.metadata!.name!, pod);
      this.bind(key.slice('sandboxclaims/'.length), `sb-${pod.metadata!.name}`, pod.metadata!.name!);
    }
  }

  override async remove(resource: Parameters<StandInAgentSandboxClient['remove']>[0], name: string): Promise<void> {
    if (resource === 'sandboxclaims') {
      const sandbox = (this.objects.get(`sandboxclaims/${name}`)?.status as { sandbox?: { name: string } } | undefined)?.sandbox?.name;
      if (sandbox) {
        const pod = sandbox.slice('sb-'.length);
        this.pods.delete(pod);
        this.objects.delete(`sandboxes/${sandbox}`);
      }
    }
    await super.remove(resource, name);
  }
}

/** The pod watch as the provider reads it, over the stand-in's pods. */
class StandInPodCache implements PodCache {
  constructor(private readonly cluster: StandInController) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  pods(): readonly V1Pod[] {
    return [...this.cluster.pods.values()].filter((p) => p.metadata?.labels?.[LABELS.installation] === INSTALLATION);
  }
  pod(id: string): V1Pod | undefined {
    return this.pods().find((p) => p.metadata?.labels?.[LABELS.sandbox] === id);
  }
  async until<T>(check: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined || Date.now() > deadline) return value;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

async function harness(options: { podIP: string; agentPort: number; rotation: TokenRotation }) {
  const api = await standInApiServer();
  const cluster = new StandInController(api, options.podIP);
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'c', server: api.url, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u', namespace: NS }],
    currentContext: 'x',
  });
  const provider = (): KubernetesProvider =>
    new KubernetesProvider({
      kubeConfig: config,
      namespace: NS,
      installation: INSTALLATION,
      runtimeClasses: { container: null, gvisor: 'gvisor' },
      images: { imageFor: async () => 'localhost/hutch/sandbox:py' } as unknown as PodImages,
      tokenKey: 'key',
      agentSandbox: new AgentSandboxPools({
        client: cluster,
        rotation: options.rotation,
        namespace: NS,
        installation: INSTALLATION,
        agentPort: options.agentPort,
        poolToken: () => POOL_TOKEN,
        claimTimeoutMs: 2_000,
        pollMs: 20,
        // Each poll gives the stand-in controller a turn.
        sleep: async (ms) => {
          cluster.adopt();
          await new Promise((r) => setTimeout(r, ms));
        },
      }),
      claimVisibleMs: 1_000,
      createTimeoutMs: 300,
      podCache: new StandInPodCache(cluster),
      log: quiet,
    });
  return { api, cluster, provider };
}

/** A warm-pool fill as SandboxService.bootWarm asks for it. */
const fill = (id: string): SandboxSpec => ({
  id,
  isolation: 'container',
  layers: [],
  env: {},
  defaultUser: 'root',
  cpu: 1,
  memoryMiB: 256,
  pids: 128,
  egress: 'none',
  diskMiB: 1024,
  volumes: [],
  tenant: POOL.tenant,
  warmPool: { name: POOL.name, target: 2 },
});

/** The provider's endpoint of a pod: host, port and the sandbox's token. */
function tcp(endpoint: AgentEndpoint): { host: string; port: number; token: string } {
  assert.ok('host' in endpoint && endpoint.token !== undefined, 'a TCP endpoint with a token');
  return { host: endpoint.host, port: endpoint.port, token: endpoint.token };
}

test('wired: fill claims from the warm pool and rotates a real agent to the sandbox token; claim labels the adopted pod; delete and the restart sweep delete the claim', async () => {
  assert.ok(existsSync(AGENT), 'agent/bin/hutch-agent is not built: run `bash scripts/setup.sh` (or go build in agent/)');
  const agent = await startAgent(POOL_TOKEN);
  const port = agent.port;
  const { api, cluster, provider } = await harness({ podIP: '127.0.0.1', agentPort: port, rotation: agentTokenRotation });
  const asPool = new AgentClient({ host: '127.0.0.1', port, token: POOL_TOKEN });
  try {
    const first = provider();
    await first.create(fill('sbxw1'));

    // The pool's objects, then the claim; no pod of Hutch's own.
    assert.deepEqual(cluster.writes.slice(0, 5), [
      `apply secret ${OBJECT}`,
      `apply networkpolicy ${OBJECT}`,
      `apply sandboxtemplates ${OBJECT}`,
      `apply sandboxwarmpools ${OBJECT}`,
      'apply sandboxclaims hutch-sbxw1',
    ]);
    assert.deepEqual((cluster.objects.get(`sandboxwarmpools/${OBJECT}`) as { spec: { replicas: number } }).spec.replicas, 2);
    assert.ok(!api.calls.some((c) => c.startsWith('POST /api/v1/namespaces/ns/pods')), 'no pod created by Hutch');
    assert.ok(
      api.objects.has('/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/hutch-sbxw1'),
      "the sandbox's own NetworkPolicy (egress none) exists",
    );

    // Exec-ready with the sandbox's own token: the endpoint's token opens the agent, the pool's no longer does.
    const endpoint = tcp(first.agentEndpoint('sbxw1'));
    assert.equal(endpoint.host, '127.0.0.1');
    assert.notEqual(endpoint.token, POOL_TOKEN);
    const asSandbox = new AgentClient({ host: endpoint.host, port, token: endpoint.token });
    try {
      const stat = (client: AgentClient) => client.unary<{ entry?: { name?: string } }>('filesystem.Filesystem/Stat', { path: '/' });
      assert.ok((await stat(asSandbox)).entry, "the sandbox's token opens its agent");
      await assert.rejects(stat(asPool), /invalid access token/);
    } finally {
      asSandbox.close();
    }

    // The claim hook (a create took the member): tenant label and TTL backstop on the adopted pod, by its own name.
    await first.claimed('sbxw1', { tenant: 'team-a', timeoutSeconds: 600 });
    const patched = api.objects.get('/api/v1/namespaces/ns/pods/warm-1') as V1Pod;
    assert.equal(patched.metadata?.labels?.[LABELS.tenant], 'team-a');
    assert.ok((patched.spec?.activeDeadlineSeconds ?? 0) >= 600 + 3600);

    // A restarted server finds the claimed sandbox by its label, with the same (derived) token.
    const second = provider();
    assert.deepEqual(await second.list(), [{ id: 'sbxw1', isolation: 'container', status: 'running' }]);
    assert.equal(tcp(second.agentEndpoint('sbxw1')).token, endpoint.token);
    // Its sweep (no record kept it) deletes the claim, the controller its pod; Hutch never deletes the pod itself.
    assert.deepEqual(await second.sweep(new Set()), ['sbxw1']);
    assert.equal(cluster.objects.has('sandboxclaims/hutch-sbxw1'), false, 'the claim is deleted');
    assert.equal(cluster.pods.has('warm-1'), false, 'its pod went with it');
    assert.ok(!api.calls.includes('DELETE /api/v1/namespaces/ns/pods/warm-1'), 'the adopted pod is not deleted directly');
    assert.equal(api.objects.has('/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/hutch-sbxw1'), false);
  } finally {
    asPool.close();
    await api.close();
    await agent.stop();
  }
});

test('wired: pool objects written once per shape; destroy deletes the claim; a claim never bound fails the fill and leaves nothing; pool removal', async () => {
  const rotations: string[] = [];
  const { api, cluster, provider } = await harness({
    podIP: '10.0.0.9',
    agentPort: 49983,
    rotation: {
      async rotate(_endpoint, current, next) {
        assert.equal(current, POOL_TOKEN);
        rotations.push(next);
      },
    },
  });
  try {
    const p = provider();
    await p.create(fill('sbxa'));
    await p.create(fill('sbxb'));
    assert.equal(
      cluster.writes.filter((w) => w === `apply sandboxtemplates ${OBJECT}`).length,
      1,
      'the template is not rewritten per fill',
    );
    assert.deepEqual(
      rotations,
      [tcp(p.agentEndpoint('sbxa')).token, tcp(p.agentEndpoint('sbxb')).token],
      'each member rotated to its own token',
    );
    assert.notEqual(rotations[0], rotations[1]);

    // A resize rewrites the warm pool.
    await p.create({ ...fill('sbxc'), warmPool: { name: POOL.name, target: 3 } });
    assert.equal((cluster.objects.get(`sandboxwarmpools/${OBJECT}`) as { spec: { replicas: number } }).spec.replicas, 3);

    await p.destroy('sbxa');
    assert.equal(cluster.objects.has('sandboxclaims/hutch-sbxa'), false, 'destroy deletes the claim');
    assert.equal(cluster.objects.has('sandboxclaims/hutch-sbxb'), true, 'and only that one');
    assert.ok(!api.calls.some((c) => /^DELETE \/api\/v1\/namespaces\/ns\/pods\/warm-/.test(c)), 'never the adopted pod itself');

    // No room in the warm pool: the fill fails within the bound and leaves no claim nor policy.
    cluster.binding = false;
    await assert.rejects(p.create(fill('sbxd')), /was not bound to a Sandbox within 2 s/);
    assert.equal(cluster.objects.has('sandboxclaims/hutch-sbxd'), false);
    assert.equal(api.objects.has('/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/hutch-sbxd'), false);

    // A fill without warmPool (a cold create) is a pod of Hutch's own, as without agent-sandbox.
    const cold = fill('sbxcold');
    delete cold.warmPool;
    // The stand-in watch never sees that pod start (no kubelet): the attempt is what is checked.
    await assert.rejects(p.create(cold), /did not start within/);
    assert.ok(api.calls.includes('POST /api/v1/namespaces/ns/pods'), 'a cold create makes its own pod');

    await p.warmPoolRemoved(POOL.tenant, POOL.name);
    assert.deepEqual(cluster.writes.slice(-4), [
      `remove sandboxwarmpools ${OBJECT}`,
      `remove sandboxtemplates ${OBJECT}`,
      `remove secret ${OBJECT}`,
      `remove networkpolicy ${OBJECT}`,
    ]);
  } finally {
    await api.close();
  }
});

test('the opt-in needs the CRDs: refused with what is missing; accepted with the served core version, reported as agent-sandbox', async () => {
  const discovery = (served: string[]): Discovery =>
    ({
      serves: async (group: string, version: string, plural: string) => served.includes(`${plural}.${group}/${version}`),
    }) as unknown as Discovery;
  const extensions = ['sandboxtemplates', 'sandboxclaims', 'sandboxwarmpools'].map((p) => `${p}.extensions.agents.x-k8s.io/v1alpha1`);
  const none = await detectAgentSandbox(discovery([]));
  assert.equal(none.warmPools, 'pods');
  assert.throws(
    () => requireAgentSandbox(none),
    /--kubernetes-warm-pools agent-sandbox: .*not installed.*sandboxes\.agents\.x-k8s\.io, sandboxtemplates\.extensions\.agents\.x-k8s\.io/,
  );
  const partial = await detectAgentSandbox(discovery(['sandboxes.agents.x-k8s.io/v1alpha1']));
  assert.throws(() => requireAgentSandbox(partial), /sandboxtemplates\.extensions.*sandboxclaims.*sandboxwarmpools/);
  const installed = await detectAgentSandbox(discovery(['sandboxes.agents.x-k8s.io/v1beta1', ...extensions]));
  assert.equal(installed.warmPools, 'pods', 'detected is not enabled: the default stays pods');
  // tests-k8s/agent-sandbox.test.ts reads this note on a cluster with stand-in CRDs.
  assert.match(installed.note, /SandboxWarmPool\/SandboxClaim are not used yet/);
  assert.equal(requireAgentSandbox(installed), 'v1beta1');
  assert.equal(usingAgentSandbox(installed).warmPools, 'agent-sandbox');
});
