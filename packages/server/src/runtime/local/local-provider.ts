import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync, statfsSync, statSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AgentEndpoint } from '../../core/agent.js';
import type {
  DiskUsage,
  Provider,
  RuntimeSandbox,
  SandboxNetworkInfo,
  SandboxSpec,
  SandboxStats,
  TierStatus,
} from '../../core/provider.js';
import type { EgressPolicy } from '../../core/network.js';
import type { Logger } from '../../core/logger.js';
import type { NetworkManager } from '../../network/net-manager.js';
import type { PeerGroup } from '../../network/types.js';
import { type Isolation, ISOLATION_TIERS, type PauseMode, SANDBOX_DEFAULTS } from '../../core/sandbox.js';
import { HutchError } from '../../core/errors.js';
import { type HostFacts, versionAtLeast } from './host-probe.js';
import { OciRuntime } from './oci-runtime.js';
import { runTool } from './exec-tool.js';
import { buildOciSpec, AGENT_BINARY_PATH, AGENT_SOCKET_NAME, ID_MAP_BASE } from './oci-spec.js';
import { isMounted, mountOverlay, mountsUnder, unmount, unmountAll } from './overlay.js';
import { createDiskImage, diskUsage, mountDiskImage, SpareDisks, unmountDiskImage } from './disk-image.js';
import { readCgroup } from './cgroup-stats.js';

/**
 * The local provider: sandboxes are OCI bundles on this machine, run by runc (or crun on pure
 * cgroup v2 hosts) for the `container` tier and by runsc for `gvisor`. Everything a sandbox uses
 * is named by its id: `<dataDir>/sandboxes/<id>/` (bundle, overlay dirs, agent socket dir, log),
 * the runtime's container `<id>`, and the cgroup `hutch/<id>`. The server talks to the agent over
 * a unix socket in a bind-mounted directory, so no network is needed for control (and gVisor can
 * run with --network=none).
 */
/**
 * The socket dir's owner inside the sandbox: a mapped uid with no passwd entry in any template,
 * so no API user name resolves to it and workloads (without CAP_SETUID) cannot become it.
 */
const SOCKET_DIR_UID = 65533;

export interface LocalProviderOptions {
  dataDir: string;
  agentBinary: string;
  host: HostFacts;
  /** The sandbox network layer; null when the host cannot provide it (egress stays `none`). */
  network: NetworkManager | null;
  /** Why `network` is null, for error messages. */
  networkUnavailable?: string;
  /** Where cleanup trouble is reported (a cgroup that would not go away). */
  log?: Logger;
  /** The container tier's OCI runtime: `auto` (the default) prefers crun, which starts faster. */
  containerRuntime?: ContainerRuntimeChoice;
}

export type ContainerRuntimeChoice = 'auto' | 'runc' | 'crun';

/**
 * Which OCI runtime runs the container tier here, or why none can. crun starts a container with
 * about a third of runc's cpu (C instead of a Go runtime started twice: `run` and `init`), which
 * is most of what a create costs under churn. crun 1.8 refuses hybrid cgroup hosts (v1
 * controllers plus an empty cgroup2 mount); there it runs through `hutch-agent
 * legacy-cgroup-launch`, which hides that cgroup2 mount from it, so it manages the v1
 * controllers as on a pure v1 host.
 */
export function pickContainerRuntime(
  host: HostFacts,
  choice: ContainerRuntimeChoice,
): { name: 'runc' | 'crun'; tool: NonNullable<HostFacts['runc']>; hideUnified: boolean } | { problem: string } {
  const hideUnified = host.cgroup === 'hybrid';
  if (choice !== 'runc' && host.crun) return { name: 'crun', tool: host.crun, hideUnified };
  if (choice !== 'crun' && host.runc) return { name: 'runc', tool: host.runc, hideUnified: false };
  if (choice === 'crun') return { problem: 'crun is not installed (apt-get install crun), and --container-runtime crun was asked for' };
  if (choice === 'runc') return { problem: 'runc is not installed (apt-get install runc), and --container-runtime runc was asked for' };
  return { problem: 'neither crun nor runc is installed (apt-get install crun runc)' };
}

interface SandboxPaths {
  dir: string;
  bundle: string;
  rootfs: string;
  /** The sandbox's own filesystem: a quota'd image mounted at `disk` (holds upper/ and work/). */
  diskImage: string;
  disk: string;
  upper: string;
  work: string;
  /** gVisor checkpoint (pause with memory). */
  checkpoint: string;
  /** The agent binary the checkpoint was taken with. */
  checkpointAgent: string;
  /** The agent socket dir: on /run, owned by a mapped uid no workload runs as. */
  run: string;
  /** Which layers are below (`lower0`, `lower1`, … symlinks, top first): their count. */
  lowers: string;
  log: string;
  meta: string;
  resolvConf: string;
  hosts: string;
}

/** Why a container-tier pause keeps files only, from what the host probe found about CRIU. */
function containerPauseNote(criu: HostFacts['criu']): string {
  const why = !criu
    ? 'CRIU, which container runtimes checkpoint with, is not installed'
    : !criu.works
      ? `\`criu check\` fails on this kernel (criu ${criu.version}: ${criu.problem ?? 'no reason given'})`
      : `criu ${criu.version} passes \`criu check\` here, but Hutch does not checkpoint containers`;
  return `the container tier cannot keep memory on this host: ${why}; processes stop, files stay`;
}

