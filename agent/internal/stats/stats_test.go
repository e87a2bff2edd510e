package stats

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root, path, text string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Each source: the files of a sandbox that has it, and the figures read from them.
func TestSources(t *testing.T) {
	cases := []struct {
		files map[string]string
		ticks uint64
		want  Stats
	}{
		{
			files: map[string]string{
				"/proc/self/cgroup":             "0::/\n",
				"/sys/fs/cgroup/cpu.stat":       "usage_usec 2500000\nuser_usec 2000000\n",
				"/sys/fs/cgroup/memory.current": "1048576\n",
				"/sys/fs/cgroup/memory.stat":    "anon 4096\nfile 8192\n",
				"/sys/fs/cgroup/pids.current":   "3\n",
			},
			want: Stats{Source: "cgroup2", CPUNs: 2_500_000_000, MemoryBytes: 1048576, MemoryCacheBytes: 8192, Pids: 3},
		},
		{
			files: map[string]string{
				"/proc/self/cgroup":                           "4:memory:/kubepods/pod1/abc\n",
				"/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage":    "123456789\n",
				"/sys/fs/cgroup/memory/memory.usage_in_bytes": "2097152\n",
				"/sys/fs/cgroup/memory/memory.stat":           "cache 10\nrss 20\ntotal_cache 4096\n",
				"/sys/fs/cgroup/pids/pids.current":            "5\n",
			},
			want: Stats{Source: "cgroup1", CPUNs: 123456789, MemoryBytes: 2097152, MemoryCacheBytes: 4096, Pids: 5},
		},
		{
			// pid 1 reaped children worth 150 ticks; pid 7's command has spaces and a parenthesis.
			files: map[string]string{
				"/proc/self/cgroup": "",
				"/proc/1/stat":      "1 (hutch-agent) S 0 1 1 0 -1 4194560 0 0 0 0 10 5 100 50 20 0 9 0 1 0 0\n",
				"/proc/7/stat":      "7 (a b) c)) R 1 7 1 0 -1 4194560 0 0 0 0 200 30 0 0 20 0 1 0 2 0 0\n",
				"/proc/meminfo":     "MemTotal:       1000 kB\nMemFree:         600 kB\nMemAvailable:    700 kB\nCached:           40 kB\nShmem:            10 kB\n",
			},
			ticks: 100,
			want:  Stats{Source: "procfs", CPUNs: (10 + 5 + 100 + 50 + 200 + 30) * 10_000_000, MemoryBytes: 300 * 1024, MemoryCacheBytes: 50 * 1024, Pids: 2},
		},
	}
	for _, c := range cases {
		root := t.TempDir()
		for path, text := range c.files {
			write(t, root, path, text)
		}
		s, err := Reader{Root: root, ClockTicks: c.ticks}.Read()
		if err != nil {
			t.Fatal(err)
		}
		if s != c.want {
			t.Errorf("%s: got %+v, want %+v", c.want.Source, s, c.want)
		}
	}
}
