package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// The strategies compare --workload=pingpong runs that the touch compare
// does not (the others keep their touch names).
const (
	StrategyDontneedEach StrategyName = "dontneed"
	StrategyFreeEach     StrategyName = "free"
	StrategyIdleDontneed StrategyName = "idle-dontneed"
	StrategyNoTouch      StrategyName = "no-touch"
)

// PingPongStrategies are the strategies compare --workload=pingpong runs,
// in order. The release strategies keep 4 KiB pages (MAP_STACK,
// MADV_NOHUGEPAGE) so that only the release differs from lazy-4k.
func PingPongStrategies() []Strategy {
	return []Strategy{
		{Name: StrategyLazy4K, Label: "lazy mmap, 4 KiB pages, no release", THP: mmapstack.THPNoHuge, MapStack: true},
		{Name: StrategyLazyTHP, Label: "lazy mmap, THP eligible (MADV_HUGEPAGE, no MAP_STACK), no release", THP: mmapstack.THPHuge},
		{Name: StrategyDontneedEach, Label: "MADV_DONTNEED after every message", THP: mmapstack.THPNoHuge, MapStack: true, Release: mmapstack.ReleaseDontneed},
		{Name: StrategyFreeEach, Label: "MADV_FREE after every message", THP: mmapstack.THPNoHuge, MapStack: true, Release: mmapstack.ReleaseFree},
		{Name: StrategyIdleDontneed, Label: "MADV_DONTNEED when a task has been idle for --idle", THP: mmapstack.THPNoHuge, MapStack: true, Release: mmapstack.ReleaseIdle},
		{Name: StrategyEager, Label: "eager mmap (MAP_POPULATE), no release", THP: mmapstack.THPNoHuge, MapStack: true, Populate: true},
		{Name: StrategyNoTouch, Label: "stacks reserved but never used (baseline)", THP: mmapstack.THPNoHuge, MapStack: true, NoTouch: true},
	}
}

// pingpongConfigFor is base's ping-pong under strategy st.
func pingpongConfigFor(base Config, st Strategy) Config {
	c := base
	c.Workload = WorkloadPingPong
	c.THP, c.MapStack, c.Release, c.Populate = st.THP, st.MapStack, st.Release, st.Populate
	c.CheckGuard = false
	if st.Release != mmapstack.ReleaseIdle {
		c.Idle = 0
	}
	if st.NoTouch {
		c.Depths = []int64{0}
	}
	return c
}

// populateUnfit says why stacks populated in full would not fit in
// memory (more than maxEagerFraction of the binding bound), or "".
func populateUnfit(stackBytes int64, stacks int, bound procread.MemoryLimit, known bool) string {
	if !known {
		return ""
	}
	if need := float64(stackBytes) * float64(stacks); need > maxEagerFraction*float64(bound.Bytes) {
		return fmt.Sprintf("%d populated stacks of %d bytes would need more than half of the %d bytes %s allows",
			stacks, stackBytes, bound.Bytes, bound.Source)
	}
	return ""
}

// PingPongCompareRun is a comparison of every strategy under one ping-pong.
type PingPongCompareRun struct {
	cfg    Config
	env    Env
	rounds int
	progress
	// current is the round running now, for SamplerCost.
	current atomic.Pointer[Run]
}

// SamplerCost is the running round's sampler cost so far (Run.SamplerCost);
// zeros between rounds.
func (cr *PingPongCompareRun) SamplerCost() (mean, interval time.Duration, samples int) {
	if r := cr.current.Load(); r != nil {
		return r.SamplerCost()
	}
	return 0, 0, 0
}

// NewPingPongCompare prepares cfg's ping-pong under every strategy of
// PingPongStrategies, each run rounds times.
func NewPingPongCompare(cfg Config, rounds int, env Env) *PingPongCompareRun {
	return &PingPongCompareRun{cfg: cfg, env: env, rounds: max(rounds, 1)}
}

