/**
 * The seccomp policy for every sandbox, as reviewed data (Firecracker's habit: security policy
 * is data, pinned by tests). Modelled on Docker's default profile: an allowlist, everything else
 * fails with ENOSYS (so libc falls back from syscalls it cannot use, e.g. clone3 → clone), and a
 * few dangerous syscalls fail with EPERM explicitly. Differences from Docker's default:
 * io_uring is refused, namespace creation is refused outright (no unshare/setns, clone without
 * namespace flags only), socket() is limited to AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK
 * (no AF_PACKET, AF_VSOCK, AF_ALG…), mknod creates no device nodes, and the keyring, bpf, perf and
 * userfaultfd are refused.
 */
export const EPERM = 1;
export const ENOSYS = 38;

/** Syscalls allowed without argument checks. */
export const ALLOWED_SYSCALLS: readonly string[] = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'arch_prctl', 'bind', 'brk', 'capget', 'capset',
  'chdir', 'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_getres', 'clock_gettime', 'clock_nanosleep',
  'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3',
  'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait',
  'epoll_wait_old', 'eventfd', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2',
  'fadvise64', 'fallocate', 'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat', 'fchown', 'fchownat', 'fcntl',
  'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsetxattr', 'fstat', 'fstatfs',
  'fsync', 'ftruncate', 'futex', 'futex_waitv', 'futimesat', 'get_robust_list', 'get_thread_area', 'getcpu',
  'getcwd', 'getdents', 'getdents64', 'getegid', 'geteuid', 'getgid', 'getgroups', 'getitimer', 'getpeername',
  'getpgid', 'getpgrp', 'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid', 'getresuid', 'getrlimit',
  'getrusage', 'getsid', 'getsockname', 'getsockopt', 'gettid', 'gettimeofday', 'getuid', 'getxattr',
  'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'io_destroy',
  'io_getevents', 'io_pgetevents', 'io_setup', 'io_submit', 'ioctl', 'ioprio_get', 'ioprio_set', 'kill',
  'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lgetxattr', 'link',
  'linkat', 'listen', 'listxattr', 'llistxattr', 'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'madvise',
  'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mlock',
  'mlock2', 'mlockall', 'mmap', 'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive',
  'mq_timedsend', 'mq_unlink', 'mremap', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock',
  'munlockall', 'munmap', 'name_to_handle_at', 'nanosleep', 'newfstatat', 'open', 'openat', 'openat2',
  'pause', 'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect',
  'poll', 'ppoll', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease', 'pselect6',
  'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink', 'readlinkat', 'readv', 'recvfrom',
  'recvmmsg', 'recvmsg', 'remap_file_pages', 'removexattr', 'rename', 'renameat', 'renameat2', 'restart_syscall',
  'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn',
  'rt_sigsuspend', 'rt_sigtimedwait', 'rt_tgsigqueueinfo', 'sched_get_priority_max', 'sched_get_priority_min',
  'sched_getaffinity', 'sched_getattr', 'sched_getparam', 'sched_getscheduler', 'sched_rr_get_interval',
  'sched_setaffinity', 'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp',
  'select', 'semctl', 'semget', 'semop', 'semtimedop', 'send', 'sendfile', 'sendmmsg', 'sendmsg', 'sendto',
  'set_robust_list', 'set_thread_area', 'set_tid_address', 'setfsgid', 'setfsuid', 'setgid', 'setgroups',
  'setitimer', 'setpgid', 'setpriority', 'setregid', 'setresgid', 'setresuid', 'setreuid', 'setrlimit',
  'setsid', 'setsockopt', 'setuid', 'setxattr', 'shmat', 'shmctl', 'shmdt', 'shmget', 'shutdown',
  'sigaltstack', 'signalfd', 'signalfd4', 'socketpair', 'splice', 'stat', 'statfs', 'statx', 'symlink',
  'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time', 'timer_create',
  'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_settime', 'timerfd_create', 'timerfd_gettime',
  'timerfd_settime', 'times', 'tkill', 'truncate', 'umask', 'uname', 'unlink', 'unlinkat', 'utime', 'utimensat',
  'utimes', 'vfork', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write', 'writev', 'ptrace', 'process_vm_readv',
  'process_vm_writev', 'personality',
];

