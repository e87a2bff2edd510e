import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What this host can do, detected at start (never assumed). Shown by GET /v1/info. */
export type CgroupMode = 'v1' | 'hybrid' | 'v2';

export interface HostFacts {
  kernel: string;
  cgroup: CgroupMode;
  /** cgroup v1: whether memory.memsw.* exists (swap accounting). */
  swapAccounting: boolean;
  userNamespaces: boolean;
  overlayfs: boolean;
  seccomp: boolean;
  kvm: { present: boolean; note: string };
  runc: ToolVersion | null;
  crun: ToolVersion | null;
  runsc: ToolVersion | null;
  nft: ToolVersion | null;
  /** CRIU (what runc checkpoints a container's memory with): null when not installed. */
  criu: CriuStatus | null;
  /** This process's hard RLIMIT_NOFILE: sandboxes cannot be given more. */
  nofileHard: number;
}

export interface ToolVersion {
  path: string;
  version: string;
}

export interface CriuStatus extends ToolVersion {
  /** Whether `criu check` passes on this kernel. */
  works: boolean;
  /** The first error `criu check` reported, when it failed. */
  problem: string | null;
}

export function detectCgroupMode(root = '/sys/fs/cgroup'): CgroupMode {
  if (existsSync(`${root}/cgroup.controllers`)) return 'v2';
  if (existsSync(`${root}/unified`)) return 'hybrid';
  return 'v1';
}

export async function which(name: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = `${dir}/${name}`;
    if (existsSync(candidate)) return candidate;
  }
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin']) if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  return null;
}

async function toolVersion(name: string, args: string[], pattern: RegExp): Promise<ToolVersion | null> {
  const path = await which(name);
  if (!path) return null;
  try {
    const { stdout } = await run(path, args, { timeout: 5000 });
    const match = pattern.exec(stdout);
    return { path, version: match?.[1] ?? stdout.split('\n')[0]!.trim() };
  } catch {
    return { path, version: 'unknown' };
  }
}

/** Whether CRIU is installed and `criu check` passes (it fails on kernels it cannot handle). */
async function probeCriu(): Promise<CriuStatus | null> {
  const tool = await toolVersion('criu', ['--version'], /Version: (\S+)/);
  if (!tool) return null;
  try {
    await run(tool.path, ['check'], { timeout: 10_000 });
    return { ...tool, works: true, problem: null };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const first = `${e.stderr ?? ''}\n${e.stdout ?? ''}`
      .split('\n')
      .map((line) => line.replace(/^Error \([^)]*\):\s*/, '').trim())
      .find((line) => line.length > 0);
    return { ...tool, works: false, problem: (first ?? e.message).slice(0, 200) };
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export async function probeHost(): Promise<HostFacts> {
  const [runc, crun, runsc, nft, criu] = await Promise.all([
    toolVersion('runc', ['--version'], /runc version (\S+)/),
    toolVersion('crun', ['--version'], /crun version (\S+)/),
    toolVersion('runsc', ['--version'], /runsc version (\S+)/),
    toolVersion('nft', ['--version'], /nftables v(\S+)/),
    probeCriu(),
  ]);
  const cgroup = detectCgroupMode();
  const maxUserNs = Number.parseInt(readText('/proc/sys/user/max_user_namespaces').trim() || '0', 10);
  const kvmModule = readText('/proc/modules')
    .split('\n')
    .map((l) => l.split(' ')[0])
    .find((m) => m?.startsWith('kvm'));
  return {
    kernel: readText('/proc/sys/kernel/osrelease').trim(),
    cgroup,
    swapAccounting: cgroup !== 'v2' && existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
    userNamespaces: maxUserNs > 0,
    overlayfs: /\toverlay$/m.test(readText('/proc/filesystems')) || existsSync('/sys/module/overlay'),
    seccomp: /^Seccomp:/m.test(readText('/proc/self/status')),
    kvm: {
      present: existsSync('/dev/kvm'),
      note:
        kvmModule === 'kvm_pvm'
          ? 'kvm_pvm (nested PVM): ordinary guests do not run under KVM here'
          : kvmModule
            ? `module ${kvmModule}`
            : 'no kvm module loaded',
    },
    runc,
    crun,
    runsc,
    nft,
    criu,
    nofileHard: nofileHardLimit(),
  };
}

/** Compares dotted versions ("1.1.5+ds1" ≥ "1.1.12"?) on their numeric parts. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parse = (v: string): number[] => (/^(\d+(?:\.\d+)*)/.exec(v)?.[1] ?? '0').split('.').map(Number);
  const a = parse(version);
  const b = parse(minimum);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

function nofileHardLimit(): number {
  const match = /^Max open files\s+\S+\s+(\S+)/m.exec(readText('/proc/self/limits'));
  const hard = match?.[1] === 'unlimited' ? Infinity : Number(match?.[1] ?? 1024);
  return Math.min(65536, Number.isFinite(hard) && hard > 0 ? hard : 1024);
}
