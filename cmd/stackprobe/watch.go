package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/plot"

	"stackprobe/plots"
	"stackprobe/procread"
	"stackprobe/report"
	"stackprobe/sizes"
	"stackprobe/watch"
)

const watchHelp = `stackprobe watch measures the stacks of another program while it runs:
threads and fibers, any language. It finds them in /proc/PID/maps and the
threads' stack pointers, and reads each one's resident pages from the page
tables (PAGEMAP_SCAN on /proc/PID/pagemap) every --interval, until the
program exits, --duration passes or SIGINT. The program is never stopped,
traced or injected into: only its /proc files are read.

  stackprobe watch --pid=PID [flags]      a running process (same user,
      CAP_SYS_PTRACE or root; --find=thread also needs ptrace attach
      permission: kernel.yama.ptrace_scope 0, CAP_SYS_PTRACE or root)
  stackprobe watch [flags] -- CMD [ARGS]  starts CMD as a child (stdin,
      stdout, stderr and environment passed through) and watches it; needs
      no ptrace permission setup. On SIGINT the child gets SIGINT first and
      up to 2 s to exit. A child still running when the watch ends (after
      --duration or that grace) gets SIGTERM, then SIGKILL 1 s later.

--find says how stacks are found (ways combine; each stack records which
found it): main (the [stack] mapping), thread (the mapping holding each
sleeping thread's stack pointer, from /proc/PID/task/TID/syscall), guard
(anonymous read-write mappings with a PROT_NONE mapping of at most 64 KiB
directly below, or MADV_GUARD_INSTALL markers at their low end: glibc
threads, boost.context, folly, ucontext fibers). --size adds anonymous
read-write mappings of exactly SIZE bytes, with or without their guard
below (size_match says which); --range adds address ranges as given. Go
goroutine stacks live inside the Go heap, not in mappings of their own:
watch finds a Go program's heap arenas, not its goroutines.

Writes summary.json, samples.csv, totals.csv, stacks.csv, evidence.md,
rss-over-time.png, stack-depths.png and residency.png (the present pages
at the top of up to 32 stacks at the last sample). The exit status is watch's own
(0 when it watched successfully); the child's is recorded in summary.json
(target.exit_code or target.signal).

Usage:
  stackprobe watch [flags] (--pid=PID | -- CMD [ARGS...])

Flags:
`

const watchExamples = `
Examples:
  stackprobe watch --pid=1234 --duration=10s --out=w
  stackprobe watch --out=seed -- ./pingpong_stackful --clients 20 --stack 104857600
  stackprobe watch --pid=1234 --find=guard --size=100MiB --interval=100ms --out=w --force
  stackprobe watch --pid=1234 --find= --range=0x7f0000000000-0x7f0006400000 --out=w

Exit status: 0 watched, 1 runtime failure (e.g. no permission to read the
target's /proc files), 2 bad input (e.g. no such pid or command), 130/143
interrupted (outputs are still written).
`

// watchOptions are watch's flags: the shared output flags and its own.
type watchOptions struct {
	options
	pid                       int
	duration                  time.Duration
	find, size, ranges, resid string
}

func watchFlags(o *watchOptions) *flagSet {
	o.options = runDefaults()
	o.out = "out-watch"
	o.find = "main,thread,guard"
	o.resid = "scan"
	fs := newFlagSet("stackprobe watch")
	fs.Var(decimal{&o.pid}, "pid", "the running process to watch (instead of -- CMD)")
	fs.Var(duration{&o.duration}, "duration", "stop after this long (0: until the target exits or SIGINT)")
	fs.Var(duration{&o.interval}, "interval", "time between the starts of two samples")
	fs.StringVar(&o.find, "find", o.find, "ways to find stacks, comma-separated: main, thread, guard (empty: none, with --size or --range)")
	fs.StringVar(&o.size, "size", o.size, "also take anonymous read-write mappings of exactly this size (alone or with their guard below) as stacks")
	fs.StringVar(&o.ranges, "range", o.ranges, "also take these address ranges as stacks: START-END,... in hex (0x...) or decimal")
	fs.StringVar(&o.resid, "residency", o.resid, "how pages are read: scan (PAGEMAP_SCAN, Linux >= 6.7; falls back to pagemap) or pagemap (8-byte entries)")
	o.outputFlags(fs, false)
	return fs
}

// splitCommand splits args at the first "--": the flags, and the command
// to start (nil when there is no "--").
func splitCommand(args []string) (flags, argv []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:]
		}
	}
	return args, nil
}

