package procread

import (
	"fmt"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// MemAvailable returns /proc/meminfo MemAvailable (kB) in bytes, read with
// procfs from procRoot ("" means "/proc"): the kernel's estimate of the
// memory that can be allocated without swapping. A meminfo without the line
// (Linux < 3.14) is an error, never a zero.
func MemAvailable(procRoot string) (uint64, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	path := filepath.Join(procRoot, "meminfo")
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return 0, fmt.Errorf("procread: proc root %s: %w", procRoot, err)
	}
	m, err := pfs.Meminfo()
	if err != nil {
		return 0, fmt.Errorf("procread: meminfo %s: %w", path, err)
	}
	if m.MemAvailableBytes == nil {
		return 0, fmt.Errorf("procread: meminfo %s: no MemAvailable line", path)
	}
	return *m.MemAvailableBytes, nil
}

// Sources of a MemoryLimit.
const (
	// MemSourceAvailable is /proc/meminfo MemAvailable.
	MemSourceAvailable = "MemAvailable"
	// MemSourceCgroupV2 is the cgroup v2 memory.max less memory.current.
	MemSourceCgroupV2 = "cgroup v2 memory.max - memory.current"
	// MemSourceCgroupV1 is the cgroup v1 memory.limit_in_bytes less
	// memory.usage_in_bytes.
	MemSourceCgroupV1 = "cgroup v1 memory.limit_in_bytes - memory.usage_in_bytes"
	// MemSourceRlimitAS is the soft RLIMIT_AS less VmSize: it bounds what
	// may still be mapped, populated or not.
	MemSourceRlimitAS = "RLIMIT_AS - VmSize"
)

// MemoryLimit is one bound on the memory a run may still use.
type MemoryLimit struct {
	// Source says where the figure comes from, one of the MemSource
	// constants.
	Source string `json:"source"`
	// Bytes is how much more memory the source allows, bytes (0 when it
	// is already used up).
	Bytes uint64 `json:"bytes"`
}

// MemoryBound is the tightest memory bound a run can use, e.g. for how many
// stacks it may populate or touch in full.
type MemoryBound struct {
	// Binding is the smallest of Limits (the first listed on a tie).
	Binding MemoryLimit `json:"binding"`
	// Limits lists every bound that was known, in the order MemAvailable,
	// cgroup, RLIMIT_AS.
	Limits []MemoryLimit `json:"limits"`
}

// MemoryBound returns the tightest of MemAvailable, the cgroup's limit less
// its usage (v2 memory.max - memory.current, or v1 limit_in_bytes -
// usage_in_bytes, where the limit may be an ancestor's: see
// System.CgroupMemoryMax) and RLIMIT_AS less VmSize, from the inputs read. ok is
// false when none of them is known (no MemAvailable, no cgroup limit,
// RLIMIT_AS unlimited).
func (in LimitInputs) MemoryBound() (b MemoryBound, ok bool) {
	s := in.System
	if s.MemAvailable > 0 { // 0 only when unread: a live system always has some
		b.Limits = append(b.Limits, MemoryLimit{Source: MemSourceAvailable, Bytes: s.MemAvailable})
	}
	if s.CgroupMemoryMax != nil && s.CgroupMemoryCurrent != nil {
		src := MemSourceCgroupV2
		if s.CgroupVersion == 1 {
			src = MemSourceCgroupV1
		}
		b.Limits = append(b.Limits, MemoryLimit{Source: src, Bytes: sub(*s.CgroupMemoryMax, *s.CgroupMemoryCurrent)})
	}
	if s.RlimitAS != nil && in.Usage.VmSizeBytes > 0 {
		b.Limits = append(b.Limits, MemoryLimit{Source: MemSourceRlimitAS, Bytes: sub(*s.RlimitAS, in.Usage.VmSizeBytes)})
	}
	if len(b.Limits) == 0 {
		return b, false
	}
	b.Binding = b.Limits[0]
	for _, l := range b.Limits[1:] {
		if l.Bytes < b.Binding.Bytes {
			b.Binding = l
		}
	}
	return b, true
}

// sub is a - b, or 0 when b >= a.
func sub(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}
