package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"stackprobe/mmapstack"
	"stackprobe/procread"
	"stackprobe/sizes"
)

// StrategyName is a strategy's short, stable name, as summary.json spells it.
type StrategyName string

// The strategies compare runs.
const (
	StrategyLazy4K     StrategyName = "lazy-4k"
	StrategyLazyTHP    StrategyName = "lazy-thp"
	StrategyDontneed   StrategyName = "lazy-dontneed"
	StrategyFree       StrategyName = "lazy-free"
	StrategyEager      StrategyName = "eager"
	StrategyGoroutines StrategyName = "goroutine"
)

// Strategy is one way of providing stacks, compared side by side.
type Strategy struct {
	// Name is short and stable; Label is for charts and tables.
	Name  StrategyName `json:"name"`
	Label string       `json:"label"`
	// GoStacks marks Go's own goroutine stacks; the other fields are the
	// mmap configuration otherwise.
	GoStacks bool              `json:"go_stacks,omitempty"`
	THP      mmapstack.THP     `json:"thp"`
	MapStack bool              `json:"map_stack"`
	Release  mmapstack.Release `json:"release"`
	Populate bool              `json:"populate,omitempty"`
	// NoTouch runs the workload without using the stacks at all (every
	// depth 0): the baseline that shows what the touching costs.
	NoTouch bool `json:"no_touch,omitempty"`
}

// Strategies are the stack strategies compare runs, in order.
func Strategies() []Strategy {
	return []Strategy{
		{Name: StrategyLazy4K, Label: "lazy mmap, 4 KiB pages (MAP_STACK, MADV_NOHUGEPAGE)", THP: mmapstack.THPNoHuge, MapStack: true},
		{Name: StrategyLazyTHP, Label: "lazy mmap, THP eligible (MADV_HUGEPAGE, no MAP_STACK)", THP: mmapstack.THPHuge},
		{Name: StrategyDontneed, Label: "lazy mmap, MADV_DONTNEED after each step", THP: mmapstack.THPNoHuge, MapStack: true, Release: mmapstack.ReleaseDontneed},
		{Name: StrategyFree, Label: "lazy mmap, MADV_FREE after each step", THP: mmapstack.THPNoHuge, MapStack: true, Release: mmapstack.ReleaseFree},
		{Name: StrategyEager, Label: "eager mmap (MAP_POPULATE)", THP: mmapstack.THPNoHuge, MapStack: true, Populate: true},
		{Name: StrategyGoroutines, Label: "Go goroutine stacks (copying, real frames)", GoStacks: true},
	}
}

// StrategyStep is one strategy after every task used one depth. The
// fields an mmap strategy measures are absent for goroutine stacks, whose
// figures are in Go instead: the runtime's stack accounting is not the
// residency of a mapping.
type StrategyStep struct {
	DepthBytes int64 `json:"depth_bytes"`
	// Overflow marks a depth the stack cannot hold (it would run into its
	// guard): the step was not run and nothing else is recorded for it.
	Overflow bool `json:"overflow,omitempty"`
	// Per-stack resident bytes after the step (mmap only), from the page
	// tables as the run's --residency method reads them (PAGEMAP_SCAN by
	// default; see Summary.Residency of a single run).
	RSSBytesMin  int64 `json:"rss_bytes_min,omitempty"`
	RSSBytesMax  int64 `json:"rss_bytes_max,omitempty"`
	RSSBytesMean int64 `json:"rss_bytes_mean,omitempty"`
	// PeakRSSBytesMax is the most a stack held during the step, before its
	// release (the same as RSSBytesMax without a release).
	PeakRSSBytesMax int64 `json:"peak_rss_bytes_max,omitempty"`
	// AnonHugeBytesPerStack is smaps AnonHugePages per stack.
	AnonHugeBytesPerStack *int64 `json:"anon_huge_bytes_per_stack,omitempty"`
	// PTEBytesPerStack is the growth of VmPTE from the reservation to the
	// end of the step, per stack: page tables, which Rss does not count.
	// Absent when VmPTE fell (the process's own churn outweighed the
	// stacks').
	PTEBytesPerStack *int64 `json:"pte_bytes_per_stack,omitempty"`
	// PeakPTEBytesPerStack is the same at the step's peak, before its
	// release (release strategies only).
	PeakPTEBytesPerStack *int64 `json:"peak_pte_bytes_per_stack,omitempty"`
	// VMAsPerStack is the smaps VMAs overlapping the stacks, per stack.
	VMAsPerStack float64 `json:"vmas_per_stack,omitempty"`
	// MinorFaultsPerPage is the step's minor faults over the pages the step
	// touched (stacks × ceil(depth/page)). Faults MAP_POPULATE takes while
	// reserving belong to the reservation (StrategyResult), not to a step.
	MinorFaultsPerPage *float64 `json:"minor_faults_per_page,omitempty"`
	// TouchNsPerPage is the step's touch time over the pages it touched,
	// nanoseconds per page.
	TouchNsPerPage float64 `json:"touch_ns_per_page,omitempty"`
	// VmRSSBytes is the process's resident set after the step.
	VmRSSBytes uint64 `json:"vmrss_bytes"`
	// Go is set for goroutine stacks only.
	Go *GoStackStep `json:"goroutine,omitempty"`
}