// watchConfig turns the options into watch.Options (target, finding,
// timing, method). It reads nothing but the options.
func (o *watchOptions) watchConfig(argv []string, given func(string) bool) (watch.Options, error) {
	var w watch.Options
	switch {
	case given("pid") && argv != nil:
		return w, usagef("give either --pid or -- CMD, not both")
	case given("pid"):
		if o.pid <= 0 {
			return w, usagef("--pid %d: want a process id above 0", o.pid)
		}
		w.Target.PID = o.pid
	case len(argv) > 0:
		w.Target.Argv = argv
	case argv != nil:
		return w, usagef("-- needs a command after it")
	default:
		return w, usagef("give --pid=PID or -- CMD [ARGS...] (see --help)")
	}
	if o.interval <= 0 {
		return w, usagef("--interval %v: want a positive duration such as 10ms", o.interval)
	}
	if o.duration < 0 {
		return w, usagef("--duration %v: want a duration of 0 or more", o.duration)
	}
	w.Interval, w.Duration = o.interval, o.duration
	for name := range strings.SplitSeq(o.find, ",") {
		switch strings.TrimSpace(name) {
		case "":
		case "main":
			w.Find.Main = true
		case "thread":
			w.Find.Thread = true
		case "guard":
			w.Find.Guard = true
		default:
			return w, usagef("--find %q: unknown way %q (want main, thread or guard)", o.find, name)
		}
	}
	if o.size != "" {
		n, err := sizes.Parse(o.size)
		if err != nil {
			return w, usagef("--size: %v", err)
		}
		if n <= 0 || n%int64(os.Getpagesize()) != 0 {
			return w, usagef("--size %s: want a positive multiple of the %d-byte page (mappings are whole pages)", o.size, os.Getpagesize())
		}
		w.Find.Size = n
	}
	if o.ranges != "" {
		rs, err := parseRanges(o.ranges)
		if err != nil {
			return w, usagef("--range: %v", err)
		}
		w.Find.Ranges = rs
	}
	if !w.Find.Main && !w.Find.Thread && !w.Find.Guard && w.Find.Size == 0 && len(w.Find.Ranges) == 0 {
		return w, usagef("--find is empty and neither --size nor --range is given: no way to find a stack")
	}
	switch o.resid {
	case "scan":
		w.Method = procread.MethodScan
	case "pagemap":
		w.Method = procread.MethodPagemap
	default:
		return w, usagef("--residency %q: want scan or pagemap", o.resid)
	}
	return w, o.outputConfig()
}

// parseRanges parses START-END,... with page-aligned bounds, START < END.
func parseRanges(s string) ([]procread.PageRange, error) {
	page := uint64(os.Getpagesize())
	var rs []procread.PageRange
	for part := range strings.SplitSeq(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			return nil, fmt.Errorf("%q: want START-END", part)
		}
		lo, err1 := strconv.ParseUint(a, 0, 64)
		hi, err2 := strconv.ParseUint(b, 0, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%q: want addresses such as 0x7f0000000000: %w", part, err)
		}
		if lo >= hi || lo%page != 0 || hi%page != 0 {
			return nil, fmt.Errorf("%q: want page-aligned START < END", part)
		}
		rs = append(rs, procread.PageRange{Start: lo, End: hi})
	}
	return rs, nil
}

// watchGrace is how long a started command gets to exit after SIGINT.
const watchGrace = 2 * time.Second

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o watchOptions
	fs := watchFlags(&o)
	flagArgs, argv := splitCommand(args)
	if err := fs.parse(flagArgs); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(stdout, watchHelp, watchExamples)
			return nil
		}
		return err
	}
	wopts, err := o.watchConfig(argv, fs.given)
	if err != nil {
		return err
	}
	if err := checkOutputs(o.options); err != nil {
		return err
	}
	if wopts.Target.PID > 0 {
		if err := checkPID(wopts.Target.PID); err != nil {
			return err
		}
	} else if err := checkCommand(wopts.Target.Argv[0]); err != nil {
		return err
	}
	env, _ := procread.ReadSystem("", "") // unreadable facts are listed in env.Missing

	ss, err := beginSession(ctx, o.options, stderr)
	if err != nil {
		return err
	}
	defer ss.Close()
	rec, err := report.NewWatchCSV(ss.dir())
	if err != nil {
		return err
	}
	defer rec.Abort()
	wopts.Recorder = rec
	started := time.Now()
	// The session's context is not given to the watch: a signal is
	// forwarded to a child first (Interrupt), then sampling stops.
	w, err := watch.Start(context.WithoutCancel(ss.ctx), wopts)
	if err != nil {
		return watchStartError(wopts.Target, err)
	}
	defer w.Close()
	if !o.quiet {
		fmt.Fprintf(stderr, "stackprobe: started: watching pid %d every %v; results go to %s\n", w.PID(), wopts.Interval, ss.folder.Out())
	}
	waited := make(chan error, 1)
	go func() { waited <- w.Wait() }()
	var runErr error
	select {
	case runErr = <-waited:
	case <-ss.ctx.Done():
		runErr = w.Interrupt(watchGrace)
	}
	seconds := time.Since(started).Seconds()
	// A child still running is ended (SIGTERM, then SIGKILL) before the
	// result is taken, so that it records which signal ended it.
	_ = w.Close() // its error is runErr
	res := w.Result()
	sum := report.NewWatchSummary(commandLine(append([]string{"watch"}, args...)), started, seconds, env, res, runErr)
	writeWatch(ss, sum, rec)
	return ss.conclude(stdout, sum, func(w io.Writer) error { return report.WriteWatchText(w, sum, ss.folder.Out()) }, runErr)
}

