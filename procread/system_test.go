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

func TestReadSystemMalformed(t *testing.T) {
	root := filepath.Join("testdata", "system-malformed")
	got, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err == nil {
		t.Fatal("malformed files gave no error")
	}
	for _, want := range []string{
		filepath.Join(root, "proc", "sys", "vm", "overcommit_memory"),
		filepath.Join(root, "sys", "kernel", "mm", "transparent_hugepage", "enabled") + ": no [selected] word",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// What could be read is still returned.
	if got.MaxMapCount == nil || *got.MaxMapCount != 65530 || got.OvercommitMemory != nil {
		t.Errorf("partial result: max_map_count %v overcommit_memory %v", got.MaxMapCount, got.OvercommitMemory)
	}
}

func TestReadSystemNoProcRoot(t *testing.T) {
	_, err := ReadSystem("testdata/does-not-exist", "testdata/does-not-exist")
	if err == nil || !strings.Contains(err.Error(), "does-not-exist") {
		t.Fatalf("err = %v, want one naming the root", err)
	}
}

// TestSystemJSON pins the output schema: snake_case keys, nil pointers as
// null for the always-present facts and omitted for the optional ones.
func TestSystemJSON(t *testing.T) {
	b, err := json.Marshal(System{Missing: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// Figures that could not be read are absent (and listed in missing),
	// never zero; the sysctls stay as null.
	want := []string{
		"arch", "kernel", "max_map_count", "missing", "num_cpu", "overcommit_memory", "page_size", "thp_defrag", "thp_enabled",
	}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("keys of a zero System = %q, want %q", got, want)
	}
	if m["overcommit_memory"] != nil || m["max_map_count"] != nil {
		t.Errorf("unknown facts must be null: %s", b)
	}

	root := filepath.Join("testdata", "system-full")
	full, err := ReadSystem(filepath.Join(root, "proc"), filepath.Join(root, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"khugepaged_max_ptes_none":511`, `"thp_pmd_size_bytes":2097152`, `"rlimit_as":68719476736`,
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

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name, in, v2, v1 string
		ok               bool
	}{
		{"unified", "0::/user.slice/x.scope\n", "/user.slice/x.scope", "", true},
		{"hybrid", "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n", "/", "/process_api/abc", true},
		{"v1 only", "5:cpuacct,memory:/docker/1\n", "", "/docker/1", true},
		{"not memory", "4:memory_extra:/x\n", "", "", true},
		{"malformed", "0:/x\n", "", "", false},
	}
	for _, tt := range tests {
		v2, v1, err := parseCgroup(tt.in)
		if v2 != tt.v2 || v1 != tt.v1 || (err == nil) != tt.ok {
			t.Errorf("%s: parseCgroup = %q, %q, %v; want %q, %q, ok=%v", tt.name, v2, v1, err, tt.v2, tt.v1, tt.ok)
		}
	}
}

func TestParseLimits(t *testing.T) {
	b, err := os.ReadFile("testdata/system-full/proc/self/limits")
	if err != nil {
		t.Fatal(err)
	}
	soft, err := parseLimits(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"Max address space":     "68719476736",
		"Max open files":        "20000",
		"Max stack size":        "8388608",
		"Max cpu time":          "unlimited",
		"Max realtime priority": "0",
	} {
		if soft[name] != want {
			t.Errorf("soft[%q] = %q, want %q", name, soft[name], want)
		}
	}
	if _, err := parseLimits("Max open files 1 2"); err == nil {
		t.Error("limits without header line parsed")
	}
}
