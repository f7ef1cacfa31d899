package probe

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// Env is what a run takes from its surroundings.
type Env struct {
	// ProcRoot and SysRoot locate /proc and /sys (tests point them at fixtures).
	ProcRoot, SysRoot string
	// Command is the command line recorded in the result.
	Command string
	// Recorder receives every sample; nil drops them.
	Recorder Recorder
}

// Run is one started experiment. Its stacks stay reserved from Start to
// Close, so that a caller can write its outputs, and let an outside tool
// look at the process, while they are still mapped:
//
//	r, err := probe.Start(ctx, cfg, env)
//	res, err := r.Measure(ctx)
//	// write outputs, linger
//	r.Close()
type Run struct {
	cfg    Config
	env    Env
	res    *Result
	stacks []*mmapstack.Stack
	m      *meter
	// start is the monotonic origin of every elapsed time of the run.
	start time.Time
	// finalStackRSS is the stacks' summed residency at the last sample.
	finalStackRSS int64
	// live is the ping-pong sampler's cost so far (SamplerCost).
	live samplerCost
	progress
}

// Start reserves the stacks cfg describes and measures the process before
// and after. On error nothing stays reserved. A cancelled ctx stops the
// reservation.
func Start(ctx context.Context, cfg Config, env Env) (*Run, error) {
	if env.ProcRoot == "" {
		env.ProcRoot = "/proc"
	}
	if env.SysRoot == "" {
		env.SysRoot = "/sys"
	}
	if env.Recorder == nil {
		env.Recorder = discard{}
	}
	sys, err := procread.ReadSystem(env.ProcRoot, env.SysRoot)
	if err != nil {
		return nil, fmt.Errorf("read system facts: %w", err)
	}
	proc, err := procread.NewReader(env.ProcRoot, 0)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	r := &Run{cfg: cfg, env: env, start: now}
	r.res = &Result{Summary: Summary{Header: Header{
		Command:     env.Command,
		Started:     now.UTC().Truncate(time.Millisecond),
		Environment: sys,
		Config:      cfg,
		PageSize:    mmapstack.PageSize(),
	}}}
	base, err := proc.Totals()
	if err != nil {
		return nil, err
	}
	r.res.Baseline = totalsFrom(base)
	if cfg.CheckGuard {
		r.res.GuardChecks = CheckGuards()
	}
	reserveStart := time.Now()
	if r.stacks, err = reserveAll(ctx, cfg); err != nil {
		return nil, err
	}
	r.res.ReserveNanos = time.Since(reserveStart).Nanoseconds()
	reserved, err := proc.Totals()
	if err != nil {
		closeAll(r.stacks)
		return nil, err
	}
	r.res.Reserved = totalsFrom(reserved)
	// One pagemap for the whole run: its buffers are reused by every
	// measurement.
	pm, err := procread.OpenPagemap(env.ProcRoot, 0, cfg.Residency)
	if err != nil {
		closeAll(r.stacks)
		return nil, fmt.Errorf("residency: %w", err)
	}
	r.res.Residency = ResidencyInfo{Requested: cfg.Residency.String(), Method: pm.Method().String(), Missing: missingClasses(pm.Known())}
	r.m = newMeter(r.stacks, proc, pm)
	return r, nil
}

// progress is how far a measurement has come: steps done of total (touch:
// depths of the schedule; ping-pong: messages of the first client;
// compare: strategies). Its Progress method is safe to call from any
// goroutine while the measurement runs; total is 0 until it has started.
type progress struct{ done, total atomic.Int64 }

// Progress returns the steps done and the steps in all.
func (p *progress) Progress() (done, total int) {
	return int(p.done.Load()), int(p.total.Load())
}

func (p *progress) set(done, total int) {
	p.total.Store(int64(total))
	p.done.Store(int64(done))
}

// Measure runs the workload and measures it. It always returns the Result
// of what it measured, also together with an error; the Result is then
// marked Partial. A cancelled ctx stops the run within a batch of pages.
// Measure runs once; the stacks stay mapped until Close.
func (r *Run) Measure(ctx context.Context) (*Result, error) {
	res := r.res
	var err error
	if r.cfg.Workload == WorkloadPingPong {
		err = r.runPingPong(ctx)
	} else {
		err = r.runTouch(ctx)
	}
	for _, s := range r.stacks {
		if s.Top()%mmapstack.HugeBlock == 0 {
			res.TopsAligned2M++
		}
	}
	if rm, rerr := residencyMap(r.m, maxResidencyRows); rerr == nil {
		res.Series.Residency = rm
	} else if err == nil {
		err = rerr
	}
	res.Residency.Lanes = r.m.pm.Lanes()
	// The final measurement, checked page for page by a second method.
	if len(res.Rows()) > 0 {
		cc, cerr := r.m.crossCheck(r.env.ProcRoot)
		res.Residency.CrossCheck = cc
		if err == nil {
			err = cerr
		}
	}
	res.Seconds = time.Since(r.start).Seconds()
	res.Tool = r.toolMemory()
	if err != nil {
		res.Partial = true
		res.Error = err.Error()
	}
	return res, err
}