// checkPID refuses a pid with no process (bad input, exit 2).
func checkPID(pid int) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, fs.ErrNotExist) {
		return usagef("--pid %d: no such process", pid)
	}
	return nil
}

// checkCommand refuses a command that cannot be run: not found in $PATH,
// no such file, a directory, or not executable (bad input, exit 2).
func checkCommand(name string) error {
	_, err := exec.LookPath(name)
	var errno syscall.Errno
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound):
		return usagef("command %s: not found in $PATH", name)
	case errors.As(err, &errno):
		return usagef("command %s: %v", name, errno)
	}
	return usagef("command %s: %v", name, err)
}

// watchStartError words a failure to start watching: a target that is
// gone, or a command that does not exist or is not executable, is bad
// input; no permission names the file refused, the cause and the fixes.
func watchStartError(t watch.Target, err error) error {
	switch {
	case t.PID > 0 && errors.Is(err, procread.ErrGone):
		return usagef("--pid %d: no such process (%v)", t.PID, err)
	case len(t.Argv) > 0 && errors.Is(err, watch.ErrStart) &&
		(errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EISDIR)):
		return usagef("command %s: %v", t.Argv[0], err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w\n(%s)", err, permissionHint(t, err))
	}
	return err
}

// permissionHint says why reading the target's /proc file in err was
// refused and what to do. Its maps and pagemap need PTRACE_MODE_READ (the
// same user and a dumpable target, or CAP_SYS_PTRACE), which Yama's
// ptrace_scope does not gate; a thread's syscall file (--find=thread)
// needs PTRACE_MODE_ATTACH, which ptrace_scope 1 refuses for a process
// that is not a descendant of watch, 2 without CAP_SYS_PTRACE, 3 always.
func permissionHint(t watch.Target, err error) string {
	file := "the target's /proc files"
	var pe *fs.PathError
	if errors.As(err, &pe) {
		file = pe.Path
	}
	child := ""
	if t.PID > 0 {
		child = "; or start the program under watch: stackprobe watch [flags] -- CMD"
	}
	if filepath.Base(file) == "syscall" && strings.Contains(file, "/task/") {
		return fmt.Sprintf("reading %s, a thread's stack pointer for --find=thread, needs ptrace attach permission: "+
			"the same user and kernel.yama.ptrace_scope 0 (1 allows only a descendant of watch), or CAP_SYS_PTRACE, or root; "+
			"or find stacks without threads: --find=main,guard%s", file, child)
	}
	return fmt.Sprintf("reading %s needs the same user as the target (one not setuid or otherwise undumpable), "+
		"or CAP_SYS_PTRACE, or root%s", file, child)
}

// writeWatch writes the watch's result folder and puts it in place.
func writeWatch(ss *session, sum *report.WatchSummary, rec *report.WatchCSV) {
	if err := rec.Close(sum.Stacks); err != nil {
		ss.fail(err)
	} else {
		ss.wrote(report.CSVFiles()...)
	}
	r := &sum.Result
	if len(r.Timeline) > 0 {
		ss.chart(report.ChartRSSOverTime, func() (*plot.Plot, error) {
			return plots.WatchRSSOverTime(r, fmt.Sprintf("Stacks and process memory of pid %d over time", r.Target.PID))
		})
	}
	if r.PageMap != nil && len(r.PageMap.Rows) > 0 {
		ss.chart(report.ChartResidency, func() (*plot.Plot, error) { return plots.WatchResidency(r, "") })
	}
	if len(r.Stacks) > 0 {
		ss.chart(report.ChartStackDepths, func() (*plot.Plot, error) {
			return plots.StackDepths(r, int64(sum.Environment.PageSize), fmt.Sprintf("How deep the %d stacks of pid %d go", len(r.Stacks), r.Target.PID))
		})
	}
	if err := ss.writeErr(); err != nil && !sum.Partial {
		sum.Partial, sum.Error = true, err.Error()
	}
	ss.file(report.SummaryFile, func(w io.Writer) error { return report.WriteJSON(w, sum) })
	ss.file(report.EvidenceFile, func(w io.Writer) error { return report.WriteWatchEvidence(w, sum, ss.charts) })
	ss.commit(sum.Partial, func(w io.Writer, links []string) error { return report.WriteWatchEvidence(w, sum, links) })
}
