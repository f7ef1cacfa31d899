package procread

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
)

// System holds the facts about the machine that decide how lazily mapped
// stacks get backed; it is recorded with every run. The json tags are part
// of the output schema. A fact whose file could not be read is left nil (or
// empty) and its path is listed in Missing: it is never reported as zero.
type System struct {
	// Kernel is the kernel release, from /proc/sys/kernel/osrelease.
	Kernel string `json:"kernel"`
	// Arch is the Go architecture of this binary (runtime.GOARCH).
	Arch string `json:"arch"`
	// PageSize is the base page size, bytes (os.Getpagesize).
	PageSize int `json:"page_size"`
	// THPEnabled is the selected transparent huge page mode, the bracketed
	// word of /sys/kernel/mm/transparent_hugepage/enabled: "always",
	// "madvise" or "never"; "" if the file is absent.
	THPEnabled string `json:"thp_enabled"`
	// THPDefrag is the selected THP fault-time defrag mode, the bracketed
	// word of /sys/kernel/mm/transparent_hugepage/defrag, e.g. "madvise".
	THPDefrag string `json:"thp_defrag"`
	// MTHPEnabled maps each multi-size THP size (e.g. "64kB") to its
	// selected mode, from /sys/kernel/mm/transparent_hugepage/hugepages-*/
	// enabled: "always", "inherit", "madvise" or "never". Absent before
	// Linux 6.8.
	MTHPEnabled map[string]string `json:"mthp_enabled,omitempty"`
	// THPMaxPtesNone is how many unmapped base pages khugepaged accepts when
	// collapsing a 2 MiB region into a huge page, from
	// /sys/kernel/mm/transparent_hugepage/khugepaged/max_ptes_none (a count,
	// 511 by default with 4 KiB pages).
	THPMaxPtesNone *int64 `json:"khugepaged_max_ptes_none,omitempty"`
	// THPPMDSize is the size of a PMD-mapped transparent huge page, bytes,
	// from /sys/kernel/mm/transparent_hugepage/hpage_pmd_size.
	THPPMDSize uint64 `json:"thp_pmd_size_bytes,omitempty"`
	// OvercommitMemory is vm.overcommit_memory from
	// /proc/sys/vm/overcommit_memory: 0 heuristic, 1 always, 2 strict
	// (MAP_NORESERVE is then ignored and every stack is charged in full).
	OvercommitMemory *int64 `json:"overcommit_memory"`
	// OvercommitRatio is vm.overcommit_ratio, percent of RAM counted in
	// CommitLimit under strict overcommit, from /proc/sys/vm/overcommit_ratio.
	OvercommitRatio *int64 `json:"overcommit_ratio,omitempty"`
	// MaxMapCount is vm.max_map_count, the most VMAs a process may have
	// (a guarded stack takes two), from /proc/sys/vm/max_map_count.
	MaxMapCount *int64 `json:"max_map_count"`
	// RlimitAS is the soft RLIMIT_AS of this process, bytes, from
	// /proc/self/limits "Max address space"; nil means unlimited
	// (RLIM_INFINITY). Every reserved stack counts against it in full.
	RlimitAS *uint64 `json:"rlimit_as,omitempty"`
	// RlimitStack is the soft RLIMIT_STACK of this process, bytes (the main
	// thread's stack), from /proc/self/limits "Max stack size"; nil means
	// unlimited.
	RlimitStack *uint64 `json:"rlimit_stack,omitempty"`
	// RlimitNofile is the soft RLIMIT_NOFILE of this process (a count of
	// file descriptors), from /proc/self/limits "Max open files".
	RlimitNofile uint64 `json:"rlimit_nofile,omitempty"`
	// CommitLimit is /proc/meminfo CommitLimit (kB), bytes.
	CommitLimit uint64 `json:"commit_limit_bytes,omitempty"`
	// CommittedAS is /proc/meminfo Committed_AS (kB), bytes, when the
	// facts were read.
	CommittedAS uint64 `json:"committed_as_bytes,omitempty"`
	// MemTotal is /proc/meminfo MemTotal (kB), bytes: usable RAM.
	MemTotal uint64 `json:"mem_total_bytes,omitempty"`
	// CgroupVersion is 2 for the unified hierarchy, 1 when memory figures
	// come from the cgroup v1 memory controller, 0 if none was found.
	CgroupVersion int `json:"cgroup_version,omitempty"`
	// CgroupPath is this process's memory cgroup, relative to the
	// hierarchy root, from /proc/self/cgroup.
	CgroupPath string `json:"cgroup_path,omitempty"`
	// CgroupMemoryCurrent is the memory charged to the cgroup, bytes:
	// memory.current (v2) or memory.usage_in_bytes (v1).
	CgroupMemoryCurrent *uint64 `json:"cgroup_memory_current,omitempty"`
	// CgroupMemoryMax is the cgroup's hard memory limit, bytes:
	// memory.max (v2) or memory.limit_in_bytes (v1); nil if unlimited.
	CgroupMemoryMax *uint64 `json:"cgroup_memory_max,omitempty"`
	// NumCPU is the number of logical CPUs usable by this process
	// (runtime.NumCPU).
	NumCPU int `json:"num_cpu"`
	// Missing lists the files (or "file: key" for a missing line) that
	// could not be read; the facts they hold are left unset.
	Missing []string `json:"missing,omitempty"`
}

