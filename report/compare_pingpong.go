package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"stackprobe/probe"
	"stackprobe/sizes"
)

// PingPongCompareVerdicts computes compare --workload=pingpong's
// conclusions from its numbers: what each release policy cost in
// throughput and saved in memory against lazy-4k, and whether each
// strategy ended with exactly what its release mode predicts.
func PingPongCompareVerdicts(c *probe.PingPongComparison) []string {
	var out []string
	page := int64(c.PageSize)
	by := map[probe.StrategyName]*probe.PingPongStrategy{}
	for i := range c.Strategies {
		s := &c.Strategies[i]
		by[s.Name] = s
		switch {
		case s.Skipped != "":
			out = append(out, fmt.Sprintf("%s did not run: %s", s.Name, s.Skipped))
		case s.Error != "" && s.PingPongFigures == nil:
			out = append(out, fmt.Sprintf("%s failed and measured nothing: %s", s.Name, s.Error))
		case s.Error != "":
			out = append(out, fmt.Sprintf("%s failed (%s); its figures come from the %s that finished", s.Name, s.Error, plural(s.RoundsMeasured, "round")))
		}
	}
	figures := func(n probe.StrategyName) *probe.PingPongFigures {
		if s := by[n]; s != nil {
			return s.PingPongFigures
		}
		return nil
	}
	// Each stack is predicted from its own deepest depth: the same for
	// every task of a ramp, lo to hi over the stacks of the other patterns.
	lo, hi := probe.HighWaterRange(c.Config)
	pages := func(d int64) int64 { return probe.ExpectedPages(d, int(page)) * page }
	hwLo, hwHi := pages(lo), pages(hi)
	keep := max(probe.ExpectedPages(c.Config.KeepTopBytes, int(page)), 1) * page
	for _, e := range []struct {
		name     probe.StrategyName
		lo, hi   int64
		what     string
		eachWhat string // per stack (after "N of M stacks"), when the figure differs by stack
	}{
		{probe.StrategyLazy4K, hwLo, hwHi, "its high-water mark ceil(deepest depth/page) pages",
			"their own high-water mark, ceil(the deepest depth their task used/page) pages"},
		{probe.StrategyFreeEach, hwLo, hwHi, "its high-water mark (MADV_FREE pages stay in Rss until memory is short)",
			"their own high-water mark, ceil(the deepest depth their task used/page) pages (MADV_FREE pages stay in Rss until memory is short)"},
		{probe.StrategyDontneedEach, min(hwLo, keep), min(hwHi, keep), "the kept top", "their own kept top, ceil(min(the deepest depth their task used, --keep-top)/page) pages"},
	} {
		s := by[e.name]
		if s == nil || s.PingPongFigures == nil {
			continue
		}
		matched, stacks, exact := 0, 0, e.lo == e.hi
		for _, r := range s.Rounds {
			if r.Error == "" {
				matched += r.EndAsPredicted
				stacks += r.Stacks
				exact = exact && r.EndRSSBytesMin == e.hi && r.EndRSSBytesMax == e.hi && r.EndAsPredicted == r.Stacks
			}
		}
		switch {
		case exact:
			out = append(out, fmt.Sprintf("%s: every stack ended holding exactly %s (%s) in every round", e.name, e.what, sizes.IEC(e.hi)))
		case e.lo == e.hi:
			out = append(out, fmt.Sprintf("%s: %d of %d stacks (over the rounds) ended holding %s (%s); mean %s per stack",
				e.name, matched, stacks, e.what, sizes.IEC(e.hi), sizes.IEC(s.EndRSSBytesPerStack)))
		default:
			out = append(out, fmt.Sprintf("%s: %d of %d stacks (over the rounds) ended holding exactly %s (%s to %s, by stack, with pattern %s); mean %s per stack",
				e.name, matched, stacks, e.eachWhat, sizes.IEC(e.lo), sizes.IEC(e.hi), c.Config.Pattern, sizes.IEC(s.EndRSSBytesPerStack)))
		}
	}
	if s := by[probe.StrategyIdleDontneed]; s != nil && s.PingPongFigures != nil {
		idle, atEnd, kept := 0, 0, 0
		var checked, keptTop int64
		for _, r := range s.Rounds {
			if r.Error == "" {
				idle, atEnd, kept = idle+r.IdleStacks, atEnd+r.IdleAtEnd, kept+r.IdleAtEndKeptTop
				checked, keptTop = checked+r.IdleReleasesChecked, keptTop+r.IdleReleasesKeptTop
			}
		}
		msg := fmt.Sprintf("idle-dontneed: over the rounds %d stacks were released at least once for being idle for %v", idle, c.Config.Idle)
		if checked > 0 {
			msg += fmt.Sprintf("; measured right after each release, %d of %d releases left exactly the kept top the stack had touched", keptTop, checked)
		}
		if atEnd > 0 {
			msg += fmt.Sprintf("; %d were idle at the end and %d of them held exactly the kept top (%s)", atEnd, kept, span(min(hwLo, keep), min(hwHi, keep)))
		} else {
			msg += "; none was idle at the end (a task closes its connection right after its last message), so each ended with what it used since its last release"
		}
		out = append(out, msg)
	}
	ref := figures(probe.StrategyLazy4K)
	if ref != nil {
		if f := figures(probe.StrategyDontneedEach); f != nil {
			out = append(out, "releasing after every message (MADV_DONTNEED) "+costSaved(c, f, ref))
		}
		if f := figures(probe.StrategyFreeEach); f != nil {
			out = append(out, "releasing after every message with MADV_FREE "+costSaved(c, f, ref))
		}
		if f := figures(probe.StrategyIdleDontneed); f != nil {
			out = append(out, "releasing when idle "+keptSaved(c, f, ref))
		}
		if f := figures(probe.StrategyLazyTHP); f != nil {
			out = append(out, fmt.Sprintf("THP-eligible stacks held %s per stack at the end against lazy-4k's %s; their throughput %s",
				sizes.IEC(f.EndRSSBytesPerStack), sizes.IEC(ref.EndRSSBytesPerStack), versus(f, ref, "lazy-4k")))
		}
		if f := figures(probe.StrategyEager); f != nil {
			out = append(out, fmt.Sprintf("eager (MAP_POPULATE) stacks held %s per stack; their throughput %s",
				sizes.IEC(f.EndRSSBytesPerStack), versus(f, ref, "lazy-4k")))
		}
		if f := figures(probe.StrategyNoTouch); f != nil {
			out = append(out, fmt.Sprintf("against the baseline that touches no stack, lazy-4k's throughput (using %s per message) %s",
				depthWord(c.Config.Depths), versus(ref, f, "no-touch")))
		}
	}
	var pte []string
	for _, s := range c.Strategies {
		if s.PingPongFigures != nil && s.PTEBytesPerStack != nil {
			pte = append(pte, fmt.Sprintf("%s %s", s.Name, sizes.IEC(*s.PTEBytesPerStack)))
		}
	}
	if len(pte) > 0 {
		out = append(out, "page tables per stack at the end (VmPTE growth from before the reservation over the stack count; not in Rss): "+strings.Join(pte, ", "))
	}
	return out
}

