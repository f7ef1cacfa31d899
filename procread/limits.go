package procread

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/prometheus/procfs"
)

// Usage is what one process already uses of the limits a stack reservation
// is checked against, read at one moment. Sizes are in bytes; the kernel
// reports kB, which is KiB.
type Usage struct {
	// VMAs is the number of VMAs the process holds (mm->map_count), a
	// count: the lines of /proc/PID/maps less the [vsyscall] gate line
	// (see Totals.VMAs). vm.max_map_count bounds it.
	VMAs int `json:"vmas"`
	// VmSizeBytes is the mapped address space, /proc/PID/status VmSize,
	// bytes. RLIMIT_AS bounds it.
	VmSizeBytes uint64 `json:"vm_size_bytes"`
	// CommittedAS is the memory the system has promised to all processes,
	// /proc/meminfo Committed_AS, bytes. Under vm.overcommit_memory=2 it
	// must stay below CommitLimit.
	CommittedAS uint64 `json:"committed_as_bytes"`
	// VmDataBytes is the private writable (data) mappings of the process,
	// /proc/PID/status VmData, bytes. RLIMIT_DATA bounds it.
	VmDataBytes uint64 `json:"vm_data_bytes"`
	// RlimitData is the soft RLIMIT_DATA, /proc/PID/limits "Max data
	// size", bytes; nil means unlimited or not read.
	RlimitData *uint64 `json:"rlimit_data,omitempty"`
	// UserReserveBytes is vm.user_reserve_kbytes, bytes: commit headroom
	// strict overcommit keeps back from a large process. Nil if not read.
	UserReserveBytes *uint64 `json:"user_reserve_bytes,omitempty"`
	// AddressGaps are the sizes of the unmapped ranges of the user
	// address space where mmap may place a new mapping, bytes, largest
	// first: between vm.mmap_min_addr and the top of the user address
	// space, less the stack guard gap below the main thread's [stack].
	// A new mapping of S bytes fits floor(gap/S) times in each. Nil when
	// the address space layout of this architecture is not modelled.
	AddressGaps []uint64 `json:"-"`
}

// LimitInputs is everything limits.Predict needs, read in one step: the
// machine facts and what the process already uses.
type LimitInputs struct {
	// System holds the machine facts, as ReadSystem reads them.
	System System `json:"system"`
	// Usage is what the process uses of each limit, as ReadUsage reads it.
	Usage Usage `json:"usage"`
}

// ReadLimitInputs reads the machine facts (ReadSystem) and this process's
// usage (ReadUsage of "self") from procRoot and sysRoot ("" means "/proc"
// and "/sys"). A usage it cannot read is an error; unreadable machine
// facts are listed in System.Missing, as ReadSystem does. The inputs read
// are returned even with an error.
func ReadLimitInputs(procRoot, sysRoot string) (LimitInputs, error) {
	var in LimitInputs
	var errSys, errUse error
	in.System, errSys = ReadSystem(procRoot, sysRoot)
	in.Usage, errUse = ReadUsage(procRoot, 0)
	return in, errors.Join(errSys, errUse)
}

// stackGuardGapPages is the gap the kernel keeps below a VM_GROWSDOWN mapping
// (the main thread's [stack]) by default: stack_guard_gap, 256 pages.
const stackGuardGapPages = 256

