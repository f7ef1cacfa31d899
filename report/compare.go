package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"stackprobe/probe"
	"stackprobe/sizes"
)

// Chart file names of a compare run.
const (
	ChartStrategies = "strategies.png"
	ChartResidency  = "residency.png"
	// ChartTradeoff is compare --workload=pingpong's memory against
	// throughput chart.
	ChartTradeoff = "tradeoff.png"
	// ChartStackDepths is watch's distribution of per-stack residency.
	ChartStackDepths = "stack-depths.png"
)

// CompareVerdicts computes the comparison's conclusions from its numbers.
func CompareVerdicts(c *probe.Comparison) []string {
	stackSizes := c.Sizes()
	if len(stackSizes) < 2 {
		return compareVerdicts(c)
	}
	var out []string
	goroutines := *c
	goroutines.Strategies, goroutines.Guards = nil, nil
	for _, s := range c.Strategies {
		if s.Strategy.GoStacks {
			goroutines.Strategies = append(goroutines.Strategies, s)
		}
	}
	for _, size := range stackSizes {
		sub := *c
		sub.Strategies, sub.Guards = nil, nil
		for _, s := range c.Strategies {
			if s.StackBytes == size {
				// Overflowed steps were not run: sizeVerdicts names them.
				s.Steps = slices.DeleteFunc(slices.Clone(s.Steps), func(st probe.StrategyStep) bool { return st.Overflow })
				sub.Strategies = append(sub.Strategies, s)
			}
		}
		for _, g := range c.Guards {
			if g.StackBytes == size {
				sub.Guards = append(sub.Guards, g)
			}
		}
		for _, v := range compareVerdicts(&sub) {
			out = append(out, fmt.Sprintf("%s stacks: %s", sizes.IEC(size), v))
		}
	}
	out = append(out, compareVerdicts(&goroutines)...)
	return append(out, sizeVerdicts(c, stackSizes)...)
}

// sizeVerdicts set the stack sizes side by side: lazy 4 KiB stacks'
// per-coroutine cost at each size, and the depths a size cannot hold.
func sizeVerdicts(c *probe.Comparison, stackSizes []int64) []string {
	var out, parts []string
	var base *probe.Cost
	for _, s := range c.Strategies {
		if s.Strategy.Name != probe.StrategyLazy4K || s.Cost == nil {
			continue
		}
		if s.Cost.PageTables == nil {
			// Not comparable with a total that holds page tables.
			parts = append(parts, fmt.Sprintf("%s stacks %s resident (page tables not measured: %s)",
				sizes.IEC(s.StackBytes), sizes.IEC(s.Cost.ResidentBytes), s.Cost.PageTablesMissing))
			continue
		}
		part := fmt.Sprintf("%s stacks %s (%s resident + %s page tables",
			sizes.IEC(s.StackBytes), sizes.IEC(s.Cost.TotalBytes), sizes.IEC(s.Cost.ResidentBytes), sizes.IEC(s.Cost.PageTables.PerStackBytes))
		if k := s.Cost.KernelBytes; k != nil {
			part += " + " + sizes.IEC(*k) + " kernel"
		}
		part += ")"
		if base != nil && base.TotalBytes > 0 {
			part += fmt.Sprintf(", %+.0f%%", 100*float64(s.Cost.TotalBytes-base.TotalBytes)/float64(base.TotalBytes))
		} else {
			base = s.Cost
		}
		parts = append(parts, part)
	}
	if len(parts) > 0 {
		out = append(out, "per coroutine after the last step, lazy 4 KiB pages: "+strings.Join(parts, "; "))
	}
	for _, size := range stackSizes {
		var over []int64
		for _, s := range c.Strategies {
			if s.StackBytes != size {
				continue
			}
			for _, st := range s.Steps {
				if st.Overflow && !slices.Contains(over, st.DepthBytes) {
					over = append(over, st.DepthBytes)
				}
			}
			break
		}
		if len(over) > 0 {
			out = append(out, fmt.Sprintf("%s stacks cannot hold depth %s: those steps overflow into the guard and were not run", sizes.IEC(size), depthList(over)))
		}
	}
	return out
}

