/**
 * /proc and /sys paths hidden from sandboxes (masked: bind of /dev/null or an empty tmpfs) or
 * made read-only. runc's defaults plus the host-information leaks the hostile battery (H5) reads.
 */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/key-users',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/kallsyms',
  '/proc/kmsg',
  '/proc/kpagecount',
  '/proc/kpageflags',
  '/proc/kpagecgroup',
  '/proc/modules',
  '/proc/vmallocinfo',
  '/proc/slabinfo',
  '/proc/sysrq-trigger',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
  '/sys/kernel',
];

export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys'];
