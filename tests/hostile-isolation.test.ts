import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LAYERS_DIR, startServer, type TestServer } from './harness.js';
import {
  AGENT_CAP_MASK,
  CAP_SETS,
  cgroupDir,
  cgroupV2,
  cmdlineOf,
  createSandbox,
  deleteSandbox,
  exec,
  hostPids,
  innerPid,
  parseStatus,
  procStatus,
  putFile,
  readText,
  run,
  sleep,
  startProcess,
  tasksOf,
  TIERS,
  waitFor,
} from './hostile-lib.js';

/**
 * Hostile workloads H5–H10 of the battery (host information, kernel tunables, syscalls and
 * capabilities, privilege gain, devices, inherited descriptors), for every tier. Assertions are
 * made from the host wherever the host can see: /proc/<pid>/status of the sandbox's processes,
 * cgroup files, the sandbox's files in its upper layer, host files that must not change.
 */
let server: TestServer;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const marker = (what: string): string => `hutch-${what}-${randomBytes(6).toString('hex')}`;

/** Host processes of a sandbox, with their status and the pid they have inside the sandbox. */
function hostProcesses(id: string): Array<{ pid: number; status: Record<string, string>; inner: number; cmdline: string }> {
  const out = [];
  for (const pid of hostPids(id)) {
    const status = procStatus(pid);
    if (status) out.push({ pid, status, inner: innerPid(status), cmdline: cmdlineOf(pid) });
  }
  return out;
}

const HOST_USERNS = readlinkSync('/proc/self/ns/user');

