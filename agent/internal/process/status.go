package process

import (
	"strconv"
	"syscall"
)

// endEventFor turns a wait status into the protocol's end event. The status
// strings follow Go's os.ProcessState.String(), which is what envd reports:
// "exit status 1", "signal: killed", "signal: terminated" (plus
// " (core dumped)"); a process killed by a signal has exited=false and
// exitCode=-1.
func endEventFor(ws syscall.WaitStatus) *EndEvent {
	switch {
	case ws.Exited():
		return &EndEvent{ExitCode: int32(ws.ExitStatus()), Exited: true, Status: "exit status " + strconv.Itoa(ws.ExitStatus())}
	case ws.Signaled():
		s := "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			s += " (core dumped)"
		}
		return &EndEvent{ExitCode: -1, Exited: false, Status: s}
	}
	return &EndEvent{ExitCode: -1, Status: "unknown wait status 0x" + strconv.FormatUint(uint64(ws), 16)}
}

// signalFor validates a requested signal. Only the signals of the protocol's
// enum are allowed; the others (SIGSTOP, real-time...) are not part of it.
func signalFor(s Signal) (syscall.Signal, bool) {
	switch syscall.Signal(s) {
	case syscall.SIGHUP, syscall.SIGINT, syscall.SIGKILL, syscall.SIGTERM:
		return syscall.Signal(s), true
	}
	return 0, false
}
