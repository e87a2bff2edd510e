import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { HutchError } from '../src/core/errors.js';
import { AgentClient } from '../src/runtime/agent/agent-client.js';
import { agentTokenRotation } from '../src/runtime/kubernetes/agent-sandbox-client.js';
import {
  AgentSandboxPools,
  boundSandbox,
  poolObjectName,
  podReady,
  sandboxPodName,
  type TokenRotation,
} from '../src/runtime/kubernetes/agent-sandbox-pools.js';
import { buildPod } from '../src/runtime/kubernetes/pod-spec.js';
import { AGENT, StandInAgentSandboxClient, startAgent } from './kubernetes-agent-sandbox-fixtures.js';
import { POD_INPUT } from './kubernetes-fixtures.js';

// The agent-sandbox claim flow (runtime/kubernetes/agent-sandbox-pools.ts) against a STAND-IN for
// the cluster: an in-memory object store whose "controller" binds claims when the test says so.
// No API server and no agent-sandbox controller are involved (k8s-local cannot write custom
// resources); the last test rotates a real hutch-agent's token over TCP.

const POOL = { tenant: 'team-a', name: 'py' };
const NAME = poolObjectName('inst', POOL.tenant, POOL.name);
const poolToken = (name: string): string => `pool-token-of-${name}`;

function podOf(name: string, pool: string, ready: boolean): V1Pod {
  return {
    metadata: { name, labels: { 'hutch.dev/pool': pool } },
    status: {
      phase: ready ? 'Running' : 'Pending',
      podIP: ready ? '10.1.2.3' : undefined,
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: [
        {
          name: 'sandbox',
          ready,
          restartCount: 0,
          image: 'i',
          imageID: 'i',
          state: ready ? { running: { startedAt: new Date() } } : { waiting: { reason: 'ContainerCreating' } },
        },
      ],
    },
  };
}

/** The flow on a virtual clock: every poll advances it and lets the scripted "controller" act. */
function harness(script: (client: StandInAgentSandboxClient, polls: number) => void, rotation?: TokenRotation) {
  const client = new StandInAgentSandboxClient();
  const rotations: Array<{ host: string; port: number; current: string; next: string }> = [];
  let clock = 0;
  let polls = 0;
  const pools = new AgentSandboxPools({
    client,
    rotation: rotation ?? {
      async rotate(endpoint, current, next) {
        rotations.push({ ...endpoint, current, next });
      },
    },
    namespace: 'ns',
    installation: 'inst',
    agentPort: 49983,
    poolToken,
    claimTimeoutMs: 5_000,
    pollMs: 250,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
      polls++;
      script(client, polls);
    },
  });
  return { client, pools, rotations, polls: () => polls };
}

const CLAIM = { id: 'sbx1', tenant: 'team-a', pool: POOL, sandboxToken: 'sandbox-token-sbx1', shutdownTime: null };

