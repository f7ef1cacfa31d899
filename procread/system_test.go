package procread

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// The system-* fixture trees hold a proc and a sys root each, copied from
// Linux 6.18 with the cgroup files and some limits edited per case.

func ptr[T any](v T) *T { return &v }

func TestReadSystem(t *testing.T) {
	osrelease := func(t *testing.T, root string) string {
		b, err := os.ReadFile(filepath.Join(root, "proc", "sys", "kernel", "osrelease"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	tests := []struct {
		name        string
		want        func(t *testing.T, root string) System
		wantMissing []string // relative to the fixture root
	}{
		{
			name: "system-full",
			want: func(t *testing.T, root string) System {
				return System{
					Kernel:              osrelease(t, root),
					THPEnabled:          "madvise",
					THPDefrag:           "madvise",
					MTHPEnabled:         map[string]string{"64kB": "never", "2048kB": "inherit"},
					THPMaxPtesNone:      ptr[int64](511),
					THPPMDSize:          2 << 20,
					OvercommitMemory:    ptr[int64](0),
					OvercommitRatio:     ptr[int64](50),
					MaxMapCount:         ptr[int64](65530),
					RlimitAS:            ptr[uint64](64 << 30),
					RlimitStack:         ptr[uint64](8 << 20),
					RlimitNofile:        20000,
					CommitLimit:         12342044 * kiB,
					CommittedAS:         58800 * kiB,
					MemTotal:            24684092 * kiB,
					MemAvailable:        24365476 * kiB,
					SwapTotal:           ptr[uint64](0),
					CgroupVersion:       2,
					CgroupPath:          "/user.slice/stackprobe.scope",
					CgroupMemoryCurrent: ptr[uint64](123445248),
					CgroupMemoryMax:     ptr[uint64](4 << 30),
				}
			},
		},
		{
			name: "system-cgroup-v1",
			want: func(t *testing.T, root string) System {
				return System{
					CommitLimit:         12342044 * kiB,
					CommittedAS:         58800 * kiB,
					MemTotal:            24684092 * kiB,
					MemAvailable:        24365476 * kiB,
					SwapTotal:           ptr[uint64](0),
					CgroupVersion:       1,
					CgroupPath:          "/process_api/4090c56a",
					CgroupMemoryCurrent: ptr[uint64](6217728),
					CgroupMemoryMax:     nil, // 9223372036854771712: no limit
				}
			},
			wantMissing: []string{
				"proc/sys/kernel/osrelease",
				"sys/kernel/mm/transparent_hugepage/enabled",
				"sys/kernel/mm/transparent_hugepage/defrag",
				"sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none",
				"sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
				"proc/sys/vm/overcommit_memory",
				"proc/sys/vm/overcommit_ratio",
				"proc/sys/vm/max_map_count",
				"proc/self/limits",
			},
		},
		{
			name: "system-degraded",
			want: func(t *testing.T, root string) System {
				return System{
					Kernel:              osrelease(t, root),
					CommitLimit:         12342044 * kiB,
					MemTotal:            24684092 * kiB,
					MemAvailable:        24365476 * kiB,
					SwapTotal:           ptr[uint64](0),
					CgroupVersion:       2,
					CgroupPath:          "/app.slice",
					CgroupMemoryCurrent: ptr[uint64](52428800),
					CgroupMemoryMax:     nil, // "max"
				}
			},
			wantMissing: []string{
				"sys/kernel/mm/transparent_hugepage/enabled",
				"sys/kernel/mm/transparent_hugepage/defrag",
				"sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none",
				"sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
				"proc/sys/vm/overcommit_memory",
				"proc/sys/vm/overcommit_ratio",
				"proc/sys/vm/max_map_count",
				"proc/self/limits",
				"proc/meminfo: Committed_AS",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join("testdata", tt.name)
			got, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want(t, root)
			want.Arch, want.PageSize, want.NumCPU = runtime.GOARCH, os.Getpagesize(), runtime.NumCPU()
			for _, m := range tt.wantMissing {
				want.Missing = append(want.Missing, filepath.Join(root, m))
			}
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			wantJSON, _ := json.MarshalIndent(want, "", "  ")
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("got\n%s\nwant\n%s", gotJSON, wantJSON)
			}
		})
	}
}

// TestReadSystemMalformed: a THP file without a [selected] word, or a vm
// sysctl that is not a number, is an error naming the file or directory.
// procfs's FS.VM then returns no sysctl at all, so all three are missing,
// never zero.
func TestReadSystemMalformed(t *testing.T) {
	root := filepath.Join("testdata", "system-malformed")
	got, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err == nil {
		t.Fatal("malformed files gave no error")
	}
	for _, want := range []string{
		filepath.Join(root, "proc", "sys", "vm") + `: strconv.ParseInt: parsing "zero"`,
		filepath.Join(root, "sys", "kernel", "mm", "transparent_hugepage", "enabled") + ": no [selected] word",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got.MaxMapCount != nil || got.OvercommitMemory != nil {
		t.Errorf("max_map_count %v overcommit_memory %v, want both unset", got.MaxMapCount, got.OvercommitMemory)
	}
	for _, name := range []string{"overcommit_memory", "max_map_count"} {
		if !slices.Contains(got.Missing, filepath.Join(root, "proc", "sys", "vm", name)) {
			t.Errorf("%s not listed missing: %q", name, got.Missing)
		}
	}
	// What could be read is still returned.
	if got.PageSize != os.Getpagesize() || got.Arch != runtime.GOARCH {
		t.Errorf("partial result %+v", got)
	}
}

// TestReadSystemCgroupParent reads cgroups whose parent's limit binds
// tighter than their own: with v2 the ancestor with the least room (max
// less current) stands for the cgroup, with v1 memory.stat
// hierarchical_memory_limit does; MemoryBound then binds on it.
func TestReadSystemCgroupParent(t *testing.T) {
	tests := []struct {
		root      string
		version   int
		path      string
		max, cur  uint64
		limitPath string
	}{
		// worker: 1 GiB, 100 MiB used; app.scope: no limit; machine.slice:
		// 2 GiB with 1.9 GB used, the least room.
		{"system-cgroup-parent", 2, "/machine.slice/app.scope/worker", 2 << 30, 1900000000, "/machine.slice"},
		{"system-cgroup-v1-parent", 1, "/process_api/4090c56a", 512 << 20, 6217728, ""},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			root := filepath.Join("testdata", tt.root)
			s, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
			if err != nil {
				t.Fatal(err)
			}
			if s.CgroupVersion != tt.version || s.CgroupPath != tt.path || s.CgroupMemoryLimitPath != tt.limitPath ||
				s.CgroupMemoryMax == nil || *s.CgroupMemoryMax != tt.max || s.CgroupMemoryCurrent == nil || *s.CgroupMemoryCurrent != tt.cur {
				t.Errorf("cgroup v%d %q, limit of %q: max %v current %v; want v%d %q, limit of %q: max %d current %d",
					s.CgroupVersion, s.CgroupPath, s.CgroupMemoryLimitPath, s.CgroupMemoryMax, s.CgroupMemoryCurrent,
					tt.version, tt.path, tt.limitPath, tt.max, tt.cur)
			}
			for _, m := range s.Missing {
				if strings.HasPrefix(m, filepath.Join(root, "sys", "fs", "cgroup")) || strings.HasSuffix(m, "/cgroup") {
					t.Errorf("%s listed missing", m)
				}
			}
			b, ok := (LimitInputs{System: s}).MemoryBound()
			if !ok || b.Binding.Bytes != tt.max-tt.cur || !strings.HasPrefix(b.Binding.Source, "cgroup") {
				t.Errorf("MemoryBound = %+v, %v; want the cgroup's %d bytes", b, ok, tt.max-tt.cur)
			}
		})
	}
}

func TestReadSystemNoProcRoot(t *testing.T) {
	_, err := ReadSystem("testdata/does-not-exist", "testdata/does-not-exist")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist") {
		t.Fatalf("err = %v, want one naming the root", err)
	}
}

