package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"

	"stackprobe/mmapstack"
	"stackprobe/plots"
	"stackprobe/probe"
	"stackprobe/report"
	"stackprobe/sizes"
)

// compareHelp is compare's prose before its flags.
func compareHelp() string {
	return fmt.Sprintf(`stackprobe compare runs one workload under every stack strategy in turn and
puts them side by side.

--workload=touch (the default) runs one touch schedule under lazy mmap with
4 KiB pages, lazy mmap eligible for transparent huge pages, lazy mmap
released after each step with MADV_DONTNEED and with MADV_FREE, eager mmap
(MAP_POPULATE), and Go's own goroutine stacks recursing through real frames.
For each step it reports resident bytes per stack, page tables, VMAs, minor
faults and time per page, what one coroutine costs after the last step
(resident + page tables by address + kernel VMAs), and writes
strategies.png, residency.png, summary.json and evidence.md. --stack may
list sizes (--stack=64KiB,100MiB): every mmap strategy then runs once per
size, side by side, and a depth a size cannot hold is shown as an overflow.

--workload=pingpong runs the same epoll ping-pong (transport, clients,
messages, pattern, seed, depths) under lazy-4k, lazy-thp, dontneed and free
(a release after every message), idle-dontneed (MADV_DONTNEED once a task
has waited --idle), eager (skipped where it would not fit in memory) and
no-touch (the stacks never used: the baseline). Each strategy runs --rounds
times, the rounds interleaved; it reports the median round trips per second
with the spread of the rounds, latency, CPU of each IO thread, minor faults
and madvise calls per round trip, resident stack bytes at the peak and at
the end, page tables per stack and VmRSS, and writes tradeoff.png,
summary.json and evidence.md. Its defaults differ where not given:
--tasks=%d, --depth=%s, --stack=%s, --messages=100. Releasing after every message at
deep depths costs a TLB shootdown per call: size --messages accordingly.

The strategies set --thp, --map-stack and --release themselves. With
--linger=D (touch only), the last mmap strategy that runs for each stack size
keeps its stacks mapped; stacks.csv lists them (strategy, size, base address,
resident bytes at the end) and compare waits D after writing before it
unmaps them, for pmap -X PID.

Usage:
  stackprobe compare [flags]

Flags:
`, pingpongCompareTasks, pingpongCompareDepth, pingpongCompareStack)
}

const compareExamples = `
Examples:
  stackprobe compare --stack=16MiB --depth=1B,1MiB,4KiB --tasks=4
  stackprobe compare --stack=64KiB,100MiB --depth=16KiB,80KiB --tasks=1000
  stackprobe compare --workload=pingpong --depth=128KiB --rounds=5
`

// The ping-pong compare's defaults where they differ from the touch
// compare's: few enough clients that MADV_DONTNEED after every message
// finishes in seconds, and the depths of a request handler.
const (
	pingpongCompareTasks = 10
	pingpongCompareDepth = "4KiB,32KiB,128KiB"
	pingpongCompareStack = "8MiB"
)

// compareOptions are compare's options: the shared ones and its own.
type compareOptions struct {
	options
	rounds int
}

// The ping-pong compare's defaults where they differ from the touch
// compare's are above; 8 MiB stacks (a thread's usual size) keep eager
// MAP_POPULATE to seconds.
//
// compareFlags are compare's flags. Its touch defaults go deep then return
// shallow (the high-water mark) and start with a 1-byte touch (the 2 MiB
// huge-page step); 100 MiB is a multiple of 2 MiB, so stack tops are
// usually 2 MiB aligned. The strategies set --thp, --map-stack and
// --release themselves, so compare does not take them.
func compareFlags(o *compareOptions) *flagSet {
	o.options = runDefaults()
	o.workload, o.stack, o.depth, o.tasks, o.out = string(probe.WorkloadTouch), "100MiB", "1B,64KiB,1MiB,8MiB,4KiB", 16, "out-compare"
	o.watchdog, o.rounds = 30*time.Second, 3
	fs := newFlagSet("stackprobe compare")
	fs.StringVar(&o.workload, "workload", o.workload, "what runs on the stacks: touch (a touch schedule) or pingpong (the epoll ping-pong)")
	o.stackFlags(fs)
	o.pingpongFlags(fs)
	fs.Var(decimal{&o.rounds}, "rounds", "pingpong: runs of each strategy, interleaved; figures are medians over them")
	o.outputFlags(fs, false)
	fs.Var(duration{&o.linger}, "linger", "touch: after writing, keep each stack size's last mmap strategy's stacks mapped this long, listed in stacks.csv (for pmap -X PID)")
	return fs
}