func compareVerdicts(c *probe.Comparison) []string {
	var out []string
	page := int64(c.PageSize)
	by := map[probe.StrategyName]probe.StrategyResult{}
	for _, s := range c.Strategies {
		by[s.Strategy.Name] = s
		if s.Skipped != "" {
			out = append(out, fmt.Sprintf("%s did not run: %s", s.Strategy.Name, s.Skipped))
		}
	}
	if s, ok := by[probe.StrategyLazy4K]; ok && len(s.Steps) > 0 {
		exact, hw := 0, -1
		var deepest int64
		for i, st := range s.Steps {
			claim := probe.ExpectedPages(st.DepthBytes, int(page)) * page
			if st.RSSBytesMin == claim && st.RSSBytesMax == claim {
				exact++
			} else if st.RSSBytesMin == probe.ExpectedPages(deepest, int(page))*page && deepest > st.DepthBytes {
				hw = i
			}
			deepest = max(deepest, st.DepthBytes)
		}
		out = append(out, fmt.Sprintf("lazy mmap with 4 KiB pages held exactly ceil(depth/%s) pages per stack at %d of %d steps",
			sizes.IEC(page), exact, len(s.Steps)))
		if hw >= 0 {
			st := s.Steps[hw]
			msg := fmt.Sprintf("after going back to %s at step %d, lazy-4k stacks still held %s each: residency is a high-water mark",
				sizes.IEC(st.DepthBytes), hw+1, sizes.IEC(st.RSSBytesMax))
			if d, ok := by[probe.StrategyDontneed]; ok && hw < len(d.Steps) {
				msg += fmt.Sprintf(", while MADV_DONTNEED brought them to %s", sizes.IEC(d.Steps[hw].RSSBytesMax))
			}
			if f, ok := by[probe.StrategyFree]; ok && hw < len(f.Steps) {
				msg += fmt.Sprintf(" and MADV_FREE left %s counted in Rss (freed only under memory pressure)", sizes.IEC(f.Steps[hw].RSSBytesMax))
			}
			out = append(out, msg)
		}
	}
	if s, ok := by[probe.StrategyLazyTHP]; ok && len(s.Steps) > 0 {
		st := s.Steps[0]
		claim := probe.ExpectedPages(st.DepthBytes, int(page)) * page
		out = append(out, fmt.Sprintf("THP-eligible stacks held %s per stack at the first step (depth %s, claim %s; AnonHugePages %s per stack; %d of %d stack tops 2 MiB aligned)",
			span(st.RSSBytesMin, st.RSSBytesMax), sizes.IEC(st.DepthBytes), sizes.IEC(claim),
			optSize(st.AnonHugeBytesPerStack), s.TopsAligned2M, s.Stacks))
	}
	if s, ok := by[probe.StrategyEager]; ok && len(s.Steps) > 0 {
		first, same := s.Steps[0].RSSBytesMax, true
		for _, st := range s.Steps {
			same = same && st.RSSBytesMin == first && st.RSSBytesMax == first
		}
		msg := fmt.Sprintf("eager (MAP_POPULATE) stacks held %s each from the first step", sizes.IEC(first))
		if same {
			msg += fmt.Sprintf(", the same at all %d steps", len(s.Steps))
		}
		msg += fmt.Sprintf("; reserving one took %s", micros(float64(s.ReserveNsPerStack)))
		if f := s.ReserveMinorFaultsPerStack; f != nil {
			msg += fmt.Sprintf(" and %.0f minor faults (MAP_POPULATE backs every page at reservation; the steps' faults per page count only the touch)", *f)
		}
		out = append(out, msg)
	}
	if s, ok := by[probe.StrategyGoroutines]; ok && len(s.Steps) > 0 {
		out = append(out, goroutineVerdict(s))
	}
	if len(c.Guards) > 0 {
		var parts []string
		for _, g := range c.Guards {
			if g.Skipped == "" {
				pt := "page tables not read"
				if g.PTEBytesPerStack != nil {
					pt = sizes.IEC(*g.PTEBytesPerStack) + " of page tables (by address; VmPTE grew " + sizes.IEC(g.VmPTEDeltaBytesPerStack) + ")"
				}
				parts = append(parts, fmt.Sprintf("%s %.2f VMAs and %s", g.Guard, g.VMAsPerStack, pt))
			}
		}
		out = append(out, "per stack, guard "+strings.Join(parts, "; ")+" (page tables are not in Rss; vm.max_map_count counts VMAs)")
	}
	for _, s := range c.Strategies {
		if len(s.Steps) == 0 || s.Strategy.GoStacks {
			continue
		}
		last := s.Steps[len(s.Steps)-1]
		var parts []string
		if p := s.ReservePTEBytesPerStack; p != nil && *p > 0 {
			parts = append(parts, fmt.Sprintf("%s at reservation", sizes.IEC(*p)))
		}
		if p := last.PeakPTEBytesPerStack; p != nil && last.PTEBytesPerStack != nil && *p != *last.PTEBytesPerStack {
			parts = append(parts, fmt.Sprintf("%s more at the last step's peak, %s after its release", sizes.IEC(*p), sizes.IEC(*last.PTEBytesPerStack)))
		} else if p := last.PTEBytesPerStack; p != nil && *p > 0 {
			parts = append(parts, fmt.Sprintf("%s more by the last step", sizes.IEC(*p)))
		}
		if len(parts) > 0 {
			out = append(out, fmt.Sprintf("%s: page tables per stack (VmPTE growth over the stack count) %s; %.2f VMAs per stack", s.Strategy.Name, strings.Join(parts, ", "), last.VMAsPerStack))
		}
	}
	return out
}