// ReadUsage reads process pid's usage under procRoot ("" means "/proc";
// pid 0 means the calling process) with procfs: Proc.NewStatus (VmSize,
// VmData), Proc.Limits (RLIMIT_DATA), FS.Meminfo (Committed_AS), FS.VM
// (user_reserve_kbytes, mmap_min_addr) and Proc.ProcMaps (address gaps);
// the VMA count comes from Reader.Totals, the same count the sampler and
// limits.Verify use. A missing limits file or sysctl leaves its field nil;
// anything else missing or malformed is an error.
func ReadUsage(procRoot string, pid int) (Usage, error) {
	var u Usage
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return u, fmt.Errorf("procread: proc root %s: %w", procRoot, err)
	}
	var p procfs.Proc
	if pid == 0 {
		p, err = pfs.Self()
	} else {
		p, err = pfs.Proc(pid)
	}
	if err != nil {
		return u, fmt.Errorf("procread: process %s: %w", pidName(pid), err)
	}
	dir := filepath.Join(procRoot, strconv.Itoa(p.PID))

	r, err := NewReader(procRoot, p.PID)
	if err != nil {
		return u, err
	}
	t, err := r.Totals()
	if err != nil {
		return u, fmt.Errorf("procread: %w", err)
	}
	u.VMAs = t.VMAs

	st, err := p.NewStatus()
	if err != nil {
		return u, fmt.Errorf("procread: status %s: %w", filepath.Join(dir, "status"), err)
	}
	if st.VmSize == 0 {
		// A kernel thread or a zombie has no memory to report; procfs
		// leaves the absent lines zero.
		return u, fmt.Errorf("procread: status %s: no VmSize", filepath.Join(dir, "status"))
	}
	if st.VmData == 0 {
		// procfs leaves an absent or malformed VmData line zero; a user
		// process always has some data (its heap, its bss).
		return u, fmt.Errorf("procread: status %s: no VmData (absent or malformed)", filepath.Join(dir, "status"))
	}
	u.VmSizeBytes, u.VmDataBytes = st.VmSize, st.VmData

	m, err := pfs.Meminfo()
	if err != nil {
		return u, fmt.Errorf("procread: meminfo %s: %w", filepath.Join(procRoot, "meminfo"), err)
	}
	if m.CommittedASBytes == nil {
		return u, fmt.Errorf("procread: meminfo %s: no Committed_AS line", filepath.Join(procRoot, "meminfo"))
	}
	u.CommittedAS = *m.CommittedASBytes

	l, err := p.Limits()
	switch {
	case unreadable(err):
	case err != nil:
		return u, fmt.Errorf("procread: limits %s: %w", filepath.Join(dir, "limits"), err)
	case l.DataSize != rlimInfinity:
		u.RlimitData = &l.DataSize
	}

	minAddr := uint64(0)
	if vm, err := pfs.VM(); err == nil {
		if v := vm.UserReserveKbytes; v != nil && *v >= 0 {
			b := uint64(*v) << 10
			u.UserReserveBytes = &b
		}
		if v := vm.MmapMinAddr; v != nil && *v >= 0 {
			minAddr = uint64(*v)
		}
	}

	if top, ok := userTop(runtime.GOARCH); ok {
		maps, err := p.ProcMaps()
		if err != nil {
			return u, fmt.Errorf("procread: maps %s: %w", filepath.Join(dir, "maps"), err)
		}
		u.AddressGaps = addressGaps(maps, minAddr, top, uint64(stackGuardGapPages*os.Getpagesize()))
	}
	return u, nil
}

func pidName(pid int) string {
	if pid == 0 {
		return "self"
	}
	return strconv.Itoa(pid)
}

// userTop is the end of the user address space a mapping without an
// address hint may use (TASK_SIZE, or DEFAULT_MAP_WINDOW with 5-level page
// tables): 2^47 less one page on x86-64, 2^48 on arm64 with 48-bit virtual
// addresses. ok is false for an architecture not modelled here.
func userTop(arch string) (uint64, bool) {
	switch arch {
	case "amd64":
		return 1<<47 - uint64(os.Getpagesize()), true
	case "arm64":
		return 1 << 48, true
	}
	return 0, false
}

// addressGaps returns the sizes of the unmapped ranges in [lo, top) between
// the mappings maps lists (in address order, as /proc/PID/maps does),
// largest first. Mappings at or above top (the [vsyscall] gate) are
// ignored. guardGap is left free below the main thread's [stack], as the
// kernel keeps it below a mapping that grows down.
func addressGaps(maps []*procfs.ProcMap, lo, top, guardGap uint64) []uint64 {
	var gaps []uint64
	prev := lo
	add := func(end uint64) {
		if end > prev {
			gaps = append(gaps, end-prev)
		}
	}
	for _, m := range maps {
		start, end := uint64(m.StartAddr), uint64(m.EndAddr)
		if start >= top {
			break
		}
		gapEnd := start
		if m.Pathname == "[stack]" {
			gapEnd = start - min(start, guardGap)
		}
		add(gapEnd)
		prev = max(prev, end)
	}
	add(top)
	slices.SortFunc(gaps, func(a, b uint64) int {
		switch {
		case a > b:
			return -1
		case a < b:
			return 1
		}
		return 0
	})
	return gaps
}