// runOnce starts, measures, costs (Summary.Cost; a run whose cost cannot
// be read keeps it nil) and closes a run: for runs whose stacks need not
// outlive the measurement. The Result is nil only when nothing was
// measured.
func runOnce(ctx context.Context, cfg Config, env Env) (*Result, error) {
	r, err := Start(ctx, cfg, env)
	if err != nil {
		return nil, err
	}
	res, err := r.Measure(ctx)
	_, _ = r.Cost()
	return res, errors.Join(err, r.Close())
}

// Close unmaps every stack and closes the pagemap.
func (r *Run) Close() error {
	errs := []error{mmapstack.CloseAll(r.stacks)}
	r.stacks = nil
	if r.m != nil && r.m.pm != nil {
		errs = append(errs, r.m.pm.Close())
		r.m.pm = nil
	}
	return errors.Join(errs...)
}

// reserveAll reserves cfg.Stacks() stacks; on error none stays mapped.
func reserveAll(ctx context.Context, cfg Config) ([]*mmapstack.Stack, error) {
	n := cfg.Stacks()
	stacks := make([]*mmapstack.Stack, 0, n)
	opts := cfg.StackOptions()
	for i := range n {
		if i%256 == 0 && ctx.Err() != nil {
			closeAll(stacks)
			return nil, fmt.Errorf("reserving stacks: %w", context.Cause(ctx))
		}
		s, err := mmapstack.Reserve(opts)
		if err != nil {
			closeAll(stacks)
			return nil, fmt.Errorf("reserve stack %d of %d (%d bytes): %w", i, n, cfg.StackBytes, err)
		}
		stacks = append(stacks, s)
	}
	return stacks, nil
}

func closeAll(stacks []*mmapstack.Stack) { _ = mmapstack.CloseAll(stacks) }

// expectedAfterRelease is what one stack holds after its release, given the
// deepest depth it has used so far.
func expectedAfterRelease(cfg Config, highWater int64, page int) int64 {
	hw := ExpectedPages(highWater, page) * int64(page)
	if cfg.Release == mmapstack.ReleaseDontneed {
		keep := max(ExpectedPages(cfg.KeepTopBytes, page), 1) * int64(page)
		return min(hw, keep)
	}
	return hw
}

