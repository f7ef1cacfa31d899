package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

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

// compareDefaults go deep then return shallow (the high-water mark) and
// start with a 1-byte touch (the 2 MiB huge-page step); 100 MiB is a
// multiple of 2 MiB, so stack tops are usually 2 MiB aligned.
func compareDefaults() [][2]string {
	return [][2]string{
		{"workload", "touch"}, {"stack", "100MiB"}, {"depth", "1B,64KiB,1MiB,8MiB,4KiB"}, {"tasks", "16"}, {"out", "out-compare"},
	}
}

// compareIgnores are the main command's flags that compare does not use:
// the strategies set the stack modes themselves, and there is no IO.
func compareIgnores(name string) bool {
	switch name {
	case "thp", "map-stack", "release", "keep-top", "linger", "check-guard",
		"transport", "messages", "pattern", "seed", "interval", "watchdog":
		return true
	}
	return false
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet(&o)
	for _, kv := range compareDefaults() {
		if err := fs.Set(kv[0], kv[1]); err != nil {
			return err
		}
		fs.Lookup(kv[0]).DefValue = kv[1]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, compareHelp)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usagef("compare: %s", flagError(err))
	}
	if fs.NArg() > 0 {
		return usagef("compare: unexpected argument %q", fs.Arg(0))
	}
	var ignored error
	fs.Visit(func(f *flag.Flag) {
		if ignored == nil && compareIgnores(f.Name) {
			ignored = usagef("--%s: compare does not take it (its strategies set the stack modes; see compare --help)", f.Name)
		}
	})
	if ignored != nil {
		return ignored
	}
	if o.workload != string(probe.WorkloadTouch) {
		return usagef("--workload: compare runs the touch schedule only")
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	// The guard comparison reserves with every guard mode; mprotect's two
	// VMAs per stack bind first.
	if err := checkTaskLimits(int64(cfg.Tasks), cfg.StackBytes, mmapstack.GuardMprotect, false, cfg.Tasks); err != nil {
		return err
	}

	ctx, end, err := begin(ctx, o.out, stderr)
	if err != nil {
		return err
	}
	defer end()
	prog := newProgress(stderr, o.quiet, "strategies")
	c, runErr := probe.Compare(ctx, cfg, probe.Env{Command: commandLine(append([]string{"compare"}, args...)), Progress: prog.update})
	prog.finish()
	if c == nil {
		return runErr
	}
	writeErr := writeCompare(o.out, o.notes, c)
	return conclude(ctx, o, stdout, c, func(w io.Writer) error { return report.WriteCompareText(w, c, o.out) }, runErr, writeErr)
}

func writeCompare(dir, notes string, c *probe.Comparison) error {
	var errs []error
	var charts []string
	for _, ch := range []struct {
		name string
		draw func() (*plot.Plot, error)
	}{
		{report.ChartStrategies, func() (*plot.Plot, error) { return plots.Strategies(c) }},
		{report.ChartResidency, func() (*plot.Plot, error) { return plots.ResidencyCompare(c) }},
	} {
		if err := saveChart(filepath.Join(dir, ch.name), ch.draw); err != nil {
			errs = append(errs, err)
			continue
		}
		charts = append(charts, ch.name)
	}
	if err := report.WriteFile(filepath.Join(dir, report.SummaryFile), func(w io.Writer) error { return report.WriteJSON(w, c) }); err != nil {
		errs = append(errs, err)
	}
	if err := report.WriteFile(filepath.Join(dir, report.EvidenceFile), func(w io.Writer) error { return report.WriteCompareEvidence(w, c, charts) }); err != nil {
		errs = append(errs, err)
	}
	if notes != "" {
		errs = append(errs, updateNotes(notes, dir, charts, func(w io.Writer, links []string) error {
			return report.WriteCompareEvidence(w, c, links)
		}))
	}
	errs = append(errs, report.RemoveStale(dir, append([]string{report.SummaryFile, report.EvidenceFile}, charts...)))
	return errors.Join(errs...)
}
