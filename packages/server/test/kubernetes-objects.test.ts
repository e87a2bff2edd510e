import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { HutchError } from '../src/core/errors.js';
import { kubeError, withRetry } from '../src/runtime/kubernetes/kube-errors.js';
import { buildNetworkPolicy } from '../src/runtime/kubernetes/network-policy.js';
import { buildPod } from '../src/runtime/kubernetes/pod-spec.js';
import { POD_INPUT } from './kubernetes-fixtures.js';
import { KubeVolumes } from '../src/runtime/kubernetes/kube-volumes.js';
import { buildVolumeSnapshot, KubeVolumeSnapshots, volumeSnapshotInfo } from '../src/runtime/kubernetes/kube-volume-snapshots.js';
import { buildSandboxClaim, buildSandboxTemplate, buildSandboxWarmPool } from '../src/runtime/kubernetes/agent-sandbox.js';

// The Kubernetes objects Hutch writes and the API errors it maps, as pure functions (the cluster
// itself is exercised by tests-k8s/, `npm run test:k8s`).

const policy = (egress: Parameters<typeof buildNetworkPolicy>[0]['egress']) =>
  buildNetworkPolicy({ id: 'abc', namespace: 'ns', installation: 'inst', egress });

test('NetworkPolicy: none denies all egress and admits only the agent port', () => {
  const p = policy('none');
  assert.deepEqual(p.spec?.podSelector?.matchLabels, { 'hutch.dev/sandbox': 'abc', 'hutch.dev/installation': 'inst' });
  assert.deepEqual(p.spec?.policyTypes, ['Ingress', 'Egress']);
  assert.deepEqual(p.spec?.egress, []);
  assert.deepEqual(p.spec?.ingress, [{ ports: [{ protocol: 'TCP', port: 49983 }] }]);
  assert.equal(p.metadata?.name, 'hutch-abc');
});

