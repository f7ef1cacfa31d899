package probe

import (
	"context"
	"fmt"
	"runtime/metrics"
	"slices"
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
	// Progress, if set, is called as steps complete (done of total).
	Progress func(done, total int)
	// Finish, if set, is called with the final result while the stacks are
	// still mapped (to write outputs, or to linger for an outside look).
	Finish func(res *Result)
}

// Run runs the experiment cfg describes. It always returns a Result when it
// has measured anything, also together with an error; the Result is then
// marked Partial. A cancelled ctx stops the run at the next step.
func Run(ctx context.Context, cfg Config, env Env) (*Result, error) {
	if env.ProcRoot == "" {
		env.ProcRoot = "/proc"
	}
	if env.SysRoot == "" {
		env.SysRoot = "/sys"
	}
	if env.Recorder == nil {
		env.Recorder = discard{}
	}
	if env.Progress == nil {
		env.Progress = func(int, int) {}
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
	res := &Result{
		start: now,
		Header: Header{
			Command:     env.Command,
			Started:     now.UTC().Truncate(time.Millisecond),
			Environment: sys,
			Config:      cfg,
			PageSize:    mmapstack.PageSize(),
		},
	}
	base, err := proc.Totals()
	if err != nil {
		return nil, err
	}
	res.Baseline = totalsFrom(base)

	if cfg.CheckGuard {
		res.GuardChecks = CheckGuards()
	}
	reserveStart := time.Now()
	stacks, err := reserveAll(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res.ReserveNanos = time.Since(reserveStart).Nanoseconds()
	reserved, err := proc.Totals()
	if err != nil {
		closeAll(stacks)
		return nil, err
	}
	res.Reserved = totalsFrom(reserved)
	defer closeAll(stacks)
	m := newMeter(stacks, proc)

	if cfg.Workload == WorkloadPingPong {
		err = runPingPong(ctx, cfg, env, m, res)
	} else {
		err = runTouch(ctx, cfg, env, m, res)
	}
	for _, s := range stacks {
		if s.Top()%mmapstack.HugeBlock == 0 {
			res.TopsAligned2M++
		}
	}
	if rm, rerr := residencyMap(m, cfg.Depths, maxResidencyRows); rerr == nil {
		res.Residency = rm
	} else if err == nil {
		err = rerr
	}
	res.Seconds = time.Since(res.start).Seconds()
	res.Tool = toolMemory(res)
	if err != nil {
		res.Partial = true
		res.Error = err.Error()
	}
	if env.Finish != nil {
		env.Finish(res)
	}
	return res, err
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

func closeAll(stacks []*mmapstack.Stack) {
	for _, s := range stacks {
		_ = s.Close()
	}
}

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

func runTouch(ctx context.Context, cfg Config, env Env, m *meter, res *Result) error {
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
			for k, st := range m.stacks {
				if err := st.Release(); err != nil {
					return fmt.Errorf("stack %d: %w", k, err)
				}
			}
		}
		s.Seq = i
		s.Elapsed = time.Since(res.start)
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
			rm, err := residencyMap(m, cfg.Depths, maxResidencyRows)
			if err != nil {
				return err
			}
			res.ResidencyFirst = rm
		}
		d := summarize(&s, depth, highWater, after, page, m)
		if cfg.Release == mmapstack.ReleaseNone {
			peak = peakOf(&s, claim)
		}
		d.Matched = peak.matched
		d.Step = &StepCost{
			PeakRSSBytesMin: peak.min,
			PeakRSSBytesMax: peak.max,
			UsedBytes:       used,
			TouchNanos:      touch.Nanoseconds(),
			NewPages:        (peak.total - prevResident) / int64(page),
		}
		prevResident = s.StackRSS
		res.finalStackRSS = s.StackRSS
		res.Depths = append(res.Depths, d)
		env.Progress(i+1, len(cfg.Depths))
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
		PerStackRSS:               make([]int64, len(s.Stacks)),
	}
	if len(s.Stacks) > 0 {
		d.RSSBytesMin = s.Stacks[0].RSS
	}
	for k, st := range s.Stacks {
		d.PerStackRSS[k] = st.RSS
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

func stackInfos(stacks []*mmapstack.Stack, kind func(int) string) []StackInfo {
	infos := make([]StackInfo, len(stacks))
	for i, s := range stacks {
		infos[i] = StackInfo{Index: i, Kind: kind(i), Base: s.Base(), Size: s.Size()}
	}
	return infos
}

func toolMemory(res *Result) ToolMemory {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}
	metrics.Read(samples)
	t := ToolMemory{GoHeapBytes: samples[0].Value.Uint64(), GoTotalBytes: samples[1].Value.Uint64()}
	if n := len(res.Depths); n > 0 {
		t.NonStackRSSBytes = int64(res.Depths[n-1].VmRSSBytes) - res.finalStackRSS
	}
	return t
}

type discard struct{}

func (discard) Begin([]StackInfo) error { return nil }
func (discard) Record(*Sample) error    { return nil }

// maxResidencyRows bounds the stacks drawn in the residency map.
const maxResidencyRows = 32

// residencyMap reads, with mincore, which pages of the top window of up to
// rows stacks (evenly spread over all) are resident. The window is twice
// the deepest depth, at least 2 MiB, rounded up to 2 MiB (so a huge page
// shows whole and untouched pages show beside touched ones), at most the
// whole stack.
func residencyMap(m *meter, depths []int64, rows int) (*ResidencyMap, error) {
	if len(m.stacks) == 0 {
		return nil, nil
	}
	page := mmapstack.PageSize()
	var deepest int64
	for _, d := range depths {
		deepest = max(deepest, d)
	}
	window := min((max(2*deepest, 1)+mmapstack.HugeBlock-1)/mmapstack.HugeBlock*mmapstack.HugeBlock, int64(m.stacks[0].Size()))
	rm := &ResidencyMap{WindowBytes: window, PageSize: page}
	n := min(rows, len(m.stacks))
	for k := range n {
		i := k * len(m.stacks) / n
		st := m.stacks[i]
		top := st.Top()
		row := make([]bool, window/int64(page))
		vec, err := procread.ResidentMap(top-uintptr(window), uintptr(window), m.vec, row)
		m.vec = vec
		if err != nil {
			return nil, fmt.Errorf("residency map of stack %d: %w", i, err)
		}
		// ResidentMap orders pages upward; rows read from the top down.
		slices.Reverse(row)
		rm.Stacks = append(rm.Stacks, i)
		rm.Rows = append(rm.Rows, row)
	}
	return rm, nil
}

// stepPeak is the stacks' residency right after a step's touch.
type stepPeak struct {
	min, max, total int64
	matched         int // stacks holding exactly the claim
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