// cgroupV1Unlimited is what cgroup v1 reports as memory.limit_in_bytes when
// there is no limit: PAGE_COUNTER_MAX pages, LONG_MAX rounded down to a
// page. Anything at or above it means no limit.
const cgroupV1Unlimited = 0x7FFFFFFFFFFFF000

// ReadSystem reads the machine facts from procRoot (e.g. "/proc") and
// sysRoot (e.g. "/sys"); "" means those defaults. Files that are absent or
// unreadable are listed in System.Missing and are not an error; an error
// means procRoot does not exist or a file that was read is malformed. Even
// then the facts that were read are returned.
func ReadSystem(procRoot, sysRoot string) (System, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	if sysRoot == "" {
		sysRoot = "/sys"
	}
	s := System{
		Arch:     runtime.GOARCH,
		PageSize: os.Getpagesize(),
		NumCPU:   runtime.NumCPU(),
	}
	if _, err := os.Stat(procRoot); err != nil {
		return s, fmt.Errorf("procread: proc root: %w", err)
	}
	c := &sysCollector{s: &s}
	p := func(elem ...string) string { return filepath.Join(append([]string{procRoot}, elem...)...) }
	thp := func(elem ...string) string {
		return filepath.Join(append([]string{sysRoot, "kernel", "mm", "transparent_hugepage"}, elem...)...)
	}

	if v, ok := c.read(p("sys", "kernel", "osrelease")); ok {
		s.Kernel = v
	}
	s.THPEnabled = c.bracketed(thp("enabled"))
	s.THPDefrag = c.bracketed(thp("defrag"))
	s.THPMaxPtesNone = c.int64(thp("khugepaged", "max_ptes_none"))
	if v := c.int64(thp("hpage_pmd_size")); v != nil {
		s.THPPMDSize = uint64(*v)
	}
	c.mthp(thp())
	s.OvercommitMemory = c.int64(p("sys", "vm", "overcommit_memory"))
	s.OvercommitRatio = c.int64(p("sys", "vm", "overcommit_ratio"))
	s.MaxMapCount = c.int64(p("sys", "vm", "max_map_count"))
	c.limits(p("self", "limits"))
	c.meminfo(procRoot)
	c.cgroup(p("self", "cgroup"), filepath.Join(sysRoot, "fs", "cgroup"))
	return s, errors.Join(c.errs...)
}

// sysCollector reads the files of System, noting the missing ones and the
// malformed ones.
type sysCollector struct {
	s    *System
	errs []error
}

