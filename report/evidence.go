package report

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/sizes"
)

// File names of a result folder.
const (
	SummaryFile  = "summary.json"
	EvidenceFile = "evidence.md"

	ChartRSSVsDepth  = "rss-vs-depth.png"
	ChartRSSOverTime = "rss-over-time.png"
)

// WriteEvidence writes evidence.md: verdict, environment, the exact command,
// the per-depth table and links to the charts in charts (file names relative
// to the evidence file).
func WriteEvidence(w io.Writer, r *probe.Result, charts []string) error {
	c := r.Config
	e := r.Environment
	var b strings.Builder
	fmt.Fprintf(&b, "# stackprobe evidence: %d stacks of %s, %s workload\n\n", c.Stacks(), sizes.IEC(c.StackBytes), c.Workload)
	if r.Partial {
		fmt.Fprintf(&b, "> **PARTIAL RUN** — %s. The figures below are real measurements, but the schedule did not complete.\n\n", r.Error)
	}
	if err := WriteAnswer(&b, r); err != nil {
		return err
	}
	fmt.Fprintf(&b, "Claim under test: a stack reserved with `mmap(MAP_NORESERVE)` costs physical memory only for the pages it touches, growing in %s steps.\n\n", sizes.IEC(int64(r.PageSize)))
	fmt.Fprintf(&b, "Command, run %s (%.2f s):\n\n    %s\n\n", r.Started.Format("2006-01-02 15:04:05 UTC"), r.Seconds, r.Command)
	b.WriteString("## Verdict\n\n")
	for _, v := range Verdicts(r) {
		fmt.Fprintf(&b, "- %s.\n", v)
	}
	if len(r.GuardChecks) > 0 {
		b.WriteString("\n## Guard check\n\nOne byte written just below the usable bottom of a stack that has another stack mapped directly beneath it:\n\n")
		b.WriteString("| guard | target | faulted | fault address | stack below corrupted | what happened |\n|---|---|---|---|---|---|\n")
		for _, g := range r.GuardChecks {
			fmt.Fprintf(&b, "| %s | %s | %v | %s | %v | %s |\n", g.Guard, g.Target, g.Faulted, orDash(g.FaultAddr), g.Corrupted, g.Detail)
		}
	}
	if p := r.PingPong; p != nil {
		b.WriteString("\n## Workload\n\n")
		fmt.Fprintf(&b, "Two-thread epoll ping-pong over %s: %d clients × %d one-byte messages, %d round trips in %.3f s",
			p.Transport, p.Clients, p.MessagesPerClient, p.RoundTrips, p.Seconds)
		if p.RoundTripsPerSecond != nil {
			fmt.Fprintf(&b, " (%.0f round trips/s)", *p.RoundTripsPerSecond)
		}
		fmt.Fprintf(&b, ", %d errors; ", p.Errors)
		if l := p.LatencyNanos; l != nil {
			fmt.Fprintf(&b, "latency p50 %v, p99 %v, max %v.", nanos(l.P50), nanos(l.P99), nanos(l.Max))
		} else {
			b.WriteString("no round trip completed, so there is no latency.")
		}
		fmt.Fprintf(&b, " The sampler took %d samples, one per %v on average (interval %v); each took %v on average (max %v).\n",
			p.Sampler.Samples, observedInterval(p), c.Interval, nanos(p.Sampler.MeanCostNs), nanos(p.Sampler.MaxCostNs))
	}
	b.WriteString("\n## Environment\n\n")
	writeEnvTable(&b, e)
	fmt.Fprintf(&b, "| stacks | %d × %d bytes (%d pages), guard %s (%d bytes), thp %s, map_stack %v, release %s |\n",
		c.Stacks(), c.StackBytes, c.StackBytes/int64(r.PageSize), c.Guard, c.GuardBytes, c.THP, c.MapStack, c.Release)
	fmt.Fprintf(&b, "\n## Results\n\nPer-stack resident bytes (memory held, shared zero page excluded) come from %s over each whole mapping; smaps and a second method are the cross-checks (see the verdict). VmPTE is the whole process's page tables (not per stack).\n\n", methodWords(r.Residency.Method))
	page := int64(r.PageSize)
	if c.Release != mmapstack.ReleaseNone && r.PingPong == nil {
		// Peak (right after the touch, where the claim is judged) and
		// after the release, side by side.
		b.WriteString("| depth (bytes) | expected at peak (claim) | peak per stack | matched at peak | VmPTE at peak (process) | expected after release | after release per stack | matched after release | VmPTE after release (process) | AnonHugePages total | VMAs | smaps |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, d := range r.Rows() {
			peak, peakPTE := "", ""
			if d.Step != nil {
				peak = span(d.Step.PeakRSSBytesMin, d.Step.PeakRSSBytesMax)
				if d.Step.PeakVmPTEBytes > 0 {
					peakPTE = sizes.IEC(int64(d.Step.PeakVmPTEBytes))
				}
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %d/%d | %s | %s | %s | %d/%d | %s | %s | %d | %s |\n",
				d.DepthBytes, sizes.IEC(d.ExpectedRSSBytes), peak, d.Matched, d.Stacks, peakPTE,
				sizes.IEC(d.ExpectedAfterReleaseBytes), span(d.RSSBytesMin, d.RSSBytesMax), d.MatchedAfterRelease, d.Stacks,
				sizes.IEC(int64(d.VmPTEBytes)), hugeWord(d.AnonHugeBytesTotal), d.VMACount, smapsWord(d.Smaps))
		}
	} else {
		b.WriteString("| depth (bytes) | expected (claim) | measured per stack | pages per stack | matched | AnonHugePages total | VmPTE (process) | VMAs | smaps |\n")
		b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, d := range r.Rows() {
			pages := fmt.Sprint(d.RSSBytesMin / page)
			if d.RSSBytesMin != d.RSSBytesMax {
				pages = fmt.Sprintf("%d–%d", d.RSSBytesMin/page, d.RSSBytesMax/page)
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %d/%d | %s | %s | %d | %s |\n",
				d.DepthBytes, sizes.IEC(d.ExpectedRSSBytes), span(d.RSSBytesMin, d.RSSBytesMax),
				pages, d.Matched, d.Stacks, hugeWord(d.AnonHugeBytesTotal),
				sizes.IEC(int64(d.VmPTEBytes)), d.VMACount, smapsWord(d.Smaps))
		}
	}
	fmt.Fprintf(&b, "\nPage tables (VmPTE, process): %s before the stacks, %s with them reserved.\n", sizes.IEC(int64(r.Baseline.VmPTE)), sizes.IEC(int64(r.Reserved.VmPTE)))
	writeCharts(&b, charts)
	b.WriteString("Raw data: `summary.json`, `samples.csv` (one row per stack per sample), `totals.csv` (process totals per sample), `stacks.csv` (addresses).\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// writeEnvTable writes the environment facts as a Markdown table (the
// caller appends rows of its own).
func writeEnvTable(b *strings.Builder, e procread.System) {
	b.WriteString("| fact | value |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(b, "| %s | %s |\n", k, v) }
	row("kernel", e.Kernel)
	row("arch", e.Arch)
	row("page size", fmt.Sprintf("%d bytes", e.PageSize))
	row("THP enabled / defrag", fmt.Sprintf("%s / %s", orDash(e.THPEnabled), orDash(e.THPDefrag)))
	row("khugepaged max_ptes_none", optional(e.THPMaxPtesNone))
	row("vm.overcommit_memory", optional(e.OvercommitMemory))
	row("vm.max_map_count", optional(e.MaxMapCount))
	if e.RlimitAS == nil {
		row("RLIMIT_AS", "unlimited")
	} else {
		row("RLIMIT_AS", fmt.Sprintf("%d bytes", *e.RlimitAS))
	}
	if e.CgroupMemoryMax != nil {
		row("cgroup memory.max", sizes.IEC(int64(*e.CgroupMemoryMax)))
	}
	if len(e.Missing) > 0 {
		row("unreadable", strings.Join(e.Missing, ", "))
	}
}

// writeCharts links the charts, relative to the evidence file.
func writeCharts(b *strings.Builder, charts []string) {
	if len(charts) == 0 {
		return
	}
	b.WriteString("\n## Charts\n\n")
	for _, ch := range charts {
		fmt.Fprintf(b, "![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(ch), ".png"), ch)
	}
}

// observedInterval is the run's duration over its samples: the interval
// the sampler really kept.
func observedInterval(p *probe.PingPongResult) time.Duration {
	if p.Sampler.Samples == 0 {
		return 0
	}
	return time.Duration(p.Seconds / float64(p.Sampler.Samples) * float64(time.Second)).Round(time.Microsecond)
}
