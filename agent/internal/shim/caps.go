package shim

import (
	"syscall"
	"unsafe"
)

// prctl options and capability ABI values from <linux/prctl.h> and
// <linux/capability.h>; the syscall package does not export them all.
const (
	prCapbsetRead       = 23
	prCapbsetDrop       = 24
	prSetNoNewPrivs     = 38
	prCapAmbient        = 47
	prCapAmbientClear   = 4
	linuxCapVersion3    = 0x20080522
	maxCapabilityNumber = 63
)

func prctl(option, arg2 uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, option, arg2, 0, 0, 0, 0)
	return e
}

// dropBoundingSet removes every capability from this thread's bounding set, so
// that nothing exec'd later (setuid-root binaries, file capabilities) can get
// one back. It walks cap numbers until the kernel says EINVAL (past the last
// capability it knows). A capability that cannot be dropped (EPERM: we lack
// CAP_SETPCAP) is reported unless it is already absent.
func dropBoundingSet() (undroppable int, err error) {
	for c := uintptr(0); c <= maxCapabilityNumber; c++ {
		switch e := prctl(prCapbsetDrop, c); e {
		case 0:
		case syscall.EINVAL:
			return undroppable, nil
		case syscall.EPERM:
			r, _, e2 := syscall.RawSyscall6(syscall.SYS_PRCTL, prCapbsetRead, c, 0, 0, 0, 0)
			if e2 == 0 && r == 1 {
				undroppable++
			}
		default:
			return undroppable, e
		}
	}
	return undroppable, nil
}

// clearAmbient empties the ambient set; EINVAL means a kernel without ambient
// capabilities (before 4.3), which has nothing to clear.
func clearAmbient() error {
	if e := prctl(prCapAmbient, prCapAmbientClear); e != 0 && e != syscall.EINVAL {
		return e
	}
	return nil
}

func setNoNewPrivs() error {
	if e := prctl(prSetNoNewPrivs, 1); e != 0 {
		return e
	}
	return nil
}

// CapHeader and CapData are the capget/capset ABI (version 3: two CapData words).
type CapHeader struct {
	Version uint32
	Pid     int32
}

type CapData struct {
	Effective   uint32
	Permitted   uint32
	Inheritable uint32
}

// LinuxCapVersion3 is _LINUX_CAPABILITY_VERSION_3.
const LinuxCapVersion3 = linuxCapVersion3

// clearCapSets zeroes the effective, permitted and inheritable sets of the
// calling thread. setuid() to a non-zero uid already clears permitted and
// effective, but not when the target user is root, and never inheritable.
func clearCapSets() error {
	hdr := CapHeader{Version: linuxCapVersion3}
	var data [2]CapData // version 3 uses two 32-bit words per set
	_, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if e != 0 {
		return e
	}
	return nil
}
