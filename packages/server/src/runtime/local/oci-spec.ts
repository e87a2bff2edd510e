import type { Isolation } from '../../core/sandbox.js';
import { AGENT_CAPABILITIES } from '../profiles/capabilities.js';
import { MASKED_PATHS, READONLY_PATHS } from '../profiles/paths.js';
import { seccompProfile } from '../profiles/seccomp.js';
import { SECRETS_DIR } from '../../core/secrets.js';
import type { CgroupMode } from './host-probe.js';

/**
 * Builds the OCI runtime spec (config.json) of a sandbox. The same bundle serves runc and runsc;
 * the differences are the /sys mount (runc: an empty read-only tmpfs so no host sysfs is visible;
 * runsc: gVisor's own virtual sysfs) and nothing else.
 */

/** Sandbox root maps to this host uid/gid range: sandbox root is not host root. */
export const ID_MAP_BASE = 100000;
export const ID_MAP_SIZE = 65536;

/** Paths inside the sandbox where the agent binary and its socket dir are mounted. */
export const AGENT_BINARY_PATH = '/.hutch/hutch-agent';
export const AGENT_SOCKET_DIR = '/run/hutch';
export const AGENT_SOCKET_NAME = 'agent.sock';
/** The tmpfs injected secret files go on: in memory, never on the sandbox's disk. */
export const SECRETS_MOUNT = SECRETS_DIR;

/** Where the runtime mounts things of its own: volumes may not cover these. */
export const PLATFORM_MOUNT_PATHS: readonly string[] = [
  '/proc',
  '/sys',
  '/dev',
  AGENT_SOCKET_DIR,
  SECRETS_MOUNT,
  AGENT_BINARY_PATH.slice(0, AGENT_BINARY_PATH.lastIndexOf('/')),
  '/etc/resolv.conf',
  '/etc/hosts',
];

export interface OciSpecInput {
  id: string;
  isolation: Isolation;
  rootfs: string;
  agentBinary: string;
  socketDir: string;
  env: Record<string, string>;
  defaultUser: string;
  cpu: number;
  memoryMiB: number;
  pids: number;
  cgroupsPath: string;
  cgroup: CgroupMode;
  swapAccounting: boolean;
  annotations: Record<string, string>;
  /** RLIMIT_NOFILE for the sandbox: the runtime cannot raise it past the server's own hard limit. */
  nofileLimit: number;
  /** A prepared network namespace to join (egress other than `none`); else a fresh empty one. */
  netnsPath?: string;
  /** Host files bind-mounted read-only over /etc/resolv.conf and /etc/hosts. */
  resolvConf: string;
  hosts: string;
  /** Host directories (mounted volumes) bind-mounted into the sandbox. */
  volumes?: Array<{ source: string; destination: string; readOnly: boolean }>;
}

const BASE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C.UTF-8',
};

