package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"syscall"

	"gonum.org/v1/plot"

	"stackprobe/plots"
	"stackprobe/probe"
	"stackprobe/report"
	"stackprobe/sizes"
)

// interrupted is the cause of a run cancelled by a signal.
type interrupted struct{ sig os.Signal }

func (e *interrupted) Error() string { return "interrupted by " + e.sig.String() }

// exitCode maps run's error to the process exit status, printing it once.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "stackprobe: %v\n", err)
	var ue *usageError
	var in *interrupted
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &in):
		if in.sig == syscall.SIGTERM {
			return 143
		}
		return 130
	}
	return 1
}

const helpProse = `stackprobe reserves large coroutine stacks with mmap(MAP_NORESERVE), uses
them to the depths you give while a workload runs, and measures how much
physical memory each stack really holds: per page from the page tables
(PAGEMAP_SCAN on /proc/PID/pagemap), cross-checked against /proc/self/smaps
and mincore(2), with page tables and VMA counts beside. It writes charts, raw
data and an evidence.md whose first lines answer what a coroutine costs, how
many fit and what binds. stackprobe watch points the same instruments at the
thread and fiber stacks of another running program.

The default workload is the two-thread epoll ping-pong: clients and their
echoing peers are coroutines, each owning one reserved stack that it uses to
the scheduled depth per message. --workload=touch runs a plain depth sweep.

Usage:
  stackprobe [flags]
  stackprobe compare [flags]    the same schedule under every stack strategy
  stackprobe limits [flags]     how many stacks this machine can reserve
  stackprobe watch [flags] (--pid=PID | -- CMD)  the stacks of another program
  stackprobe version

Flags:
`

const helpExamples = `
Sizes: 4096, 4097B, 64KB (64·10^3), 64KiB (64·2^10), 100MB, 100MiB.
Depth lists: 4KB,64KB,1MB   4KiB..1MiB/16 (16 evenly spaced)   4KiB..64MiB*2 (doubling).

Examples:
  stackprobe --stack=100MB --depth=4KB,64KB,1MB
  stackprobe --workload=touch --stack=100MiB --depth=1B,4KiB,4097B,64KiB,1MiB,8MiB --tasks=1000 --thp=nohuge
  stackprobe --workload=touch --stack=100MiB --depth=1B --thp=huge --map-stack=false
  stackprobe --workload=touch --depth=8MiB,4KiB --release=dontneed --out=hwm --force
  stackprobe --workload=touch --touch=frames --depth=4KiB,64KiB,1MiB,8MiB --tasks=16
  stackprobe --workload=touch --depth=1MiB --check-guard --notes=docs/stacks.md
  stackprobe compare --stack=100MiB --depth=1B,64KiB,1MiB,8MiB,4KiB --tasks=16
  stackprobe limits --stack=100MB --guard=mprotect --verify=40000

Exit status: 0 done, 1 runtime failure, 2 bad input, 130/143 interrupted
(SIGINT/SIGTERM; outputs are still written, marked partial).
`

// runFlags are the main command's flags.
func runFlags(o *options) *flagSet {
	*o = runDefaults()
	fs := newFlagSet("stackprobe")
	o.stackFlags(fs)
	o.modeFlags(fs)
	o.pingpongFlags(fs)
	o.outputFlags(fs, true)
	return fs
}

