package main

import (
	"context"
	"errors"
	"flag"
	"io"

	"gonum.org/v1/plot"

	"stackprobe/mmapstack"
	"stackprobe/plots"
	"stackprobe/probe"
	"stackprobe/report"
)

const compareHelp = `stackprobe compare runs one touch schedule under every stack strategy in
turn and puts them side by side: lazy mmap with 4 KiB pages, lazy mmap
eligible for transparent huge pages, lazy mmap released after each step with
MADV_DONTNEED and with MADV_FREE, eager mmap (MAP_POPULATE), and Go's own
goroutine stacks recursing through real frames. For each step it reports
resident bytes per stack, page tables, VMAs, minor faults and time per page,
and writes strategies.png, residency.png, summary.json and evidence.md.
The strategies set --thp, --map-stack and --release themselves.

Usage:
  stackprobe compare [flags]

Flags:
`

// compareFlags are compare's flags. Its defaults go deep then return
// shallow (the high-water mark) and start with a 1-byte touch (the 2 MiB
// huge-page step); 100 MiB is a multiple of 2 MiB, so stack tops are
// usually 2 MiB aligned. The strategies set --thp, --map-stack and
// --release themselves, so compare does not take them.
func compareFlags(o *options) *flagSet {
	*o = runDefaults()
	o.workload, o.stack, o.depth, o.tasks, o.out = string(probe.WorkloadTouch), "100MiB", "1B,64KiB,1MiB,8MiB,4KiB", 16, "out-compare"
	fs := newFlagSet("stackprobe compare")
	fs.StringVar(&o.workload, "workload", o.workload, "what runs on the stacks: touch (the only workload compare runs today)")
	o.stackFlags(fs)
	o.outputFlags(fs, false)
	return fs
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := compareFlags(&o)
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(stdout, compareHelp, "")
			return nil
		}
		return err
	}
	if o.workload != string(probe.WorkloadTouch) {
		return usagef("--workload %q: compare runs the touch schedule only", o.workload)
	}
	cfg := probe.Config{Workload: probe.WorkloadTouch, THP: mmapstack.THPNever, MapStack: true}
	if err := o.stackConfig(&cfg); err != nil {
		return err
	}
	if err := o.outputConfig(); err != nil {
		return err
	}
	cfg.KeepTopBytes = int64(mmapstack.PageSize())
	// The guard comparison reserves with every guard mode; mprotect's two
	// VMAs per stack bind first. Compare skips eager stacks that would not
	// fit in memory itself, so the lazy strategies' needs are checked.
	need := needsOf(cfg)
	need.guard = mmapstack.GuardMprotect
	if err := checkRun(need, o); err != nil {
		return err
	}

	ss, err := beginSession(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer ss.Close()
	cr := probe.NewCompare(cfg, probe.Env{Command: commandLine(append([]string{"compare"}, args...))})
	stopProgress := showProgress(stderr, o.quiet, "strategies", cr, 0)
	c, runErr := cr.Measure(ss.ctx)
	stopProgress()
	if c == nil {
		return withHint(runErr)
	}
	writeCompare(ss, c)
	return ss.conclude(stdout, c, func(w io.Writer) error { return report.WriteCompareText(w, c, ss.folder.Out()) }, withHint(runErr))
}

func writeCompare(ss *session, c *probe.Comparison) {
	ss.chart(report.ChartStrategies, func() (*plot.Plot, error) { return plots.Strategies(c) })
	ss.chart(report.ChartResidency, func() (*plot.Plot, error) { return plots.ResidencyCompare(c) })
	if err := ss.writeErr(); err != nil && !c.Partial {
		c.Partial, c.Error = true, err.Error()
	}
	ss.file(report.SummaryFile, func(w io.Writer) error { return report.WriteJSON(w, c) })
	ss.file(report.EvidenceFile, func(w io.Writer) error { return report.WriteCompareEvidence(w, c, ss.charts) })
	ss.commit(c.Partial, func(w io.Writer, links []string) error { return report.WriteCompareEvidence(w, c, links) })
}