// pingpongOnly are the flags only --workload=pingpong takes.
func pingpongOnly() []string {
	return []string{"transport", "messages", "pattern", "seed", "interval", "watchdog", "idle", "rounds"}
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o compareOptions
	fs := compareFlags(&o)
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(stdout, compareHelp(), compareExamples)
			return nil
		}
		return err
	}
	switch probe.Workload(o.workload) {
	case probe.WorkloadTouch:
		for _, name := range pingpongOnly() {
			if fs.given(name) {
				return usagef("--%s: only compare --workload=pingpong takes it", name)
			}
		}
		return runCompareTouch(ctx, o.options, args, stdout, stderr)
	case probe.WorkloadPingPong:
		if fs.given("linger") {
			return usagef("--linger: only compare --workload=touch takes it")
		}
		if !fs.given("tasks") {
			o.tasks = pingpongCompareTasks
		}
		if !fs.given("depth") {
			o.depth = pingpongCompareDepth
		}
		if !fs.given("stack") {
			o.stack = pingpongCompareStack
		}
		if !fs.given("messages") {
			o.messages = 100
		}
		return runComparePingPong(ctx, o, args, stdout, stderr)
	default:
		return usagef("--workload %q: want touch or pingpong", o.workload)
	}
}

func runCompareTouch(ctx context.Context, o options, args []string, stdout, stderr io.Writer) error {
	cfg := probe.Config{Workload: probe.WorkloadTouch, THP: mmapstack.THPNoHuge, MapStack: true}
	// --stack may list sizes to compare side by side; the depths are
	// checked against the largest, and a smaller one that cannot hold a
	// depth shows it as an overflow.
	stacks, largest, err := stackList(o.stack)
	if err != nil {
		return err
	}
	o.stack = largest
	if err := o.stackConfig(&cfg); err != nil {
		return err
	}
	for i, b := range stacks {
		stacks[i] = int64(mmapstack.RoundUp(int(b)))
		if stacks[i] <= cfg.GuardBytes {
			return usagef("--stack %s leaves no usable bytes above the %d-byte guard page", sizes.IEC(b), cfg.GuardBytes)
		}
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
	cr := probe.NewCompareSizes(cfg, stacks, probe.Env{Command: commandLine(append([]string{"compare"}, args...))})
	if o.linger > 0 {
		cr.KeepLast()
	}
	defer cr.Close()
	stopProgress := showProgress(stderr, o.quiet, "strategies", cr, 0)
	c, runErr := cr.Measure(ss.ctx)
	stopProgress()
	if c == nil {
		return withHint(runErr)
	}
	writeCompare(ss, c, cr.Kept())
	// As the main command does: the outputs are in place, and the kept
	// stacks still mapped, while it lingers.
	ss.linger()
	return ss.conclude(stdout, c, func(w io.Writer) error { return report.WriteCompareText(w, c, ss.folder.Out()) }, withHint(runErr))
}

// stackList parses compare's --stack, a comma-separated list of distinct
// sizes; largest is the largest as written.
func stackList(s string) (stacks []int64, largest string, err error) {
	for _, item := range strings.Split(s, ",") {
		b, err := sizes.Parse(item)
		if err != nil {
			return nil, "", usagef("--stack: %v", err)
		}
		if b == 0 {
			return nil, "", usagef("--stack must be larger than 0")
		}
		if slices.Contains(stacks, b) {
			return nil, "", usagef("--stack %s: %s is listed twice", s, item)
		}
		if len(stacks) == 0 || b > slices.Max(stacks) {
			largest = item
		}
		stacks = append(stacks, b)
	}
	return stacks, largest, nil
}

func runComparePingPong(ctx context.Context, o compareOptions, args []string, stdout, stderr io.Writer) error {
	cfg := probe.Config{Workload: probe.WorkloadPingPong, THP: mmapstack.THPNoHuge, MapStack: true}
	if err := o.stackConfig(&cfg); err != nil {
		return err
	}
	if err := o.pingpongConfig(&cfg); err != nil {
		return err
	}
	if err := o.outputConfig(); err != nil {
		return err
	}
	if o.rounds < 1 {
		return usagef("--rounds %d: want at least 1", o.rounds)
	}
	cfg.KeepTopBytes = int64(mmapstack.PageSize())
	// idle-dontneed's wait; the strategies set the release themselves.
	cfg.Idle = o.idle
	// The lazy strategy that holds the most is lazy-thp (a 2 MiB block
	// per stack where the top is aligned); eager skips itself where it
	// would not fit.
	need := needsOf(cfg)
	thp := cfg
	thp.THP = mmapstack.THPHuge
	need.usedBytes = needsOf(thp).usedBytes
	if err := checkRun(need, o.options); err != nil {
		return err
	}

	ss, err := beginSession(ctx, o.options, stderr)
	if err != nil {
		return err
	}
	defer ss.Close()
	cr := probe.NewPingPongCompare(cfg, o.rounds, probe.Env{Command: commandLine(append([]string{"compare"}, args...))})
	stopProgress := showProgress(stderr, o.quiet, "runs", cr, 0)
	c, runErr := cr.Measure(ss.ctx)
	stopProgress()
	if c == nil {
		return withHint(runErr)
	}
	ss.chart(report.ChartTradeoff, func() (*plot.Plot, error) { return plots.Tradeoff(c) })
	if err := ss.writeErr(); err != nil && !c.Partial {
		c.Partial, c.Error = true, err.Error()
	}
	ss.file(report.SummaryFile, func(w io.Writer) error { return report.WriteJSON(w, c) })
	ss.file(report.EvidenceFile, func(w io.Writer) error { return report.WritePingPongCompareEvidence(w, c, ss.charts) })
	ss.commit(c.Partial, func(w io.Writer, links []string) error { return report.WritePingPongCompareEvidence(w, c, links) })
	return ss.conclude(stdout, c, func(w io.Writer) error { return report.WritePingPongCompareText(w, c, ss.folder.Out()) }, withHint(runErr))
}

// writeCompare writes the touch comparison's outputs, with stacks.csv when
// stacks were kept mapped, and commits them.
func writeCompare(ss *session, c *probe.Comparison, kept []probe.KeptStack) {
	ss.chart(report.ChartStrategies, func() (*plot.Plot, error) { return plots.Strategies(c) })
	ss.chart(report.ChartResidency, func() (*plot.Plot, error) { return plots.ResidencyCompare(c) })
	if err := ss.writeErr(); err != nil && !c.Partial {
		c.Partial, c.Error = true, err.Error()
	}
	ss.file(report.SummaryFile, func(w io.Writer) error { return report.WriteJSON(w, c) })
	ss.file(report.EvidenceFile, func(w io.Writer) error { return report.WriteCompareEvidence(w, c, ss.charts) })
	if len(kept) > 0 {
		ss.file(report.CompareStacksFile, func(w io.Writer) error { return report.WriteCompareStacks(w, kept) })
	}
	ss.commit(c.Partial, func(w io.Writer, links []string) error { return report.WriteCompareEvidence(w, c, links) })
}
