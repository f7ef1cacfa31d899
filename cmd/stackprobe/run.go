package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/plot"

	"stackprobe/plots"
	"stackprobe/probe"
	"stackprobe/report"
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
physical memory each stack really holds: per page with mincore(2),
cross-checked against /proc/self/smaps, with page tables (VmPTE) and VMA
counts beside. It writes charts, raw data and an evidence.md for design notes.

The default workload is the two-thread epoll ping-pong: clients and their
echoing peers are coroutines, each owning one reserved stack that it uses to
the scheduled depth per message. --workload=touch runs a plain depth sweep.

Usage:
  stackprobe [flags]
  stackprobe compare [flags]    the same schedule under every stack strategy
  stackprobe limits [flags]     how many stacks this machine can reserve
  stackprobe version

Flags:
`

const helpExamples = `
Sizes: 4096, 4097B, 64KB (64·10^3), 64KiB (64·2^10), 100MB, 100MiB.
Depth lists: 4KB,64KB,1MB   4KiB..1MiB/16 (16 evenly spaced)   4KiB..64MiB*2 (doubling).

Examples:
  stackprobe --stack=100MB --depth=4KB,64KB,1MB
  stackprobe --workload=touch --stack=100MiB --depth=1B,4KiB,4097B,64KiB,1MiB,8MiB --tasks=1000 --thp=never
  stackprobe --workload=touch --stack=100MiB --depth=1B --thp=always --map-stack=false
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
	if err := checkRun(cfg.Stacks(), cfg.Tasks, cfg.StackBytes, cfg.Guard, cfg.Workload == probe.WorkloadPingPong, o); err != nil {
		return err
	}

	ctx, end, err := begin(ctx, o.out, stderr)
	if err != nil {
		return err
	}
	defer end()
	rec, err := report.NewCSV(o.out)
	if err != nil {
		return err
	}
	defer rec.Abort()
	r, err := probe.Start(ctx, cfg, probe.Env{Command: commandLine(args), Recorder: rec})
	if err != nil {
		return withHint(err)
	}
	defer r.Close()
	stopProgress := showProgress(stderr, o.quiet, "measuring", r)
	res, runErr := r.Measure(ctx)
	stopProgress()
	// The outputs are written, and the run lingers, while the stacks are
	// still mapped, so that pmap -X can look at them meanwhile.
	writeErr := writeOutputs(o.out, o.notes, res, rec)
	if writeErr == nil && o.linger > 0 {
		linger(ctx, o.linger, stderr)
	}
	return conclude(ctx, o, stdout, res.Summary, func(w io.Writer) error { return report.WriteText(w, res, o.out) }, withHint(runErr), writeErr)
}

// conclude prints the summary of a run whose outputs were written (as
// --format says) and returns the error the command exits with: the signal
// that stopped the run, the run's own error, or a failure to write.
func conclude(ctx context.Context, o options, stdout io.Writer, result any, text func(io.Writer) error, runErr, writeErr error) error {
	var in *interrupted
	interruptedBy := errors.As(context.Cause(ctx), &in)
	if writeErr != nil {
		if interruptedBy {
			return errors.Join(in, runErr, writeErr)
		}
		return errors.Join(runErr, writeErr)
	}
	var printErr error
	if o.format == "json" {
		printErr = report.WriteJSON(stdout, result)
	} else {
		printErr = text(stdout)
	}
	if printErr != nil {
		printErr = fmt.Errorf("print summary: %w", printErr)
	}
	switch {
	case runErr != nil && interruptedBy:
		return errors.Join(fmt.Errorf("%w; partial results written to %s", in, o.out), printErr)
	case runErr != nil:
		return errors.Join(fmt.Errorf("%w; partial results written to %s", runErr, o.out), printErr)
	case interruptedBy:
		// The run was complete; the signal came while its outputs were
		// written or while it lingered.
		return errors.Join(fmt.Errorf("%w; the results in %s are complete", in, o.out), printErr)
	}
	return printErr
}