// goroutineVerdict says what goroutine stacks cost, as what it is: the
// runtime's stack accounting per goroutine, beside VmRSS growth where
// VmRSS grew.
func goroutineVerdict(s probe.StrategyResult) string {
	var parts, rss, notes []string
	// The runtime hands out stack memory in spans of 32 KiB; a step
	// whose total growth is near that says little per goroutine.
	const granule = 32 << 10
	pow2, coarse := true, false
	for _, st := range s.Steps {
		g := st.Go
		if g == nil {
			continue
		}
		if v := g.RuntimeStackBytesPerGoroutine; v != nil {
			parts = append(parts, fmt.Sprintf("%s at %s", sizes.IEC(*v), sizes.IEC(st.DepthBytes)))
			pow2 = pow2 && *v > 0 && *v&(*v-1) == 0
			coarse = coarse || *v*int64(s.Stacks) < 8*granule
		} else {
			pow2 = false
		}
		if v := g.VmRSSGrowthBytesPerGoroutine; v != nil {
			rss = append(rss, fmt.Sprintf("%s at %s", sizes.IEC(*v), sizes.IEC(st.DepthBytes)))
		}
		if g.Note != "" {
			notes = append(notes, fmt.Sprintf("at %s %s", sizes.IEC(st.DepthBytes), g.Note))
		}
	}
	msg := "Go goroutine stacks are not mappings, so residency does not apply"
	if len(parts) > 0 {
		msg += "; the runtime's stack memory grew by " + strings.Join(parts, ", ") + " per goroutine"
	}
	switch {
	case len(parts) == 0:
	case coarse:
		msg += fmt.Sprintf(" (with %d goroutines some steps grew it by less than 8 of its 32 KiB spans, so those figures are coarse)", s.Stacks)
	case pow2:
		msg += " (every size a power of two, as a copying stack that doubles when it overflows gives)"
	}
	if len(rss) > 0 {
		msg += "; VmRSS grew by " + strings.Join(rss, ", ") + " per goroutine"
	}
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes, "; ")
	}
	return msg
}