// GoStackStep is what one depth of goroutine stacks cost. Goroutine stacks
// are Go heap memory that the runtime copies to a doubled stack when one
// overflows; they have no mapping of their own, so residency, VMAs and
// page tables per stack do not apply.
type GoStackStep struct {
	// RuntimeStackBytesPerGoroutine is the growth of the runtime's stack
	// memory (runtime/metrics /memory/classes/heap/stacks:bytes) per parked
	// goroutine, bytes: the stack size the runtime accounts, a power of two.
	// Absent when it fell (Note says so).
	RuntimeStackBytesPerGoroutine *int64 `json:"runtime_stack_bytes_per_goroutine,omitempty"`
	// VmRSSGrowthBytesPerGoroutine is the growth of the process's VmRSS
	// over the step per goroutine, bytes, measured after the runtime gave
	// its free memory back to the kernel (debug.FreeOSMemory), so that new
	// stacks have to fault their pages in. Absent when VmRSS did not grow:
	// then the runtime reused memory it already held and the figure says
	// nothing (Note says so).
	VmRSSGrowthBytesPerGoroutine *int64 `json:"vmrss_growth_bytes_per_goroutine,omitempty"`
	// SpawnNsPerGoroutine is the wall time to start the goroutines and let
	// them recurse to the depth, per goroutine.
	SpawnNsPerGoroutine int64 `json:"spawn_ns_per_goroutine"`
	// Note says why a figure is absent.
	Note string `json:"note,omitempty"`
}

// StrategyResult is one strategy's run.
type StrategyResult struct {
	Strategy Strategy `json:"strategy"`
	Stacks   int      `json:"stacks"`
	// StackBytes is each stack's whole reservation, guard included (mmap
	// strategies; a compare over several --stack sizes runs every mmap
	// strategy once per size).
	StackBytes int64 `json:"stack_bytes,omitempty"`
	// Cost is what one coroutine cost after the last step it ran, from the
	// page tables (mmap strategies; absent when it could not be read).
	Cost *Cost `json:"cost,omitempty"`
	// TopsAligned2M counts stacks whose top is 2 MiB aligned (THP can back
	// the topmost block only then).
	TopsAligned2M int `json:"tops_aligned_2m"`
	// ReserveNsPerStack is the time to reserve one stack: with
	// MAP_POPULATE, what eager backing costs up front (absent for
	// goroutines, which reserve nothing).
	ReserveNsPerStack int64 `json:"reserve_ns_per_stack,omitempty"`
	// ReserveMinorFaultsPerStack is the minor faults taken while reserving,
	// per stack: MAP_POPULATE's backing of every page (mmap only).
	ReserveMinorFaultsPerStack *float64 `json:"reserve_minor_faults_per_stack,omitempty"`
	// ReservePTEBytesPerStack is the growth of VmPTE while reserving, per
	// stack: MADV_GUARD_INSTALL and MAP_POPULATE build page tables before
	// any touch (mmap only; absent when VmPTE fell).
	ReservePTEBytesPerStack *int64         `json:"reserve_pte_bytes_per_stack,omitempty"`
	Steps                   []StrategyStep `json:"steps"`
	// Skipped says why the strategy did not run.
	Skipped string `json:"skipped,omitempty"`
	// Residency is the page map after the first step.
	Residency *ResidencyMap `json:"-"`
}