test('NetworkPolicy: open is everything but the always-blocked and private ranges, both families', () => {
  const to = policy('open').spec?.egress?.[0]?.to ?? [];
  assert.deepEqual(
    to.map((p) => p.ipBlock?.cidr),
    ['0.0.0.0/0', '0:0:0:0:0:0:0:0/0'],
  );
  const v4 = to[0]!.ipBlock!.except!;
  for (const c of ['127.0.0.0/8', '169.254.0.0/16', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'])
    assert.ok(v4.includes(c), c);
  const v6 = to[1]!.ipBlock!.except!;
  assert.ok(v6.includes('fc00:0:0:0:0:0:0:0/7'));
  assert.ok(v6.includes('fe80:0:0:0:0:0:0:0/10'));
  assert.ok(!v6.some((c) => c.includes('ffff:0:0/96')), 'the IPv4-mapped block is not an IPv6 except (Kubernetes refuses it)');
});

test('NetworkPolicy: an allowlist gives one block per CIDR, deny entries and blocked ranges inside it as except', () => {
  const to =
    policy({
      allow: ['10.1.2.3/16', '203.0.113.9', '169.254.169.254/32', '172.16.0.0/12', '0.0.0.0/0'],
      deny: ['10.1.128.0/17', '10.0.0.0/8', 'evil.example.com', '172.20.0.0/16'],
    }).spec?.egress?.[0]?.to ?? [];
  assert.deepEqual(JSON.parse(JSON.stringify(to)), [
    // 10.1.0.0/16 lies inside the denied 10/8: gone altogether.
    { ipBlock: { cidr: '203.0.113.9/32' } },
    // The metadata address is always blocked: never allowed.
    { ipBlock: { cidr: '172.16.0.0/12', except: ['172.20.0.0/16'] } },
    {
      ipBlock: {
        cidr: '0.0.0.0/0',
        except: ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3', '10.1.128.0/17', '10.0.0.0/8', '172.20.0.0/16'],
      },
    },
  ]);
});

test('NetworkPolicy: domain names are refused with a message naming the field', () => {
  assert.throws(
    () => policy({ allow: ['198.51.100.0/24', '*.example.com'], deny: [] }),
    (err: unknown) =>
      err instanceof HutchError &&
      err.kind === 'tier_unavailable' &&
      /network\.egress\.allow\[1\]: domain names .* FQDN-capable CNI/.test(err.message),
  );
});

test('Pod: image, agent command, limits and requests, labels, runtime class, deadline, volumes, hardening', () => {
  const pod = buildPod(POD_INPUT);
  const c = pod.spec!.containers[0]!;
  assert.deepEqual(pod.metadata?.labels, {
    'app.kubernetes.io/managed-by': 'hutch',
    'hutch.dev/sandbox': 'abc',
    'hutch.dev/tenant': 'team-a',
    'hutch.dev/isolation': 'gvisor',
    'hutch.dev/installation': 'inst',
  });
  assert.equal(pod.spec?.runtimeClassName, 'gvisor');
  assert.equal(pod.spec?.activeDeadlineSeconds, 3900);
  assert.equal(pod.spec?.restartPolicy, 'Never');
  assert.equal(pod.spec?.automountServiceAccountToken, false);
  assert.equal(pod.spec?.enableServiceLinks, false);
  assert.deepEqual(c.command, ['/.hutch/hutch-agent', '--listen', 'tcp:0.0.0.0:49983', '--default-user', 'user', '--null-stdio']);
  assert.deepEqual(c.resources, {
    limits: { cpu: '2000m', memory: '512Mi', 'ephemeral-storage': '1024Mi' },
    requests: { cpu: '200m', memory: '512Mi', 'ephemeral-storage': '1024Mi' },
  });
  assert.deepEqual(
    c.env?.map((e) => e.name),
    ['PATH', 'LANG', 'A', 'HUTCH_AGENT_ACCESS_TOKEN'],
  );
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
  assert.deepEqual(c.securityContext?.capabilities?.add, ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'SETGID', 'SETUID', 'SETPCAP']);
  assert.deepEqual(pod.spec?.volumes, [
    { name: 'volume-0', persistentVolumeClaim: { claimName: 'hutch-vol-data-0123456789', readOnly: true } },
    { name: 'hutch-secrets', emptyDir: { medium: 'Memory', sizeLimit: '4Mi' } },
  ]);
  assert.deepEqual(c.volumeMounts, [
    { name: 'volume-0', mountPath: '/data', readOnly: true },
    { name: 'hutch-secrets', mountPath: '/run/secrets' },
  ]);
});

test('volume claims: readable, valid names, distinct for keys that sanitise alike', () => {
  const a = KubeVolumes.claimName('my_data');
  const b = KubeVolumes.claimName('my.data');
  assert.match(a, /^hutch-vol-my-data-[0-9a-f]{10}$/);
  assert.notEqual(a, b);
  assert.match(KubeVolumes.claimName('data@team-a'), /^hutch-vol-data-team-a-[0-9a-f]{10}$/);
});

const apiError = (code: number, message: string, headers: Record<string, string> = {}): ApiException<string> =>
  new ApiException(code, `HTTP ${code}`, JSON.stringify({ kind: 'Status', message }), headers);

test('API errors map to Hutch kinds with the API server message; throttling carries Retry-After', () => {
  const cases: Array<[number, string, string]> = [
    [404, 'pods "x" not found', 'not_found'],
    [409, 'pods "x" already exists', 'conflict'],
    [422, 'Pod "x" is invalid: spec.containers', 'invalid_argument'],
    [429, 'too many requests', 'resource_exhausted'],
    [403, 'exceeded quota: compute, requested: pods=1', 'resource_exhausted'],
    [403, 'pods is forbidden: User cannot create', 'internal'],
    [503, 'etcd unavailable', 'unavailable'],
  ];
  for (const [code, message, kind] of cases) {
    const err = kubeError('create pod', apiError(code, message, code === 429 ? { 'retry-after': '7' } : {}));
    assert.equal(err.kind, kind, `${code} ${message}`);
    assert.ok(err.message.includes(message), err.message);
    if (code === 429) assert.equal(err.retryAfterSeconds, 7);
  }
});

test('withRetry repeats throttled and unavailable calls, not refused ones', async () => {
  let calls = 0;
  const value = await withRetry('list', async () => {
    calls++;
    if (calls < 3) throw apiError(calls === 1 ? 429 : 503, 'busy', { 'retry-after': '0' });
    return 'ok';
  });
  assert.deepEqual([value, calls], ['ok', 3]);
  calls = 0;
  await assert.rejects(
    withRetry('create', async () => {
      calls++;
      throw apiError(422, 'invalid');
    }),
    (err: unknown) => err instanceof HutchError && err.kind === 'invalid_argument',
  );
  assert.equal(calls, 1);
});

test('VolumeSnapshot: the volume claim as the source, the configured class, labels and names; status read back', () => {
  const snapshot = buildVolumeSnapshot({
    key: 'data@team-a',
    snapshot: 'nightly.1',
    namespace: 'ns',
    installation: 'inst',
    snapshotClass: 'csi-snap',
  });
  const claim = KubeVolumes.claimName('data@team-a');
  assert.equal(snapshot.apiVersion, 'snapshot.storage.k8s.io/v1');
  assert.equal(snapshot.kind, 'VolumeSnapshot');
  assert.deepEqual(snapshot.spec, { volumeSnapshotClassName: 'csi-snap', source: { persistentVolumeClaimName: claim } });
  const metadata = snapshot.metadata as {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  assert.equal(metadata.namespace, 'ns');
  assert.match(metadata.name, /^hutch-vs-data-team-a-nightly-1-[0-9a-f]{10}$/);
  assert.ok(metadata.name.length <= 63);
  assert.deepEqual(metadata.labels, {
    'app.kubernetes.io/managed-by': 'hutch',
    'hutch.dev/installation': 'inst',
    'hutch.dev/volume-claim': claim,
  });
  assert.deepEqual(metadata.annotations, { 'hutch.dev/volume': 'data@team-a', 'hutch.dev/snapshot': 'nightly.1' });
  const noClass = buildVolumeSnapshot({ key: 'data', snapshot: 's', namespace: 'ns', installation: 'inst', snapshotClass: null });
  assert.deepEqual(
    noClass.spec,
    { source: { persistentVolumeClaimName: KubeVolumes.claimName('data') } },
    "no class: the cluster's default",
  );
  assert.notEqual(
    KubeVolumeSnapshots.objectName('a-b', 'c'),
    KubeVolumeSnapshots.objectName('a', 'b-c'),
    'names that sanitise alike stay distinct',
  );
  const info = volumeSnapshotInfo({
    metadata: { name: metadata.name, annotations: metadata.annotations, creationTimestamp: '2026-11-24T09:00:00Z' },
    status: { readyToUse: true, restoreSize: '1Gi', creationTime: '2026-11-24T09:00:05Z' },
  });
  assert.deepEqual(info, {
    name: 'nightly.1',
    createdAt: new Date('2026-11-24T09:00:05Z'),
    readyToUse: true,
    restoreSizeMiB: 1024,
    error: null,
  });
  const failed = volumeSnapshotInfo({ metadata: { annotations: metadata.annotations }, status: { error: { message: 'driver refused' } } });
  assert.equal(failed.readyToUse, false);
  assert.equal(failed.error, 'driver refused');
  assert.equal(failed.restoreSizeMiB, null);
});

test('agent-sandbox: the pool pod as a SandboxTemplate, its SandboxWarmPool, a SandboxClaim per create', () => {
  const pod = buildPod({ ...POD_INPUT, id: 'member1', env: {}, deadlineSeconds: null, volumes: [] });
  const template = buildSandboxTemplate({
    name: 'hutch-pool-p1',
    namespace: 'ns',
    installation: 'inst',
    pool: 'p1',
    pod,
    tokenSecret: 'hutch-pool-p1',
  });
  assert.equal(template.apiVersion, 'extensions.agents.x-k8s.io/v1alpha1');
  assert.equal(template.kind, 'SandboxTemplate');
  const spec = template.spec as {
    podTemplate: { metadata: { labels: Record<string, string> }; spec: NonNullable<typeof pod.spec> };
    networkPolicyManagement: string;
  };
  // The pool member's pod spec, but the agent token from the pool's Secret, not a literal.
  const env = spec.podTemplate.spec.containers[0]!.env!;
  const tokenVar = env.find((e) => e.name === 'HUTCH_AGENT_ACCESS_TOKEN');
  assert.deepEqual(tokenVar, { name: 'HUTCH_AGENT_ACCESS_TOKEN', valueFrom: { secretKeyRef: { name: 'hutch-pool-p1', key: 'token' } } });
  assert.ok(!JSON.stringify(spec.podTemplate.spec).includes('"tok"'), "the member's literal token is nowhere in the template");
  const withoutEnv = (s: NonNullable<typeof pod.spec>) => ({
    ...s,
    containers: s.containers.map((c) => ({ ...c, env: c.env?.filter((e) => e.name !== 'HUTCH_AGENT_ACCESS_TOKEN') })),
  });
  assert.deepEqual(withoutEnv(spec.podTemplate.spec), withoutEnv(pod.spec!), "otherwise the pool member's pod spec");
  assert.equal(
    pod.spec!.containers[0]!.env!.find((e) => e.name === 'HUTCH_AGENT_ACCESS_TOKEN')?.value,
    'tok',
    'the input pod is not changed',
  );
  assert.equal(spec.podTemplate.metadata.labels['hutch.dev/sandbox'], undefined, 'no sandbox id before a claim');
  assert.equal(spec.podTemplate.metadata.labels['hutch.dev/pool'], 'p1');
  assert.equal(spec.podTemplate.metadata.labels['hutch.dev/installation'], 'inst');
  assert.equal(spec.networkPolicyManagement, 'Unmanaged', "egress stays Hutch's NetworkPolicies");
  const warm = buildSandboxWarmPool({
    name: 'hutch-pool-p1',
    namespace: 'ns',
    installation: 'inst',
    pool: 'p1',
    template: 'hutch-pool-p1',
    replicas: 3,
  });
  assert.equal(warm.kind, 'SandboxWarmPool');
  assert.deepEqual(warm.spec, { replicas: 3, sandboxTemplateRef: { name: 'hutch-pool-p1' } });
  const claim = buildSandboxClaim({
    id: 'sbx1',
    namespace: 'ns',
    installation: 'inst',
    pool: 'p1',
    template: 'hutch-pool-p1',
    warmPool: 'hutch-pool-p1',
    tenant: 'team-a',
    shutdownTime: new Date('2026-11-24T10:00:00Z'),
  });
  assert.equal(claim.kind, 'SandboxClaim');
  assert.equal((claim.metadata as { name: string }).name, 'hutch-sbx1');
  assert.deepEqual(claim.spec, {
    sandboxTemplateRef: { name: 'hutch-pool-p1' },
    warmpool: 'hutch-pool-p1',
    additionalPodMetadata: { labels: { 'hutch.dev/sandbox': 'sbx1', 'hutch.dev/tenant': 'team-a' } },
    lifecycle: { shutdownTime: '2026-11-24T10:00:00.000Z', shutdownPolicy: 'Delete' },
  });
  const forever = buildSandboxClaim({
    id: 'sbx2',
    namespace: 'ns',
    installation: 'inst',
    pool: 'p1',
    template: 't',
    warmPool: 'w',
    tenant: 'default',
    shutdownTime: null,
  });
  assert.equal((forever.spec as { lifecycle?: unknown }).lifecycle, undefined, 'no TTL: no shutdown time');
});
