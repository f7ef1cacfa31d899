package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"stackprobe/frames"
	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/report"
	"stackprobe/sizes"
)

// usageError is bad input: exit status 2, nothing reserved or written.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// options is everything the command line says, before it becomes a Config.
type options struct {
	workload, stack, depth, guard, thp, release, keepTop string
	transport, pattern, format, out, touch, notes        string
	tasks, messages                                      int
	seed                                                 int64
	mapStack, force, quiet, checkGuard                   bool
	interval, watchdog, linger                           time.Duration
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

func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("stackprobe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.workload, "workload", string(probe.WorkloadPingPong), "what runs on the stacks: pingpong or touch")
	fs.StringVar(&o.stack, "stack", "100MB", "size of each stack, guard page included (rounded up to whole pages)")
	fs.StringVar(&o.depth, "depth", "4KiB,64KiB,1MiB", "depths each task uses, a list of sizes and ranges (0 = touch nothing)")
	fs.IntVar(&o.tasks, "tasks", 100, "touch: number of stacks; pingpong: number of clients (stacks = 2 × clients)")
	fs.StringVar(&o.guard, "guard", "mprotect", "guard at each stack's low end: mprotect, madvise (MADV_GUARD_INSTALL) or none")
	fs.StringVar(&o.thp, "thp", "system", "transparent huge pages: system (no advice), never (MADV_NOHUGEPAGE) or always (MADV_HUGEPAGE)")
	fs.BoolVar(&o.mapStack, "map-stack", true, "map with MAP_STACK (implies no huge pages on Linux >= 6.7)")
	fs.StringVar(&o.release, "release", "none", "after each step: none, dontneed (MADV_DONTNEED) or free (MADV_FREE) below the kept top")
	fs.StringVar(&o.keepTop, "keep-top", "4KiB", "bytes at the top of a stack that a release keeps")
	fs.StringVar(&o.touch, "touch", string(probe.TouchPages), "how a task uses its stack: pages (one byte per page) or frames (real call frames, amd64)")
	fs.StringVar(&o.notes, "notes", "", "also insert or update this run's evidence in an existing Markdown design note")
	fs.StringVar(&o.transport, "transport", "tcp", "pingpong: tcp (127.0.0.1) or unix (AF_UNIX socket file)")
	fs.IntVar(&o.messages, "messages", 1000, "pingpong: one-byte round trips per client")
	fs.StringVar(&o.pattern, "pattern", string(probe.PatternRamp), "pingpong depth schedule: ramp, spread or random")
	fs.Int64Var(&o.seed, "seed", 1, "pingpong: seed of the random pattern")
	fs.DurationVar(&o.interval, "interval", 10*time.Millisecond, "pingpong: sampling interval")
	fs.DurationVar(&o.watchdog, "watchdog", 2*time.Minute, "pingpong: fail a run whose tasks have not finished by then")
	fs.StringVar(&o.out, "out", "out", "folder for the results (created; must be empty unless --force)")
	fs.BoolVar(&o.force, "force", false, "write into a non-empty --out folder")
	fs.DurationVar(&o.linger, "linger", 0, "after writing, keep the stacks mapped this long (for pmap -X PID)")
	fs.StringVar(&o.format, "format", "text", "stdout format: text or json")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	fs.BoolVar(&o.checkGuard, "check-guard", false, "also write one byte past a stack under each guard mode and report what happened")
	return fs
}

func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, helpProse)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, helpExamples)
}

// parseArgs turns the command line into a validated Config. Every error is
// a usageError naming the flag.
func parseArgs(args []string) (probe.Config, options, error) {
	var o options
	fs := newFlagSet(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return probe.Config{}, o, err
		}
		return probe.Config{}, o, usagef("%s", flagError(err))
	}
	if fs.NArg() > 0 {
		return probe.Config{}, o, usagef("unexpected argument %q (flags take the form --name=value)", fs.Arg(0))
	}
	cfg, err := o.config()
	return cfg, o, err
}

// flagError rewrites the flag package's messages into one line.
func flagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return fmt.Sprintf("unknown flag %s (see --help)", name)
	}
	return msg
}