func (r *Run) runTouch(ctx context.Context) error {
	cfg, env, m, res := r.cfg, r.env, r.m, r.res
	page := res.PageSize
	if err := env.Recorder.Begin(stackInfos(m.stacks, func(int) string { return "task" })); err != nil {
		return err
	}
	var s Sample
	if err := m.residency(&s); err != nil {
		return err
	}
	prevResident := s.StackRSS
	var highWater int64
	for i, depth := range cfg.Depths {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d depths: %w", i, len(cfg.Depths), context.Cause(ctx))
		}
		highWater = max(highWater, depth)
		start := time.Now()
		var used int64
		for k, st := range m.stacks {
			if ctx.Err() != nil { // one stack takes at most ~0.4 s (100 MiB at 15 µs a page)
				return fmt.Errorf("interrupted during depth %d of %d, after %d of %d stacks: %w", i+1, len(cfg.Depths), k, len(m.stacks), context.Cause(ctx))
			}
			u, err := use(st, cfg.TouchMode, depth)
			if err != nil {
				return fmt.Errorf("stack %d: %w", k, err)
			}
			used = max(used, u)
		}
		touch := time.Since(start)
		claim := ExpectedPages(depth, page) * int64(page)
		var peak stepPeak
		if cfg.Release != mmapstack.ReleaseNone {
			// What the step held at its deepest, before the release.
			if err := m.residency(&s); err != nil {
				return err
			}
			peak = peakOf(&s, claim)
			if err := m.totals(&s); err != nil {
				return err
			}
			peak.vmPTE = s.Totals.VmPTE
			for k, st := range m.stacks {
				if err := st.Release(); err != nil {
					return fmt.Errorf("stack %d: %w", k, err)
				}
			}
		}
		s.Seq = i
		s.Elapsed = time.Since(r.start)
		measure := time.Now()
		if err := m.residency(&s); err != nil {
			return err
		}
		if err := m.totals(&s); err != nil {
			return err
		}
		if err := m.smaps(&s); err != nil {
			return err
		}
		s.Cost = time.Since(measure)
		after := expectedAfterRelease(cfg, highWater, page)
		s.Expected = after * int64(len(m.stacks))
		for k := range s.Stacks {
			s.Stacks[k].Depth = depth
		}
		if err := env.Recorder.Record(&s); err != nil {
			return err
		}
		if i == 0 {
			rm, err := residencyMap(m, maxResidencyRows)
			if err != nil {
				return err
			}
			res.Series.ResidencyFirst = rm
		}
		d := summarize(&s, depth, highWater, after, page, m)
		if cfg.Release == mmapstack.ReleaseNone {
			peak = peakOf(&s, claim)
		}
		d.Matched = peak.matched
		d.Step = &StepCost{
			PeakRSSBytesMin:   peak.min,
			PeakRSSBytesMax:   peak.max,
			UsedBytes:         used,
			TouchNanos:        touch.Nanoseconds(),
			NewPages:          (peak.total - prevResident) / int64(page),
			PeakVmPTEBytes:    peak.vmPTE,
			PeakRSSBytesTotal: peak.total,
		}
		prevResident = s.StackRSS
		r.finalStackRSS = s.StackRSS
		res.Steps = append(res.Steps, d)
		res.Series.PerStackRSS = append(res.Series.PerStackRSS, perStackRSS(&s))
		r.set(i+1, len(cfg.Depths))
	}
	return nil
}

// summarize condenses one sample into the per-depth record.
func summarize(s *Sample, depth, highWater, after int64, page int, m *meter) DepthResult {
	exp := ExpectedPages(depth, page)
	d := DepthResult{
		DepthBytes:                depth,
		ExpectedPages:             exp,
		ExpectedRSSBytes:          exp * int64(page),
		HighWaterBytes:            ExpectedPages(highWater, page) * int64(page),
		ExpectedAfterReleaseBytes: after,
		Stacks:                    len(s.Stacks),
		VmPTEBytes:                s.Totals.VmPTE,
		VmRSSBytes:                s.Totals.VmRSS,
		VMACount:                  s.Totals.VMAs,
		MinorFaults:               s.Totals.MinorFaults,
	}
	if len(s.Stacks) > 0 {
		d.RSSBytesMin = s.Stacks[0].RSS
	}
	for _, st := range s.Stacks {
		d.RSSBytesMin = min(d.RSSBytesMin, st.RSS)
		d.RSSBytesMax = max(d.RSSBytesMax, st.RSS)
		d.RSSBytesTotal += st.RSS
		if st.RSS == d.ExpectedRSSBytes {
			d.Matched++
		}
		if st.RSS == after {
			d.MatchedAfterRelease++
		}
	}
	d.HugeBytesTotal, d.ZeroPageBytesTotal, d.SwappedBytesTotal = classTotals(s.Stacks)
	d.LowHugeStacks, d.LowHugeBytesTotal = lowHugeTotals(s.Stacks)
	if s.Check != nil {
		d.Smaps = *s.Check
		// Per stack where a stack is its own VMAs; merged stacks' huge
		// pages are counted only when the sample covers every stack.
		var sum int64
		known := true
		for _, st := range s.Stacks {
			known = known && st.AnonHuge >= 0
			sum += st.AnonHuge
		}
		switch {
		case known:
			d.AnonHugeBytesTotal = sum
		case len(s.Stacks) == len(m.stacks):
			d.AnonHugeBytesTotal = m.anonHugeTotal()
		default:
			d.AnonHugeBytesTotal = -1 // merged VMAs: not attributable to this group
		}
	}
	return d
}

// classTotals sums the stacks' huge, zero-page and swapped bytes; a class
// some stack could not tell (-1) is nil.
func classTotals(stacks []StackSample) (huge, zero, swapped *int64) {
	sum := func(v func(*StackSample) int64) *int64 {
		var n int64
		for i := range stacks {
			x := v(&stacks[i])
			if x < 0 {
				return nil
			}
			n += x
		}
		return &n
	}
	return sum(func(s *StackSample) int64 { return s.HugeBytes }),
		sum(func(s *StackSample) int64 { return s.ZeroPageBytes }),
		sum(func(s *StackSample) int64 { return s.SwappedBytes })
}