// Comparison is the result of compare: the same schedule under each strategy.
type Comparison struct {
	Header
	Strategies []StrategyResult `json:"strategies"`
	// Guards is what each guard mode costs, lazy 4 KiB stacks used to the
	// first depth of the schedule.
	Guards []GuardCost `json:"guards"`
}

// GuardCost is what one guard mode adds per stack.
type GuardCost struct {
	Guard mmapstack.Guard `json:"guard"`
	// StackBytes is the stacks' size, bytes.
	StackBytes int64 `json:"stack_bytes"`
	// VMAsPerStack is the smaps VMAs overlapping the stacks over the stack
	// count: 2 for a PROT_NONE guard page, near 0 where neighbouring stacks
	// merge into one VMA.
	VMAsPerStack float64 `json:"vmas_per_stack"`
	// PTEBytesPerStack is the page tables attributable to each stack, by
	// address from the page tables (Cost.PageTables.PerStackBytes): a PTE
	// page per 2 MiB block holding its entries — a guard marker installed
	// with MADV_GUARD_INSTALL is an entry — plus its share of the PMD and
	// PUD pages. Absent when the page tables could not be read
	// (Cost.PageTablesMissing).
	PTEBytesPerStack *int64 `json:"pte_bytes_per_stack,omitempty"`
	// VmPTEDeltaBytesPerStack is the process's VmPTE growth from before
	// the reservation over the stacks: the cross-check, which also holds
	// whatever page tables the Go runtime grew meanwhile.
	VmPTEDeltaBytesPerStack int64 `json:"vmpte_delta_bytes_per_stack"`
	// RSSBytesPerStack is the stacks' resident bytes per stack.
	RSSBytesPerStack int64 `json:"rss_bytes_per_stack"`
	// Skipped says why the mode could not be measured here.
	Skipped string `json:"skipped,omitempty"`
}

// measureGuards reserves cfg.Tasks lazy stacks under each guard mode and
// uses them to the schedule's first depth.
func measureGuards(ctx context.Context, cfg Config, env Env) ([]GuardCost, error) {
	var out []GuardCost
	for _, g := range []mmapstack.Guard{mmapstack.GuardMprotect, mmapstack.GuardMadvise, mmapstack.GuardNone} {
		c := cfg
		c.Workload, c.Guard, c.THP, c.MapStack, c.Release, c.Populate = WorkloadTouch, g, mmapstack.THPNoHuge, true, mmapstack.ReleaseNone, false
		c.Depths = cfg.Depths[:1]
		c.GuardBytes = 0
		if g != mmapstack.GuardNone {
			c.GuardBytes = int64(mmapstack.PageSize())
		}
		res, err := runOnce(ctx, c, Env{ProcRoot: env.ProcRoot, SysRoot: env.SysRoot})
		gc := GuardCost{Guard: g, StackBytes: c.StackBytes}
		if err != nil && res == nil && g == mmapstack.GuardMadvise && errors.Is(err, unix.EINVAL) {
			gc.Skipped = err.Error()
			out = append(out, gc)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("guard %s: %w", g, err)
		}
		d := res.Steps[0]
		n := float64(d.Stacks)
		gc.VMAsPerStack = float64(d.Smaps.VMAs) / n
		if res.Cost != nil && res.Cost.PageTables != nil {
			gc.PTEBytesPerStack = &res.Cost.PageTables.PerStackBytes
		}
		gc.VmPTEDeltaBytesPerStack = (int64(d.VmPTEBytes) - int64(res.Baseline.VmPTE)) / int64(d.Stacks)
		gc.RSSBytesPerStack = d.RSSBytesTotal / int64(d.Stacks)
		out = append(out, gc)
	}
	return out, nil
}