// begin starts a run that writes into out: a signal cancels the returned
// context, and the folder exists. end undoes both (and removes the folder
// if the run left it empty).
func begin(ctx context.Context, out string, stderr io.Writer) (_ context.Context, end func(), err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	stopSignals := watchSignals(cancel, stderr)
	cleanup, err := mkdirOut(out)
	if err != nil {
		stopSignals()
		cancel(nil)
		return nil, nil, err
	}
	return ctx, func() {
		cleanup()
		stopSignals()
		cancel(nil)
	}, nil
}

// mkdirOut creates the result folder. The returned func removes it again
// if it was created here and is still empty: a run that failed before it
// measured anything leaves nothing behind.
func mkdirOut(dir string) (cleanup func(), err error) {
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create --out folder: %w", err)
	}
	if !os.IsNotExist(statErr) {
		return func() {}, nil
	}
	return func() { _ = os.Remove(dir) }, nil // fails, as it should, unless empty
}

// writeOutputs writes every file of the result folder, and the section of
// the design note when notes is set.
func writeOutputs(dir, notes string, res *probe.Result, rec *report.CSV) error {
	var errs []error
	if err := rec.Close(); err != nil {
		errs = append(errs, err)
	}
	var charts []string
	chart := func(name string, draw func() (*plot.Plot, error)) {
		if err := saveChart(filepath.Join(dir, name), draw); err != nil {
			errs = append(errs, err)
			return
		}
		charts = append(charts, name)
	}
	if len(res.Rows()) > 0 {
		chart(report.ChartRSSVsDepth, func() (*plot.Plot, error) { return plots.RSSVsDepth(res) })
	}
	if len(res.Series.Timeline) > 0 {
		chart(report.ChartRSSOverTime, func() (*plot.Plot, error) { return plots.RSSOverTime(res) })
	}
	if rm := res.Series.Residency; rm != nil {
		chart(report.ChartResidency, func() (*plot.Plot, error) {
			return plots.Residency(rm, fmt.Sprintf("Resident pages at the top of %d of %d stacks", len(rm.Rows), res.Config.Stacks()))
		})
	}
	if err := report.WriteFile(filepath.Join(dir, report.SummaryFile), func(w io.Writer) error { return report.WriteJSON(w, res.Summary) }); err != nil {
		errs = append(errs, err)
	}
	if err := report.WriteFile(filepath.Join(dir, report.EvidenceFile), func(w io.Writer) error { return report.WriteEvidence(w, res, charts) }); err != nil {
		errs = append(errs, err)
	}
	if notes != "" {
		errs = append(errs, updateNotes(notes, dir, charts, func(w io.Writer, links []string) error { return report.WriteEvidence(w, res, links) }))
	}
	written := append(append([]string{report.SummaryFile, report.EvidenceFile}, report.CSVFiles()...), charts...)
	errs = append(errs, report.RemoveStale(dir, written))
	return errors.Join(errs...)
}

// updateNotes writes the evidence section into the design note, with chart
// links relative to it.
func updateNotes(notes, dir string, charts []string, write func(w io.Writer, links []string) error) error {
	links, err := report.ChartLinks(notes, dir, charts)
	if err != nil {
		return err
	}
	return report.UpdateNotes(notes, dir, func(w io.Writer) error { return write(w, links) })
}

func saveChart(path string, draw func() (*plot.Plot, error)) error {
	p, err := draw()
	if err != nil {
		return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
	}
	return plots.Save(p, path)
}

// watchSignals cancels the run on the first SIGINT or SIGTERM; a second one
// exits at once.
func watchSignals(cancel context.CancelCauseFunc, stderr io.Writer) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(stderr, "stackprobe: %v: stopping, writing partial results (again to quit at once)\n", sig)
			cancel(&interrupted{sig: sig})
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

// linger keeps the process (and its mapped stacks) alive for d so that a
// user can inspect it, e.g. with pmap -X PID; a signal ends it early.
func linger(ctx context.Context, d time.Duration, stderr io.Writer) {
	fmt.Fprintf(stderr, "stackprobe: lingering pid=%d\n", os.Getpid())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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
