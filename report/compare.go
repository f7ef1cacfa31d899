package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"stackprobe/probe"
	"stackprobe/sizes"
)

// Chart file names of a compare run.
const (
	ChartStrategies = "strategies.png"
	ChartResidency  = "residency.png"
)

// CompareVerdicts computes the comparison's conclusions from its numbers.
func CompareVerdicts(c *probe.Comparison) []string {
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
		out = append(out, fmt.Sprintf("THP-eligible stacks held %s..%s per stack at the first step (depth %s, claim %s; AnonHugePages %s per stack; %d of %d stack tops 2 MiB aligned)",
			sizes.IEC(st.RSSBytesMin), sizes.IEC(st.RSSBytesMax), sizes.IEC(st.DepthBytes), sizes.IEC(claim),
			sizes.IEC(st.AnonHugeBytesPerStack), s.TopsAligned2M, s.Stacks))
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
		out = append(out, msg+fmt.Sprintf("; reserving one took %v", nanos(s.ReserveNsPerStack)))
	}
	if s, ok := by[probe.StrategyGoroutines]; ok && len(s.Steps) > 0 {
		var parts []string
		// The runtime hands out stack memory in spans of 32 KiB; a step
		// whose total growth is near that says little per goroutine.
		const granule = 32 << 10
		pow2, coarse := true, false
		for _, st := range s.Steps {
			parts = append(parts, fmt.Sprintf("%s at %s", sizes.IEC(st.RSSBytesMean), sizes.IEC(st.DepthBytes)))
			pow2 = pow2 && st.RSSBytesMean > 0 && st.RSSBytesMean&(st.RSSBytesMean-1) == 0
			coarse = coarse || st.RSSBytesMean*int64(s.Stacks) < 8*granule
		}
		msg := "Go goroutine stacks took " + strings.Join(parts, ", ") + " per goroutine (runtime stack memory)"
		switch {
		case coarse:
			msg += fmt.Sprintf("; with %d goroutines some steps grew the runtime's stack memory by less than 8 of its 32 KiB spans, so their per-goroutine figures are coarse", s.Stacks)
		case pow2:
			msg += ": every size a power of two, as a copying stack that doubles when it overflows gives"
		}
		out = append(out, msg)
	}
	if len(c.Guards) > 0 {
		var parts []string
		for _, g := range c.Guards {
			if g.Skipped == "" {
				parts = append(parts, fmt.Sprintf("%s %.2f VMAs and %s of page tables", g.Guard, g.VMAsPerStack, sizes.IEC(g.PTEBytesPerStack)))
			}
		}
		out = append(out, "per stack, guard "+strings.Join(parts, "; ")+" (page tables are not in Rss; vm.max_map_count counts VMAs)")
	}
	for _, s := range c.Strategies {
		if len(s.Steps) == 0 {
			continue
		}
		last := s.Steps[len(s.Steps)-1]
		if last.PTEBytesPerStack > 0 {
			out = append(out, fmt.Sprintf("%s: page tables %s per stack (VmPTE), %.2f VMAs per stack", s.Strategy.Name, sizes.IEC(last.PTEBytesPerStack), last.VMAsPerStack))
		}
	}
	return out
}