/** Refused with EPERM: the escape and kernel-attack surface the hostile battery (H7) probes. */
export const DENIED_SYSCALLS: readonly string[] = [
  'mount', 'umount', 'umount2', 'pivot_root', 'chroot', 'unshare', 'setns', 'move_mount', 'open_tree',
  'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr', 'keyctl', 'add_key', 'request_key', 'bpf',
  'perf_event_open', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'reboot', 'swapon',
  'swapoff', 'acct', 'quotactl', 'lookup_dcookie', 'syslog', 'open_by_handle_at', 'iopl', 'ioperm',
  'settimeofday', 'clock_settime', 'stime', 'sethostname', 'setdomainname', 'vhangup', 'nfsservctl',
  'kcmp', 'pidfd_getfd', 'fanotify_init', 'mbind', 'set_mempolicy', 'move_pages', 'get_mempolicy',
  'migrate_pages',
];

/** Socket address families sandboxes may use: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK. */
export const ALLOWED_SOCKET_FAMILIES = [1, 2, 10, 16] as const;

/** File types mknod may create (`mode & S_IFMT`): regular files (also spelled 0), FIFOs and sockets. */
export const S_IFMT = 0o170000;
export const MKNOD_ALLOWED_TYPES = [0, 0o100000, 0o010000, 0o140000] as const;
/** Device nodes (S_IFCHR, S_IFBLK): refused with EPERM. gVisor's tmpfs creates them without checking CAP_MKNOD. */
export const MKNOD_DENIED_TYPES = [0o020000, 0o060000] as const;

/** Clone flags that create namespaces (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET). */
export const CLONE_NAMESPACE_FLAGS = 0x7e020000;

interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: 'SCMP_CMP_EQ' | 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_NE';
}
interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: SeccompArg[];
}
export interface LinuxSeccomp {
  defaultAction: 'SCMP_ACT_ERRNO';
  defaultErrnoRet: number;
  architectures: string[];
  syscalls: SeccompRule[];
}

/**
 * @param options.gvisor gVisor (runsc 2022-12) ignores `errnoRet`/`defaultErrnoRet` and answers
 * EPERM, so libc would not fall back from clone3 to clone and thread creation would fail. There,
 * clone3 is allowed: namespaces created through it exist only inside gVisor's user-space kernel.
 */
export function seccompProfile(options: { gvisor?: boolean } = {}): LinuxSeccomp {
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: ENOSYS,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: [...ALLOWED_SYSCALLS, ...(options.gvisor ? ['clone3'] : [])], action: 'SCMP_ACT_ALLOW' },
      { names: [...DENIED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // clone without any namespace flag; clone3 cannot be filtered by flags, so ENOSYS (default)
      // makes libc fall back to clone.
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      },
      // mknod/mknodat: no device nodes, whatever the caller's capabilities (the mode is argument 1 / 2).
      ...(
        [
          ['mknod', 1],
          ['mknodat', 2],
        ] as const
      ).flatMap(([name, index]): SeccompRule[] => [
        ...MKNOD_ALLOWED_TYPES.map(
          (type): SeccompRule => ({ names: [name], action: 'SCMP_ACT_ALLOW', args: [{ index, value: S_IFMT, valueTwo: type, op: 'SCMP_CMP_MASKED_EQ' }] }),
        ),
        ...MKNOD_DENIED_TYPES.map(
          (type): SeccompRule => ({
            names: [name],
            action: 'SCMP_ACT_ERRNO',
            errnoRet: EPERM,
            args: [{ index, value: S_IFMT, valueTwo: type, op: 'SCMP_CMP_MASKED_EQ' }],
          }),
        ),
      ]),
      ...ALLOWED_SOCKET_FAMILIES.map(
        (family): SeccompRule => ({
          names: ['socket'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 0, value: family, op: 'SCMP_CMP_EQ' }],
        }),
      ),
    ],
  };
}