// maxEagerFraction bounds eager stacks to this share of MemAvailable.
const maxEagerFraction = 0.5

// CompareRun is a comparison of every strategy under one touch schedule,
// for one or several stack sizes.
type CompareRun struct {
	cfg   Config
	sizes []int64
	env   Env
	// keepLast keeps each size's last mmap strategy's run open; kept
	// holds those runs and their stacks until Close.
	keepLast bool
	kept     []keptRun
	progress
}

// keptRun is one strategy's run left mapped and what its stacks held.
type keptRun struct {
	run    *Run
	stacks []KeptStack
}

// KeptStack is one stack a comparison kept mapped after measuring it
// (KeepLast), for an outside tool such as pmap -X to look at.
type KeptStack struct {
	Strategy StrategyName
	// StackBytes is the stack size the strategy ran with, guard included.
	StackBytes int64
	// Index is the stack's place in its run's stack order.
	Index int
	// Base is the lowest address of the stack's mapping, guard included,
	// and Size the mapping's length in bytes.
	Base uintptr
	Size int
	// RSSBytes is what the stack held after the strategy's last step, by
	// the run's residency method (page tables: equal to smaps Rss), bytes.
	// Nothing touches a kept stack afterwards.
	RSSBytes int64
}

// KeepLast makes Measure keep the stacks of the last mmap strategy that
// runs for each stack size mapped, with their measured residency, until
// Close; call it before Measure. Nothing runs after that strategy but the
// next size's strategies and the guard comparison, and with a PROT_NONE
// guard (mprotect) the kept stacks never merge with their VMAs.
func (cr *CompareRun) KeepLast() { cr.keepLast = true }

// Kept are the stacks KeepLast kept mapped, size by size, in stack order.
func (cr *CompareRun) Kept() []KeptStack {
	var out []KeptStack
	for _, k := range cr.kept {
		out = append(out, k.stacks...)
	}
	return out
}

// Close unmaps the stacks KeepLast kept. It is safe to call more than
// once, and without KeepLast.
func (cr *CompareRun) Close() error {
	var errs []error
	for _, k := range cr.kept {
		errs = append(errs, k.run.Close())
	}
	cr.kept = nil
	return errors.Join(errs...)
}

// NewCompare prepares a comparison of cfg's schedule under every strategy.
func NewCompare(cfg Config, env Env) *CompareRun {
	return &CompareRun{cfg: cfg, sizes: []int64{cfg.StackBytes}, env: env}
}

// NewCompareSizes prepares a comparison of cfg's schedule under every mmap
// strategy for each stack size of stackBytes (whole reservations, guard
// included), side by side; Go's goroutine stacks, which have no size of
// their own, run once. A depth that a size cannot hold is recorded as an
// overflow for that size and not run.
func NewCompareSizes(cfg Config, stackBytes []int64, env Env) *CompareRun {
	return &CompareRun{cfg: cfg, sizes: stackBytes, env: env}
}

// Sizes are the stack sizes the mmap strategies ran with, in order.
func (c *Comparison) Sizes() []int64 {
	var out []int64
	for _, s := range c.Strategies {
		if s.StackBytes > 0 && !slices.Contains(out, s.StackBytes) {
			out = append(out, s.StackBytes)
		}
	}
	return out
}

// fitting is cfg for stacks of size bytes, with the depths that fit above
// the guard, and the steps' overflow flags in schedule order.
func fitting(cfg Config, size int64) (Config, []bool) {
	cfg.StackBytes = size
	usable := size - cfg.GuardBytes
	var depths []int64
	overflow := make([]bool, len(cfg.Depths))
	for i, d := range cfg.Depths {
		if d > usable {
			overflow[i] = true
			continue
		}
		depths = append(depths, d)
	}
	cfg.Depths = depths
	return cfg, overflow
}

