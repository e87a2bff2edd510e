package hostexec

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// Mounts done with the syscalls directly: util-linux mount(8) costs a
// process and a parse of the whole mount table per call, twice per sandbox
// create, and umount(8) again on delete.

// MountRequest is a mount(2) call; Cwd makes relative paths in Data resolve
// against it (overlay lowerdir=lower0:… stays relative, so the sandbox's
// mountinfo never shows host paths). Loop, when set, is an image file that
// is attached to a free loop device first (auto-cleared on unmount) and
// mounted as Source.
type MountRequest struct {
	Source string   `json:"source"`
	Target string   `json:"target"`
	FSType string   `json:"fstype"`
	Flags  []string `json:"flags,omitempty"`
	Data   string   `json:"data,omitempty"`
	Cwd    string   `json:"cwd,omitempty"`
	Loop   string   `json:"loop,omitempty"`
}

var mountFlags = map[string]uintptr{
	"nosuid":  syscall.MS_NOSUID,
	"nodev":   syscall.MS_NODEV,
	"noexec":  syscall.MS_NOEXEC,
	"noatime": syscall.MS_NOATIME,
	"ro":      syscall.MS_RDONLY,
}

// Mount performs one mount.
func Mount(req MountRequest) error {
	var flags uintptr
	for _, f := range req.Flags {
		v, ok := mountFlags[f]
		if !ok {
			return fmt.Errorf("unknown mount flag %q", f)
		}
		flags |= v
	}
	source := req.Source
	if req.Loop != "" {
		dev, err := attachLoop(req.Loop)
		if err != nil {
			return fmt.Errorf("loop device for %s: %w", req.Loop, err)
		}
		defer dev.Close() // the mount holds its own reference; autoclear frees it on unmount
		source = dev.Name()
	}
	if req.Cwd == "" {
		return wrap("mount", req.Target, syscall.Mount(source, req.Target, req.FSType, flags, req.Data))
	}
	// The working directory is per process; a thread that unshares its
	// filesystem attributes gets its own. That thread is never reused: the
	// goroutine exits while still locked to it, so the runtime ends it.
	result := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_FS); err != nil {
			result <- wrap("unshare", req.Cwd, err)
			return
		}
		if err := syscall.Chdir(req.Cwd); err != nil {
			result <- wrap("chdir", req.Cwd, err)
			return
		}
		result <- wrap("mount", req.Target, syscall.Mount(source, req.Target, req.FSType, flags, req.Data))
	}()
	return <-result
}

// Unmount unmounts targets in order; a busy one is detached lazily. Targets
// that are not mounted are skipped.
func Unmount(targets []string) error {
	var first error
	for _, t := range targets {
		err := syscall.Unmount(t, 0)
		if errors.Is(err, syscall.EBUSY) {
			err = syscall.Unmount(t, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			if first == nil {
				first = wrap("umount", t, err)
			}
		}
	}
	return first
}

func wrap(what, path string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}

const (
	loopCtlGetFree   = 0x4C82
	loopConfigure    = 0x4C0A
	loFlagsAutoclear = 4
)

// struct loop_info64 and struct loop_config of <linux/loop.h>.
type loopInfo64 struct {
	Device, Inode, Rdevice, Offset, SizeLimit  uint64
	Number, EncryptType, EncryptKeySize, Flags uint32
	FileName                                   [64]byte
	CryptName                                  [64]byte
	EncryptKey                                 [32]byte
	Init                                       [2]uint64
}

type loopConfig struct {
	Fd, BlockSize uint32
	Info          loopInfo64
	Reserved      [8]uint64
}

// attachLoop binds image to a free loop device (LOOP_CONFIGURE, Linux ≥ 5.8)
// with autoclear, retrying when another process takes the same device first.
func attachLoop(image string) (*os.File, error) {
	backing, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		n, _, errno := syscall.Syscall(syscall.SYS_IOCTL, ctl.Fd(), loopCtlGetFree, 0)
		if errno != 0 {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", errno)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), os.O_RDWR, 0)
		if err != nil {
			last = err
			time.Sleep(time.Millisecond)
			continue
		}
		cfg := loopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = loFlagsAutoclear
		copy(cfg.Info.FileName[:63], image)
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, dev.Fd(), loopConfigure, uintptr(unsafe.Pointer(&cfg)))
		if errno == 0 {
			return dev, nil
		}
		dev.Close()
		last = fmt.Errorf("LOOP_CONFIGURE %s: %w", dev.Name(), errno)
		if errno != syscall.EBUSY {
			return nil, last
		}
	}
	return nil, last
}