// Measure runs the rounds interleaved: round 1 of every strategy, then
// round 2, and so on; each run's stacks are unmapped before the next
// starts. A strategy whose round fails (the watchdog, say) keeps its error
// and runs no further round; the others go on. It returns what was
// measured also together with an error (then Partial).
func (cr *PingPongCompareRun) Measure(ctx context.Context) (*PingPongComparison, error) {
	cfg, env := cr.cfg, cr.env
	start := time.Now()
	c := &PingPongComparison{
		Header: Header{Command: env.Command, Started: start.UTC().Truncate(time.Millisecond), PageSize: mmapstack.PageSize(), Config: cfg},
		Rounds: cr.rounds,
	}
	sys, err := procread.ReadSystem(cmp.Or(env.ProcRoot, "/proc"), cmp.Or(env.SysRoot, "/sys"))
	if err != nil {
		return nil, fmt.Errorf("read system facts: %w", err)
	}
	c.Environment = sys
	strategies := PingPongStrategies()
	runnable := 0
	for _, st := range strategies {
		ps := PingPongStrategy{Name: st.Name, Label: st.Label}
		if st.Populate {
			b, ok := memoryBound(env)
			ps.Skipped = populateUnfit(cfg.StackBytes, cfg.Stacks(), b, ok)
		}
		if ps.Skipped == "" {
			runnable++
		}
		c.Strategies = append(c.Strategies, ps)
	}
	var failed []string
	var stopped error
	done := 0
	cr.set(0, runnable*cr.rounds)
rounds:
	for round := 1; round <= cr.rounds; round++ {
		for i, st := range strategies {
			ps := &c.Strategies[i]
			if ps.Skipped != "" || ps.Error != "" {
				continue
			}
			if ctx.Err() != nil {
				stopped = fmt.Errorf("interrupted before round %d of %s: %w", round, st.Name, context.Cause(ctx))
				break rounds
			}
			r, err := cr.runPingPongRound(ctx, pingpongConfigFor(cfg, st), env, round)
			ps.Rounds = append(ps.Rounds, r)
			if err != nil {
				ps.Error = fmt.Sprintf("round %d: %v", round, err)
				failed = append(failed, fmt.Sprintf("%s %s", st.Name, ps.Error))
				if ctx.Err() != nil {
					stopped = fmt.Errorf("interrupted in round %d of %s: %w", round, st.Name, context.Cause(ctx))
					break rounds
				}
			}
			done++
			cr.set(done, runnable*cr.rounds)
		}
	}
	for i := range c.Strategies {
		c.Strategies[i].PingPongFigures = figuresOf(c.Strategies[i].Rounds)
	}
	c.Seconds = time.Since(start).Seconds()
	if stopped != nil {
		c.Partial, c.Error = true, stopped.Error()
		return c, stopped
	}
	if len(failed) > 0 {
		c.Partial, c.Error = true, strings.Join(failed, "; ")
		return c, errors.New(c.Error)
	}
	return c, nil
}

// runPingPongRound runs one round of one strategy.
func (cr *PingPongCompareRun) runPingPongRound(ctx context.Context, cfg Config, env Env, round int) (PingPongRound, error) {
	start := time.Now()
	var res *Result
	run, err := Start(ctx, cfg, Env{ProcRoot: env.ProcRoot, SysRoot: env.SysRoot})
	if err == nil {
		cr.current.Store(run)
		res, err = run.Measure(ctx)
		cr.current.Store(nil)
		_, _ = run.Cost()
		err = errors.Join(err, run.Close())
	}
	r := PingPongRound{Round: round, Stacks: cfg.Stacks()}
	if res != nil && res.PingPong != nil {
		r = roundOf(res, round)
	} else if err == nil {
		err = errors.New("the run measured no ping-pong")
	}
	r.Seconds = time.Since(start).Seconds()
	if err != nil {
		r.Error = err.Error()
	}
	return r, err
}