test('pool: Secret and fencing policy before the template, then the warm pool; removal deletes all four', async () => {
  const { client, pools } = harness(() => undefined);
  const pod = buildPod({ ...POD_INPUT, id: 'member', env: {}, agentToken: 'unused', deadlineSeconds: null, volumes: [] });
  assert.equal(await pools.ensurePool({ ...POOL, pod, replicas: 3 }), NAME);
  assert.deepEqual(client.writes, [
    `apply secret ${NAME}`,
    `apply networkpolicy ${NAME}`,
    `apply sandboxtemplates ${NAME}`,
    `apply sandboxwarmpools ${NAME}`,
  ]);
  assert.deepEqual(client.secrets.get(NAME)?.stringData, { token: poolToken(NAME) });
  const template = client.objects.get(`sandboxtemplates/${NAME}`) as {
    spec: { podTemplate: { spec: { runtimeClassName: string; containers: Array<{ env: Array<{ name: string; valueFrom?: unknown }> }> } } };
  };
  assert.equal(template.spec.podTemplate.spec.runtimeClassName, 'gvisor');
  assert.deepEqual(template.spec.podTemplate.spec.containers[0]!.env.find((e) => e.name === 'HUTCH_AGENT_ACCESS_TOKEN')?.valueFrom, {
    secretKeyRef: { name: NAME, key: 'token' },
  });
  assert.deepEqual((client.objects.get(`sandboxwarmpools/${NAME}`) as { spec: unknown }).spec, {
    replicas: 3,
    sandboxTemplateRef: { name: NAME },
  });
  const policy = client.policies.get(NAME)!;
  assert.deepEqual(policy.spec?.podSelector?.matchLabels, { 'hutch.dev/pool': NAME, 'hutch.dev/installation': 'inst' });
  assert.deepEqual(policy.spec?.egress, [], 'unclaimed pool pods have no egress');
  // A resize replaces the warm pool in place.
  await pools.ensurePool({ ...POOL, pod, replicas: 5 });
  assert.equal((client.objects.get(`sandboxwarmpools/${NAME}`) as { spec: { replicas: number } }).spec.replicas, 5);
  client.writes.length = 0;
  await pools.removePool(POOL.tenant, POOL.name);
  assert.deepEqual(client.writes, [
    `remove sandboxwarmpools ${NAME}`,
    `remove sandboxtemplates ${NAME}`,
    `remove secret ${NAME}`,
    `remove networkpolicy ${NAME}`,
  ]);
  assert.equal(client.objects.size + client.secrets.size + client.policies.size, 0);
  assert.notEqual(poolObjectName('inst', 'team-b', 'py'), NAME, 'pools of the same name in two tenants do not share objects');
  assert.match(NAME, /^[a-z0-9-]{1,63}$/);
});

test('claim: bound, pod Ready, token rotated from the pool one to the sandbox one, then handed out', async () => {
  const { client, pools, rotations } = harness((c, polls) => {
    if (polls === 3) {
      c.bind('hutch-sbx1', 'sb-1', 'pool-pod-7');
      c.pods.set('pool-pod-7', podOf('pool-pod-7', NAME, false));
    }
    if (polls === 5) c.pods.set('pool-pod-7', podOf('pool-pod-7', NAME, true));
  });
  const claimed = await pools.claim({ ...CLAIM, shutdownTime: new Date('2026-11-24T12:00:00Z') });
  assert.deepEqual(claimed, { claim: 'hutch-sbx1', sandbox: 'sb-1', pod: 'pool-pod-7', podIP: '10.1.2.3' });
  assert.deepEqual(rotations, [{ host: '10.1.2.3', port: 49983, current: poolToken(NAME), next: 'sandbox-token-sbx1' }]);
  const claim = client.objects.get('sandboxclaims/hutch-sbx1') as { spec: Record<string, unknown> };
  assert.deepEqual(claim.spec.sandboxTemplateRef, { name: NAME });
  assert.equal(claim.spec.warmpool, NAME);
  assert.deepEqual(claim.spec.lifecycle, { shutdownTime: '2026-11-24T12:00:00.000Z', shutdownPolicy: 'Delete' });
  await pools.release('sbx1');
  assert.equal(client.objects.has('sandboxclaims/hutch-sbx1'), false, 'release deletes the claim');
});

test('claim: never bound within the bound → unavailable, the claim deleted, no rotation', async () => {
  const { client, pools, rotations, polls } = harness(() => undefined);
  await assert.rejects(pools.claim(CLAIM), (err: unknown) => {
    assert.ok(err instanceof HutchError);
    assert.equal(err.kind, 'unavailable');
    assert.match(err.message, /not bound to a Sandbox within 5 s/);
    return true;
  });
  assert.equal(polls(), 20, '5 s at 250 ms');
  assert.equal(client.objects.has('sandboxclaims/hutch-sbx1'), false);
  assert.equal(rotations.length, 0);
});

test('claim: bound but its pod never Ready → unavailable, the claim deleted, no rotation', async () => {
  const { client, pools, rotations } = harness((c, polls) => {
    if (polls === 1) {
      c.bind('hutch-sbx1', 'sb-1', 'pool-pod-7', 'Name'); // an older controller's status field
      c.pods.set('pool-pod-7', podOf('pool-pod-7', NAME, false));
    }
  });
  await assert.rejects(pools.claim(CLAIM), /not bound with its pod Ready within 5 s/);
  assert.equal(client.objects.has('sandboxclaims/hutch-sbx1'), false);
  assert.equal(rotations.length, 0);
});