export class LocalProvider implements Provider {
  private readonly sandboxesDir: string;
  private readonly runtimes: Partial<Record<Isolation, OciRuntime>> = {};
  private readonly tierStatus: Record<Isolation, TierStatus>;
  private readonly stateRoot: string;
  private agentBinary: string | null = null;
  private readonly spares: SpareDisks;

  constructor(private readonly options: LocalProviderOptions) {
    this.sandboxesDir = join(options.dataDir, 'sandboxes');
    // Runtime state lives on /run (tmpfs): it must not outlive a reboot, when the containers are gone too.
    const key = createHash('sha256').update(options.dataDir).digest('hex').slice(0, 12);
    const stateRoot = `/run/hutch/${key}`;
    this.stateRoot = stateRoot;
    const host = options.host;
    this.spares = new SpareDisks(join(options.dataDir, 'spare-disks'), SANDBOX_DEFAULTS.diskMiB, { uid: ID_MAP_BASE, gid: ID_MAP_BASE });
    this.tierStatus = { container: this.containerTier(host), gvisor: this.gvisorTier(host) };
    for (const tier of ISOLATION_TIERS) this.tierStatus[tier].pause = this.pauseMode(tier, 'none');
    if (this.tierStatus.gvisor.pause)
      this.tierStatus.gvisor.pause.note = 'memory kept (checkpoint/restore) for sandboxes with egress none; files only with egress';
    const picked = pickContainerRuntime(host, options.containerRuntime ?? 'auto');
    if (this.tierStatus.container.available && !('problem' in picked)) {
      const launcher = picked.hideUnified ? [options.agentBinary, 'legacy-cgroup-launch', '--'] : [];
      this.runtimes.container = new OciRuntime(picked.name, picked.tool.path, `${stateRoot}/${picked.name}`, [], launcher);
    }
    if (this.tierStatus.gvisor.available) {
      this.runtimes.gvisor = new OciRuntime('runsc', host.runsc!.path, `${stateRoot}/runsc`, [
        '--platform=ptrace',
        // Lets the agent create its listening socket in the bind-mounted dir; with gVisor's
        // default in-memory overlay the socket would not be visible on the host.
        '--host-uds=create',
        '--overlay2=none',
        // Apply the sandbox's seccomp policy inside gVisor too (defence in depth over the sentry's own filters).
        '--oci-seccomp',
      ]);
    }
  }

  private containerTier(host: HostFacts): TierStatus {
    const missing: string[] = [];
    if (!host.userNamespaces) missing.push('user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0)');
    if (!host.overlayfs) missing.push('overlayfs is not available');
    if (!host.seccomp) missing.push('the kernel lacks seccomp');
    const picked = pickContainerRuntime(host, this.options.containerRuntime ?? 'auto');
    if ('problem' in picked) missing.push(picked.problem);
    const status: TierStatus = {
      available: missing.length === 0,
      runtime: 'problem' in picked ? (this.options.containerRuntime === 'crun' ? 'crun' : 'runc') : picked.name,
      version: 'problem' in picked ? null : picked.tool.version,
      egress: this.options.network
        ? { available: true }
        : { available: false, reason: this.options.networkUnavailable ?? 'sandbox networking is not set up' },
    };
    if (missing.length > 0) status.reason = missing.join('; ');
    else if (!('problem' in picked)) {
      const note = runtimeCveNote(picked.name, picked.tool.version);
      if (note) status.reason = note;
    }
    return status;
  }

  private gvisorTier(host: HostFacts): TierStatus {
    // With egress, gVisor runs its own network stack (netstack, --network=sandbox) on the
    // sandbox's veth: the workload never talks to the host kernel's TCP/IP code, and the sandbox
    // can still be checkpointed. runsc is started through `hutch-agent netstack-launch`, which
    // works around older runsc releases misdetecting the root network namespace.
    const status: TierStatus = {
      available: host.runsc !== null,
      runtime: 'runsc',
      version: host.runsc?.version ?? null,
      egress: this.options.network
        ? { available: true }
        : { available: false, reason: this.options.networkUnavailable ?? 'sandbox networking is not set up' },
    };
    if (!host.runsc) status.reason = 'runsc is not installed (apt-get install runsc)';
    else if (!host.overlayfs) {
      status.available = false;
      status.reason = 'overlayfs is not available';
    } else status.reason = 'platform ptrace (no usable KVM)';
    return status;
  }

  /** Background work a running server does: spare disk images for quick creates. */
  async startBackground(): Promise<void> {
    await this.spares.start();
  }

  async stopBackground(): Promise<void> {
    await this.spares.close();
  }

  tiers(): Record<Isolation, TierStatus> {
    return this.tierStatus;
  }