// withOverflows puts the overflowed depths back into sr's steps, in
// schedule order.
func withOverflows(sr StrategyResult, depths []int64, overflow []bool) StrategyResult {
	steps := make([]StrategyStep, 0, len(depths))
	k := 0
	for i, d := range depths {
		if overflow[i] {
			steps = append(steps, StrategyStep{DepthBytes: d, Overflow: true})
			continue
		}
		if k < len(sr.Steps) {
			steps = append(steps, sr.Steps[k])
			k++
		}
	}
	sr.Steps = steps
	return sr
}

// Measure runs cfg's touch schedule under every strategy, one after the
// other; each strategy's stacks are unmapped before the next starts (but
// for those KeepLast keeps). It
// returns what was measured also together with an error (then Partial).
func (cr *CompareRun) Measure(ctx context.Context) (*Comparison, error) {
	cfg, env := cr.cfg, cr.env
	start := time.Now()
	c := &Comparison{Header: Header{Command: env.Command, Started: start.UTC().Truncate(time.Millisecond), PageSize: mmapstack.PageSize(), Config: cfg}}
	sys, err := procread.ReadSystem(cmp.Or(env.ProcRoot, "/proc"), cmp.Or(env.SysRoot, "/sys"))
	if err != nil {
		return nil, fmt.Errorf("read system facts: %w", err)
	}
	c.Environment = sys
	strategies := Strategies()
	total := len(strategies) * len(cr.sizes)
	done := 0
	// Goroutine stacks have no size: they run once, with the depths the
	// largest size holds.
	goCfg, goOverflow := fitting(cfg, slices.Max(cr.sizes))
	fail := func(name StrategyName, err error) (*Comparison, error) {
		c.Partial, c.Error = true, fmt.Sprintf("%s: %v", name, err)
		c.Seconds = time.Since(start).Seconds()
		return c, fmt.Errorf("strategy %s: %w", name, err)
	}
sizes:
	for si, size := range cr.sizes {
		sized, overflow := fitting(cfg, size)
		last := -1 // the last mmap strategy that will run for this size
		if cr.keepLast {
			last = lastMmapStrategy(strategies, sized, env)
		}
		for k, st := range strategies {
			if err := ctx.Err(); err != nil {
				c.Partial, c.Error = true, fmt.Sprintf("interrupted before %s: %v", st.Name, context.Cause(ctx))
				break sizes
			}
			var sr StrategyResult
			var err error
			switch {
			case st.GoStacks && si > 0:
			case st.GoStacks:
				if sr.Skipped = goStacksUnfit(goCfg, env); sr.Skipped != "" {
					sr.Strategy, sr.Stacks = st, cfg.Tasks
				} else {
					sr, err = runGoStacks(ctx, goCfg, st, env)
				}
				c.Strategies = append(c.Strategies, withOverflows(sr, cfg.Depths, goOverflow))
			case len(sized.Depths) == 0:
				sr = StrategyResult{Strategy: st, Stacks: cfg.Tasks, StackBytes: size,
					Skipped: fmt.Sprintf("no depth of the schedule fits in a %d-byte stack", size)}
				c.Strategies = append(c.Strategies, withOverflows(sr, cfg.Depths, overflow))
			default:
				var kept *Run
				sr, kept, err = runMmapStrategy(ctx, sized, st, env, k == last)
				if kept != nil {
					cr.keep(kept, st.Name, size)
				}
				sr.StackBytes = size
				if len(cr.sizes) > 1 {
					// Charts and tables tell the sizes apart by label.
					sr.Strategy.Label = fmt.Sprintf("%s, %s stacks", st.Name, sizes.IEC(size))
				}
				c.Strategies = append(c.Strategies, withOverflows(sr, cfg.Depths, overflow))
			}
			if err != nil {
				return fail(st.Name, err)
			}
			done++
			cr.set(done, total)
		}
	}
	if !c.Partial {
		for _, size := range cr.sizes {
			sized, _ := fitting(cfg, size)
			if len(sized.Depths) == 0 {
				continue
			}
			guards, err := measureGuards(ctx, sized, env)
			c.Guards = append(c.Guards, guards...)
			if err != nil {
				c.Partial, c.Error = true, err.Error()
				c.Seconds = time.Since(start).Seconds()
				return c, err
			}
		}
	}
	c.Seconds = time.Since(start).Seconds()
	if c.Partial {
		return c, fmt.Errorf("%s: %w", c.Error, context.Cause(ctx))
	}
	return c, nil
}

