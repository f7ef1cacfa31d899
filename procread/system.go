package procread

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
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
	Kernel string `json:"kernel,omitempty"`
	// Arch is the Go architecture of this binary (runtime.GOARCH).
	Arch string `json:"arch"`
	// PageSize is the base page size, bytes (os.Getpagesize).
	PageSize int `json:"page_size"`
	// THPEnabled is the selected transparent huge page mode, the bracketed
	// word of /sys/kernel/mm/transparent_hugepage/enabled: "always",
	// "madvise" or "never"; "" (absent from the JSON) if unreadable.
	THPEnabled string `json:"thp_enabled,omitempty"`
	// THPDefrag is the selected THP fault-time defrag mode, the bracketed
	// word of /sys/kernel/mm/transparent_hugepage/defrag, e.g. "madvise";
	// "" (absent from the JSON) if unreadable.
	THPDefrag string `json:"thp_defrag,omitempty"`
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
	OvercommitMemory *int64 `json:"overcommit_memory,omitempty"`
	// OvercommitRatio is vm.overcommit_ratio, percent of RAM counted in
	// CommitLimit under strict overcommit, from /proc/sys/vm/overcommit_ratio.
	OvercommitRatio *int64 `json:"overcommit_ratio,omitempty"`
	// MaxMapCount is vm.max_map_count, the most VMAs a process may have
	// (a guarded stack takes two), from /proc/sys/vm/max_map_count.
	MaxMapCount *int64 `json:"max_map_count,omitempty"`
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
	// MemAvailable is /proc/meminfo MemAvailable (kB), bytes, when the
	// facts were read: the kernel's estimate of memory that can be
	// allocated without swapping.
	MemAvailable uint64 `json:"mem_available_bytes,omitempty"`
	// SwapTotal is /proc/meminfo SwapTotal (kB), bytes: 0 with no swap,
	// nil if unread. Overcommit mode 0 weighs a mapping against RAM plus
	// swap.
	SwapTotal *uint64 `json:"swap_total_bytes,omitempty"`
	// CgroupVersion is 2 for the unified hierarchy, 1 when memory figures
	// come from the cgroup v1 memory controller, 0 if none was found.
	CgroupVersion int `json:"cgroup_version,omitempty"`
	// CgroupPath is this process's memory cgroup, relative to the
	// hierarchy root, from /proc/self/cgroup.
	CgroupPath string `json:"cgroup_path,omitempty"`
	// CgroupMemoryCurrent is the memory charged to the cgroup, bytes:
	// memory.current (v2) or memory.usage_in_bytes (v1). With v2 it is
	// that of the cgroup named by CgroupMemoryLimitPath when set.
	CgroupMemoryCurrent *uint64 `json:"cgroup_memory_current,omitempty"`
	// CgroupMemoryMax is the hard memory limit that binds the cgroup,
	// bytes; nil if unlimited. A parent's limit binds its children too:
	// with v2 it is memory.max of the cgroup or of the ancestor with the
	// least room left (memory.max less memory.current), named by
	// CgroupMemoryLimitPath; with v1 the smaller of memory.limit_in_bytes
	// and memory.stat hierarchical_memory_limit (the least limit of the
	// cgroup and its ancestors), against the cgroup's own usage: the room
	// then leaves out what other cgroups under that ancestor use.
	CgroupMemoryMax *uint64 `json:"cgroup_memory_max,omitempty"`
	// CgroupMemoryLimitPath is the ancestor of CgroupPath (v2, relative to
	// the hierarchy root) whose memory.max and memory.current
	// CgroupMemoryMax and CgroupMemoryCurrent are; empty when they are
	// the cgroup's own, and with v1.
	CgroupMemoryLimitPath string `json:"cgroup_memory_limit_path,omitempty"`
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

// rlimInfinity is RLIM_INFINITY, which procfs reports for "unlimited".
const rlimInfinity = ^uint64(0)

// ReadSystem reads the machine facts from procRoot (e.g. "/proc") and
// sysRoot (e.g. "/sys"); "" means those defaults. The process facts
// (limits, cgroup) are those of procRoot/self. Files that are absent or
// unreadable are listed in System.Missing and are not an error; so are the
// vm sysctls when malformed (procfs's FS.VM reads them leniently). An error
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
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return s, fmt.Errorf("procread: proc root %s: %w", procRoot, err)
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
	c.vm(pfs, procRoot)
	self, selfErr := pfs.Self()
	c.limits(self, selfErr, p("self", "limits"))
	c.meminfo(pfs, procRoot)
	c.cgroup(self, selfErr, p("self", "cgroup"), filepath.Join(sysRoot, "fs", "cgroup"))
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

// failed records err from reading path, if any: an unreadable file as
// missing, anything else as an error. It reports whether there was one.
func (c *sysCollector) failed(path string, err error) bool {
	switch {
	case err == nil:
		return false
	case unreadable(err):
		c.missing(path)
	default:
		c.fail(path, err)
	}
	return true
}

// unreadable reports whether err means the file is absent or may not be
// read, as opposed to malformed.
func unreadable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)
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