// TestSystemJSON pins the output schema: snake_case keys, and a figure that
// could not be read absent (and listed in missing), never null, "" or 0.
func TestSystemJSON(t *testing.T) {
	keys := func(t *testing.T, s System) map[string]any {
		t.Helper()
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := keys(t, System{Missing: []string{"x"}})
	want := []string{"arch", "missing", "num_cpu", "page_size"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("keys of a zero System = %q, want %q", got, want)
	}

	// system-cgroup-v1 has no osrelease, THP files or vm sysctls.
	root := filepath.Join("testdata", "system-cgroup-v1")
	unread, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	m = keys(t, unread)
	for key, file := range map[string]string{
		"kernel":            "proc/sys/kernel/osrelease",
		"thp_enabled":       "sys/kernel/mm/transparent_hugepage/enabled",
		"thp_defrag":        "sys/kernel/mm/transparent_hugepage/defrag",
		"overcommit_memory": "proc/sys/vm/overcommit_memory",
		"max_map_count":     "proc/sys/vm/max_map_count",
	} {
		if v, ok := m[key]; ok {
			t.Errorf("unreadable %s present in the JSON as %#v", key, v)
		}
		if !slices.Contains(unread.Missing, filepath.Join(root, file)) {
			t.Errorf("%s not listed missing: %q", file, unread.Missing)
		}
	}

	root = filepath.Join("testdata", "system-full")
	full, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"kernel":"`, `"thp_enabled":"madvise"`, `"thp_defrag":"madvise"`, `"overcommit_memory":0`, `"max_map_count":65530`,
		`"khugepaged_max_ptes_none":511`, `"thp_pmd_size_bytes":2097152`, `"rlimit_as":68719476736`, `"mem_available_bytes":24950247424`,
		`"cgroup_memory_current":123445248`, `"cgroup_memory_max":4294967296`, `"mthp_enabled":{"2048kB":"inherit","64kB":"never"}`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
}

func TestParseBracketed(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"always [madvise] never", "madvise", true},
		{"[always] madvise never", "always", true},
		{"always defer defer+madvise [madvise] never", "madvise", true},
		{"always inherit madvise [never]", "never", true},
		{"madvise", "", false},
		{"always [] never", "", false},
		{"always [madvise", "", false},
	}
	for _, tt := range tests {
		got, err := parseBracketed(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseBracketed(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestMemoryCgroups(t *testing.T) {
	cg := func(id int, path string, ctrls ...string) procfs.Cgroup {
		return procfs.Cgroup{HierarchyID: id, Controllers: ctrls, Path: path}
	}
	tests := []struct {
		name   string
		in     []procfs.Cgroup
		v2, v1 string
	}{
		{"unified", []procfs.Cgroup{cg(0, "/user.slice/x.scope")}, "/user.slice/x.scope", ""},
		{"hybrid", []procfs.Cgroup{cg(9, "/", "name=systemd"), cg(4, "/process_api/abc", "memory"), cg(1, "/", "cpu", "cpuacct"), cg(0, "/")},
			"/", "/process_api/abc"},
		{"v1 only", []procfs.Cgroup{cg(5, "/docker/1", "cpuacct", "memory")}, "", "/docker/1"},
		{"not memory", []procfs.Cgroup{cg(4, "/x", "memory_extra")}, "", ""},
	}
	for _, tt := range tests {
		v2, v1 := memoryCgroups(tt.in)
		if v2 != tt.v2 || v1 != tt.v1 {
			t.Errorf("%s: memoryCgroups = %q, %q; want %q, %q", tt.name, v2, v1, tt.v2, tt.v1)
		}
	}
}