test("claim: a pod that is not of this pool's template is never rotated nor handed out", async () => {
  const { client, pools, rotations } = harness((c, polls) => {
    if (polls === 1) {
      c.bind('hutch-sbx1', 'sb-1', 'other-pod');
      c.pods.set('other-pod', podOf('other-pod', 'hutch-pool-someone-else', true));
    }
  });
  await assert.rejects(pools.claim(CLAIM), /which is not of pool py/);
  assert.equal(client.objects.has('sandboxclaims/hutch-sbx1'), false);
  assert.equal(rotations.length, 0);
});

test('claim: a failed rotation deletes the claim (a pod still on the pool token is never handed out)', async () => {
  const { client, pools } = harness(
    (c, polls) => {
      if (polls === 1) {
        c.bind('hutch-sbx1', 'sb-1', 'pool-pod-7');
        c.pods.set('pool-pod-7', podOf('pool-pod-7', NAME, true));
      }
    },
    {
      async rotate() {
        throw new Error('the agent refused the token rotation (401)');
      },
    },
  );
  await assert.rejects(pools.claim(CLAIM), /failed while rotating: the agent refused the token rotation \(401\)/);
  assert.equal(client.objects.has('sandboxclaims/hutch-sbx1'), false);
});

test('claim: deleted by someone else while waiting → fails at once', async () => {
  const { pools, polls } = harness((c, n) => {
    if (n === 2) c.objects.delete('sandboxclaims/hutch-sbx1');
  });
  await assert.rejects(pools.claim(CLAIM), /was deleted while being bound/);
  assert.equal(polls(), 2);
});

test('status readers: bound sandbox (name / Name), pod name (annotation, else the Sandbox name), readiness', () => {
  assert.equal(boundSandbox({ status: { sandbox: { name: 'a' } } }), 'a');
  assert.equal(boundSandbox({ status: { sandbox: { Name: 'b' } } }), 'b');
  assert.equal(boundSandbox({ status: {} }), null);
  assert.equal(boundSandbox({}), null);
  assert.equal(sandboxPodName({ metadata: { name: 's', annotations: { 'agents.x-k8s.io/pod-name': 'p' } } }), 'p');
  assert.equal(sandboxPodName({ metadata: { name: 's' } }), 's');
  assert.equal(podReady(podOf('p', NAME, true)), true);
  assert.equal(podReady(podOf('p', NAME, false)), false);
  const deleting = podOf('p', NAME, true);
  deleting.metadata!.deletionTimestamp = new Date();
  assert.equal(podReady(deleting), false, 'a pod being deleted is not handed out');
});

test('rotation against a real hutch-agent over TCP: the pool token stops working, the sandbox token works', async () => {
  assert.ok(existsSync(AGENT), 'agent/bin/hutch-agent is not built: run `bash scripts/setup.sh` (or go build in agent/)');
  const pool = 'pool-token-0123456789abcdefghijklmnopqrstuv';
  const fresh = 'sandbox-token-0123456789abcdefghijklmnopqrst';
  const agent = await startAgent(pool);
  const port = agent.port;
  const asPool = new AgentClient({ host: '127.0.0.1', port, token: pool });
  const asSandbox = new AgentClient({ host: '127.0.0.1', port, token: fresh });
  try {
    const stat = (client: AgentClient) => client.unary<{ entry?: { name?: string } }>('filesystem.Filesystem/Stat', { path: '/' });
    await stat(asPool); // the pool token opens the agent before the claim
    await assert.rejects(stat(asSandbox), 'the sandbox token does not open it yet');
    await agentTokenRotation.rotate({ host: '127.0.0.1', port }, pool, fresh);
    await assert.rejects(stat(asPool), /invalid access token/);
    await assert.rejects(asPool.rotateToken('attempt-to-take-back-0123456789abcdefgh'), /refused the token rotation \(401\)/);
    const entry = await stat(asSandbox);
    assert.ok(entry.entry, 'the sandbox token opens it after the rotation');
  } finally {
    asPool.close();
    asSandbox.close();
    await agent.stop();
  }
});