// costSaved says what a per-message release cost against ref.
func costSaved(c *probe.PingPongComparison, f, ref *probe.PingPongFigures) string {
	var msg string
	if within(f, ref) {
		msg = "changed throughput by less than the spread of the rounds (" + rates(f, ref) + ")"
	} else {
		msg = fmt.Sprintf("cost %.0f%% of throughput (%s)", 100*(1-f.RoundTripsPerSecond/ref.RoundTripsPerSecond), rates(f, ref))
	}
	return msg + " and " + saved(c, f, ref) + fmt.Sprintf("; %.2f madvise calls and %.2f minor faults per round trip against %.2f and %.2f",
		f.MadviseCallsPerRoundTrip, f.MinorFaultsPerRoundTrip, ref.MadviseCallsPerRoundTrip, ref.MinorFaultsPerRoundTrip)
}

// keptSaved says what share of ref's throughput a policy kept.
func keptSaved(c *probe.PingPongComparison, f, ref *probe.PingPongFigures) string {
	var msg string
	if within(f, ref) {
		msg = "differed from no release by less than the spread of the rounds (" + rates(f, ref) + ")"
	} else {
		msg = fmt.Sprintf("kept %.0f%% of the throughput (%s)", 100*f.RoundTripsPerSecond/ref.RoundTripsPerSecond, rates(f, ref))
	}
	return msg + " and " + saved(c, f, ref)
}

