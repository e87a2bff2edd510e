// Package hostexec runs host tools (runc, mount, nft, ...) on behalf of the
// Hutch server. It is not used inside sandboxes: the server starts the agent
// binary once as `hutch-agent host-exec` and sends it one JSON request per
// line on stdin; answers come back as JSON lines on stdout, in any order,
// matched by id.
//
// Why: the server is a large Node process, and every child it spawns itself
// costs it a fork of its whole address space (about 3 ms of CPU each, several
// per sandbox create and delete). Go starts children with a vfork-style clone
// from a small process, which costs a fraction of that, so the busiest path
// of the server (sandbox churn) gets most of a core back.
package hostexec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Request is one tool run, or (Op "mount" / "umount") one of the mount
// operations of mount.go.
type Request struct {
	ID        uint64        `json:"id"`
	Op        string        `json:"op,omitempty"`
	Mount     *MountRequest `json:"mount,omitempty"`
	Targets   []string      `json:"targets,omitempty"`
	File      string        `json:"file"`
	Args      []string      `json:"args"`
	Cwd       string        `json:"cwd,omitempty"`
	Input     *string       `json:"input,omitempty"`
	TimeoutMs int           `json:"timeoutMs,omitempty"`
	// LogFile, when set, receives the tool's stdout and stderr (appended) and
	// the tool runs in a session of its own: a detached start (runc run -d)
	// whose container must not hold a pipe of ours.
	LogFile string `json:"logFile,omitempty"`
}

// Response is the outcome of one Request.
type Response struct {
	ID     uint64 `json:"id"`
	Code   *int   `json:"code"`
	Signal string `json:"signal,omitempty"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Error is set when the tool could not be started (not found, bad cwd)
	// or was killed for running past its timeout or output limit.
	Error    string `json:"error,omitempty"`
	TimedOut bool   `json:"timedOut,omitempty"`
}

// MaxOutput bounds what is kept of each output stream.
const MaxOutput = 16 << 20

// Serve answers requests from in until it ends (the server closed the pipe).
func Serve(in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	var wg sync.WaitGroup
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 64*1024), 64<<20)
	for scanner.Scan() {
		var req Request
		if err := json.Unmarshal(scanner.Bytes(), &req); err != nil {
			mu.Lock()
			enc.Encode(Response{Error: "bad request: " + err.Error()})
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := Run(req)
			mu.Lock()
			enc.Encode(res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return scanner.Err()
}

type limitedBuffer struct {
	bytes.Buffer
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxOutput {
		b.over = true
		return 0, errors.New("output limit")
	}
	return b.Buffer.Write(p)
}

// Run runs one request to completion.
func Run(req Request) Response {
	res := Response{ID: req.ID}
	switch req.Op {
	case "":
	case "mount", "umount":
		var err error
		if req.Op == "mount" && req.Mount != nil {
			err = Mount(*req.Mount)
		} else if req.Op == "mount" {
			err = errors.New("mount: no mount given")
		} else {
			err = Unmount(req.Targets)
		}
		code := 0
		if err != nil {
			code = 1
			res.Stderr = err.Error()
		}
		res.Code = &code
		return res
	default:
		res.Error = "unknown op " + req.Op
		return res
	}
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, req.File, req.Args...)
	cmd.Dir = req.Cwd
	var stdout, stderr limitedBuffer
	if req.LogFile != "" {
		f, err := os.OpenFile(req.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
	}
	if req.Input != nil {
		cmd.Stdin = bytes.NewReader([]byte(*req.Input))
	}
	err := cmd.Run()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	if ctx.Err() == context.DeadlineExceeded {
		res.TimedOut = true
		res.Error = "timed out after " + timeout.String()
	}
	if stdout.over || stderr.over {
		res.Error = "output over the limit"
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		zero := 0
		res.Code = &zero
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal().String()
			if name, ok := signalNames[ws.Signal()]; ok {
				res.Signal = name
			}
		} else {
			code := exitErr.ExitCode()
			res.Code = &code
		}
	default:
		if res.Error == "" {
			res.Error = err.Error()
		}
	}
	return res
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGKILL: "SIGKILL",
	syscall.SIGTERM: "SIGTERM",
	syscall.SIGINT:  "SIGINT",
	syscall.SIGSEGV: "SIGSEGV",
	syscall.SIGABRT: "SIGABRT",
}
