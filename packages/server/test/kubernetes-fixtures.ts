import type { buildPod } from '../src/runtime/kubernetes/pod-spec.js';

/** A sandbox pod's input as the kubernetes unit tests build it (a gVisor pod with one volume). */
export const POD_INPUT: Parameters<typeof buildPod>[0] = {
  id: 'abc',
  namespace: 'ns',
  installation: 'inst',
  tenant: 'team-a',
  isolation: 'gvisor',
  image: 'localhost/hutch/sandbox:1',
  runtimeClassName: 'gvisor',
  defaultUser: 'user',
  env: { A: '1' },
  agentToken: 'tok',
  cpu: 2,
  memoryMiB: 512,
  diskMiB: 1024,
  cpuRequestRatio: 0.1,
  deadlineSeconds: 3900,
  volumes: [{ claim: 'hutch-vol-data-0123456789', destination: '/data', readOnly: true }],
};