// lowHugeTotals counts the stacks holding part of a huge page that began
// below them, and sums those bytes; nil when huge pages were not seen.
func lowHugeTotals(stacks []StackSample) (*int, *int64) {
	var n int
	var bytes int64
	for _, s := range stacks {
		if s.LowHugeBytes < 0 {
			return nil, nil
		}
		if s.LowHugeBytes > 0 {
			n++
			bytes += s.LowHugeBytes
		}
	}
	return &n, &bytes
}

func stackInfos(stacks []*mmapstack.Stack, kind func(int) string) []StackInfo {
	infos := make([]StackInfo, len(stacks))
	for i, s := range stacks {
		infos[i] = StackInfo{Index: i, Kind: kind(i), Base: s.Base(), Size: s.Size()}
	}
	return infos
}

// perStackRSS is each stack's resident bytes in s, in stack order.
func perStackRSS(s *Sample) []int64 {
	out := make([]int64, len(s.Stacks))
	for k, st := range s.Stacks {
		out[k] = st.RSS
	}
	return out
}

func (r *Run) toolMemory() ToolMemory {
	res := r.res
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(samples)
	t := ToolMemory{GoHeapBytes: samples[0].Value.Uint64(), GoTotalBytes: samples[1].Value.Uint64()}
	if rows := res.Rows(); len(rows) > 0 {
		n := int64(rows[len(rows)-1].VmRSSBytes) - r.finalStackRSS
		t.NonStackRSSBytes = &n
	}
	return t
}

type discard struct{}

func (discard) Begin([]StackInfo) error { return nil }
func (discard) Record(*Sample) error    { return nil }

// maxResidencyRows bounds the stacks drawn in the residency map.
const maxResidencyRows = 32

// residencyMap reads the runs of present pages of up to rows stacks
// (evenly spread over all) from the page tables, over each whole mapping,
// and keeps those inside a window chosen from the data: the smallest power
// of two at least twice the deepest present byte below any drawn stack's
// top, at least 16 pages (so one page is a sixteenth of it), at most the
// stack.
func residencyMap(m *meter, rows int) (*ResidencyMap, error) {
	if len(m.stacks) == 0 {
		return nil, nil
	}
	page := int64(mmapstack.PageSize())
	rm := &ResidencyMap{PageSize: int(page), Method: m.pm.Method().String()}
	n := min(rows, len(m.stacks))
	size := int64(m.stacks[0].Size())
	var deepest int64
	for k := range n {
		i := k * len(m.stacks) / n
		st := m.stacks[i]
		top := uint64(st.Top())
		var row []ResidentRun
		err := m.pm.Runs(procread.PageRange{Start: uint64(st.Base()), End: top}, func(start, end uint64, class procread.PageClass) {
			if class&(procread.ClassResident|procread.ClassZeroPage) == 0 {
				return
			}
			row = append(row, ResidentRun{From: int64(top - end), To: int64(top - start), Huge: class&procread.ClassHuge != 0, ZeroPage: class&procread.ClassZeroPage != 0})
		})
		if err != nil {
			return nil, fmt.Errorf("residency map of stack %d: %w", i, err)
		}
		// Runs come in address order; rows read from the top down.
		slices.Reverse(row)
		if len(row) > 0 {
			deepest = max(deepest, row[len(row)-1].To)
		}
		size = max(size, int64(st.Size()))
		rm.Stacks = append(rm.Stacks, i)
		rm.Rows = append(rm.Rows, row)
	}
	window := 16 * page
	for window < 2*deepest && window < size {
		window *= 2
	}
	rm.WindowBytes = min(window, size)
	for k, row := range rm.Rows {
		kept := row[:0]
		for _, run := range row {
			if run.From < rm.WindowBytes {
				run.To = min(run.To, rm.WindowBytes)
				kept = append(kept, run)
			}
		}
		rm.Rows[k] = kept
	}
	return rm, nil
}

// stepPeak is the stacks' residency right after a step's touch.
type stepPeak struct {
	min, max, total int64
	matched         int // stacks holding exactly the claim
	// vmPTE is the process's VmPTE at the peak, read only when a release
	// follows (0 otherwise).
	vmPTE uint64
}

func peakOf(s *Sample, claim int64) stepPeak {
	var p stepPeak
	for i, st := range s.Stacks {
		if i == 0 || st.RSS < p.min {
			p.min = st.RSS
		}
		p.max = max(p.max, st.RSS)
		p.total += st.RSS
		if st.RSS == claim {
			p.matched++
		}
	}
	return p
}