for (const tier of TIERS) {
  describe(`${tier} tier: isolation`, () => {
    test(`H5 ${tier}: /proc and /sys give no host information and no other sandbox's processes`, { timeout: 60_000 }, async () => {
      const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
      const neighbour = await createSandbox(server, { template: 'minimal', isolation: tier });
      try {
        const tag = marker('h5');
        await startProcess(server, neighbour.id, { cmd: `sleep 600; : ${tag}`, tag: 'marker' });
        const seen = await run(server, neighbour.id, 'cat /proc/[0-9]*/cmdline | tr "\\0" " "');
        assert.match(seen.stdout, new RegExp(tag), 'the marker process runs in the neighbour (the check below is not vacuous)');

        const sensitive = [
          '/proc/kallsyms',
          '/proc/keys',
          '/proc/key-users',
          '/proc/sched_debug',
          '/proc/timer_list',
          '/proc/timer_stats',
          '/proc/latency_stats',
          '/proc/kcore',
          '/proc/kmsg',
          '/proc/slabinfo',
          '/proc/vmallocinfo',
          '/proc/modules',
          '/proc/kpagecount',
          '/proc/kpageflags',
          '/proc/kpagecgroup',
          '/proc/sysrq-trigger',
        ];
        const probe = await run(
          server,
          sb.id,
          `for f in ${sensitive.join(' ')}; do if [ -e "$f" ]; then echo "$f $(head -c 65536 "$f" 2>/dev/null | wc -c)"; else echo "$f absent"; fi; done`,
        );
        for (const line of probe.stdout.trim().split('\n')) {
          assert.match(line, /^\/proc\/\S+ (absent|0)$/, `masked or absent: ${line}`);
        }
        assert.equal(probe.stdout.trim().split('\n').length, sensitive.length);

        const dmesg = await run(server, sb.id, 'dmesg');
        assert.notEqual(dmesg.exitCode, 0, 'dmesg (syslog) is refused');
        assert.equal(dmesg.stdout, '', 'no kernel log lines');

        const sys = await run(
          server,
          sb.id,
          'find /sys -mindepth 1 -type f 2>/dev/null | sort; echo "--"; grep " /sys " /proc/self/mountinfo',
        );
        const [files, mount] = sys.stdout.split('--\n');
        if (tier === 'container') {
          assert.equal(files, '', '/sys is an empty tmpfs: no host sysfs file is visible');
          assert.match(mount!, / \/sys ro,.* - tmpfs /, '/sys is a read-only tmpfs');
        } else {
          // gVisor's own virtual sysfs: a handful of synthetic files, nothing from the host.
          for (const f of files!.trim().split('\n').filter(Boolean)) {
            assert.match(
              f,
              /^\/sys\/(devices\/system\/cpu\/(online|possible|present)|class\/net\/lo\/[a-z_]+)$/,
              `virtual sysfs file ${f}`,
            );
          }
          assert.match(mount!, / \/sys ro,noexec +- sysfs none /, "/sys is gVisor's read-only sysfs");
        }

        const procs = await run(server, sb.id, 'for p in /proc/[0-9]*; do echo "${p#/proc/} $(tr "\\0" " " < $p/cmdline)"; done');
        assert.doesNotMatch(procs.stdout, new RegExp(tag), "the neighbour's processes are not visible");
        const lines = procs.stdout.trim().split('\n');
        assert.match(lines.find((l) => l.startsWith('1 ')) ?? '', /^1 \/\.hutch\/hutch-agent /, "PID 1 is this sandbox's agent");
        assert.ok(lines.length <= 6, `only this sandbox's few processes are visible: ${procs.stdout}`);
      } finally {
        await deleteSandbox(server, sb.id);
        await deleteSandbox(server, neighbour.id);
      }
    });

    test(`H5 ${tier}: mountinfo names no host path (data dir, template layers)`, { timeout: 60_000 }, async () => {
      const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
      try {
        const res = await run(server, sb.id, 'cat /proc/self/mountinfo; echo; cat /proc/self/mounts');
        assert.ok(res.stdout.includes(' / '), 'mountinfo was read');
        const hostPaths = [server.dataDir, LAYERS_DIR, '/var/lib/hutch'];
        const leaks = res.stdout.split('\n').filter((l) => hostPaths.some((p) => l.includes(p)));
        assert.deepEqual(leaks, [], 'mount table lines that reveal host paths');
      } finally {
        await deleteSandbox(server, sb.id);
      }
    });

    test(`H6 ${tier}: core_pattern, sysrq, cgroup release_agent and binfmt_misc cannot be written`, { timeout: 60_000 }, async () => {
      const hostFiles = [
        '/proc/sys/kernel/core_pattern',
        '/proc/sys/kernel/sysrq',
        '/proc/sys/kernel/modprobe',
        '/proc/sys/fs/binfmt_misc/status',
      ];
      const hostBefore = hostFiles.map(readText);
      const binfmtBefore = (() => {
        try {
          return readdirSync('/proc/sys/fs/binfmt_misc').sort();
        } catch {
          return null;
        }
      })();
      const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
      try {
        const targets: Array<[string, string]> = [
          ['/proc/sys/kernel/core_pattern', '|/tmp/pwn %p'],
          ['/proc/sysrq-trigger', 'c'],
          ['/proc/sys/kernel/sysrq', '1'],
          ['/proc/sys/kernel/modprobe', '/tmp/pwn'],
          ['/proc/sys/fs/binfmt_misc/register', ':pwn:M::\\x7fELF::/tmp/pwn:'],
          ['/sys/fs/cgroup/release_agent', '/tmp/pwn'],
          ['/sys/fs/cgroup/memory/release_agent', '/tmp/pwn'],
          ['/sys/fs/cgroup/notify_on_release', '1'],
          ['/sys/kernel/uevent_helper', '/tmp/pwn'],
          ['/proc/sys/vm/drop_caches', '3'],
        ];
        const script = [
          'attempt() { if ( printf "%s" "$2" > "$1" ) 2>/tmp/err; then echo "WROTE $1"; else echo "refused $1: $(tr -d "\\n" < /tmp/err)"; fi; }',
          ...targets.map(([f, v]) => `attempt '${f}' '${v}'`),
          'mkdir -p /tmp/mnt',
          'for fs in "cgroup -o memory cgroup" "cgroup2 none" "binfmt_misc binfmt_misc" "proc proc" "sysfs sysfs"; do set -- $fs; if mount -t $fs /tmp/mnt 2>/dev/null; then echo "MOUNTED $1"; else echo "refused mount $1"; fi; done',
        ].join('\n');
        // As sandbox root (the minimal template's default user): the strongest attacker inside.
        const res = await run(server, sb.id, script);
        const lines = res.stdout.trim().split('\n');
        assert.equal(lines.length, targets.length + 5, res.stdout + res.stderr);
        assert.deepEqual(
          lines.filter((l) => !l.startsWith('refused')),
          [],
          'nothing was written or mounted',
        );
        for (const l of lines.filter((x) => x.startsWith('refused /'))) {
          assert.match(l, /Read-only file system|Permission denied|Operation not permitted|nonexistent directory|No such file/, l);
        }
        // The file API acts with the agent's privileges: it must refuse these paths as well.
        for (const [path, value] of targets) {
          const res = await putFile(server, sb.id, path, value);
          assert.ok(res.status >= 400, `file API write to ${path} refused (got ${res.status} ${JSON.stringify(res.body)})`);
        }
        // From the host: nothing changed.
        assert.deepEqual(hostFiles.map(readText), hostBefore, 'host kernel tunables unchanged');
        const binfmtAfter = (() => {
          try {
            return readdirSync('/proc/sys/fs/binfmt_misc').sort();
          } catch {
            return null;
          }
        })();
        assert.deepEqual(binfmtAfter, binfmtBefore, 'no binfmt_misc handler registered on the host');
        assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes('/tmp/mnt'), 'no mount appeared on the host');
      } finally {
        await deleteSandbox(server, sb.id);
      }
    });

    test(
      `H7 ${tier}: escape syscalls are refused; no capabilities, seccomp and no_new_privs on every thread and after exec`,
      { timeout: 90_000 },
      async () => {
        const sb = await createSandbox(server, { template: 'base', isolation: tier });
        try {
          const probe = String.raw`
import ctypes, errno, json, os, threading
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *a):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(x) for x in a])
    return [r, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())]
buf = ctypes.create_string_buffer(512)
b = lambda s: ctypes.addressof(ctypes.create_string_buffer(s))
nsfd = next(os.open(p, os.O_RDONLY) for p in ('/proc/self/ns/mnt', '/proc/self/ns/net', '/') if os.path.exists(p))
calls = {
  'mount': sc(165, b(b'none'), b(b'/tmp'), b(b'tmpfs'), 0, 0),
  'unshare(user)': sc(272, 0x10000000),
  'unshare(mount)': sc(272, 0x00020000),
  'unshare(net)': sc(272, 0x40000000),
  'clone(newuser)': sc(56, 0x10000000 | 17, 0, 0, 0, 0),
  'setns': sc(308, nsfd, 0),
  'ptrace(attach, 1)': sc(101, 16, 1, 0, 0),
  'keyctl': sc(250, 0, -3, 0),
  'add_key': sc(248, b(b'user'), b(b'k'), b(b'v'), 1, -3),
  'bpf': sc(321, 0, ctypes.addressof(buf), 48),
  'perf_event_open': sc(298, ctypes.addressof(buf), 0, -1, -1, 0),
  'userfaultfd': sc(323, 0),
  'io_uring_setup': sc(425, 8, ctypes.addressof(buf)),
  'socket(AF_PACKET)': sc(41, 17, 3, 0),
  'socket(AF_VSOCK)': sc(41, 40, 1, 0),
  'chroot': sc(161, b(b'/tmp')),
}
PR_GET_NO_NEW_PRIVS = 39
def status(path):
    return {l.split(':')[0]: l.split(':', 1)[1].strip() for l in open(path) if l.startswith(('Cap', 'Seccomp', 'NoNewPrivs', 'Uid'))}
out = {'calls': calls, 'main': status('/proc/self/status'), 'nnp': libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)}
def worker():
    out['thread'] = status('/proc/thread-self/status')
    out['threadNnp'] = libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
t = threading.Thread(target=worker); t.start(); t.join()
print(json.dumps(out), flush=True)
os.execv('/bin/cat', ['cat', '/proc/self/status'])
`;
          assert.equal((await putFile(server, sb.id, '/tmp/h7.py', probe)).status, 200);
          for (const user of ['user', 'root']) {
            const res = await run(server, sb.id, ['python3', '/tmp/h7.py'], { user });
            assert.equal(res.exitCode, 0, res.stderr);
            const [json, ...rest] = res.stdout.split('\n');
            const out = JSON.parse(json!) as {
              calls: Record<string, [number, string]>;
              main: Record<string, string>;
              thread: Record<string, string>;
              nnp: number;
              threadNnp: number;
            };
            for (const [name, [ret, err]] of Object.entries(out.calls)) {
              assert.equal(ret, -1, `${name} as ${user} must fail (got ${ret})`);
              assert.ok(['EPERM', 'ENOSYS'].includes(err), `${name} as ${user} refused by policy, got ${err}`);
            }
            const afterExec = parseStatus(rest.join('\n'));
            for (const [where, st] of [
              ['main thread', out.main],
              ['second thread', out.thread],
              ['after execve', afterExec],
            ] as const) {
              for (const set of CAP_SETS) {
                // gVisor's /proc/<pid>/status has no CapAmb line.
                if (tier === 'gvisor' && set === 'CapAmb') continue;
                assert.equal(st[set], '0000000000000000', `${set} of ${user} (${where})`);
              }
              assert.equal(st.Seccomp, '2', `Seccomp of ${user} (${where})`);
              if (tier === 'container') assert.equal(st.NoNewPrivs, '1', `NoNewPrivs of ${user} (${where})`);
            }
            // gVisor's /proc does not print NoNewPrivs: ask the kernel with prctl(PR_GET_NO_NEW_PRIVS) instead.
            assert.equal(out.nnp, 1, `no_new_privs of ${user} (main thread)`);
            assert.equal(out.threadNnp, 1, `no_new_privs of ${user} (second thread)`);
          }

          // From the host: every process of the sandbox, every thread.
          await startProcess(server, sb.id, {
            cmd: [
              'python3',
              '-c',
              'import threading,time\nfor _ in range(2): threading.Thread(target=time.sleep, args=(60,)).start()\ntime.sleep(60)',
            ],
            user: 'user',
          });
          await startProcess(server, sb.id, { cmd: ['sleep', '60'], user: 'root' });
          const processes = await waitFor(() => {
            const ps = hostProcesses(sb.id);
            const python = ps.find((p) => p.cmdline.includes('threading'));
            return tier === 'gvisor' || (python && tasksOf(python.pid).length >= 3 && ps.some((p) => p.cmdline === 'sleep 60')) ? ps : null;
          }, 10_000);
          assert.ok(processes && processes.length > 0, 'the sandbox has host processes');
          for (const p of processes) {
            for (const task of tasksOf(p.pid)) {
              const st = procStatus(p.pid, task);
              if (!st) continue;
              const what = `host pid ${p.pid}/${task} (${p.cmdline.slice(0, 60)})`;
              assert.equal(st.Seccomp, '2', `Seccomp of ${what}`);
              assert.equal(st.NoNewPrivs, '1', `NoNewPrivs of ${what}`);
              for (const uid of st.Uid!.split(/\s+/)) assert.notEqual(uid, '0', `${what} runs as host uid ${st.Uid}`);
              if (tier === 'container') {
                if (p.inner === 1) {
                  for (const set of CAP_SETS)
                    assert.equal(
                      BigInt(`0x${st[set]}`) & ~AGENT_CAP_MASK,
                      0n,
                      `the agent holds only its few capabilities (${set} ${st[set]})`,
                    );
                } else {
                  for (const set of CAP_SETS) assert.equal(st[set], '0000000000000000', `${set} of ${what}`);
                }
              } else {
                // gVisor: the host sees the sentry, gofer and ptrace stubs, not the workload. Their
                // capabilities exist only in the sandbox's own user namespace.
                assert.notEqual(readlinkSync(`/proc/${p.pid}/ns/user`), HOST_USERNS, `${what} is in its own user namespace`);
              }
            }
          }
          if (tier === 'container') {
            const user = processes.find((p) => p.cmdline.includes('threading'));
            assert.ok(user, 'the workload process is visible on the host');
            assert.ok(tasksOf(user.pid).length >= 3, 'it has several threads, all checked above');
          }
        } finally {
          await deleteSandbox(server, sb.id);
        }
      },
    );

    test(
      `H8 ${tier}: setuid binaries, su, mount and file capabilities gain nothing; sandbox root is not host root`,
      { timeout: 90_000 },
      async () => {
        const sb = await createSandbox(server, { template: 'base', isolation: tier });
        try {
          const plant = String.raw`
import os, stat, shutil
p = '/usr/local/bin/rootsh'
shutil.copy('/bin/bash', p)
os.chmod(p, 0o4755)
st = os.stat(p)
print('planted', stat.filemode(st.st_mode), st.st_uid)
# A v2 security.capability xattr granting every capability (needs CAP_SETFCAP).
try:
    os.setxattr(p, 'security.capability', bytes([0, 0, 0, 2]) + b'\xff' * 4 + bytes(12))
    print('setcap ok')
except OSError as e:
    print('setcap errno', e.errno)
`;
          assert.equal((await putFile(server, sb.id, '/tmp/plant.py', plant)).status, 200);
          const setup = await run(server, sb.id, ['python3', '/tmp/plant.py'], { user: 'root' });
          assert.match(
            setup.stdout,
            /^planted -rwsr-xr-x 0\n/,
            `a setuid-root shell was planted by sandbox root: ${setup.stdout}${setup.stderr}`,
          );
          assert.match(setup.stdout, /setcap errno (1|95)\n/, 'file capabilities cannot be set (EPERM / EOPNOTSUPP)');

          const attempt = await run(
            server,
            sb.id,
            [
              '/usr/local/bin/rootsh -p -c \'echo "rootsh euid=$(id -u) ruid=$(id -ru)"\'',
              'su -c "id -u" root </dev/null >/dev/null 2>&1; echo "su rc=$?"',
              'mkdir -p /tmp/m; mount -t tmpfs none /tmp/m >/dev/null 2>&1; echo "mount rc=$?"',
              'if command -v sudo >/dev/null; then sudo -n id -u >/dev/null 2>&1; echo "sudo rc=$?"; else echo "sudo rc=absent"; fi',
              'grep -E "^(Uid|CapEff)" /proc/self/status',
            ].join('\n'),
            { user: 'user' },
          );
          assert.match(attempt.stdout, /rootsh euid=1000 ruid=1000/, 'the setuid bit is ignored (no_new_privs)');
          assert.match(attempt.stdout, /su rc=[1-9]/, 'su fails');
          assert.match(attempt.stdout, /mount rc=[1-9]/, 'mount (setuid) fails');
          assert.match(attempt.stdout, /sudo rc=(absent|[1-9])/, 'sudo is absent or fails');
          assert.match(attempt.stdout, /Uid:\s+1000\s+1000\s+1000\s+1000/, 'still uid 1000');

          // From the host: what sandbox root wrote belongs to an unprivileged host uid.
          const onHost = statSync(join(server.dataDir, 'sandboxes', sb.id, 'disk', 'upper', 'usr/local/bin/rootsh'));
          assert.ok((onHost.mode & 0o4000) !== 0, 'the host file is the planted setuid binary');
          assert.equal(onHost.uid, 100000, 'owned by the mapped sandbox root, not host root');
          assert.notEqual(onHost.uid, 0);

          await startProcess(server, sb.id, { cmd: ['/usr/local/bin/rootsh', '-p', '-c', 'exec sleep 61'], user: 'user' });
          await startProcess(server, sb.id, { cmd: ['sleep', '62'], user: 'root' });
          const procs = await waitFor(() => {
            const ps = hostProcesses(sb.id);
            return tier === 'gvisor' || (ps.some((p) => p.cmdline === 'sleep 61') && ps.some((p) => p.cmdline === 'sleep 62')) ? ps : null;
          }, 10_000);
          assert.ok(procs && procs.length > 0);
          for (const p of procs) {
            assert.ok(
              p.status.Uid!.split(/\s+/).every((u) => u !== '0'),
              `host pid ${p.pid} (${p.cmdline.slice(0, 50)}) runs as host uid ${p.status.Uid}`,
            );
          }
          if (tier === 'container') {
            const viaSetuid = procs.find((p) => p.cmdline === 'sleep 61')!;
            assert.match(
              viaSetuid.status.Uid!,
              /^101000\s+101000\s+101000\s+101000$/,
              'the setuid shell child stays sandbox uid 1000 (host 101000)',
            );
            assert.equal(viaSetuid.status.CapEff, '0000000000000000');
            const asRoot = procs.find((p) => p.cmdline === 'sleep 62')!;
            assert.match(asRoot.status.Uid!, /^100000\s+100000\s+100000\s+100000$/, 'sandbox root is host uid 100000');
          }
        } finally {
          await deleteSandbox(server, sb.id);
        }
      },
    );

    test(`H9 ${tier}: only harmless devices exist; no kvm, mem or disks; mknod refused`, { timeout: 60_000 }, async () => {
      const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
      try {
        const res = await run(
          server,
          sb.id,
          [
            'find /dev \\( -type c -o -type b \\) | sort',
            'echo --',
            'for d in /dev/kvm /dev/mem /dev/kmem /dev/port /dev/sda /dev/vda /dev/nvme0n1 /dev/loop0 /dev/loop-control /dev/vhost-vsock /dev/vsock /dev/dri /dev/console /dev/tty0 /dev/ttyS0 /dev/fuse /dev/net/tun; do [ -e $d ] && echo "EXISTS $d"; done',
            'echo --',
            'for spec in "mem c 1 1" "kvm c 10 232" "vda b 254 0" "null c 1 3"; do set -- $spec; if mknod /tmp/$1 $2 $3 $4 2>/tmp/err; then echo "MKNOD $1"; else echo "refused $1: $(cat /tmp/err)"; fi; done',
            'mkfifo /tmp/fifo && echo "fifo ok"',
          ].join('\n'),
        );
        const [devices, exists, mknod] = res.stdout.split('--\n');
        const allowed = ['/dev/full', '/dev/null', '/dev/ptmx', '/dev/random', '/dev/tty', '/dev/urandom', '/dev/zero'];
        const unexpected = devices!
          .trim()
          .split('\n')
          .filter((d) => !allowed.includes(d) && !/^\/dev\/pts\/(ptmx|\d+)$/.test(d));
        assert.deepEqual(
          mknod!
            .trim()
            .split('\n')
            .filter((l) => !l.startsWith('refused') && l !== 'fifo ok'),
          [],
          'mknod of device nodes is refused',
        );
        assert.match(mknod!, /refused mem: .*(Operation not permitted|Permission denied)/);
        assert.match(mknod!, /fifo ok/, 'FIFOs can still be made');

        // From the host: no process of the sandbox holds a host device other than the harmless ones.
        for (const pid of hostPids(sb.id)) {
          let fds: string[] = [];
          try {
            fds = readdirSync(`/proc/${pid}/fd`);
          } catch {
            continue;
          }
          for (const fd of fds) {
            let target = '';
            try {
              target = readlinkSync(`/proc/${pid}/fd/${fd}`);
            } catch {
              continue;
            }
            if (target.startsWith('/dev/'))
              assert.match(target, /^\/dev\/(null|zero|full|random|urandom|tty|ptmx|pts\/\d+)$/, `host pid ${pid} fd ${fd} → ${target}`);
          }
        }
        if (tier === 'container' && !cgroupV2) {
          // The devices cgroup: deny all, then only the standard character devices.
          const list = readText(join(cgroupDir('devices', sb.id), 'devices.list')) ?? '';
          assert.ok(list.length > 0, 'devices cgroup present');
          assert.doesNotMatch(list, /^a /m, 'no "allow all" rule');
          assert.doesNotMatch(list, /^b \S+ \S*[rw]/m, 'no block device readable or writable');
          assert.doesNotMatch(list, /^c 10:232 /m, '/dev/kvm not allowed');
          assert.doesNotMatch(list, /^c 1:1 /m, '/dev/mem not allowed');
        }
        // gVisor's kernel always emulates /dev/fuse (it is not the host's FUSE device: no host fd
        // is involved, as the host-side check above shows, and mount() is refused by seccomp, see
        // H6/H7); runsc 2022-12 has no switch to drop it. Every other node is held to the list.
        const emulated = tier === 'gvisor' ? ['/dev/fuse'] : [];
        const existing = exists!.split('\n').filter((l) => l && !emulated.includes(l.replace(/^EXISTS /, '')));
        assert.deepEqual(existing, [], 'no kvm, memory, disk, fuse, tun or other device is present');
        assert.deepEqual(
          unexpected.filter((d) => !emulated.includes(d)),
          [],
          'device nodes beyond null, zero, full, random, urandom, tty, pts, ptmx',
        );
      } finally {
        await deleteSandbox(server, sb.id);
      }
    });

    test(
      `H10 ${tier}: workload fds are stdio and pipes only; the agent's host fds are out of reach; cwd=/proc/... is rejected`,
      { timeout: 60_000 },
      async () => {
        const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
        try {
          const own = await run(server, sb.id, 'for f in /proc/$$/fd/*; do echo "${f##*/} $(readlink $f)"; done');
          const fdLines = own.stdout.trim().split('\n');
          assert.ok(fdLines.length >= 3, own.stdout);
          for (const line of fdLines)
            assert.match(line, /^\d+ (\/dev\/null|pipe:\[\d+\]|socket:\[\d+\]|\/dev\/pts\/\d+)$/, `inherited fd: ${line}`);

          // cwd tricks (runc CVE-2024-21626): the API refuses /proc in every spelling, also via symlinks.
          await run(server, sb.id, 'ln -s /proc/self/fd /tmp/fdlink; ln -s /proc/1/root /tmp/rootlink; ln -s /proc /tmp/proclink');
          const cwds = [
            '/proc/self/fd/3',
            '/proc/self/fd/4',
            '/proc/1/cwd',
            '/proc/1/root',
            '/proc/self/cwd',
            '/proc',
            '//proc/self/fd/3',
            '/./proc/self/fd/3',
            '/tmp/../proc/self/fd/3',
            '../../../../proc/self/fd/3',
            '/tmp/fdlink/3',
          ];
          for (const cwd of cwds) {
            const viaExec = await exec(server, sb.id, { cmd: 'pwd; ls -a', cwd });
            assert.equal(viaExec.status, 400, `exec with cwd=${cwd}: ${JSON.stringify(viaExec.body).slice(0, 300)}`);
            assert.equal(viaExec.body.error.code, 'invalid_argument');
            const viaStart = await server.api<{ error: { code: string } }>('POST', `/v1/sandboxes/${sb.id}/processes`, { cmd: 'pwd', cwd });
            assert.equal(viaStart.status, 400, `process start with cwd=${cwd}: ${JSON.stringify(viaStart.body).slice(0, 300)}`);
          }
          // Symlinks to the agent's magic links are resolved by the agent, inside the sandbox: the
          // process either is refused or starts in the sandbox's own root, never in a host directory.
          for (const cwd of ['/tmp/rootlink', '/tmp/proclink/1/cwd']) {
            const res = await exec(server, sb.id, { cmd: 'pwd; ls -a', cwd });
            if (res.status !== 400) {
              assert.equal(res.status, 200, JSON.stringify(res.body));
              assert.match(res.body.stdout, /^\/\n(.*\n)*\.hutch\n/, `cwd=${cwd} resolved to the sandbox's own /: ${res.body.stdout}`);
            }
          }
          const fine = await run(server, sb.id, 'pwd', { cwd: '/tmp' });
          assert.equal(fine.stdout, '/tmp\n', 'an ordinary cwd still works');

          if (tier === 'container') {
            // From the host: a workload process's descriptors are /dev/null and pipes.
            await startProcess(server, sb.id, { cmd: ['sleep', '63'] });
            const proc = await waitFor(() => hostProcesses(sb.id).find((p) => p.cmdline === 'sleep 63'), 5000);
            assert.ok(proc, 'the workload process is visible on the host');
            for (const fd of readdirSync(`/proc/${proc.pid}/fd`)) {
              assert.match(
                readlinkSync(`/proc/${proc.pid}/fd/${fd}`),
                /^(\/dev\/null|pipe:\[\d+\]|socket:\[\d+\])$/,
                `host view of fd ${fd}`,
              );
            }
          }

          // Sandbox root goes after the agent's (PID 1) descriptors: its stdout/stderr are a host file.
          const tag = marker('h10');
          const grab = await run(
            server,
            sb.id,
            [
              `for n in 0 1 2 3 4 5 6 7 8 9 10 11 12; do ( echo ${tag} >> /proc/1/fd/$n ) 2>/dev/null && echo "WROTE $n"; done`,
              'for n in 0 1 2 3 4 5 6 7 8 9 10 11 12; do t=$(readlink /proc/1/fd/$n 2>/dev/null) && echo "LINK $n $t"; done',
              'ls /proc/1/root/ >/dev/null 2>&1 && echo "ROOT readable"',
              'echo done',
            ].join('\n'),
            { user: 'root' },
          );
          assert.match(grab.stdout, /done\n$/);
          const hostLinks = grab.stdout.split('\n').filter((l) => /^LINK \d+ \//.test(l) && !/^LINK \d+ \/dev\/null$/.test(l));
          assert.deepEqual(hostLinks, [], "the agent's descriptors do not reveal host paths");
          const log = readFileSync(join(server.dataDir, 'sandboxes', sb.id, 'runtime.log'), 'utf8');
          assert.ok(
            !log.includes(tag),
            `the workload wrote into a host file through /proc/1/fd (${grab.stdout
              .split('\n')
              .filter((l) => l.startsWith('WROTE'))
              .join(', ')})`,
          );
          // runc: the agent is not dumpable, so /proc/1/fd cannot be opened at all. gVisor (runsc
          // 2022-12) does not apply the dumpable check to /proc/<pid>/fd: sandbox root can still
          // open the agent's stdio (now /dev/null, checked above via the log) and its pipes to
          // processes of the same sandbox. Nothing there leaves the sandbox: no descriptor names a
          // host path (hostLinks above) and the host log is untouched.
          const wrote = grab.stdout.split('\n').filter((l) => l.startsWith('WROTE'));
          if (tier === 'container') assert.deepEqual(wrote, [], "no write through the agent's descriptors");
        } finally {
          await deleteSandbox(server, sb.id);
        }
      },
    );

    test(`H10/H15 ${tier}: the agent socket directory cannot redirect the server to a host socket`, { timeout: 60_000 }, async () => {
      // Found while testing H10: /run/hutch (the agent's socket dir) is a writable bind mount of a
      // host directory. If sandbox root can put a symlink there, the server (host root) follows it.
      const dir = mkdtempSync('/tmp/hutch-hostile-');
      const decoyPath = join(dir, 'decoy.sock');
      let connections = 0;
      const decoy: Server = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((r) => decoy.listen(decoyPath, r));
      const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
      try {
        const res = await run(
          server,
          sb.id,
          `rm -f /run/hutch/agent.sock 2>&1 && ln -s ${decoyPath} /run/hutch/agent.sock 2>&1; ls -l /run/hutch/ 2>&1`,
          { user: 'root' },
        );
        assert.equal(typeof res.stdout, 'string');
        // Several concurrent calls force new connections past the keep-alive pool.
        await Promise.all(Array.from({ length: 8 }, () => exec(server, sb.id, { cmd: 'sleep 0.2', timeoutMs: 2000 }).catch(() => null)));
        await sleep(300);
        assert.equal(
          connections,
          0,
          `the server connected ${connections} time(s) to a host socket chosen by the workload (${res.stdout.trim()})`,
        );
      } finally {
        await deleteSandbox(server, sb.id);
        await new Promise((r) => decoy.close(r));
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