// goStacksUnfit says why goroutines cannot recurse to the schedule's
// depths here, or "". A goroutine stack doubles to the next power of two
// and may not pass the runtime's limit (1 GB on 64-bit unless
// debug.SetMaxStack changes it); a copy of the old stack briefly coexists.
func goStacksUnfit(cfg Config, env Env) string {
	var deepest int64
	for _, d := range cfg.Depths {
		deepest = max(deepest, d)
	}
	stack := int64(8 << 10)
	for stack < deepest+deepest/16 {
		stack *= 2
	}
	const maxStack = 1_000_000_000
	if stack > maxStack/2 {
		return fmt.Sprintf("recursing %d bytes deep needs a %d-byte goroutine stack, past half the runtime's %d-byte limit", deepest, stack, maxStack)
	}
	if b, ok := memoryBound(env); ok && float64(stack)*float64(cfg.Tasks) > maxEagerFraction*float64(b.Bytes) {
		return fmt.Sprintf("%d goroutine stacks of %d bytes would need more than half of the %d bytes %s allows", cfg.Tasks, stack, b.Bytes, b.Source)
	}
	return ""
}

// memoryBound is the tightest of MemAvailable, the cgroup's room and
// RLIMIT_AS's; ok is false when none could be read.
func memoryBound(env Env) (procread.MemoryLimit, bool) {
	in, err := procread.ReadLimitInputs(cmp.Or(env.ProcRoot, "/proc"), cmp.Or(env.SysRoot, "/sys"))
	if err != nil {
		return procread.MemoryLimit{}, false
	}
	b, ok := in.MemoryBound()
	return b.Binding, ok
}

// keep records run, the last mmap strategy of its size, as kept mapped,
// with each stack's residency after the last step.
func (cr *CompareRun) keep(run *Run, name StrategyName, size int64) {
	k := keptRun{run: run}
	var rss []int64
	if rows := run.res.Series.PerStackRSS; len(rows) > 0 {
		rss = rows[len(rows)-1]
	}
	for _, info := range stackInfos(run.stacks, func(int) string { return "task" }) {
		if info.Index >= len(rss) {
			break // not measured: left out, not shown as 0
		}
		k.stacks = append(k.stacks, KeptStack{Strategy: name, StackBytes: size, Index: info.Index,
			Base: info.Base, Size: info.Size, RSSBytes: rss[info.Index]})
	}
	cr.kept = append(cr.kept, k)
}

// lastMmapStrategy is the index in strategies of the last mmap strategy
// that runs with cfg (eager is skipped where it would not fit), or -1.
func lastMmapStrategy(strategies []Strategy, cfg Config, env Env) int {
	if len(cfg.Depths) == 0 {
		return -1
	}
	for k := len(strategies) - 1; k >= 0; k-- {
		st := strategies[k]
		if st.GoStacks || st.Populate && eagerUnfit(cfg, env) != "" {
			continue
		}
		return k
	}
	return -1
}

// eagerUnfit says why cfg's stacks cannot all be populated here, or "".
func eagerUnfit(cfg Config, env Env) string {
	if b, ok := memoryBound(env); ok && float64(cfg.StackBytes)*float64(cfg.Tasks) > maxEagerFraction*float64(b.Bytes) {
		return fmt.Sprintf("%d populated stacks of %d bytes would need more than half of the %d bytes %s allows",
			cfg.Tasks, cfg.StackBytes, b.Bytes, b.Source)
	}
	return ""
}

