// Package stats serves GET /hutch/stats: the sandbox's own resource usage as
// the agent sees it from inside, for runtimes where the server cannot read the
// sandbox's cgroup from the host (Kubernetes pods). In order of preference:
//
//   - cgroup v2 ("0::/" in /proc/self/cgroup; the container's cgroup is the
//     root of /sys/fs/cgroup): cpu.stat usage_usec, memory.current,
//     memory.stat file, pids.current;
//   - cgroup v1 (runc mounts the container's own cgroups at the root of each
//     controller): cpuacct.usage, memory.usage_in_bytes, memory.stat
//     total_cache, pids.current;
//   - procfs (gVisor shows no cgroupfs to the sandbox): cpu is the sum of
//     utime+stime+cutime+cstime over every process (the agent, as PID 1, reaps
//     what its children leave, so an exited process is counted once, in the
//     process that waited for it); memory is MemTotal-MemAvailable and cache is
//     Cached+Shmem of /proc/meminfo (gVisor reports the sandbox's own use
//     there); pids is the number of processes.
//
// The figures come from inside the trust boundary: code that subverts the
// agent can make them up. The server documents them as such.
package stats

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is the answer of GET /hutch/stats.
type Stats struct {
	// Source is "cgroup2", "cgroup1" or "procfs".
	Source           string `json:"source"`
	CPUNs            uint64 `json:"cpuNs"`
	MemoryBytes      uint64 `json:"memoryBytes"`
	MemoryCacheBytes uint64 `json:"memoryCacheBytes"`
	Pids             uint64 `json:"pids"`
}

// Reader reads the figures below Root (tests point it at a fake tree).
type Reader struct {
	// Root is "/" in the sandbox.
	Root string
	// ClockTicks is USER_HZ (100 on Linux and gVisor).
	ClockTicks uint64
}

// Handler serves the figures of a Reader.
type Handler struct{ Reader Reader }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	s, err := h.Reader.Read()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s)
}

func (rd Reader) path(p string) string { return filepath.Join(rd.Root, p) }

func (rd Reader) uintFile(p string) (uint64, bool) {
	data, err := os.ReadFile(rd.path(p))
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return v, err == nil
}

// keyed reads "key value" lines (memory.stat, cpu.stat, /proc/meminfo without the "kB").
func (rd Reader) keyed(p string) map[string]uint64 {
	out := map[string]uint64{}
	data, err := os.ReadFile(rd.path(p))
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(strings.Replace(sc.Text(), ":", " ", 1))
		if len(fields) < 2 {
			continue
		}
		if v, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
			out[fields[0]] = v
		}
	}
	return out
}

// Read returns the figures of the first source that is there.
func (rd Reader) Read() (Stats, error) {
	if s, ok := rd.cgroup2(); ok {
		return s, nil
	}
	if s, ok := rd.cgroup1(); ok {
		return s, nil
	}
	return rd.procfs()
}

func (rd Reader) cgroup2() (Stats, bool) {
	self, err := os.ReadFile(rd.path("/proc/self/cgroup"))
	if err != nil || strings.TrimSpace(string(self)) != "0::/" {
		return Stats{}, false
	}
	cpu := rd.keyed("/sys/fs/cgroup/cpu.stat")
	usage, ok := cpu["usage_usec"]
	mem, memOK := rd.uintFile("/sys/fs/cgroup/memory.current")
	if !ok || !memOK {
		return Stats{}, false
	}
	pids, _ := rd.uintFile("/sys/fs/cgroup/pids.current")
	return Stats{Source: "cgroup2", CPUNs: usage * 1000, MemoryBytes: mem, MemoryCacheBytes: rd.keyed("/sys/fs/cgroup/memory.stat")["file"], Pids: pids}, true
}

func (rd Reader) cgroup1() (Stats, bool) {
	var cpu uint64
	var ok bool
	for _, dir := range []string{"cpuacct", "cpu,cpuacct", "cpuacct,cpu"} {
		if cpu, ok = rd.uintFile("/sys/fs/cgroup/" + dir + "/cpuacct.usage"); ok {
			break
		}
	}
	mem, memOK := rd.uintFile("/sys/fs/cgroup/memory/memory.usage_in_bytes")
	if !ok || !memOK {
		return Stats{}, false
	}
	pids, _ := rd.uintFile("/sys/fs/cgroup/pids/pids.current")
	return Stats{Source: "cgroup1", CPUNs: cpu, MemoryBytes: mem, MemoryCacheBytes: rd.keyed("/sys/fs/cgroup/memory/memory.stat")["total_cache"], Pids: pids}, true
}

func (rd Reader) procfs() (Stats, error) {
	entries, err := os.ReadDir(rd.path("/proc"))
	if err != nil {
		return Stats{}, err
	}
	ticks := rd.ClockTicks
	if ticks == 0 {
		ticks = 100
	}
	var total, pids uint64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(rd.path("/proc/" + e.Name() + "/stat"))
		if err != nil {
			continue // gone since the listing
		}
		// The command (field 2) may hold spaces and parentheses: fields count from the last ")".
		end := bytes.LastIndexByte(data, ')')
		if end < 0 {
			continue
		}
		fields := strings.Fields(string(data[end+1:]))
		// After ")": state(3) ... utime(14) stime(15) cutime(16) cstime(17) → indexes 11..14.
		if len(fields) < 15 {
			continue
		}
		pids++
		for _, f := range fields[11:15] {
			if v, err := strconv.ParseInt(f, 10, 64); err == nil && v > 0 {
				total += uint64(v)
			}
		}
	}
	mem := rd.keyed("/proc/meminfo")
	used := uint64(0)
	if mem["MemTotal"] > mem["MemAvailable"] {
		used = (mem["MemTotal"] - mem["MemAvailable"]) * 1024
	}
	return Stats{
		Source:           "procfs",
		CPUNs:            total * (1_000_000_000 / ticks),
		MemoryBytes:      used,
		MemoryCacheBytes: (mem["Cached"] + mem["Shmem"]) * 1024,
		Pids:             pids,
	}, nil
}