// WriteCompareEvidence writes a compare run's evidence.md.
func WriteCompareEvidence(w io.Writer, c *probe.Comparison, charts []string) error {
	var b strings.Builder
	cfg := c.Config
	fmt.Fprintf(&b, "# stackprobe evidence: stack strategies side by side\n\n")
	if c.Partial {
		fmt.Fprintf(&b, "> **PARTIAL RUN** — %s. The figures below are real measurements, but not every strategy ran.\n\n", c.Error)
	}
	fmt.Fprintf(&b, "The same schedule — %s, depths %s in this order — under each stack strategy; stacks of %s (%d bytes), guard %s.\n\n",
		plural(cfg.Tasks, "task"), depthList(cfg.Depths), sizes.IEC(cfg.StackBytes), cfg.StackBytes, cfg.Guard)
	fmt.Fprintf(&b, "Command, run %s (%.2f s):\n\n    %s\n\n## Verdict\n\n", c.Started.Format("2006-01-02 15:04:05 UTC"), c.Seconds, c.Command)
	for _, v := range CompareVerdicts(c) {
		fmt.Fprintf(&b, "- %s.\n", v)
	}
	b.WriteString("\n## Environment\n\n")
	writeEnvTable(&b, c.Environment)
	fmt.Fprintf(&b, "\n## Results\n\nmmap strategies: resident bytes per stack after each step (read with %s), the peak before a release in parentheses when it differs; page tables are the growth of the process's VmPTE from the reservation over the stack count (at the peak in parentheses when a release freed some); minor faults and touch time are per page the step touched (stacks × ceil(depth/page)). A blank cell was not measured.\n\n", methodWords(compareMethod(c)))
	b.WriteString("| strategy | step | depth | resident per stack | AnonHugePages per stack | page tables per stack | VMAs per stack | minor faults per touched page | touch time per page |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var gos []probe.StrategyResult
	multi := len(c.Sizes()) > 1
	for _, s := range c.Strategies {
		name := string(s.Strategy.Name)
		if multi && s.StackBytes > 0 {
			name += ", " + sizes.IEC(s.StackBytes) + " stacks"
		}
		if s.Skipped != "" {
			fmt.Fprintf(&b, "| %s | — | — | skipped: %s | | | | | |\n", name, s.Skipped)
			continue
		}
		if s.Strategy.GoStacks {
			gos = append(gos, s)
			continue
		}
		for i, st := range s.Steps {
			if st.Overflow {
				fmt.Fprintf(&b, "| %s | %d | %s | overflow: does not fit above the guard, not run | | | | | |\n", name, i+1, sizes.IEC(st.DepthBytes))
				continue
			}
			res := span(st.RSSBytesMin, st.RSSBytesMax)
			if st.PeakRSSBytesMax != st.RSSBytesMax {
				res += " (peak " + sizes.IEC(st.PeakRSSBytesMax) + ")"
			}
			pte := optSize(st.PTEBytesPerStack)
			if p := st.PeakPTEBytesPerStack; p != nil && (st.PTEBytesPerStack == nil || *p != *st.PTEBytesPerStack) {
				pte += " (peak " + sizes.IEC(*p) + ")"
			}
			faults := ""
			if f := st.MinorFaultsPerPage; f != nil {
				faults = fmt.Sprintf("%.2f", *f)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %.2f | %s | %s |\n", name, i+1, sizes.IEC(st.DepthBytes), res,
				optSize(st.AnonHugeBytesPerStack), pte, st.VMAsPerStack, faults, micros(st.TouchNsPerPage))
		}
	}
	for _, s := range gos {
		b.WriteString("\nGo goroutine stacks are heap memory the runtime copies to a doubled stack on overflow: no mapping, so no residency, VMAs or page tables per stack. What was measured per goroutine:\n\n")
		b.WriteString("| step | depth | runtime stack bytes per goroutine | VmRSS growth per goroutine | start and recurse, per goroutine | note |\n|---:|---:|---:|---:|---:|---|\n")
		for i, st := range s.Steps {
			if g := st.Go; g != nil {
				fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, sizes.IEC(st.DepthBytes), optSize(g.RuntimeStackBytesPerGoroutine),
					optSize(g.VmRSSGrowthBytesPerGoroutine), micros(float64(g.SpawnNsPerGoroutine)), g.Note)
			}
		}
	}
	if len(c.Guards) > 0 {
		b.WriteString("\n## Guard pages\n\nLazy 4 KiB stacks used to the first depth, under each guard mode: what the guard adds per stack.\n\n")
		b.WriteString("| guard | VMAs per stack | page tables per stack (by address) | VmPTE growth per stack (process) | resident per stack |\n|---|---:|---:|---:|---:|\n")
		for _, g := range c.Guards {
			if g.Skipped != "" {
				fmt.Fprintf(&b, "| %s | skipped: %s | | | |\n", g.Guard, g.Skipped)
				continue
			}
			fmt.Fprintf(&b, "| %s | %.3f | %s | %s | %s |\n", g.Guard, g.VMAsPerStack, optSize(g.PTEBytesPerStack), sizes.IEC(g.VmPTEDeltaBytesPerStack), sizes.IEC(g.RSSBytesPerStack))
		}
	}
	b.WriteString("\nStrategies (reserve time per stack in parentheses; for MAP_POPULATE it includes backing every page):\n\n")
	for _, s := range c.Strategies {
		fmt.Fprintf(&b, "- `%s`: %s", s.Strategy.Name, s.Strategy.Label)
		if !s.Strategy.GoStacks && s.Skipped == "" {
			fmt.Fprintf(&b, " (%s", micros(float64(s.ReserveNsPerStack)))
			if p := s.ReservePTEBytesPerStack; p != nil && *p > 0 {
				fmt.Fprintf(&b, ", page tables %s", sizes.IEC(*p))
			}
			if f := s.ReserveMinorFaultsPerStack; f != nil && *f >= 1 {
				fmt.Fprintf(&b, ", %.0f minor faults", *f)
			}
			b.WriteString(")")
		}
		b.WriteString("\n")
	}
	writeCharts(&b, charts)
	b.WriteString("Raw data: `summary.json`.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteCompareText writes the compare run's stdout summary.
func WriteCompareText(w io.Writer, c *probe.Comparison, outDir string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tstack\tstep\tdepth\tresident/stack\tpeak/stack\tPTE/stack\tVMAs/stack\ttouch/page\t")
	for _, s := range c.Strategies {
		stack := "-"
		if s.StackBytes > 0 {
			stack = sizes.IEC(s.StackBytes)
		}
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tskipped\t\t\t\t\t\n", s.Strategy.Name, stack)
			continue
		}
		for i, st := range s.Steps {
			if st.Overflow {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\toverflow\t\t\t\t\t\n", s.Strategy.Name, stack, i+1, sizes.IEC(st.DepthBytes))
				continue
			}
			if g := st.Go; g != nil {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\truntime %s\t\t\t\t\t\n", s.Strategy.Name, stack, i+1, sizes.IEC(st.DepthBytes), optSize(g.RuntimeStackBytesPerGoroutine))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%s\t\n", s.Strategy.Name, stack, i+1, sizes.IEC(st.DepthBytes),
				sizes.IEC(st.RSSBytesMean), sizes.IEC(st.PeakRSSBytesMax), optSize(st.PTEBytesPerStack), st.VMAsPerStack, micros(st.TouchNsPerPage))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeConclusion(w, CompareVerdicts(c), c.Partial, c.Error, outDir, "evidence.md, summary.json, charts")
}

// span is one size, or "lo–hi" when they differ.
func span(lo, hi int64) string {
	if lo == hi {
		return sizes.IEC(lo)
	}
	return sizes.IEC(lo) + "–" + sizes.IEC(hi)
}

// compareMethod is the residency method compare's runs read with: the one
// a strategy's residency map records (after any fallback), else the one
// --residency asked for.
func compareMethod(c *probe.Comparison) string {
	for _, s := range c.Strategies {
		if s.Residency != nil && s.Residency.Method != "" {
			return s.Residency.Method
		}
	}
	return c.Config.Residency.String()
}

// optSize is a measured size, or "" when it was not measured.
func optSize(p *int64) string {
	if p == nil {
		return ""
	}
	return sizes.IEC(*p)
}

// micros formats nanoseconds as microseconds with a unit, to three
// significant places ("2.41 µs", "5553 µs").
func micros(ns float64) string {
	us := ns / 1e3
	switch {
	case us >= 100:
		return fmt.Sprintf("%.0f µs", us)
	case us >= 10:
		return fmt.Sprintf("%.1f µs", us)
	default:
		return fmt.Sprintf("%.2f µs", us)
	}
}

func depthList(d []int64) string {
	parts := make([]string, len(d))
	for i, v := range d {
		parts[i] = sizes.IEC(v)
	}
	return strings.Join(parts, ", ")
}