// runMmapStrategy runs base's touch schedule under st. With keep, a run
// that measured every step is returned open (kept), its stacks still
// mapped, for the caller to Close; otherwise kept is nil.
func runMmapStrategy(ctx context.Context, base Config, st Strategy, env Env, keep bool) (sr StrategyResult, kept *Run, err error) {
	sr = StrategyResult{Strategy: st, Stacks: base.Tasks}
	cfg := base
	cfg.Workload = WorkloadTouch
	cfg.THP, cfg.MapStack, cfg.Release, cfg.Populate = st.THP, st.MapStack, st.Release, st.Populate
	cfg.CheckGuard = false
	if st.Populate {
		if sr.Skipped = eagerUnfit(cfg, env); sr.Skipped != "" {
			return sr, nil, nil
		}
	}
	run, err := Start(ctx, cfg, Env{ProcRoot: env.ProcRoot, SysRoot: env.SysRoot})
	if err != nil {
		return sr, nil, err
	}
	res, err := run.Measure(ctx)
	_, _ = run.Cost()
	if keep && err == nil {
		kept = run
	} else {
		err = errors.Join(err, run.Close())
	}
	if res == nil {
		return sr, kept, err
	}
	sr.Cost = res.Cost
	// The map after the first step shows laziness best: the touched pages
	// beside the untouched, a huge page as a solid 2 MiB run.
	sr.TopsAligned2M, sr.Residency = res.TopsAligned2M, res.Series.ResidencyFirst
	sr.ReserveNsPerStack = res.ReserveNanos / int64(max(cfg.Tasks, 1))
	page := int64(res.PageSize)
	n := int64(max(cfg.Tasks, 1))
	reserveFaults := float64(res.Reserved.MinorFaults-res.Baseline.MinorFaults) / float64(n)
	sr.ReserveMinorFaultsPerStack = &reserveFaults
	sr.ReservePTEBytesPerStack = perStackGrowth(res.Reserved.VmPTE, res.Baseline.VmPTE, n)
	// Faults from the reservation on: MAP_POPULATE's belong to the
	// reservation, not to the first step.
	prevFaults := res.Reserved.MinorFaults
	for _, d := range res.Steps {
		stacks := int64(max(d.Stacks, 1))
		touched := float64(stacks) * float64(max(ExpectedPages(d.DepthBytes, int(page)), 1))
		faults := float64(d.MinorFaults-prevFaults) / touched
		huge := d.AnonHugeBytesTotal / stacks
		step := StrategyStep{
			DepthBytes:         d.DepthBytes,
			RSSBytesMin:        d.RSSBytesMin,
			RSSBytesMax:        d.RSSBytesMax,
			RSSBytesMean:       d.RSSBytesTotal / stacks,
			PeakRSSBytesMax:    d.Step.PeakRSSBytesMax,
			PTEBytesPerStack:   perStackGrowth(d.VmPTEBytes, res.Reserved.VmPTE, stacks),
			VMAsPerStack:       float64(d.Smaps.VMAs) / float64(stacks),
			MinorFaultsPerPage: &faults,
			TouchNsPerPage:     float64(d.Step.TouchNanos) / touched,
			VmRSSBytes:         d.VmRSSBytes,
		}
		if d.AnonHugeBytesTotal >= 0 {
			step.AnonHugeBytesPerStack = &huge
		}
		if d.Step.PeakVmPTEBytes > 0 {
			step.PeakPTEBytesPerStack = perStackGrowth(d.Step.PeakVmPTEBytes, res.Reserved.VmPTE, stacks)
		}
		prevFaults = d.MinorFaults
		sr.Steps = append(sr.Steps, step)
	}
	return sr, kept, err
}

// perStackGrowth is (now - from) / stacks, or nil when now < from: a
// process total that fell says nothing about what the stacks added.
func perStackGrowth(now, from uint64, stacks int64) *int64 {
	if now < from || stacks <= 0 {
		return nil
	}
	v := int64(now-from) / stacks
	return &v
}