// versus compares f's throughput with ref's, named refName.
func versus(f, ref *probe.PingPongFigures, refName string) string {
	if within(f, ref) {
		return fmt.Sprintf("differed from %s's by less than the spread of the rounds (%s)", refName, rates(f, ref))
	}
	return fmt.Sprintf("was %.0f%% of %s's (%s)", 100*f.RoundTripsPerSecond/ref.RoundTripsPerSecond, refName, rates(f, ref))
}

// within reports whether two strategies' throughputs differ by less than
// the spread: their ranges [slowest round, fastest round] overlap, so the
// rounds cannot tell them apart.
func within(a, b *probe.PingPongFigures) bool {
	return a.RoundTripsPerSecondMin <= b.RoundTripsPerSecondMax && b.RoundTripsPerSecondMin <= a.RoundTripsPerSecondMax
}

func rates(f, ref *probe.PingPongFigures) string {
	return fmt.Sprintf("%s against %s round trips/s, medians", rateSpread(f), rateSpread(ref))
}

// rateSpread is "median [min–max]".
func rateSpread(f *probe.PingPongFigures) string {
	return fmt.Sprintf("%.0f [%.0f–%.0f]", f.RoundTripsPerSecond, f.RoundTripsPerSecondMin, f.RoundTripsPerSecondMax)
}

// saved is the resident stack memory per connection f saved against ref
// at the end.
func saved(c *probe.PingPongComparison, f, ref *probe.PingPongFigures) string {
	a, b := c.PerConnection(f.EndRSSBytesPerStack), c.PerConnection(ref.EndRSSBytesPerStack)
	if a >= b {
		return fmt.Sprintf("saved nothing: %s of stack per connection at the end against %s", sizes.IEC(a), sizes.IEC(b))
	}
	return fmt.Sprintf("saved %s of stack per connection at the end (%s against %s)", sizes.IEC(b-a), sizes.IEC(a), sizes.IEC(b))
}

func depthWord(depths []int64) string {
	if len(depths) == 1 {
		return sizes.IEC(depths[0])
	}
	return "depths " + depthList(depths)
}