// WriteCompareEvidence writes a compare run's evidence.md.
func WriteCompareEvidence(w io.Writer, c *probe.Comparison, charts []string) error {
	var b strings.Builder
	cfg := c.Config
	fmt.Fprintf(&b, "# stackprobe evidence: stack strategies side by side\n\n")
	if c.Partial {
		fmt.Fprintf(&b, "> **PARTIAL RUN** — %s. The figures below are real measurements, but not every strategy ran.\n\n", c.Error)
	}
	fmt.Fprintf(&b, "The same schedule — %d tasks, depths %s in this order — under each stack strategy; stacks of %s (%d bytes), guard %s.\n\n",
		cfg.Tasks, depthList(cfg.Depths), sizes.IEC(cfg.StackBytes), cfg.StackBytes, cfg.Guard)
	fmt.Fprintf(&b, "Command, run %s (%.2f s):\n\n    %s\n\n## Verdict\n\n", c.Started.Format("2006-01-02 15:04:05 UTC"), c.Seconds, c.Command)
	for _, v := range CompareVerdicts(c) {
		fmt.Fprintf(&b, "- %s.\n", v)
	}
	b.WriteString("\n## Environment\n\n")
	writeEnvTable(&b, c.Environment)
	b.WriteString("\n## Results\n\nResident bytes per stack after each step (mincore; for goroutines the runtime's stack memory per goroutine), the peak before a release in parentheses when it differs.\n\n")
	b.WriteString("| strategy | step | depth (bytes) | resident per stack | AnonHugePages per stack | page tables per stack | VMAs per stack | minor faults per page | ns per page |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range c.Strategies {
		if s.Skipped != "" {
			fmt.Fprintf(&b, "| %s | — | — | skipped: %s | | | | | |\n", s.Strategy.Name, s.Skipped)
			continue
		}
		for i, st := range s.Steps {
			res := sizes.IEC(st.RSSBytesMean)
			if st.RSSBytesMin != st.RSSBytesMax {
				res = sizes.IEC(st.RSSBytesMin) + "–" + sizes.IEC(st.RSSBytesMax)
			}
			if st.PeakRSSBytesMax != st.RSSBytesMax {
				res += " (" + sizes.IEC(st.PeakRSSBytesMax) + ")"
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %.2f | %.2f | %.0f |\n", s.Strategy.Name, i+1, st.DepthBytes, res,
				sizes.IEC(st.AnonHugeBytesPerStack), sizes.IEC(st.PTEBytesPerStack), st.VMAsPerStack, st.MinorFaultsPerPage, st.NsPerPage)
		}
	}
	if len(c.Guards) > 0 {
		b.WriteString("\n## Guard pages\n\nLazy 4 KiB stacks used to the first depth, under each guard mode: what the guard adds per stack.\n\n")
		b.WriteString("| guard | VMAs per stack | page tables per stack | resident per stack |\n|---|---:|---:|---:|\n")
		for _, g := range c.Guards {
			if g.Skipped != "" {
				fmt.Fprintf(&b, "| %s | skipped: %s | | |\n", g.Guard, g.Skipped)
				continue
			}
			fmt.Fprintf(&b, "| %s | %.3f | %s | %s |\n", g.Guard, g.VMAsPerStack, sizes.IEC(g.PTEBytesPerStack), sizes.IEC(g.RSSBytesPerStack))
		}
	}
	b.WriteString("\nStrategies (reserve time per stack in parentheses; for MAP_POPULATE it includes backing every page):\n\n")
	for _, s := range c.Strategies {
		fmt.Fprintf(&b, "- `%s`: %s", s.Strategy.Name, s.Strategy.Label)
		if !s.Strategy.GoStacks && s.Skipped == "" {
			fmt.Fprintf(&b, " (%v)", nanos(s.ReserveNsPerStack))
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
	fmt.Fprintln(tw, "strategy\tstep\tdepth\tresident/stack\tpeak/stack\tPTE/stack\tVMAs/stack\tns/page\t")
	for _, s := range c.Strategies {
		if s.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t-\tskipped\t\t\t\t\t\n", s.Strategy.Name)
			continue
		}
		for i, st := range s.Steps {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.2f\t%.0f\t\n", s.Strategy.Name, i+1, sizes.IEC(st.DepthBytes),
				sizes.IEC(st.RSSBytesMean), sizes.IEC(st.PeakRSSBytesMax), sizes.IEC(st.PTEBytesPerStack), st.VMAsPerStack, st.NsPerPage)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeConclusion(w, CompareVerdicts(c), c.Partial, c.Error, outDir, "evidence.md, summary.json, charts")
}

func depthList(d []int64) string {
	parts := make([]string, len(d))
	for i, v := range d {
		parts[i] = sizes.IEC(v)
	}
	return strings.Join(parts, ", ")
}