  private paths(id: string): SandboxPaths {
    const dir = join(this.sandboxesDir, id);
    return {
      dir,
      bundle: join(dir, 'bundle'),
      rootfs: join(dir, 'rootfs'),
      diskImage: join(dir, 'disk.img'),
      disk: join(dir, 'disk'),
      upper: join(dir, 'disk', 'upper'),
      work: join(dir, 'disk', 'work'),
      checkpoint: join(dir, 'checkpoint'),
      checkpointAgent: join(dir, 'checkpoint.agent'),
      run: join(this.stateRoot, 'sockets', id),
      lowers: join(dir, 'lowers.json'),
      log: join(dir, 'runtime.log'),
      meta: join(dir, 'meta.json'),
      // On /run like the socket dir: a bind source shows in the sandbox's mountinfo, and must not
      // name the data dir.
      resolvConf: join(this.stateRoot, 'etc', id, 'resolv.conf'),
      hosts: join(this.stateRoot, 'etc', id, 'hosts'),
    };
  }

  agentEndpoint(id: string): AgentEndpoint {
    return { socketPath: join(this.paths(id).run, AGENT_SOCKET_NAME) };
  }

  private runtimeFor(isolation: Isolation): OciRuntime {
    const runtime = this.runtimes[isolation];
    if (!runtime)
      throw new HutchError(
        'tier_unavailable',
        `isolation "${isolation}" is not available on this host: ${this.tierStatus[isolation].reason ?? 'unknown reason'}`,
      );
    return runtime;
  }

  peerGroups(): { available: boolean; reason?: string } {
    return this.options.network
      ? { available: true }
      : { available: false, reason: this.options.networkUnavailable ?? 'sandbox networking is not set up' };
  }

