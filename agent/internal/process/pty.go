package process

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// openPTY allocates a pseudo-terminal pair through /dev/ptmx. runc mounts
// /dev/pts with newinstance and ptmxmode=0666 and makes /dev/ptmx a symlink to
// pts/ptmx, so the pair comes from the sandbox's own devpts instance.
//
// The master is returned as a pollable *os.File (reads can be interrupted by
// deadlines and Close); the slave is a plain file to hand to the child.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	var n uint32
	err = control(master, func(fd uintptr) error {
		unlock := int32(0)
		if err := ioctl(fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		if err := ioctl(fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); err != nil {
			return fmt.Errorf("get pty number: %w", err)
		}
		return nil
	})
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(name, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return master, slave, nil
}

type winsize struct {
	rows, cols, xpixel, ypixel uint16
}

// setWinsize sets the terminal size; the kernel then sends SIGWINCH to the
// terminal's foreground process group.
func setWinsize(f *os.File, cols, rows uint32) error {
	if cols == 0 || rows == 0 || cols > 0xffff || rows > 0xffff {
		return fmt.Errorf("invalid pty size %dx%d", cols, rows)
	}
	ws := winsize{rows: uint16(rows), cols: uint16(cols)}
	return control(f, func(fd uintptr) error {
		return ioctl(fd, syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
	})
}

// control runs fn on the file's descriptor without f.Fd(), which would switch
// the master back to blocking mode and break deadlines.
func control(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var inner error
	if err := rc.Control(func(fd uintptr) { inner = fn(fd) }); err != nil {
		return err
	}
	return inner
}

func ioctl(fd, req, arg uintptr) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg); e != 0 {
		return e
	}
	return nil
}