func (o *options) config() (probe.Config, error) {
	var c probe.Config
	switch probe.Workload(o.workload) {
	case probe.WorkloadTouch, probe.WorkloadPingPong:
		c.Workload = probe.Workload(o.workload)
	default:
		return c, usagef("--workload %q: want pingpong or touch", o.workload)
	}
	stack, err := sizes.Parse(o.stack)
	if err != nil {
		return c, usagef("--stack: %v", err)
	}
	if stack == 0 {
		return c, usagef("--stack must be larger than 0")
	}
	c.StackBytes = int64(mmapstack.RoundUp(int(stack)))
	if c.Guard, err = mmapstack.ParseGuard(o.guard); err != nil {
		return c, usagef("--guard: %v", err)
	}
	if c.THP, err = mmapstack.ParseTHP(o.thp); err != nil {
		return c, usagef("--thp: %v", err)
	}
	if c.Release, err = mmapstack.ParseRelease(o.release); err != nil {
		return c, usagef("--release: %v", err)
	}
	c.MapStack = o.mapStack
	c.CheckGuard = o.checkGuard
	if c.Guard != mmapstack.GuardNone {
		c.GuardBytes = int64(mmapstack.PageSize())
	}
	usable := c.StackBytes - c.GuardBytes
	if usable <= 0 {
		return c, usagef("--stack %s leaves no usable bytes above the %d-byte guard page", o.stack, c.GuardBytes)
	}
	if c.Depths, err = sizes.ParseList(o.depth); err != nil {
		return c, usagef("--depth: %v", err)
	}
	for _, d := range c.Depths {
		if d > usable {
			return c, usagef("--depth: %d bytes (%s) exceeds --stack %s: at most %d bytes are usable above the guard", d, sizes.IEC(d), o.stack, usable)
		}
	}
	switch probe.TouchMode(o.touch) {
	case probe.TouchPages:
		c.TouchMode = probe.TouchPages
	case probe.TouchFrames:
		if !frames.Supported {
			return c, usagef("--touch=frames: %v", frames.ErrUnsupported)
		}
		c.TouchMode = probe.TouchFrames
		for _, d := range c.Depths {
			if span, _ := frames.Span(int(d)); int64(span) > usable {
				return c, usagef("--depth %s with --touch=frames needs %d bytes of frames, more than the %d usable (a fault in frames is fatal; use --touch=pages to overflow)",
					sizes.IEC(d), span, usable)
			}
		}
	default:
		return c, usagef("--touch %q: want pages or frames", o.touch)
	}
	keep, err := sizes.Parse(o.keepTop)
	if err != nil {
		return c, usagef("--keep-top: %v", err)
	}
	if keep == 0 || keep > usable {
		return c, usagef("--keep-top %s must be between 1 byte and the %d usable bytes", o.keepTop, usable)
	}
	c.KeepTopBytes = int64(mmapstack.RoundUp(int(keep)))
	if o.tasks <= 0 {
		return c, usagef("--tasks %d: want at least 1", o.tasks)
	}
	c.Tasks = o.tasks
	// The ping-pong's flags are checked whatever the workload: a bad value
	// is refused, not silently ignored.
	switch o.transport {
	case "tcp", "unix":
	default:
		return c, usagef("--transport %q: want tcp or unix", o.transport)
	}
	if o.messages <= 0 {
		return c, usagef("--messages %d: want at least 1", o.messages)
	}
	switch probe.Pattern(o.pattern) {
	case probe.PatternRamp, probe.PatternSpread, probe.PatternRandom:
	default:
		return c, usagef("--pattern %q: want ramp, spread or random", o.pattern)
	}
	if o.interval <= 0 {
		return c, usagef("--interval %v: want a positive duration such as 10ms", o.interval)
	}
	if o.watchdog <= 0 {
		return c, usagef("--watchdog %v: want a positive duration such as 2m", o.watchdog)
	}
	if c.Workload == probe.WorkloadPingPong {
		switch n := len(c.Depths); {
		case probe.Pattern(o.pattern) == probe.PatternRamp && o.messages < n:
			return c, usagef("--messages %d: the ramp needs at least one message per depth (%d depths)", o.messages, n)
		case probe.Pattern(o.pattern) == probe.PatternSpread && 2*c.Tasks < n:
			return c, usagef("--tasks %d: spread gives each of the %d tasks one depth, fewer than the %d depths", c.Tasks, 2*c.Tasks, n)
		}
		c.Transport, c.Messages, c.Pattern = o.transport, o.messages, probe.Pattern(o.pattern)
		c.Seed, c.Interval, c.Watchdog = o.seed, o.interval, o.watchdog
	}
	if err := checkTaskLimits(int64(c.Stacks()), c.StackBytes, c.Guard, c.Workload == probe.WorkloadPingPong, c.Tasks); err != nil {
		return c, err
	}
	if o.linger < 0 {
		return c, usagef("--linger %v: want a duration of 0 or more", o.linger)
	}
	switch o.format {
	case "text", "json":
	default:
		return c, usagef("--format %q: want text or json", o.format)
	}
	if o.notes != "" {
		if err := report.CheckNotes(o.notes); err != nil {
			return c, usagef("--notes: %v (it must be an existing, writable Markdown file)", err)
		}
	}
	if o.out == "" {
		return c, usagef("--out must name a folder")
	}
	if err := report.CheckOutDir(o.out, o.force); err != nil {
		return c, usagef("--out: %v", err)
	}
	return c, nil
}