// run is the whole command: parse, check, run, write, report. It returns
// a *usageError for bad input (before anything is reserved or written).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			if len(args) > 1 {
				return usagef("version takes no arguments (got %q)", args[1])
			}
			return printVersion(stdout)
		case "limits":
			return runLimits(ctx, args[1:], stdout)
		case "compare":
			return runCompare(ctx, args[1:], stdout, stderr)
		case "watch":
			return runWatch(ctx, args[1:], stdout, stderr)
		}
	}
	var o options
	fs := runFlags(&o)
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(stdout, helpProse, helpExamples)
			return nil
		}
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if err := checkRun(needsOf(cfg), o); err != nil {
		return err
	}

	ss, err := beginSession(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer ss.Close()
	rec, err := report.NewCSV(ss.dir())
	if err != nil {
		return err
	}
	defer rec.Abort()
	r, err := probe.Start(ss.ctx, cfg, probe.Env{Command: commandLine(args), Recorder: rec})
	if err != nil {
		return withHint(err)
	}
	defer r.Close()
	if !o.quiet {
		fmt.Fprintf(stderr, "stackprobe: started: %s; results go to %s\n", workOf(cfg), ss.folder.Out())
	}
	stopProgress := showProgress(stderr, o.quiet, "measuring", r, cfg.Watchdog)
	res, runErr := r.Measure(ss.ctx)
	stopProgress()
	if _, err := r.Cost(); err != nil && !o.quiet {
		fmt.Fprintf(stderr, "stackprobe: per-coroutine cost not measured: %v\n", err)
	}
	// The outputs are written, and the run lingers, while the stacks are
	// still mapped, so that pmap -X can look at them meanwhile.
	writeOutputs(ss, res, rec)
	ss.linger()
	return ss.conclude(stdout, res.Summary, func(w io.Writer) error { return report.WriteText(w, res, ss.folder.Out()) }, withHint(runErr))
}

// workOf says in a few words what cfg's run will do.
func workOf(cfg probe.Config) string {
	var deepest int64
	for _, d := range cfg.Depths {
		deepest = max(deepest, d)
	}
	depths := fmt.Sprintf("%d depths up to %s", len(cfg.Depths), sizes.IEC(deepest))
	if len(cfg.Depths) == 1 {
		depths = "depth " + sizes.IEC(deepest)
	}
	w := fmt.Sprintf("%d stacks of %s, %s", cfg.Stacks(), sizes.IEC(cfg.StackBytes), depths)
	if cfg.Workload == probe.WorkloadPingPong {
		return fmt.Sprintf("ping-pong over %s, %d clients × %d messages, %s, watchdog %v", cfg.Transport, cfg.Tasks, cfg.Messages, w, cfg.Watchdog)
	}
	return "touch sweep, " + w
}

// writeOutputs writes every file of the result folder, puts it in place,
// and writes the section of the design note when --notes is set. A chart
// that cannot be drawn marks the run partial, saying why, before the
// summary is written.
func writeOutputs(ss *session, res *probe.Result, rec *report.CSV) {
	if err := rec.Close(); err != nil {
		ss.fail(err)
	} else {
		ss.wrote(report.CSVFiles()...)
	}
	if len(res.Rows()) > 0 {
		ss.chart(report.ChartRSSVsDepth, func() (*plot.Plot, error) { return plots.RSSVsDepth(res) })
	}
	if len(res.Series.Timeline) > 0 {
		ss.chart(report.ChartRSSOverTime, func() (*plot.Plot, error) { return plots.RSSOverTime(res) })
	}
	if rm := res.Series.Residency; rm != nil {
		ss.chart(report.ChartResidency, func() (*plot.Plot, error) {
			return plots.Residency(rm, fmt.Sprintf("Resident pages at the top of %d of %d stacks", len(rm.Rows), res.Config.Stacks()))
		})
	}
	if err := ss.writeErr(); err != nil && !res.Partial {
		res.Partial, res.Error = true, err.Error()
	}
	ss.file(report.SummaryFile, func(w io.Writer) error { return report.WriteJSON(w, res.Summary) })
	ss.file(report.EvidenceFile, func(w io.Writer) error { return report.WriteEvidence(w, res, ss.charts) })
	ss.commit(res.Partial, func(w io.Writer, links []string) error { return report.WriteEvidence(w, res, links) })
}

// commandLine is the command as a shell would need it typed: any argument
// with a character outside a conservative safe set is single-quoted.
func commandLine(args []string) string {
	quoted := make([]string, 0, len(args)+1)
	quoted = append(quoted, "stackprobe")
	for _, a := range args {
		if a == "" || strings.IndexFunc(a, unsafeInShell) >= 0 {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted = append(quoted, a)
	}
	return strings.Join(quoted, " ")
}

func unsafeInShell(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_=.,/:@%+", r)
}

func printVersion(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		_, err := fmt.Fprintln(w, "stackprobe (no build info)")
		return err
	}
	rev, dirty := "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	_, err := fmt.Fprintf(w, "stackprobe %s %s%s %s\n", bi.Main.Version, rev, dirty, bi.GoVersion)
	return err
}