func (c *sysCollector) missing(what string) { c.s.Missing = append(c.s.Missing, what) }

func (c *sysCollector) fail(path string, err error) {
	c.errs = append(c.errs, fmt.Errorf("%s: %w", path, err))
}

// read returns the contents of path without surrounding white space, or
// notes it missing.
func (c *sysCollector) read(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		c.missing(path)
		return "", false
	}
	return string(bytes.TrimSpace(b)), true
}

// int64 reads a file holding one decimal integer.
func (c *sysCollector) int64(path string) *int64 {
	v, ok := c.read(path)
	if !ok {
		return nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		c.fail(path, err)
		return nil
	}
	return &n
}

// bracketed reads a sysfs choice file such as "always [madvise] never" and
// returns the selected word.
func (c *sysCollector) bracketed(path string) string {
	v, ok := c.read(path)
	if !ok {
		return ""
	}
	w, err := parseBracketed(v)
	if err != nil {
		c.fail(path, err)
	}
	return w
}

func parseBracketed(v string) (string, error) {
	_, after, ok := strings.Cut(v, "[")
	if !ok {
		return "", fmt.Errorf("no [selected] word in %q", v)
	}
	w, _, ok := strings.Cut(after, "]")
	if !ok || w == "" {
		return "", fmt.Errorf("no [selected] word in %q", v)
	}
	return w, nil
}

// mthp reads the per-size hugepages-*/enabled files under the THP
// directory. Kernels without multi-size THP have none, which is not
// missing.
func (c *sysCollector) mthp(dir string) {
	paths, _ := filepath.Glob(filepath.Join(dir, "hugepages-*", "enabled"))
	for _, path := range paths {
		size := strings.TrimPrefix(filepath.Base(filepath.Dir(path)), "hugepages-")
		if w := c.bracketed(path); w != "" {
			if c.s.MTHPEnabled == nil {
				c.s.MTHPEnabled = make(map[string]string, len(paths))
			}
			c.s.MTHPEnabled[size] = w
		}
	}
}

// limits reads the soft limits of interest from /proc/self/limits.
func (c *sysCollector) limits(path string) {
	v, ok := c.read(path)
	if !ok {
		return
	}
	soft, err := parseLimits(v)
	if err != nil {
		c.fail(path, err)
		return
	}
	want := func(name string) (string, bool) {
		s, ok := soft[name]
		if !ok {
			c.missing(path + ": " + name)
		}
		return s, ok
	}
	limit := func(name string) *uint64 {
		s, ok := want(name)
		if !ok || s == "unlimited" {
			return nil
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			c.fail(path, fmt.Errorf("%s: %w", name, err))
			return nil
		}
		return &n
	}
	c.s.RlimitAS = limit("Max address space")
	c.s.RlimitStack = limit("Max stack size")
	if s, ok := want("Max open files"); ok {
		if s == "unlimited" {
			c.s.RlimitNofile = ^uint64(0) // RLIM_INFINITY
		} else if n, err := strconv.ParseUint(s, 10, 64); err != nil {
			c.fail(path, fmt.Errorf("Max open files: %w", err))
		} else {
			c.s.RlimitNofile = n
		}
	}
}

// parseLimits maps each limit name of a /proc/PID/limits file to its soft
// value ("unlimited" or a number). Names are several words; the columns
// after them are soft, hard and, for most, units.
func parseLimits(v string) (map[string]string, error) {
	lines := strings.Split(v, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "Limit") {
		return nil, errors.New(`no "Limit" header line`)
	}
	soft := make(map[string]string, len(lines))
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		// The name ends at the first field that is a value.
		i := 0
		for i < len(f) && f[i] != "unlimited" && !isDigits(f[i]) {
			i++
		}
		if i == 0 || i == len(f) {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("malformed line %q", line)
		}
		soft[strings.Join(f[:i], " ")] = f[i]
	}
	return soft, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// meminfo reads MemTotal, CommitLimit and Committed_AS.