// vm reads the sysctls overcommit_memory, overcommit_ratio and
// max_map_count with procfs's FS.VM. A sysctl it could not read or parse
// is listed as missing.
func (c *sysCollector) vm(pfs procfs.FS, procRoot string) {
	vm, err := pfs.VM()
	if err != nil && !unreadable(err) {
		c.fail(filepath.Join(procRoot, "sys", "vm"), err)
	}
	if vm == nil {
		vm = &procfs.VM{}
	}
	get := func(v *int64, name string) *int64 {
		if v == nil {
			c.missing(filepath.Join(procRoot, "sys", "vm", name))
		}
		return v
	}
	c.s.OvercommitMemory = get(vm.OvercommitMemory, "overcommit_memory")
	c.s.OvercommitRatio = get(vm.OvercommitRatio, "overcommit_ratio")
	c.s.MaxMapCount = get(vm.MaxMapCount, "max_map_count")
}

// limits reads the soft limits of interest with procfs's Proc.Limits.
// procfs reports "unlimited" as RLIM_INFINITY.
func (c *sysCollector) limits(self procfs.Proc, selfErr error, path string) {
	if selfErr != nil {
		c.missing(path)
		return
	}
	l, err := self.Limits()
	if c.failed(path, err) {
		return
	}
	limit := func(v uint64) *uint64 {
		if v == rlimInfinity {
			return nil
		}
		return &v
	}
	c.s.RlimitAS = limit(l.AddressSpace)
	c.s.RlimitStack = limit(l.StackSize)
	c.s.RlimitNofile = l.OpenFiles
}

// meminfo reads MemTotal, MemAvailable, CommitLimit and Committed_AS.
func (c *sysCollector) meminfo(pfs procfs.FS, procRoot string) {
	path := filepath.Join(procRoot, "meminfo")
	m, err := pfs.Meminfo()
	if c.failed(path, err) {
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
	c.s.MemAvailable = get(m.MemAvailableBytes, "MemAvailable")
	c.s.CommitLimit = get(m.CommitLimitBytes, "CommitLimit")
	c.s.CommittedAS = get(m.CommittedASBytes, "Committed_AS")
	if m.SwapTotalBytes == nil {
		c.missing(path + ": SwapTotal")
	}
	c.s.SwapTotal = m.SwapTotalBytes
}

// cgroup finds this process's memory cgroup with procfs's Proc.Cgroups
// and reads its usage and limit under cgroupRoot (/sys/fs/cgroup): the
// unified (v2) hierarchy first, mounted at the root or, on hybrid systems,
// at "unified"; then the v1 memory controller.
func (c *sysCollector) cgroup(self procfs.Proc, selfErr error, selfCgroup, cgroupRoot string) {
	if selfErr != nil {
		c.missing(selfCgroup)
		return
	}
	groups, err := self.Cgroups()
	if c.failed(selfCgroup, err) {
		return
	}
	v2, v1 := memoryCgroups(groups)
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
			c.cgroupAncestors(base, v2)
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
				if h := c.hierarchicalLimit(filepath.Join(dir, "memory.stat")); h != nil &&
					(c.s.CgroupMemoryMax == nil || *h < *c.s.CgroupMemoryMax) {
					c.s.CgroupMemoryMax = h
				}
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

// cgroupAncestors walks up from the v2 cgroup p to the root of the
// hierarchy mounted at base, and takes the memory.max and memory.current
// of an ancestor whose room (max less current) is less than that of the
// cgroup's figures so far. An ancestor without memory.max (the root, or a
// cgroup whose parent does not enable the memory controller) has no limit.
func (c *sysCollector) cgroupAncestors(base, p string) {
	for p != "/" && p != "." {
		p = path.Dir(p)
		dir, ok := within(base, p)
		if !ok {
			return
		}
		maxPath := filepath.Join(dir, "memory.max")
		if _, err := os.Stat(maxPath); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		limit := c.cgroupValue(maxPath)
		if limit == nil {
			continue
		}
		cur := c.cgroupValue(filepath.Join(dir, "memory.current"))
		if cur == nil {
			continue
		}
		s := c.s
		if s.CgroupMemoryMax == nil || s.CgroupMemoryCurrent == nil ||
			sub(*limit, *cur) < sub(*s.CgroupMemoryMax, *s.CgroupMemoryCurrent) {
			s.CgroupMemoryMax, s.CgroupMemoryCurrent, s.CgroupMemoryLimitPath = limit, cur, p
		}
	}
}

// hierarchicalLimit reads the hierarchical_memory_limit line of a cgroup
// v1 memory.stat: the least memory.limit_in_bytes of the cgroup and its
// ancestors, nil when unlimited or unread.
func (c *sysCollector) hierarchicalLimit(path string) *uint64 {
	v, ok := c.read(path)
	if !ok {
		return nil
	}
	const key = "hierarchical_memory_limit"
	for line := range strings.Lines(v) {
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != key {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			c.fail(path, fmt.Errorf("%s: %w", key, err))
			return nil
		}
		if n >= cgroupV1Unlimited {
			return nil
		}
		return &n
	}
	c.missing(path + ": " + key)
	return nil
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

// memoryCgroups returns the unified-hierarchy path (hierarchy 0, no
// controllers) and the v1 memory controller's path among the lines of a
// /proc/PID/cgroup file.
func memoryCgroups(groups []procfs.Cgroup) (v2, v1 string) {
	for _, g := range groups {
		switch {
		case g.HierarchyID == 0 && len(g.Controllers) == 0:
			v2 = g.Path
		case slices.Contains(g.Controllers, "memory"):
			v1 = g.Path
		}
	}
	return v2, v1
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