// WritePingPongCompareEvidence writes compare --workload=pingpong's
// evidence.md.
func WritePingPongCompareEvidence(w io.Writer, c *probe.PingPongComparison, charts []string) error {
	var b strings.Builder
	cfg := c.Config
	b.WriteString("# stackprobe evidence: stack strategies under the ping-pong\n\n")
	if c.Partial {
		fmt.Fprintf(&b, "> **PARTIAL RUN** — %s. The figures below are real measurements, but not every round ran.\n\n", c.Error)
	}
	fmt.Fprintf(&b, "The same epoll ping-pong — %s over %s, %d one-byte round trips each, pattern %s over depths %s — under each stack strategy; %s of %s (%d bytes), guard %s. Each strategy ran %s, interleaved (round 1 of every strategy, then round 2, ...); figures are medians over the rounds, throughput with its spread [slowest–fastest round].\n\n",
		plural(cfg.Tasks, "client"), cfg.Transport, cfg.Messages, cfg.Pattern, depthList(cfg.Depths),
		plural(cfg.Stacks(), "stack"), sizes.IEC(cfg.StackBytes), cfg.StackBytes, cfg.Guard, plural(c.Rounds, "round"))
	fmt.Fprintf(&b, "Command, run %s (%.2f s):\n\n    %s\n\n## Verdict\n\n", c.Started.Format("2006-01-02 15:04:05 UTC"), c.Seconds, c.Command)
	for _, v := range PingPongCompareVerdicts(c) {
		fmt.Fprintf(&b, "- %s.\n", v)
	}
	b.WriteString("\n## Environment\n\n")
	writeEnvTable(&b, c.Environment)
	b.WriteString("\n## Results\n\nResident bytes are the stacks' pages present in the page tables, mean per stack (a connection has two stacks: client and server task); peak is the live sample that found the most. Page tables per stack are the process's VmPTE growth from before the reservation to the end over the stack count. Two throughputs differ by less than the spread when their [slowest–fastest] ranges overlap. CPU is each IO thread's user+system time (RUSAGE_THREAD). A blank cell was not measured.\n\n")
	b.WriteString("| strategy | rounds | round trips | errors | round trips/s [min–max] | p50 | p99 | max | CPU clients | CPU server | minor faults per round trip | madvise per round trip | peak per stack | end per stack | end per connection | page tables per stack | VmRSS |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range c.Strategies {
		switch {
		case s.Skipped != "":
			fmt.Fprintf(&b, "| %s | skipped: %s | | | | | | | | | | | | | | | |\n", s.Name, s.Skipped)
			continue
		case s.PingPongFigures == nil:
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | | | | | | | | | | | |\n", s.Name, s.Error)
			continue
		}
		f := s.PingPongFigures
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %v | %v | %v | %v | %v | %.2f | %.2f | %s | %s | %s | %s | %s |\n",
			s.Name, f.RoundsMeasured, f.RoundTrips, f.Errors, rateSpread(f),
			nanos(f.LatencyNanos.P50), nanos(f.LatencyNanos.P99), nanos(f.LatencyNanos.Max),
			nanos(f.CPUNanos.Clients), nanos(f.CPUNanos.Server), f.MinorFaultsPerRoundTrip, f.MadviseCallsPerRoundTrip,
			sizes.IEC(f.PeakRSSBytesPerStack), sizes.IEC(f.EndRSSBytesPerStack), sizes.IEC(c.PerConnection(f.EndRSSBytesPerStack)),
			optSize(f.PTEBytesPerStack), sizes.IEC(int64(f.VmRSSBytes)))
	}
	b.WriteString("\nStrategies:\n\n")
	for _, s := range c.Strategies {
		fmt.Fprintf(&b, "- `%s`: %s", s.Name, s.Label)
		if s.Error != "" {
			fmt.Fprintf(&b, " — error: %s", s.Error)
		}
		b.WriteString("\n")
	}
	writeCharts(&b, charts)
	b.WriteString("Raw data, every round: `summary.json`.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WritePingPongCompareText writes compare --workload=pingpong's stdout
// summary.
func WritePingPongCompareText(w io.Writer, c *probe.PingPongComparison, outDir string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tround trips/s\tmin\tmax\tp50\tp99\tmadvise/rt\tend/stack\tend/connection\t")
	for _, s := range c.Strategies {
		switch {
		case s.Skipped != "":
			fmt.Fprintf(tw, "%s\tskipped\t\t\t\t\t\t\t\t\n", s.Name)
			continue
		case s.PingPongFigures == nil:
			fmt.Fprintf(tw, "%s\tfailed\t\t\t\t\t\t\t\t\n", s.Name)
			continue
		}
		f := s.PingPongFigures
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%v\t%v\t%.2f\t%s\t%s\t\n", s.Name, f.RoundTripsPerSecond, f.RoundTripsPerSecondMin, f.RoundTripsPerSecondMax,
			nanos(f.LatencyNanos.P50), nanos(f.LatencyNanos.P99), f.MadviseCallsPerRoundTrip,
			sizes.IEC(f.EndRSSBytesPerStack), sizes.IEC(c.PerConnection(f.EndRSSBytesPerStack)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeConclusion(w, PingPongCompareVerdicts(c), c.Partial, c.Error, outDir, "evidence.md, summary.json, tradeoff.png")
}