func (c *sysCollector) meminfo(procRoot string) {
	path := filepath.Join(procRoot, "meminfo")
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		c.fail(procRoot, err)
		return
	}
	m, err := pfs.Meminfo()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			c.missing(path)
		} else {
			c.fail(path, err)
		}
		return
	}
	get := func(v *uint64, key string) uint64 {
		if v == nil {
			c.missing(path + ": " + key)
			return 0
		}
		return *v
	}
	c.s.MemTotal = get(m.MemTotalBytes, "MemTotal")
	c.s.CommitLimit = get(m.CommitLimitBytes, "CommitLimit")
	c.s.CommittedAS = get(m.CommittedASBytes, "Committed_AS")
}

// cgroup finds this process's memory cgroup from /proc/self/cgroup and
// reads its usage and limit under cgroupRoot (/sys/fs/cgroup): the unified
// (v2) hierarchy first, mounted at the root or, on hybrid systems, at
// "unified"; then the v1 memory controller.
func (c *sysCollector) cgroup(selfCgroup, cgroupRoot string) {
	v, ok := c.read(selfCgroup)
	if !ok {
		return
	}
	v2, v1, err := parseCgroup(v)
	if err != nil {
		c.fail(selfCgroup, err)
		return
	}
	if v2 != "" {
		for _, base := range []string{cgroupRoot, filepath.Join(cgroupRoot, "unified")} {
			dir, ok := within(base, v2)
			if !ok {
				continue
			}
			cur := filepath.Join(dir, "memory.current")
			if _, err := os.Stat(cur); err != nil {
				continue
			}
			c.s.CgroupVersion, c.s.CgroupPath = 2, v2
			c.s.CgroupMemoryCurrent = c.cgroupValue(cur)
			c.s.CgroupMemoryMax = c.cgroupValue(filepath.Join(dir, "memory.max"))
			return
		}
	}
	if v1 != "" {
		if dir, ok := within(filepath.Join(cgroupRoot, "memory"), v1); ok {
			cur := filepath.Join(dir, "memory.usage_in_bytes")
			if _, err := os.Stat(cur); err == nil {
				c.s.CgroupVersion, c.s.CgroupPath = 1, v1
				c.s.CgroupMemoryCurrent = c.cgroupValue(cur)
				c.s.CgroupMemoryMax = c.cgroupValue(filepath.Join(dir, "memory.limit_in_bytes"))
				return
			}
		}
	}
	p := v2
	if p == "" {
		p = v1
	}
	dir, _ := within(cgroupRoot, p)
	c.missing(filepath.Join(dir, "memory.current"))
}

// cgroupValue reads a cgroup memory file: a byte count, or "max" (v2) or
// a value at cgroupV1Unlimited (v1) for no limit, both returned as nil.
func (c *sysCollector) cgroupValue(path string) *uint64 {
	v, ok := c.read(path)
	if !ok || v == "max" {
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		c.fail(path, err)
		return nil
	}
	if n >= cgroupV1Unlimited {
		return nil
	}
	return &n
}

// parseCgroup returns the unified-hierarchy path (line "0::/path") and the
// v1 memory controller path (line "N:...,memory,...:/path") of a
// /proc/PID/cgroup file.
func parseCgroup(v string) (v2, v1 string, err error) {
	for line := range strings.SplitSeq(v, "\n") {
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(path, "/") {
			return "", "", fmt.Errorf("malformed line %q", line)
		}
		switch {
		case id == "0" && ctrls == "":
			v2 = path
		case ctrlsHave(ctrls, "memory"):
			v1 = path
		}
	}
	return v2, v1, nil
}

func ctrlsHave(ctrls, name string) bool {
	for c := range strings.SplitSeq(ctrls, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// within joins base and the absolute cgroup path p, refusing a p that
// would climb out of base.
func within(base, p string) (string, bool) {
	dir := filepath.Join(base, p)
	if dir != base && !strings.HasPrefix(dir, base+string(filepath.Separator)) {
		return "", false
	}
	return dir, true
}
