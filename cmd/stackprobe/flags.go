package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"stackprobe/frames"
	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/sizes"
)

// usageError is bad input: exit status 2, nothing reserved or written.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// options is everything a command line says, before it becomes a Config.
// Each command registers only the groups of flags it takes; a field's
// value before registration is that flag's default.
type options struct {
	workload, stack, depth, guard, thp, release, keepTop string
	transport, pattern, format, out, touch, notes        string
	residency                                            string
	tasks, messages                                      int
	seed                                                 int64
	mapStack, force, quiet, checkGuard                   bool
	interval, watchdog, linger, idle                     time.Duration
}

// runDefaults are the main command's defaults.
func runDefaults() options {
	return options{
		workload: string(probe.WorkloadPingPong), stack: "100MB", depth: "4KiB,64KiB,1MiB", tasks: 100,
		guard: "mprotect", thp: "system", mapStack: true, release: "none", keepTop: "4KiB",
		touch: string(probe.TouchPages), transport: "tcp", messages: 1000, pattern: string(probe.PatternRamp),
		residency: procread.MethodScan.String(),
		seed:      1, interval: 10 * time.Millisecond, idle: 10 * time.Millisecond, watchdog: 2 * time.Minute, out: "out", format: "text",
	}
}

// flagSet is a command's flags; parse refuses what the flag package lets
// through (a repeated flag) and words every error as one line naming the
// flag.
type flagSet struct {
	*flag.FlagSet
	seen map[string]bool
}

func newFlagSet(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, seen: map[string]bool{}}
}

// stackFlags are the flags that say which stacks a run reserves and how
// deep they are used.
func (o *options) stackFlags(fs *flagSet) {
	fs.StringVar(&o.stack, "stack", o.stack, "size of each stack, guard page included (rounded up to whole pages)")
	fs.StringVar(&o.depth, "depth", o.depth, "depths each task uses, a list of sizes and ranges (0 = touch nothing)")
	fs.Var(decimal{&o.tasks}, "tasks", "touch: number of stacks; pingpong: number of clients (stacks = 2 × clients)")
	fs.StringVar(&o.guard, "guard", o.guard, "guard at each stack's low end: mprotect, madvise (MADV_GUARD_INSTALL) or none")
	fs.StringVar(&o.touch, "touch", o.touch, "how a task uses its stack: pages (one byte per page) or frames (real call frames, amd64)")
}

// modeFlags choose how the stacks are mapped and given back; compare sets
// them itself, once per strategy.
func (o *options) modeFlags(fs *flagSet) {
	fs.StringVar(&o.workload, "workload", o.workload, "what runs on the stacks: pingpong or touch")
	fs.StringVar(&o.thp, "thp", o.thp, "transparent huge page advice for each stack: system (none: the system-wide mode and --map-stack decide), nohuge (MADV_NOHUGEPAGE) or huge (MADV_HUGEPAGE, wins over --map-stack); never and always still mean nohuge and huge. The system-wide mode is not changed: enabled=never keeps huge pages off whatever the advice, and enabled=always can only be set by root in /sys/kernel/mm/transparent_hugepage/enabled")
	fs.BoolVar(&o.mapStack, "map-stack", o.mapStack, "map with MAP_STACK: on Linux >= 6.7 that marks each stack no-huge-page (VM_NOHUGEPAGE, smaps VmFlags nh), also under enabled=always, unless --thp=huge")
	fs.StringVar(&o.release, "release", o.release, "after each step: none, dontneed (MADV_DONTNEED) or free (MADV_FREE) below the kept top; idle (pingpong: MADV_DONTNEED once a task has waited --idle)")
	fs.StringVar(&o.keepTop, "keep-top", o.keepTop, "bytes at the top of a stack that a release keeps")
	fs.BoolVar(&o.checkGuard, "check-guard", o.checkGuard, "also write one byte past a stack under each guard mode and report what happened")
	fs.StringVar(&o.residency, "residency", o.residency, "how residency is read: scan (PAGEMAP_SCAN; /proc/self/pagemap entries where the kernel lacks it), pagemap (the entries, forced) or mincore (mincore(2)); for A/B runs")
}