  async create(spec: SandboxSpec): Promise<void> {
    const runtime = this.runtimeFor(spec.isolation);
    const egressTier = this.tierStatus[spec.isolation].egress;
    if (spec.egress !== 'none' && !egressTier.available)
      throw new HutchError(
        'tier_unavailable',
        `network.egress: not available for isolation "${spec.isolation}": ${egressTier.reason ?? ''}`,
      );
    const p = this.paths(spec.id);
    await mkdir(p.bundle, { recursive: true });
    // The root filesystem (disk, layers, overlay) and the rest (socket dir, network, name files,
    // agent) do not depend on each other: prepared side by side, both settled before going on, so
    // a failure never leaves one half still working while the caller cleans up.
    const [network, agentBinary] = await settleAll(
      (async () => {
        await writeFile(p.meta, JSON.stringify({ id: spec.id, isolation: spec.isolation, ...(spec.peers ? { peers: spec.peers } : {}) }));
        const spare = this.spares.take(spec.diskMiB);
        if (spare) await rename(spare, p.diskImage);
        // Owned by the sandbox's mapped root, so sandbox root can write its own root filesystem.
        else await createDiskImage(p.diskImage, spec.diskMiB, { uid: ID_MAP_BASE, gid: ID_MAP_BASE });
        for (const [i, layer] of spec.layers.entries()) {
          await symlink(layer, join(p.dir, `lower${i}`)).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'EEXIST') throw err;
          });
        }
        await writeFile(p.lowers, JSON.stringify({ count: spec.layers.length }));
        await this.mountFilesystems(p);
        if (spec.isolation === 'gvisor') await this.keepTmpOnDisk(p);
      })(),
      (async () => {
        await this.prepareSocketDir(p);
        const attached = spec.egress === 'none' ? null : await this.requireNetwork().attach(spec.id, spec.egress, undefined, spec.peers);
        await this.writeNameFiles(p, attached ? [attached.gateway4, attached.gateway6] : []);
        return attached;
      })(),
      spec.restoreFrom ? this.stageAgent(join(this.savedDir(spec.restoreFrom), 'agent')) : this.stagedAgentBinary(),
    ).then(([, net, agent]) => [net, agent] as const);
    const config = buildOciSpec({
      id: spec.id,
      isolation: spec.isolation,
      rootfs: p.rootfs,
      agentBinary,
      socketDir: p.run,
      env: spec.env,
      defaultUser: spec.defaultUser,
      cpu: spec.cpu,
      memoryMiB: spec.memoryMiB,
      pids: spec.pids,
      cgroupsPath: `/hutch/${spec.id}`,
      cgroup: this.options.host.cgroup,
      swapAccounting: this.options.host.swapAccounting,
      annotations: { 'hutch.sandbox-id': spec.id, 'hutch.isolation': spec.isolation },
      nofileLimit: this.options.host.nofileHard,
      ...(network ? { netnsPath: network.netnsPath } : {}),
      resolvConf: p.resolvConf,
      hosts: p.hosts,
      volumes: spec.volumes,
    });
    await writeFile(join(p.bundle, 'config.json'), JSON.stringify(config));
    if (spec.restoreFrom)
      await this.restoreContainer(spec.id, runtime, p, join(this.savedDir(spec.restoreFrom), 'image'), network !== null);
    else await this.runContainer(spec.id, runtime, p, network !== null);
  }

  /** Saved memory images (memory snapshots): `<dataDir>/snapshots/memory/<key>/{image/,agent}`. */
  private savedDir(key: string): string {
    if (!/^[a-z0-9-]{1,64}$/.test(key)) throw new HutchError('invalid_argument', `bad checkpoint key ${key.slice(0, 70)}`);
    return join(this.options.dataDir, 'snapshots', 'memory', key);
  }

  async exportCheckpoint(id: string, key: string): Promise<void> {
    const p = this.paths(id);
    if (!existsSync(p.checkpoint)) throw new HutchError('conflict', `sandbox ${id} is not paused with its memory`);
    const dir = this.savedDir(key);
    await mkdir(dirname(dir), { recursive: true, mode: 0o700 });
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    // Copies (reflinks where the filesystem can): the sandbox's own image goes at its resume.
    await runTool('cp', ['-a', '--reflink=auto', p.checkpoint, join(dir, 'image')]);
    await copyFile(p.checkpointAgent, join(dir, 'agent'));
  }

  async removeCheckpoint(key: string): Promise<void> {
    await rm(this.savedDir(key), { recursive: true, force: true });
  }

  /** Starts a container from a memory image; the agent closed its socket for the checkpoint. */
  private async restoreContainer(id: string, runtime: OciRuntime, p: SandboxPaths, image: string, networked: boolean): Promise<void> {
    try {
      await runtime.restore(id, p.bundle, image, p.log, this.runFlags(runtime, networked), await this.launcher(runtime, networked));
    } catch (err) {
      throw new HutchError('internal', `${(err as Error).message}: ${await this.logTail(p)}`, { cause: err });
    }
    await runtime.signal(id, 'USR1');
  }

  /** Mounts the sandbox's disk and its overlay root (idempotent: after a reboot both are gone). */
  private async mountFilesystems(p: SandboxPaths): Promise<void> {
    await mkdir(p.disk, { recursive: true });
    await mkdir(p.rootfs, { recursive: true });
    await chown(p.rootfs, ID_MAP_BASE, ID_MAP_BASE);
    await mountDiskImage(p.diskImage, p.disk);
    for (const dir of [p.upper, p.work]) {
      await mkdir(dir, { recursive: true });
      await chown(dir, ID_MAP_BASE, ID_MAP_BASE);
    }

    if (await isMounted(p.rootfs)) return;
    const { count } = JSON.parse(await readFile(p.lowers, 'utf8')) as { count: number };
    await mountOverlay(p.dir, p.rootfs, count);
  }

  /**
   * runsc mounts an in-memory tmpfs over /tmp when the root's /tmp is empty; /tmp must stay on the
   * sandbox's disk (its quota: ENOSPC, not memory), as under runc. A file in it is enough. (A bind
   * mount for /tmp would do too, but files on bind mounts fail statx with EINVAL in this runsc.)
   */
  private async keepTmpOnDisk(p: SandboxPaths): Promise<void> {
    const tmp = join(p.rootfs, 'tmp');
    if (!existsSync(tmp)) {
      await mkdir(tmp);
      await chown(tmp, ID_MAP_BASE, ID_MAP_BASE);
      await chmod(tmp, 0o1777);
    }
    const marker = join(tmp, '.hutch-disk');
    await writeFile(marker, "This /tmp is on the sandbox's disk (its diskMiB quota), not in memory.\n", { mode: 0o444 });
    await chown(marker, ID_MAP_BASE, ID_MAP_BASE);
  }

  private async unmountFilesystems(p: SandboxPaths): Promise<void> {
    // The overlay sits on the disk: it goes first.
    await unmountAll([p.rootfs, p.disk]);
    if (await isMounted(p.rootfs)) throw new HutchError('internal', `could not unmount ${p.rootfs}`);
  }

  /**
   * The socket dir belongs to an otherwise unused mapped uid with mode 0700: only the agent, through
   * CAP_DAC_OVERRIDE, can create its socket there. Workload processes (no capabilities, even as
   * root) can neither remove the socket nor plant a symlink the server would follow.
   */
  private async prepareSocketDir(p: SandboxPaths): Promise<void> {
    await mkdir(p.run, { recursive: true });
    await chown(p.run, ID_MAP_BASE + SOCKET_DIR_UID, ID_MAP_BASE + SOCKET_DIR_UID);
    await chmod(p.run, 0o700);
  }

  private runFlags(runtime: OciRuntime, networked: boolean): string[] {
    // With egress, gVisor's own netstack on the sandbox's veth (see gvisorTier); without, none.
    return runtime.name === 'runsc' ? [networked ? '--network=sandbox' : '--network=none'] : [];
  }

  /**
   * runsc with netstack is started in its own mount namespace where /proc/sys/net is hidden
   * (hutch-agent netstack-launch, see agent/internal/hostexec/netstack.go): a launcher for this
   * start only. Undefined: the runtime's own (none, or crun's on a hybrid cgroup host).
   */
  private async launcher(runtime: OciRuntime, networked: boolean): Promise<string[] | undefined> {
    if (runtime.name !== 'runsc' || !networked) return undefined;
    const procDir = join(this.stateRoot, 'netstack-proc');
    await mkdir(procDir, { recursive: true, mode: 0o700 });
    return [this.options.agentBinary, 'netstack-launch', procDir, '--'];
  }

  private async runContainer(id: string, runtime: OciRuntime, p: SandboxPaths, networked: boolean): Promise<void> {
    try {
      await runtime.run(id, p.bundle, p.log, this.runFlags(runtime, networked), await this.launcher(runtime, networked));
    } catch (err) {
      throw new HutchError('internal', `${(err as Error).message}: ${await this.logTail(p)}`, { cause: err });
    }
  }

  private async logTail(p: SandboxPaths): Promise<string> {
    const tail = (await readFile(p.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ');
    return tail.slice(0, 800);
  }

  async stop(id: string): Promise<void> {
    await this.halt(id);
    await rm(this.paths(id).checkpoint, { recursive: true, force: true });
    await rm(this.paths(id).checkpointAgent, { force: true });
  }

  /** Ends the container and unmounts its filesystems; files (and any checkpoint) stay. */
  private async halt(id: string): Promise<void> {
    const p = this.paths(id);
    for (const isolation of await this.isolationOf(id)) await this.runtimes[isolation]?.forceDelete(id);
    await this.options.network?.detach(id);
    await this.unmountFilesystems(p);
    await rm(p.run, { recursive: true, force: true });
    await this.removeCgroups(id);
  }

  async start(id: string, egress: EgressPolicy): Promise<void> {
    const p = this.paths(id);
    const [isolation] = await this.isolationOf(id);
    const runtime = this.runtimeFor(isolation ?? 'container');
    if (!existsSync(join(p.bundle, 'config.json')))
      throw new HutchError('conflict', `sandbox ${id} has no files on this host to start from`);
    await runtime.forceDelete(id); // a container left by a crash mid-stop
    await this.mountFilesystems(p);
    await this.prepareSocketDir(p);
    const network = egress === 'none' ? null : await this.requireNetwork().attach(id, egress, undefined, await this.peerGroupOf(id));
    await this.writeNameFiles(p, network ? [network.gateway4, network.gateway6] : []);
    await this.refreshBundle(p, network?.netnsPath ?? null);
    await this.runContainer(id, runtime, p, network !== null);
  }

  private async agentMountSource(p: SandboxPaths): Promise<string> {
    const config = JSON.parse(await readFile(join(p.bundle, 'config.json'), 'utf8')) as {
      mounts: Array<{ destination: string; source: string }>;
    };
    const mount = config.mounts.find((m) => m.destination === AGENT_BINARY_PATH);
    if (!mount) throw new HutchError('internal', 'the bundle has no agent mount');
    return mount.source;
  }

  /**
   * A (re)started sandbox runs the current agent (after a reboot or an upgrade its path may
   * differ) in the network namespace it has now (a restart gets a new one, see NetworkManager).
   */
  private async refreshBundle(p: SandboxPaths, netnsPath: string | null): Promise<void> {
    const file = join(p.bundle, 'config.json');
    const config = JSON.parse(await readFile(file, 'utf8')) as {
      mounts: Array<{ destination: string; source: string }>;
      linux: { namespaces: Array<{ type: string; path?: string }> };
    };
    const mount = config.mounts.find((m) => m.destination === AGENT_BINARY_PATH);
    if (mount) mount.source = await this.stagedAgentBinary();
    config.linux.namespaces = config.linux.namespaces.map((ns) =>
      ns.type !== 'network' ? ns : netnsPath ? { type: 'network', path: netnsPath } : { type: 'network' },
    );
    await writeFile(file, JSON.stringify(config));
  }

  pauseMode(isolation: Isolation, egress: EgressPolicy): { mode: PauseMode; note: string | null } {
    if (isolation === 'gvisor' && egress === 'none') return { mode: 'memory', note: null };
    // This runsc release fails to checkpoint its netstack as soon as a TCP endpoint exists (even
    // one closing); a pause that kills the sandbox would be worse than an honest files-only one.
    if (isolation === 'gvisor')
      return {
        mode: 'filesystem',
        note: `runsc ${this.options.host.runsc?.version ?? ''} cannot checkpoint gVisor's network stack: a gvisor sandbox with egress keeps its files, not its processes (egress none keeps memory)`,
      };
    return { mode: 'filesystem', note: containerPauseNote(this.options.host.criu) };
  }

  async pause(id: string, mode: PauseMode): Promise<void> {
    if (mode === 'filesystem') return this.stop(id);
    const p = this.paths(id);
    const runtime = this.runtimeFor('gvisor');
    await rm(p.checkpoint, { recursive: true, force: true });
    await mkdir(p.checkpoint, { recursive: true, mode: 0o700 });
    // The restore needs the very agent binary the checkpoint was taken with (after a reboot or an
    // upgrade /run holds another one): keep a copy with the checkpoint.
    await copyFile(await this.agentMountSource(p), p.checkpointAgent);
    try {
      await runtime.checkpoint(id, p.checkpoint);
    } catch (err) {
      await rm(p.checkpoint, { recursive: true, force: true });
      // The agent closed its socket for the checkpoint: tell it to listen again.
      await runtime.signal(id, 'USR1').catch(() => undefined);
      throw new HutchError('internal', `checkpoint failed: ${(err as Error).message}: ${await this.logTail(p)}`, { cause: err });
    }
    await this.halt(id);
  }

  async resume(id: string, mode: PauseMode, egress: EgressPolicy): Promise<void> {
    if (mode === 'filesystem') return this.start(id, egress);
    const p = this.paths(id);
    const runtime = this.runtimeFor('gvisor');
    if (!existsSync(p.checkpoint)) throw new HutchError('conflict', `sandbox ${id} has no checkpoint to resume from`);
    await this.mountFilesystems(p);
    await this.prepareSocketDir(p);
    // Memory is kept only with egress none (pauseMode): the sandbox comes back without a network.
    await this.writeNameFiles(p, []);
    // Content-addressed: staging the kept copy gives back the path the bundle names (after a
    // reboot /run is empty).
    await this.stageAgent(p.checkpointAgent);
    // The agent closed its socket before the checkpoint; the signal makes it listen again.
    await this.restoreContainer(id, runtime, p, p.checkpoint, false);
    await rm(p.checkpoint, { recursive: true, force: true });
    await rm(p.checkpointAgent, { force: true });
  }

  async frozen<T>(id: string, work: () => Promise<T>): Promise<T> {
    const [isolation] = await this.isolationOf(id);
    const runtime = this.runtimeFor(isolation ?? 'container');
    await runtime.pause(id);
    try {
      return await work();
    } finally {
      await runtime.resume(id);
    }
  }

  async withUpperDir<T>(id: string, work: (upper: string) => Promise<T>): Promise<T> {
    const p = this.paths(id);
    if (await isMounted(p.disk)) return work(p.upper);
    if (!existsSync(p.diskImage)) throw new HutchError('conflict', `sandbox ${id} has no files on this host`);
    await mkdir(p.disk, { recursive: true });
    await mountDiskImage(p.diskImage, p.disk);
    try {
      return await work(p.upper);
    } finally {
      await unmountDiskImage(p.disk);
    }
  }

  async diskUsage(id: string): Promise<DiskUsage | null> {
    const p = this.paths(id);
    if (!(await isMounted(p.disk))) return null;
    return diskUsage(p.disk);
  }

  private requireNetwork(): NetworkManager {
    if (!this.options.network)
      throw new HutchError(
        'tier_unavailable',
        `sandbox networking is not available on this host: ${this.options.networkUnavailable ?? 'unknown reason'}`,
      );
    return this.options.network;
  }

  /**
   * /etc/resolv.conf and /etc/hosts of the sandbox, bind-mounted read-only. Rewritten in place
   * (same inode) when the policy changes, so the mount shows the new content.
   */
  private async writeNameFiles(p: SandboxPaths, nameservers: string[]): Promise<void> {
    // Searchable by gVisor's gofer, which opens bind sources without root's privileges.
    await mkdir(dirname(p.resolvConf), { recursive: true, mode: 0o711 });
    await chmod(join(this.stateRoot, 'etc'), 0o711);
    const resolv = nameservers.length
      ? `# Hutch platform resolver: answers the names this sandbox's egress policy allows.\n${nameservers.map((n) => `nameserver ${n}`).join('\n')}\noptions timeout:2 attempts:2\n`
      : '# egress "none": this sandbox has no network and no DNS.\n';
    await writeFile(p.resolvConf, resolv, { mode: 0o644 });
    if (!existsSync(p.hosts))
      await writeFile(p.hosts, '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\thutch\n', { mode: 0o644 });
  }

  async setEgress(id: string, isolation: Isolation, current: EgressPolicy, next: EgressPolicy): Promise<{ cut: number }> {
    const p = this.paths(id);
    // gVisor's netstack takes its interfaces when the sandbox starts: a running gVisor sandbox
    // can change between policies, but not gain or lose its network.
    if (isolation === 'gvisor' && (current === 'none') !== (next === 'none'))
      throw new HutchError(
        'conflict',
        `network.egress: a running gvisor sandbox cannot switch between "none" and a network (its network is set up at start); create it with the egress it needs${current === 'none' ? '' : ', or use an allowlist with no entries to block everything'}`,
      );
    if (next === 'none') {
      if (current === 'none') return { cut: 0 };
      // Removing the link cuts every connection; the namespace itself lives on with the sandbox.
      await this.requireNetwork().detach(id);
      await this.writeNameFiles(p, []);
      return { cut: 0 };
    }
    const network = this.requireNetwork();
    if (current !== 'none' && (await network.has(id))) {
      if (current === next) {
        await network.restore(id, next);
        return { cut: 0 };
      }
      return network.setPolicy(id, next);
    }
    const egressTier = this.tierStatus[isolation].egress;
    if (!egressTier.available)
      throw new HutchError('tier_unavailable', `network.egress: not available for isolation "${isolation}": ${egressTier.reason ?? ''}`);
    const pid = await this.runtimeFor(isolation).initPid(id);
    if (pid === null) throw new HutchError('conflict', `sandbox ${id} is not running`);
    const attached = await network.attach(id, next, pid);
    await this.writeNameFiles(p, [attached.gateway4, attached.gateway6]);
    return { cut: 0 };
  }

  networkInfo(id: string): SandboxNetworkInfo {
    const network = this.options.network;
    const addresses = network?.addressesOf(id) ?? null;
    return {
      ipv4: addresses?.ipv4 ?? null,
      ipv6: addresses?.ipv6 ?? null,
      dns: addresses && network ? network.pool.gateway4 : null,
      dnsLog: network ? network.dnsLog(id).map(({ name, type, verdict, at }) => ({ name, type, verdict, at })) : [],
    };
  }

  /**
   * The agent binary, copied under /run once: a bind mount shows its source path inside the
   * sandbox (mountinfo), and that path must not reveal the data dir. Named by its content: a
   * sandbox restored from a checkpoint must get exactly the binary it was checkpointed with.
   */
  private async stagedAgentBinary(): Promise<string> {
    if (this.agentBinary && existsSync(this.agentBinary)) return this.agentBinary;
    this.agentBinary = await this.stageAgent(this.options.agentBinary);
    return this.agentBinary;
  }

  /** Copies an agent binary to `/run/hutch/<key>/hutch-agent-<sha256[:16]>` unless it is there. */
  private async stageAgent(source: string): Promise<string> {
    const digest = createHash('sha256')
      .update(await readFile(source))
      .digest('hex')
      .slice(0, 16);
    const target = join(this.stateRoot, `hutch-agent-${digest}`);
    // Searchable by others: gVisor's gofer opens bind sources below it without root's privileges.
    await mkdir(this.stateRoot, { recursive: true });
    await chmod(dirname(this.stateRoot), 0o711);
    await chmod(this.stateRoot, 0o711);
    if (!existsSync(target)) {
      // Concurrent first creates stage at once: each through its own temporary name.
      const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      await copyFile(source, tmp);
      await chmod(tmp, 0o755);
      await rename(tmp, target);
    }
    return target;
  }

  /** The peer group the sandbox was created in (kept in its meta.json: a start after a reboot rejoins it). */
  private async peerGroupOf(id: string): Promise<PeerGroup | null> {
    try {
      return (JSON.parse(await readFile(this.paths(id).meta, 'utf8')) as { peers?: PeerGroup }).peers ?? null;
    } catch {
      return null;
    }
  }

  private async isolationOf(id: string): Promise<Isolation[]> {
    try {
      const meta = JSON.parse(await readFile(this.paths(id).meta, 'utf8')) as { isolation?: Isolation };
      if (meta.isolation && ISOLATION_TIERS.includes(meta.isolation)) return [meta.isolation];
    } catch {
      /* unknown: try every runtime */
    }
    return [...ISOLATION_TIERS];
  }

  async kill(id: string): Promise<void> {
    // The sandbox's cgroup holds all its host processes: runc's init and everything below it, or
    // runsc's sentry, gofer and ptrace stubs. Only this sandbox's processes can be in it.
    const dir = this.options.host.cgroup === 'v2' ? `/sys/fs/cgroup/hutch/${id}` : `/sys/fs/cgroup/pids/hutch/${id}`;
    await killCgroupMembers(dir);
  }

  async destroy(id: string): Promise<void> {
    const p = this.paths(id);
    for (const isolation of await this.isolationOf(id)) {
      await this.runtimes[isolation]?.forceDelete(id);
    }
    await this.unmountFilesystems(p);
    await this.options.network?.detach(id);
    await rm(p.dir, { recursive: true, force: true });
    await rm(p.run, { recursive: true, force: true });
    await rm(dirname(p.resolvConf), { recursive: true, force: true });
    await this.removeCgroups(id);
  }

  /**
   * runsc removes its cgroups on delete; runc's (whose delete is skipped for a stopped container,
   * see OciRuntime.forceDelete) go here, and so does whatever a runtime could not remove. After a fork
   * bomb, the kernel is still tearing down hundreds of processes when runc sees its init gone and
   * gives up on a busy cgroup (EBUSY), so retry for a bounded time, killing whatever is still in
   * the cgroup (only this sandbox's processes can be: the cgroup is ours), and also what a crash
   * mid-create left.
   */
  private async removeCgroups(id: string, patienceMs = 10_000): Promise<void> {
    const candidates =
      this.options.host.cgroup === 'v2' ? [`/sys/fs/cgroup/hutch/${id}`] : this.cgroupV1Roots().map((c) => `${c}/hutch/${id}`);
    const deadline = Date.now() + patienceMs;
    for (const dir of candidates) {
      for (;;) {
        try {
          // Synchronous: cgroupfs rmdir does not block on I/O (see killCgroupMembers).
          rmdirSync(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || Date.now() > deadline) {
            this.options.log?.warn({ sandboxId: id, cgroup: dir, err: String(err) }, 'cgroup left behind');
            break;
          }
          await killCgroupMembers(dir);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  }

  private v1Roots: string[] | null = null;
  /** The cgroup v1 hierarchies (read once: they do not change while the server runs). */
  private cgroupV1Roots(): string[] {
    this.v1Roots ??= readdirSync('/sys/fs/cgroup').map((c) => `/sys/fs/cgroup/${c}`);
    return this.v1Roots;
  }

  async list(): Promise<RuntimeSandbox[]> {
    const out: RuntimeSandbox[] = [];
    for (const isolation of ISOLATION_TIERS) {
      const runtime = this.runtimes[isolation];
      if (!runtime) continue;
      for (const c of await runtime.list()) {
        const status =
          c.status === 'running'
            ? 'running'
            : c.status === 'stopped'
              ? 'stopped'
              : c.status === 'created' || c.status === 'creating'
                ? 'creating'
                : 'unknown';
        out.push({ id: c.id, isolation, status });
      }
    }
    return out;
  }

  async isRunning(id: string): Promise<boolean | null> {
    const tiers = await this.isolationOf(id);
    if (tiers.length !== 1) return null;
    const runtime = this.runtimes[tiers[0]!];
    if (!runtime) return null;
    return runtime.isRunning(id);
  }

  async usage(id: string): Promise<{ cpuNs: number; memBytes: number; memCacheBytes: number } | null> {
    const c = readCgroup(this.options.host.cgroup, id);
    return c ? { cpuNs: c.cpuNs, memBytes: c.memoryBytes, memCacheBytes: c.memoryCacheBytes } : null;
  }

  /**
   * Cgroup counters, the sandbox's own filesystem and its link's byte counters, all from
   * in-memory kernel files (no mountinfo scan: the disk counts as mounted when its directory is
   * on another device than the sandbox directory).
   */
  async stats(id: string): Promise<SandboxStats | null> {
    const c = readCgroup(this.options.host.cgroup, id);
    if (!c) return null;
    const p = this.paths(id);
    let disk: SandboxStats['disk'] = null;
    try {
      if (statSync(p.disk).dev !== statSync(p.dir).dev) {
        const s = statfsSync(p.disk);
        disk = { sizeBytes: s.blocks * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize };
      }
    } catch {
      /* not there (yet) */
    }
    return {
      cpuNs: c.cpuNs,
      memoryBytes: c.memoryBytes,
      memoryCacheBytes: c.memoryCacheBytes,
      pids: c.pids,
      disk,
      net: this.options.network?.linkBytes(id) ?? null,
    };
  }

  async pidsRefused(id: string): Promise<number | null> {
    const file =
      this.options.host.cgroup === 'v2' ? `/sys/fs/cgroup/hutch/${id}/pids.events` : `/sys/fs/cgroup/pids/hutch/${id}/pids.events`;
    try {
      const match = /^max (\d+)$/m.exec(await readFile(file, 'utf8'));
      return match ? Number(match[1]) : null;
    } catch {
      return null;
    }
  }

  async oomKills(id: string): Promise<number | null> {
    const file =
      this.options.host.cgroup === 'v2'
        ? `/sys/fs/cgroup/hutch/${id}/memory.events`
        : `/sys/fs/cgroup/memory/hutch/${id}/memory.oom_control`;
    try {
      const match = /^oom_kill (\d+)$/m.exec(await readFile(file, 'utf8'));
      return match ? Number(match[1]) : null;
    } catch {
      return null;
    }
  }

  async sweep(keep: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    const entries = await readdir(this.sandboxesDir).catch(() => [] as string[]);
    for (const id of entries) {
      if (keep.has(id) || !/^[a-z0-9]{20}$/.test(id)) continue;
      await this.destroy(id);
      removed.push(id);
    }
    for (const sub of ['sockets', 'etc']) {
      for (const id of await readdir(join(this.stateRoot, sub)).catch(() => [] as string[])) {
        if (!keep.has(id) && /^[a-z0-9]{20}$/.test(id) && !entries.includes(id))
          await rm(join(this.stateRoot, sub, id), { recursive: true, force: true });
      }
    }
    // Mounts whose directory entry vanished (e.g. rm of a dir under a lazy unmount).
    // Innermost first: a sandbox's overlay sits on its disk mount.
    for (const mount of (await mountsUnder(this.sandboxesDir + '/')).reverse()) {
      const id = mount.slice(this.sandboxesDir.length + 1).split('/')[0] ?? '';
      if (!keep.has(id)) await unmount(mount).catch(() => undefined);
    }
    for (const id of (await this.options.network?.sweep(keep)) ?? []) if (!removed.includes(id)) removed.push(id);
    return removed;
  }
}

/** Like Promise.all, but waits for every promise to settle before rejecting with the first error. */
async function settleAll<T extends readonly unknown[]>(...promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** SIGKILLs every process still listed in a cgroup (v1 and v2 both have cgroup.procs). */
async function killCgroupMembers(dir: string): Promise<void> {
  // Synchronous: a cgroupfs read never blocks, and the promise machinery costs more than the read.
  let text = '';
  try {
    text = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const pid = Number(line);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** A caveat when the runtime's version predates published container-escape fixes. */
function runtimeCveNote(name: 'runc' | 'crun', version: string): string | null {
  if (name === 'runc' && !versionAtLeast(version, '1.2.8'))
    return `runc ${version} predates the November 2025 runc CVE fixes (1.2.8 / 1.3.3); CVE-2024-21626 needs ≥ 1.1.12 or a distribution backport`;
  // Not a claim about which crun release fixed what: a crun this old predates that CVE round.
  if (name === 'crun' && !versionAtLeast(version, '1.25'))
    return `crun ${version} predates the November 2025 container-runtime CVE round (runc 1.2.8 / 1.3.3); check your distribution's crun for backports`;
  return null;
}
