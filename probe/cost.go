package probe

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/bits"
	"slices"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// Cost is what one coroutine's stack costs the machine, measured from the
// page tables when Run.Cost is called (after Measure: the stacks as the
// run left them). Per-stack figures are means over the stacks, bytes; the
// totals they come from are given beside them.
type Cost struct {
	// Stacks is how many stacks the figures are shared over, a count.
	Stacks int `json:"stacks"`
	// DepthBytes is the depth of the touch workload's last step, bytes;
	// absent for the ping-pong, whose stacks end at different depths.
	DepthBytes int64 `json:"depth_bytes,omitempty"`
	// HighWaterBytes is the deepest depth of any step of the touch
	// workload, bytes: with --release none or free the stacks still hold
	// what it touched, whatever the last step's depth. Absent for the
	// ping-pong.
	HighWaterBytes int64 `json:"high_water_bytes,omitempty"`
	// ResidentBytes is the stacks' resident memory (present pages less
	// zero-page mappings, from PAGEMAP_SCAN or its fallback) over Stacks.
	ResidentBytes int64 `json:"resident_bytes"`
	// PageTables is the page-table memory attributable to the stacks;
	// absent when no method that sees every entry of a PTE page could
	// read them (PageTablesMissing says why): mincore sees resident
	// pages only, so its count would fall short.
	PageTables *PageTableCost `json:"page_tables,omitempty"`
	// PageTablesMissing says why PageTables is absent; "" when measured.
	PageTablesMissing string `json:"page_tables_missing,omitempty"`
	// VMAsPerStack is the VMAs the reservation added over Stacks: 2 with an
	// mprotect guard, close to 0 when side-by-side stacks merge.
	VMAsPerStack float64 `json:"vmas_per_stack"`
	// VMAObjectBytes is the size of one vm_area_struct from /proc/slabinfo;
	// absent when it could not be read (KernelMissing says why).
	VMAObjectBytes *int64 `json:"vma_object_bytes,omitempty"`
	// KernelBytes is VMAsPerStack × VMAObjectBytes, rounded: the kernel's
	// VMA structures per stack; absent with VMAObjectBytes.
	KernelBytes *int64 `json:"kernel_bytes,omitempty"`
	// KernelMissing says why KernelBytes is absent; "" when it is measured.
	KernelMissing string `json:"kernel_missing,omitempty"`
	// TotalBytes is ResidentBytes + PageTables.PerStackBytes + KernelBytes
	// (without a part that is absent): one coroutine's cost.
	TotalBytes int64 `json:"total_bytes"`
	// VmPTEDeltaBytes is /proc/self/status VmPTE now less the Baseline's,
	// bytes: page tables the process grew since before the stacks, the
	// stacks' and whatever else the process mapped meanwhile.
	VmPTEDeltaBytes int64 `json:"vmpte_delta_bytes"`
	// AttributedOverDelta is PageTables.TotalBytes / VmPTEDeltaBytes, the
	// cross-check; absent when VmPTE did not grow or the page tables were
	// not measured. It is not a share and can exceed 1: PMD and PUD pages
	// are attributed to the stacks by address whether or not the run
	// created them, so one that already mapped other memory before the
	// reservation counts here but not in the growth (a few stacks in one
	// GiB: up to two pages more than grew). Near 1 when the stacks' upper-
	// level pages are new and the process grew no other page tables.
	AttributedOverDelta *float64 `json:"attributed_over_vmpte_delta,omitempty"`
}

// PageTableCost is the page-table pages the stacks need, attributed by
// address: a PTE page maps one 2 MiB-aligned block (with 4 KiB pages), a
// PMD page one GiB, a PUD page 512 GiB. Shared upper-level pages are
// shared out over the stacks, also those that existed before the stacks
// (they map other memory of the process too).
type PageTableCost struct {
	// PTEPages counts the distinct PTE blocks holding an entry of a stack
	// (present page, swap entry or guard marker), a count.
	PTEPages int `json:"pte_pages"`
	// PMDPages counts the distinct 1 GiB blocks the stacks with entries
	// span: one PMD page each, a count.
	PMDPages int `json:"pmd_pages"`
	// PUDPages counts the distinct 512 GiB blocks they span, a count.
	PUDPages int `json:"pud_pages"`
	// TotalBytes is (PTEPages + PMDPages + PUDPages) pages, bytes.
	TotalBytes int64 `json:"total_bytes"`
	// PTEBytes, PMDShareBytes and PUDShareBytes are each level over the
	// stacks, and PerStackBytes their sum, bytes, rounded to the byte.
	PTEBytes      int64 `json:"pte_bytes"`
	PMDShareBytes int64 `json:"pmd_share_bytes"`
	PUDShareBytes int64 `json:"pud_share_bytes"`
	PerStackBytes int64 `json:"per_stack_bytes"`
}