// pingpongFlags shape the epoll ping-pong workload.
func (o *options) pingpongFlags(fs *flagSet) {
	fs.StringVar(&o.transport, "transport", o.transport, "pingpong: tcp (127.0.0.1) or unix (AF_UNIX socket file)")
	fs.Var(decimal{&o.messages}, "messages", "pingpong: one-byte round trips per client")
	fs.StringVar(&o.pattern, "pattern", o.pattern, "pingpong depth schedule: ramp, spread or random")
	fs.Var(decimal64{&o.seed}, "seed", "pingpong: seed of the random pattern")
	fs.Var(duration{&o.interval}, "interval", "pingpong: sampling interval")
	fs.Var(duration{&o.watchdog}, "watchdog", "pingpong: fail a run whose tasks have not finished by then")
	fs.Var(duration{&o.idle}, "idle", "pingpong with --release=idle: how long a task waits on its socket before its stack is released")
}

// outputFlags say where and how results are written.
func (o *options) outputFlags(fs *flagSet, linger bool) {
	fs.StringVar(&o.out, "out", o.out, "folder for the results (created; must be empty or an earlier result unless --force)")
	fs.BoolVar(&o.force, "force", o.force, "write into a folder that also holds files stackprobe did not write (they are left alone)")
	fs.StringVar(&o.notes, "notes", o.notes, "also insert or update this run's evidence in an existing Markdown design note")
	fs.StringVar(&o.format, "format", o.format, "stdout format: text or json")
	fs.BoolVar(&o.quiet, "quiet", o.quiet, "no progress output on stderr")
	if linger {
		fs.Var(duration{&o.linger}, "linger", "after writing, keep the stacks mapped this long (for pmap -X PID)")
	}
}

// parse parses args, refusing a flag given twice and any argument that is
// not a flag. flag.ErrHelp comes back as is.
func (fs *flagSet) parse(args []string) error {
	fs.VisitAll(func(f *flag.Flag) { f.Value = &once{Value: f.Value, name: f.Name, seen: fs.seen} })
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s", flagError(err))
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags take the form --name=value; see --help)", fs.Arg(0))
	}
	return nil
}

// given reports whether the command line set the flag.
func (fs *flagSet) given(name string) bool { return fs.seen[name] }

// printHelp writes prose, the flags this command takes, and examples.
func (fs *flagSet) printHelp(w io.Writer, prose, examples string) {
	fmt.Fprint(w, prose)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, examples)
}

// flagError rewrites the flag package's messages into one line that names
// the flag the way it is typed.
func flagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return fmt.Sprintf("unknown flag %s (see --help)", "-"+strings.TrimLeft(name, "-"))
	}
	// invalid value "x" for flag -name: reason
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if i := strings.Index(rest, " for flag -"); i >= 0 {
			value, tail := rest[:i], rest[i+len(" for flag -"):]
			if name, reason, ok := strings.Cut(tail, ": "); ok {
				return fmt.Sprintf("--%s %s: %s", name, value, reason)
			}
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean flag "); ok {
		if name, reason, ok := strings.Cut(rest, ": "); ok {
			return fmt.Sprintf("--%s: %s", name, reason)
		}
	}
	if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if i := strings.Index(rest, " for -"); i >= 0 {
			if name, reason, ok := strings.Cut(rest[i+len(" for -"):], ": "); ok {
				return fmt.Sprintf("--%s %s: %s (want true or false)", name, rest[:i], reason)
			}
		}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("--%s needs a value (--%s=VALUE)", name, name)
	}
	return msg
}

// once refuses a second value for the same flag: which of two values a
// run used must never be a guess.
type once struct {
	flag.Value
	name string
	seen map[string]bool
}

func (o *once) Set(s string) error {
	if o.seen[o.name] {
		return errors.New("given more than once")
	}
	o.seen[o.name] = true
	return o.Value.Set(s)
}