// roundOf condenses one ping-pong run into a round.
func roundOf(res *Result, round int) PingPongRound {
	p := res.PingPong
	stacks := res.Config.Stacks()
	r := PingPongRound{
		Round:                    round,
		RoundTrips:               p.RoundTrips,
		Errors:                   p.Errors,
		RoundTripsPerSecond:      p.RoundTripsPerSecond,
		LatencyNanos:             p.LatencyNanos,
		CPUNanos:                 ThreadCPU{Clients: p.ThreadCPUNs.Clients, Server: p.ThreadCPUNs.Server},
		MinorFaultsPerRoundTrip:  p.MinorFaultsPerRoundTrip,
		MadviseCallsPerRoundTrip: p.MadviseCallsPerRoundTrip,
		Stacks:                   stacks,
		IdleStacks:               p.IdleStacks,
		IdleAtEnd:                p.IdleAtEnd,
		IdleAtEndKeptTop:         p.IdleAtEndKeptTop,
		IdleReleasesChecked:      p.IdleReleasesChecked,
		IdleReleasesKeptTop:      p.IdleReleasesKeptTop,
	}
	if stacks > 0 {
		r.PeakRSSBytesPerStack = p.PeakStackRSSBytes / int64(stacks)
	}
	groups := res.HighWaterGroups
	var total int64
	for i, g := range groups {
		if i == 0 || g.RSSBytesMin < r.EndRSSBytesMin {
			r.EndRSSBytesMin = g.RSSBytesMin
		}
		r.EndRSSBytesMax = max(r.EndRSSBytesMax, g.RSSBytesMax)
		total += g.RSSBytesTotal
		r.EndAsPredicted += g.MatchedAfterRelease
	}
	if len(groups) > 0 && stacks > 0 {
		// Every group carries the same process totals: the final sample's.
		end := groups[len(groups)-1]
		r.EndRSSBytesPerStack = total / int64(stacks)
		r.VmRSSBytes = end.VmRSSBytes
		r.PTEBytesPerStack = perStackGrowth(end.VmPTEBytes, res.Baseline.VmPTE, int64(stacks))
	}
	return r
}

// figuresOf condenses the rounds that finished without error; nil when
// none did.
func figuresOf(rounds []PingPongRound) *PingPongFigures {
	var ok []PingPongRound
	for _, r := range rounds {
		if r.Error == "" {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	f := &PingPongFigures{RoundsMeasured: len(ok), RoundTrips: ok[0].RoundTrips}
	var rate, faults, madvises []float64
	var p50, p99, pmax, cpuC, cpuS, peak, end, pte []int64
	var vmrss []uint64
	for _, r := range ok {
		f.RoundTrips = min(f.RoundTrips, r.RoundTrips)
		f.Errors += r.Errors
		// A round that finished completed its round trips: these are
		// set; the checks keep an unmeasured figure out of the medians.
		if r.RoundTripsPerSecond != nil {
			rate = append(rate, *r.RoundTripsPerSecond)
		}
		if r.MinorFaultsPerRoundTrip != nil {
			faults = append(faults, *r.MinorFaultsPerRoundTrip)
		}
		if r.MadviseCallsPerRoundTrip != nil {
			madvises = append(madvises, *r.MadviseCallsPerRoundTrip)
		}
		if l := r.LatencyNanos; l != nil {
			p50, p99, pmax = append(p50, l.P50), append(p99, l.P99), append(pmax, l.Max)
		}
		cpuC, cpuS = append(cpuC, r.CPUNanos.Clients), append(cpuS, r.CPUNanos.Server)
		peak, end = append(peak, r.PeakRSSBytesPerStack), append(end, r.EndRSSBytesPerStack)
		if r.PTEBytesPerStack != nil {
			pte = append(pte, *r.PTEBytesPerStack)
		}
		vmrss = append(vmrss, r.VmRSSBytes)
	}
	f.RoundTripsPerSecond = median(rate)
	if len(rate) > 0 {
		f.RoundTripsPerSecondMin, f.RoundTripsPerSecondMax = slices.Min(rate), slices.Max(rate)
	}
	f.LatencyNanos = Latency{P50: median(p50), P99: median(p99), Max: median(pmax)}
	f.CPUNanos = ThreadCPU{Clients: median(cpuC), Server: median(cpuS)}
	f.MinorFaultsPerRoundTrip, f.MadviseCallsPerRoundTrip = median(faults), median(madvises)
	f.PeakRSSBytesPerStack, f.EndRSSBytesPerStack = median(peak), median(end)
	if len(pte) > 0 {
		v := median(pte)
		f.PTEBytesPerStack = &v
	}
	f.VmRSSBytes = median(vmrss)
	return f
}

// median is the middle value, or the mean of the two middle values of an
// even count; 0 for none.
func median[T int64 | uint64 | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return s[n/2-1] + (s[n/2]-s[n/2-1])/2
}
