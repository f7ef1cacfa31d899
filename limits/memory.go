package limits

import (
	"bufio"
	"fmt"
	"io"
	"slices"

	"stackprobe/procread"
	"stackprobe/sizes"
)

// NameMemory is the Limit of how many used stacks fit in memory.
const NameMemory = "memory"

// SourceGiven is the MemoryFit source of a size given on the command line.
const SourceGiven = "--memory"

// PerStack is what one coroutine used to a depth costs, as a calibration
// run measured it (probe.Cost), bytes.
type PerStack struct {
	// DepthBytes is the depth every calibration stack was used to.
	DepthBytes int64 `json:"depth_bytes"`
	// Stacks is how many stacks the calibration measured, a count.
	Stacks int `json:"stacks"`
	// Resident is the stack's resident memory.
	Resident int64 `json:"resident"`
	// PageTables is its PTE page(s) plus its share of the PMD and PUD
	// pages.
	PageTables int64 `json:"page_tables"`
	// Kernel is its VMAs' vm_area_struct memory; absent when
	// /proc/slabinfo could not be read, and KernelMissing says why.
	Kernel        *int64 `json:"kernel,omitempty"`
	KernelMissing string `json:"kernel_missing,omitempty"`
	// Total is Resident + PageTables + Kernel (when known).
	Total int64 `json:"total"`
}

// MemoryFit is how many stacks of a PerStack cost fit in an amount of
// memory.
type MemoryFit struct {
	// MemoryBytes is the memory counted, bytes.
	MemoryBytes uint64 `json:"memory_bytes"`
	// Source says where MemoryBytes comes from: SourceGiven, or one of
	// procread's MemSource constants (MemAvailable, the cgroup's limit
	// less its usage).
	Source string `json:"source"`
	// Stacks is floor(MemoryBytes / PerStack.Total), a count.
	Stacks int64 `json:"stacks"`
}

// FitMemory is how many stacks costing per.Total each fit in memBytes.
func FitMemory(per PerStack, memBytes uint64, source string) MemoryFit {
	return MemoryFit{MemoryBytes: memBytes, Source: source, Stacks: fitCount(memBytes, 0, uint64(max(per.Total, 0)))}
}

// MachineMemory is the memory a run can fill on this machine: the smaller
// of MemAvailable and the cgroup's limit less its usage, from the inputs
// read (RLIMIT_AS is an address-space limit, listed by Predict, not
// counted here). ok is false when neither is known.
func MachineMemory(in procread.LimitInputs) (bytes uint64, source string, ok bool) {
	b, found := in.MemoryBound()
	if !found {
		return 0, "", false
	}
	for _, l := range b.Limits {
		if l.Source == procread.MemSourceRlimitAS {
			continue
		}
		if !ok || l.Bytes < bytes {
			bytes, source, ok = l.Bytes, l.Source, true
		}
	}
	return bytes, source, ok
}

// WithMemory returns p with the memory fit added as a limit named
// NameMemory, and its Binding, Max, Usable and UsableBinding recomputed:
// the bound that binds first among all limits.
func (p Prediction) WithMemory(per PerStack, f MemoryFit) Prediction {
	kernel := "kernel VMA cost left out (" + per.KernelMissing + ")"
	if per.Kernel != nil {
		kernel = "kernel " + sizes.IEC(*per.Kernel)
	}
	l := Limit{Name: NameMemory, Max: f.Stacks,
		Detail: fmt.Sprintf("%s (%s) at %s per stack used to %s: resident %s + page tables %s + %s, measured on %d stacks",
			iec(f.MemoryBytes), f.Source, sizes.IEC(per.Total), sizes.IEC(per.DepthBytes),
			sizes.IEC(per.Resident), sizes.IEC(per.PageTables), kernel, per.Stacks)}
	p.Limits = append(slices.Clone(p.Limits), l)
	if l.Max < p.Max || !p.Binding.Bounded() {
		p.Binding, p.Max = l, l.Max
	}
	if l.Max < p.Usable || !p.UsableBinding.Bounded() {
		p.Usable, p.UsableBinding = l.Max, l
	}
	return p
}

// WriteMemoryText writes the calibration's per-coroutine cost and the
// memory fit for people, after WriteText's report.
func WriteMemoryText(w io.Writer, per PerStack, f MemoryFit) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Per coroutine used to %s: %s = resident %s + page tables %s", sizes.IEC(per.DepthBytes),
		sizes.IEC(per.Total), sizes.IEC(per.Resident), sizes.IEC(per.PageTables))
	if per.Kernel != nil {
		fmt.Fprintf(bw, " + kernel %s", sizes.IEC(*per.Kernel))
	} else {
		fmt.Fprintf(bw, " (kernel VMA cost left out: %s)", per.KernelMissing)
	}
	fmt.Fprintf(bw, ", measured on %d stacks.\n", per.Stacks)
	fmt.Fprintf(bw, "In memory: %d stacks fit in %s (%s).\n", f.Stacks, iec(f.MemoryBytes), f.Source)
	return bw.Flush()
}