// String is the wrapped value's; the flag package also calls it on a zero
// once, to tell a default from the zero value.
func (o *once) String() string {
	if o == nil || o.Value == nil {
		return ""
	}
	return o.Value.String()
}

// IsBoolFlag lets a wrapped boolean flag go without a value.
func (o *once) IsBoolFlag() bool {
	if o == nil || o.Value == nil {
		return false
	}
	b, ok := o.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// decimal is an int flag written in plain decimal: the flag package would
// read 010 as octal 8, and also take 0x10 and 1_000.
type decimal struct{ p *int }

func (d decimal) String() string {
	if d.p == nil {
		return "0"
	}
	return strconv.Itoa(*d.p)
}

func (d decimal) Set(s string) error {
	n, err := parseDecimal(s, strconv.IntSize)
	if err != nil {
		return err
	}
	*d.p = int(n)
	return nil
}

type decimal64 struct{ p *int64 }

func (d decimal64) String() string {
	if d.p == nil {
		return "0"
	}
	return strconv.FormatInt(*d.p, 10)
}

func (d decimal64) Set(s string) error {
	n, err := parseDecimal(s, 64)
	if err != nil {
		return err
	}
	*d.p = n
	return nil
}

func parseDecimal(s string, bits int) (int64, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, errors.New("want a whole number in decimal digits")
	}
	if len(digits) > 1 && digits[0] == '0' {
		return 0, errors.New("want a decimal number without leading zeros")
	}
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return n, nil
}

// duration is a time.Duration flag whose errors say what is wrong in the
// words a user needs ("missing unit") rather than the parser's.
type duration struct{ p *time.Duration }

func (d duration) String() string {
	if d.p == nil {
		return "0s"
	}
	return d.p.String()
}

func (d duration) Set(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err == nil && s != "0" {
		return fmt.Errorf("missing unit (e.g. %sms or %ss)", s, s)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 10ms, 2s or 1m30s")
	}
	*d.p = v
	return nil
}

// stackConfig resolves the stack flags into c. It reads nothing but the
// options.
func (o *options) stackConfig(c *probe.Config) error {
	stack, err := sizes.Parse(o.stack)
	if err != nil {
		return usagef("--stack: %v", err)
	}
	if stack == 0 {
		return usagef("--stack must be larger than 0")
	}
	c.StackBytes = int64(mmapstack.RoundUp(int(stack)))
	if c.Guard, err = mmapstack.ParseGuard(o.guard); err != nil {
		return usagef("--guard: %v", err)
	}
	c.GuardBytes = 0
	if c.Guard != mmapstack.GuardNone {
		c.GuardBytes = int64(mmapstack.PageSize())
	}
	usable := c.StackBytes - c.GuardBytes
	if usable <= 0 {
		return usagef("--stack %s leaves no usable bytes above the %d-byte guard page", o.stack, c.GuardBytes)
	}
	if c.Depths, err = sizes.ParseList(o.depth); err != nil {
		return usagef("--depth: %v", err)
	}
	for _, d := range c.Depths {
		if d > usable {
			return usagef("--depth: %d bytes (%s) exceeds --stack %s: at most %d bytes are usable above the guard", d, sizes.IEC(d), o.stack, usable)
		}
	}
	switch probe.TouchMode(o.touch) {
	case probe.TouchPages:
		c.TouchMode = probe.TouchPages
	case probe.TouchFrames:
		if !frames.Supported {
			return usagef("--touch=frames: %v", frames.ErrUnsupported)
		}
		c.TouchMode = probe.TouchFrames
		for _, d := range c.Depths {
			if span, _ := frames.Span(int(d)); int64(span) > usable {
				return usagef("--depth %s with --touch=frames needs %d bytes of frames, more than the %d usable (a fault in frames is fatal; use --touch=pages to overflow)",
					sizes.IEC(d), span, usable)
			}
		}
	default:
		return usagef("--touch %q: want pages or frames", o.touch)
	}
	if o.tasks <= 0 {
		return usagef("--tasks %d: want at least 1", o.tasks)
	}
	c.Tasks = o.tasks
	return nil
}