// Cost measures the per-coroutine cost of the run's stacks as they are
// now, records it in the Result (Summary.Cost) and returns it. Call it
// after Measure and before Close. Residency and page tables are read with
// the run's own pagemap when it reads page-table entries (PAGEMAP_SCAN or
// pagemap), else (--residency=mincore) with a fresh PAGEMAP_SCAN (pagemap
// entries where the kernel lacks it): mincore sees resident pages only,
// not the swap entries and guard markers a PTE page also holds. Where no
// such method can run, or it cannot see the guard markers of
// --guard=madvise, the page tables are left out and PageTablesMissing says
// why. The VMA structures' size comes from /proc/slabinfo, which only root
// may read: without it the kernel figure is left out and KernelMissing
// says why.
func (r *Run) Cost() (Cost, error) {
	if len(r.stacks) == 0 {
		return Cost{}, errors.New("cost: no stacks (the run is closed or reserved none)")
	}
	ranges := make([]procread.PageRange, len(r.stacks))
	for i, s := range r.stacks {
		ranges[i] = procread.PageRange{Start: uint64(s.Base()), End: uint64(s.Base()) + uint64(s.Size())}
	}
	slices.SortFunc(ranges, func(a, b procread.PageRange) int { return cmp.Compare(a.Start, b.Start) })
	var own *procread.Pagemap
	if r.m != nil {
		own = r.m.pm
	}
	pm, ptMissing, err := r.costPagemap(own)
	if err != nil {
		return Cost{}, fmt.Errorf("cost: %w", err)
	}
	if pm != own {
		defer pm.Close()
	}
	counts := make([]procread.PageCounts, len(ranges))
	if err := pm.Measure(ranges, counts); err != nil {
		return Cost{}, fmt.Errorf("cost: %w", err)
	}
	proc, err := procread.NewReader(r.env.ProcRoot, 0)
	if err != nil {
		return Cost{}, fmt.Errorf("cost: %w", err)
	}
	now, err := proc.Totals()
	if err != nil {
		return Cost{}, fmt.Errorf("cost: %w", err)
	}
	res := r.res
	in := costInputs{
		pageSize:   res.PageSize,
		vmaDelta:   res.Reserved.VMAs - res.Baseline.VMAs,
		vmPTEDelta: int64(now.VmPTE) - int64(res.Baseline.VmPTE),
	}
	if r.cfg.Workload == WorkloadTouch && len(res.Steps) > 0 {
		in.depth = res.Steps[len(res.Steps)-1].DepthBytes
		for _, d := range res.Steps {
			in.highWater = max(in.highWater, d.DepthBytes)
		}
	}
	slab, err := procread.ReadVMASlab(r.env.ProcRoot, res.PageSize)
	switch {
	case err == nil:
		in.vmaObject = &slab.ObjectBytes
	case errors.Is(err, fs.ErrPermission):
		in.slabMissing = "/proc/slabinfo is readable by root only"
	case errors.Is(err, procread.ErrNoVMASlab):
		in.slabMissing = "the kernel merged the vm_area_struct cache into another (slabinfo does not list it)"
	default:
		in.slabMissing = "vm_area_struct size not read: " + err.Error()
	}
	in.ptMissing = ptMissing
	c := costOf(ranges, counts, in)
	res.Cost = &c
	return c, nil
}