export function buildOciSpec(input: OciSpecInput): Record<string, unknown> {
  const memoryBytes = input.memoryMiB * 1024 * 1024;
  const period = 100_000;
  const env = { ...BASE_ENV, ...input.env };
  const gvisor = input.isolation === 'gvisor';
  // gVisor: the host pids cgroup counts the sentry's own threads and ptrace stubs (~14 host
  // threads per live sandbox process), so the sandbox's `pids` limit cannot be the host cgroup's:
  // hitting it would kill the sentry, i.e. the whole sandbox. There the limit is RLIMIT_NPROC,
  // enforced by gVisor's kernel per user, and the agent keeps CAP_SYS_RESOURCE (dropped by its exec
  // shim for every workload process) so it can still start processes and answer the API while a
  // fork bomb runs. The host cgroup keeps a generous backstop against host pid exhaustion.
  const caps = gvisor ? [...AGENT_CAPABILITIES, 'CAP_SYS_RESOURCE'] : [...AGENT_CAPABILITIES];
  const hostPids = gvisor ? Math.min(8192, Math.max(1024, input.pids * 16)) : input.pids;
  const rlimits = [{ type: 'RLIMIT_NOFILE', hard: input.nofileLimit, soft: input.nofileLimit }];
  if (gvisor) rlimits.push({ type: 'RLIMIT_NPROC', hard: input.pids, soft: input.pids });
  const sysMount = gvisor
    ? { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] }
    : { destination: '/sys', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'noexec', 'nodev', 'ro', 'size=4k', 'mode=555'] };
  // tmpfs pages are charged to the sandbox's memory cgroup and cannot be reclaimed (no swap): a
  // /dev/shm as large as the memory limit lets a full /dev/shm OOM-kill the agent (the largest
  // process left) instead of failing the write with ENOSPC. Keep /dev/shm at a quarter of the
  // memory (at most 64 MiB) and /dev, which only holds device nodes and symlinks, small.
  const shmKiB = Math.max(1024, Math.min(65536, Math.floor((input.memoryMiB * 1024) / 4)));
  const devKiB = Math.min(4096, shmKiB);
  const memory: Record<string, number> = { limit: memoryBytes };
  if (input.cgroup === 'v2' || input.swapAccounting) memory.swap = memoryBytes;
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [
        AGENT_BINARY_PATH,
        '--listen',
        `unix:${AGENT_SOCKET_DIR}/${AGENT_SOCKET_NAME}`,
        '--default-user',
        input.defaultUser,
        // gVisor lets sandbox root open /proc/1/fd/1 even though the agent is not dumpable; the
        // agent's stdio there must not stay the host-side runtime.log.
        ...(gvisor ? ['--null-stdio'] : []),
      ],
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits,
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: 'hutch',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      // Note: gVisor ignores tmpfs sizes, so there filling /dev is bounded by the memory limit only
      // (a read-only /dev is not an option: gVisor then refuses writes to /dev/null).
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', `size=${devKiB}k`] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmKiB}k`] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      sysMount,
      // gVisor emulates /dev/net/tun; an empty read-only tmpfs hides it (runc has no such node).
      ...(gvisor
        ? [{ destination: '/dev/net', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'noexec', 'nodev', 'ro', 'size=4k', 'mode=555'] }]
        : []),
      { destination: AGENT_BINARY_PATH, type: 'bind', source: input.agentBinary, options: ['bind', 'ro', 'nosuid', 'nodev'] },
      { destination: AGENT_SOCKET_DIR, type: 'bind', source: input.socketDir, options: ['bind', 'rw', 'nosuid', 'nodev', 'noexec'] },
      // Injected secret files (written by the agent, mode 0400): only root writes here, nothing
      // in it reaches the disk or a snapshot. 32 files of at most 64 KiB fit.
      { destination: SECRETS_MOUNT, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'mode=755', 'size=4096k'] },
      // The platform decides name resolution: the resolver on the gateway, or none at all.
      { destination: '/etc/resolv.conf', type: 'bind', source: input.resolvConf, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] },
      { destination: '/etc/hosts', type: 'bind', source: input.hosts, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] },
      ...(input.volumes ?? []).map((v) => ({
        destination: v.destination,
        type: 'bind',
        source: v.source,
        options: ['rbind', v.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'],
      })),
    ],
    annotations: input.annotations,
    linux: {
      uidMappings: [{ containerID: 0, hostID: ID_MAP_BASE, size: ID_MAP_SIZE }],
      gidMappings: [{ containerID: 0, hostID: ID_MAP_BASE, size: ID_MAP_SIZE }],
      namespaces: [
        { type: 'pid' },
        input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'user' },
        ...(input.isolation === 'container' ? [{ type: 'cgroup' }] : []),
      ],
      cgroupsPath: input.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        memory,
        cpu: { quota: Math.max(1000, Math.round(input.cpu * period)), period },
        pids: { limit: hostPids },
      },
      seccomp: seccompProfile({ gvisor: input.isolation === 'gvisor' }),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}