// outputConfig checks the output flags' values (not the folder itself:
// that is checkOutputs, after parsing).
func (o *options) outputConfig() error {
	if o.linger < 0 {
		return usagef("--linger %v: want a duration of 0 or more", o.linger)
	}
	switch o.format {
	case "text", "json":
	default:
		return usagef("--format %q: want text or json", o.format)
	}
	if o.out == "" {
		return usagef("--out must name a folder")
	}
	return nil
}

// config turns the main command's options into a validated Config. It is
// pure: the environment is checked afterwards, by checkRun.
func (o *options) config() (probe.Config, error) {
	var c probe.Config
	switch probe.Workload(o.workload) {
	case probe.WorkloadTouch, probe.WorkloadPingPong:
		c.Workload = probe.Workload(o.workload)
	default:
		return c, usagef("--workload %q: want pingpong or touch", o.workload)
	}
	if err := o.stackConfig(&c); err != nil {
		return c, err
	}
	var err error
	if c.THP, err = mmapstack.ParseTHP(o.thp); err != nil {
		return c, usagef("--thp: %v", err)
	}
	if c.Release, err = mmapstack.ParseRelease(o.release); err != nil {
		return c, usagef("--release: %v", err)
	}
	c.MapStack = o.mapStack
	c.CheckGuard = o.checkGuard
	if c.Residency, err = procread.ParseMethod(cmp.Or(o.residency, procread.MethodScan.String())); err != nil {
		return c, usagef("--residency: %v", err)
	}
	usable := c.StackBytes - c.GuardBytes
	keep, err := sizes.Parse(o.keepTop)
	if err != nil {
		return c, usagef("--keep-top: %v", err)
	}
	if keep == 0 || keep > usable {
		return c, usagef("--keep-top %s must be between 1 byte and the %d usable bytes", o.keepTop, usable)
	}
	c.KeepTopBytes = int64(mmapstack.RoundUp(int(keep)))
	if err := o.pingpongConfig(&c); err != nil {
		return c, err
	}
	return c, o.outputConfig()
}

// pingpongConfig checks the ping-pong's flags whatever the workload (a bad
// value is refused, not silently ignored) and sets them for the ping-pong.
func (o *options) pingpongConfig(c *probe.Config) error {
	switch o.transport {
	case "tcp", "unix":
	default:
		return usagef("--transport %q: want tcp or unix", o.transport)
	}
	if o.messages <= 0 {
		return usagef("--messages %d: want at least 1", o.messages)
	}
	switch probe.Pattern(o.pattern) {
	case probe.PatternRamp, probe.PatternSpread, probe.PatternRandom:
	default:
		return usagef("--pattern %q: want ramp, spread or random", o.pattern)
	}
	if o.interval <= 0 {
		return usagef("--interval %v: want a positive duration such as 10ms", o.interval)
	}
	if o.watchdog <= 0 {
		return usagef("--watchdog %v: want a positive duration such as 2m", o.watchdog)
	}
	if o.idle <= 0 {
		return usagef("--idle %v: want a positive duration such as 10ms", o.idle)
	}
	if c.Workload != probe.WorkloadPingPong {
		if c.Release == mmapstack.ReleaseIdle {
			return usagef("--release=idle: only the pingpong workload has idle tasks (use dontneed with --workload=touch)")
		}
		return nil
	}
	switch n := len(c.Depths); {
	case probe.Pattern(o.pattern) == probe.PatternRamp && o.messages < n:
		return usagef("--messages %d: the ramp needs at least one message per depth (%d depths)", o.messages, n)
	case probe.Pattern(o.pattern) == probe.PatternSpread && 2*c.Tasks < n:
		return usagef("--tasks %d: spread gives each of the %d tasks one depth, fewer than the %d depths", c.Tasks, 2*c.Tasks, n)
	}
	c.Transport, c.Messages, c.Pattern = o.transport, o.messages, probe.Pattern(o.pattern)
	c.Seed, c.Interval, c.Watchdog = o.seed, o.interval, o.watchdog
	if c.Release == mmapstack.ReleaseIdle {
		c.Idle = o.idle
	}
	return nil
}
