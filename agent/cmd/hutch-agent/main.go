// Command hutch-agent is the in-sandbox agent of Hutch. It runs as PID 1 of
// every sandbox and serves an envd-compatible API (Connect JSON over
// HTTP/1.1) on a unix socket shared with the host.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"hutch/agent/internal/hostexec"
	"hutch/agent/internal/process"
	"hutch/agent/internal/reaper"
	"hutch/agent/internal/server"
	"hutch/agent/internal/shim"
	"hutch/agent/internal/users"
)

// version is reported by --version.
const version = "0.1.0"

// listenFlags collects repeated --listen values.
type listenFlags []string

func (l *listenFlags) String() string     { return strings.Join(*l, ",") }
func (l *listenFlags) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	// The same binary is the exec shim for user processes: that mode must
	// take over before anything else (no flags, no goroutines, no logging).
	shim.MaybeRun()
	// On the host (never in a sandbox): the server's tool runner, see package hostexec.
	if len(os.Args) == 2 && os.Args[1] == "host-exec" {
		if err := hostexec.Serve(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "hutch-agent host-exec:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// On the host: starts runsc with gVisor's netstack, see hostexec.ExecWithNetstackView.
	// Usage: hutch-agent netstack-launch PROC_DIR -- runsc ARGS...
	if len(os.Args) >= 5 && os.Args[1] == "netstack-launch" && os.Args[3] == "--" {
		err := hostexec.ExecWithNetstackView(os.Args[2], os.Args[4:])
		fmt.Fprintln(os.Stderr, "hutch-agent netstack-launch:", err)
		os.Exit(126)
	}

	// On the host: starts crun on a hybrid cgroup host, see hostexec.ExecWithLegacyCgroupView.
	// Usage: hutch-agent legacy-cgroup-launch -- crun ARGS...
	if len(os.Args) >= 4 && os.Args[1] == "legacy-cgroup-launch" && os.Args[2] == "--" {
		err := hostexec.ExecWithLegacyCgroupView(os.Args[3:])
		fmt.Fprintln(os.Stderr, "hutch-agent legacy-cgroup-launch:", err)
		os.Exit(126)
	}

	var listens listenFlags
	flag.Var(&listens, "listen", "address to serve on: unix:PATH or tcp:HOST:PORT (repeatable)")
	defaultUser := flag.String("default-user", "user", "user for requests that name none (root if absent from /etc/passwd)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	nullStdio := flag.Bool("null-stdio", false, "after start-up, point stdin/stdout/stderr at /dev/null and stop logging (for runtimes whose /proc/1/fd would let sandbox root write to the host file given as stdio)")
	flag.Parse()
	// A sub-command this binary does not know (an older agent started by a newer server) must
	// fail at once, not fall through to serving the agent API on the host.
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "hutch-agent: unknown command or argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("hutch-agent", version)
		return
	}
	if len(listens) == 0 {
		listens = listenFlags{"unix:/run/hutch/agent.sock"}
	}
	logger := log.New(os.Stderr, "hutch-agent: ", log.LstdFlags|log.Lmsgprefix)

	// Not dumpable: workload processes (even sandbox root, which has no
	// capabilities) cannot ptrace the agent or open /proc/1/fd, /proc/1/mem or
	// /proc/1/environ; through /proc/1/fd/1 they could otherwise write into the
	// host-side log file the runtime gave the agent as stdio.
	const prSetDumpable = 4
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0)

	// The reaper must be in place before the first child exists.
	rp := reaper.New()
	if os.Getpid() != 1 {
		// Outside a sandbox (development, tests) become a child subreaper so
		// orphans of our processes are still reparented to us and reaped.
		const prSetChildSubreaper = 36
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	}
	mgr := process.NewManager(rp, "/proc/self/exe", os.Environ(), logger)
	// Processes start without capabilities either way; directly (one fork and
	// exec) when this process can strip what exec would pass on, else through
	// the exec shim (a re-exec of this binary that drops them first).
	if err := process.RestrictExecs(); err != nil {
		logger.Printf("processes start through the exec shim: %v", err)
	} else {
		mgr.UseDirectExec()
	}
	resolver := users.Resolver{DB: users.System, Default: *defaultUser}
	// The handler needs the agent's actual TCP ports (tcp:HOST:0), known only
	// once listening: until it is in place requests get 503 (the host retries).
	var handler atomic.Value
	gate := &server.Listeners{Addrs: listens, Logger: logger, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := handler.Load().(http.Handler); ok {
			h.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	if err := gate.Open(); err != nil {
		logger.Fatalf("listen: %v", err)
	}
	var tcpPorts []int
	for i, l := range gate.Listening() {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			tcpPorts = append(tcpPorts, a.Port)
			// A reopen after a restore listens on the same port.
			gate.Addrs[i] = "tcp:" + l.Addr().String()
		}
	}
	handler.Store(server.Handler(server.Config{
		Processes: mgr,
		Users:     resolver,
		// The token comes from the environment (never a flag: argv is visible
		// to every process); HUTCH_AGENT_* variables are hidden from processes.
		AccessToken: os.Getenv("HUTCH_AGENT_ACCESS_TOKEN"),
		// The agent's own TCP ports (actual ones, for tcp:HOST:0 too) are
		// never reachable through /tunnel.
		ReservedPorts: tcpPorts,
		Quiesce:       gate.QuiesceHandler(),
	}))
	if u, err := resolver.DefaultUser(); err == nil {
		logger.Printf("version %s, pid %d, listening on %s, default user %s (uid %d)", version, os.Getpid(), listens.String(), u.Name, u.UID)
	} else {
		logger.Printf("version %s, pid %d, listening on %s; default user: %v", version, os.Getpid(), listens.String(), err)
	}
	if *nullStdio {
		if devNull, err := os.OpenFile("/dev/null", os.O_RDWR, 0); err == nil {
			for fd := 0; fd <= 2; fd++ {
				syscall.Dup3(int(devNull.Fd()), fd, 0)
			}
			devNull.Close()
			logger.SetOutput(io.Discard)
		} else {
			logger.Printf("null-stdio: %v", err)
		}
	}

	// SIGUSR1: the host restored this sandbox from a checkpoint (or gave up on
	// taking one): listen again.
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGUSR1)
	go func() {
		for range reopen {
			if err := gate.Open(); err != nil {
				logger.Printf("reopen after restore: %v", err)
			}
		}
	}()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	sig := <-sigs
	logger.Printf("received %v: killing all processes and exiting", sig)
	if os.Getpid() == 1 {
		// PID 1 of the sandbox: every process in the namespace is ours.
		syscall.Kill(-1, syscall.SIGKILL)
	} else {
		// Outside a sandbox kill(-1) would hit the whole host: only kill
		// what we started.
		mgr.KillAll()
	}
	gate.Quiesce() // also unlinks unix socket files
	os.Exit(0)
}