// costPagemap picks the pagemap Cost reads with: own (the run's) when it
// reads page-table entries, else a fresh PAGEMAP_SCAN, which the caller
// closes. ptMissing says why the page tables cannot be counted with the
// pagemap returned ("" when they can); err is set only when there is no
// pagemap at all.
func (r *Run) costPagemap(own *procread.Pagemap) (pm *procread.Pagemap, ptMissing string, err error) {
	pm = own
	if own == nil || own.Method() == procread.MethodMincore {
		fresh, ferr := procread.OpenPagemap(r.env.ProcRoot, 0, procread.MethodScan)
		switch {
		case ferr == nil:
			pm = fresh
		case own == nil:
			return nil, "", ferr
		default:
			// Residency from mincore still; page tables not measured.
			return own, "mincore sees resident pages only and no page-table scan could run: " + ferr.Error(), nil
		}
	}
	if r.cfg.Guard == mmapstack.GuardMadvise && pm.Known()&procread.ClassGuard == 0 {
		return pm, fmt.Sprintf("%s cannot see the guard markers of --guard=madvise, which PTE pages hold", pm.Method()), nil
	}
	return pm, "", nil
}

// costInputs are the process figures costOf combines with the page counts.
type costInputs struct {
	pageSize   int
	depth      int64 // last touch depth, 0 for none
	highWater  int64 // deepest touch depth, 0 for none
	vmaDelta   int   // VMAs the reservation added
	vmPTEDelta int64 // VmPTE now less the baseline's, bytes
	vmaObject  *int64
	// slabMissing says why vmaObject is nil.
	slabMissing string
	// ptMissing, when set, says why the counts' PTEBlocks cannot give
	// the page tables: they are left out.
	ptMissing string
}

// costOf computes the Cost of the stacks ranges (in address order) whose
// page counts are counts.
func costOf(ranges []procread.PageRange, counts []procread.PageCounts, in costInputs) Cost {
	n := len(ranges)
	c := Cost{Stacks: n, DepthBytes: in.depth, HighWaterBytes: in.highWater, VmPTEDeltaBytes: in.vmPTEDelta}
	if n == 0 {
		return c
	}
	page := int64(in.pageSize)
	level := uint(bits.TrailingZeros64(uint64(page / 8))) // address bits one table resolves
	pmdShift := procread.PTEBlockShift(in.pageSize) + level
	pudShift := pmdShift + level
	var resident int64
	pt := &PageTableCost{}
	pmdNext, pudNext := uint64(0), uint64(0) // one past the last block counted
	for i, r := range ranges {
		pc := counts[i]
		resident += pc.ResidentBytes
		pt.PTEPages += pc.PTEBlocks
		if pc.PTEBlocks == 0 {
			continue
		}
		pt.PMDPages += spanBlocks(r, pmdShift, &pmdNext)
		pt.PUDPages += spanBlocks(r, pudShift, &pudNext)
	}
	per := func(total int64) int64 { return int64(math.Round(float64(total) / float64(n))) }
	c.ResidentBytes = per(resident)
	c.VMAsPerStack = float64(in.vmaDelta) / float64(n)
	c.TotalBytes = c.ResidentBytes
	if in.ptMissing == "" {
		pt.TotalBytes = int64(pt.PTEPages+pt.PMDPages+pt.PUDPages) * page
		pt.PTEBytes = per(int64(pt.PTEPages) * page)
		pt.PMDShareBytes = per(int64(pt.PMDPages) * page)
		pt.PUDShareBytes = per(int64(pt.PUDPages) * page)
		pt.PerStackBytes = per(pt.TotalBytes)
		c.PageTables = pt
		c.TotalBytes += pt.PerStackBytes
		if in.vmPTEDelta > 0 {
			f := float64(pt.TotalBytes) / float64(in.vmPTEDelta)
			c.AttributedOverDelta = &f
		}
	} else {
		c.PageTablesMissing = in.ptMissing
	}
	if in.vmaObject != nil {
		obj := *in.vmaObject
		k := int64(math.Round(c.VMAsPerStack * float64(obj)))
		c.VMAObjectBytes, c.KernelBytes = &obj, &k
		c.TotalBytes += k
	} else {
		c.KernelMissing = in.slabMissing
		if c.KernelMissing == "" {
			c.KernelMissing = "vm_area_struct size not read"
		}
	}
	return c
}

// spanBlocks counts the blocks of 2^shift bytes that r overlaps and that
// lie at or above *next (a block index), then moves *next past them:
// ranges come in address order, so a block below *next was counted.
func spanBlocks(r procread.PageRange, shift uint, next *uint64) int {
	if r.End <= r.Start {
		return 0
	}
	first, last := max(r.Start>>shift, *next), (r.End-1)>>shift
	if first > last {
		return 0
	}
	*next = last + 1
	return int(last - first + 1)
}
