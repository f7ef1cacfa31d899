package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"stackprobe/limits"
	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/report"
	"stackprobe/sizes"
)

const limitsHelp = `stackprobe limits predicts how many stacks of --stack bytes this process can
reserve with the chosen guard, and which kernel limit binds first:
vm.max_map_count (2 VMAs per stack with --guard=mprotect), overcommit_memory=2
(which ignores MAP_NORESERVE), RLIMIT_AS, RLIMIT_DATA, the 47-bit address
space, page tables and the cgroup. With --verify=N it then reserves up to N
stacks one by one, reports where it really stopped, and releases them all.

With --depth=D it first measures what one coroutine used to depth D costs —
its resident pages, its page tables (own PTE pages and a share of the upper
levels) and its VMAs' kernel structures — on a short calibration run of a
few hundred stacks, then adds how many such coroutines fit in memory: the
smaller of MemAvailable and the cgroup's limit less its usage, or the size
--memory gives. The binding limit is then the first among all of them.

Usage:
  stackprobe limits [flags]

Flags:
`

// runLimits is the limits subcommand.
func runLimits(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("stackprobe limits")
	stack := fs.String("stack", "100MB", "size of each stack, guard page included")
	guardName := fs.String("guard", "mprotect", "guard mode: mprotect, madvise or none")
	var verifyN int64
	verify := &verifyN
	fs.Var(decimal64{verify}, "verify", "reserve up to this many stacks to check the prediction (0: predict only)")
	format := fs.String("format", "text", "stdout format: text or json")
	depthFlag := fs.String("depth", "", "measure the cost of a stack used to this depth and how many fit in memory (\"\": skip)")
	memoryFlag := fs.String("memory", "", "with --depth: the memory to fit stacks in (default: MemAvailable or the cgroup's limit, the smaller)")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printHelp(stdout, limitsHelp, "")
			return nil
		}
		return err
	}
	size, err := sizes.Parse(*stack)
	if err != nil {
		return usagef("--stack: %v", err)
	}
	if size == 0 {
		return usagef("--stack must be larger than 0")
	}
	guard, err := mmapstack.ParseGuard(*guardName)
	if err != nil {
		return usagef("--guard: %v", err)
	}
	if *verify < 0 || *verify > limits.MaxVerify {
		return usagef("--verify %d: want 0 to %d", *verify, limits.MaxVerify)
	}
	if *format != "text" && *format != "json" {
		return usagef("--format %q: want text or json", *format)
	}
	stackBytes := int64(mmapstack.RoundUp(int(size)))
	if guard != mmapstack.GuardNone && stackBytes <= int64(mmapstack.PageSize()) {
		return usagef("--stack %s leaves no usable bytes above the guard page", *stack)
	}
	var depth, memory int64 = -1, -1
	if *depthFlag != "" {
		if depth, err = sizes.Parse(*depthFlag); err != nil {
			return usagef("--depth: %v", err)
		}
		guardBytes := int64(0)
		if guard != mmapstack.GuardNone {
			guardBytes = int64(mmapstack.PageSize())
		}
		if depth > stackBytes-guardBytes {
			return usagef("--depth %s exceeds the %d usable bytes of --stack %s", *depthFlag, stackBytes-guardBytes, *stack)
		}
	}
	if *memoryFlag != "" {
		if depth < 0 {
			return usagef("--memory needs --depth: the cost per stack is measured at a depth")
		}
		if memory, err = sizes.Parse(*memoryFlag); err != nil {
			return usagef("--memory: %v", err)
		}
		if memory == 0 {
			return usagef("--memory must be larger than 0")
		}
	}
	var per *limits.PerStack
	if depth >= 0 {
		c, err := calibrate(ctx, stackBytes, guard, depth)
		if err != nil {
			return fmt.Errorf("calibration at depth %s: %w", *depthFlag, err)
		}
		per = &c
	}
	in, err := procread.ReadLimitInputs("/proc", "/sys")
	if err != nil {
		return fmt.Errorf("read limits: %w", err)
	}
	p := limits.PredictInputs(in, stackBytes, guard)
	var fit *limits.MemoryFit
	if per != nil {
		bytes, source, ok := uint64(memory), limits.SourceGiven, memory > 0
		if !ok {
			if bytes, source, ok = limits.MachineMemory(in); !ok {
				return errors.New("--depth: neither MemAvailable nor a cgroup limit could be read: give --memory")
			}
		}
		f := limits.FitMemory(*per, bytes, source)
		fit = &f
		p = p.WithMemory(*per, f)
	}
	var v *limits.Verification
	if *verify > 0 {
		ver, err := limits.Verify(ctx, mmapstack.Options{Size: int(stackBytes), Guard: guard, MapStack: true}, *verify)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		v = &ver
	}
	if *format == "json" {
		return report.WriteJSON(stdout, limitsJSON{Prediction: p, Verification: v, PerStack: per, Fit: fit})
	}
	if err := limits.WriteText(stdout, p, v); err != nil {
		return err
	}
	if per != nil {
		return limits.WriteMemoryText(stdout, *per, *fit)
	}
	return nil
}

// calibrationStacks is how many stacks the --depth calibration run
// reserves: enough that the shared upper page-table levels (a PMD page per
// GiB) are shared as in a large run (300 stacks of 100 MiB span 29 GiB),
// few enough to take well under a second.
const calibrationStacks = 300

// calibrate measures what one stack of stackBytes with guard, used to
// depth, costs: a touch run of calibrationStacks stacks (fewer where a
// limit allows fewer), measured from the page tables before it closes.
func calibrate(ctx context.Context, stackBytes int64, guard mmapstack.Guard, depth int64) (_ limits.PerStack, err error) {
	in, err := procread.ReadLimitInputs("/proc", "/sys")
	if err != nil {
		return limits.PerStack{}, fmt.Errorf("read limits: %w", err)
	}
	n := int64(calibrationStacks)
	if usable, _ := limits.MaxTasks(in.System, in.Usage, stackBytes, guard); usable >= 0 {
		n = min(n, usable)
	}
	if n < 1 {
		return limits.PerStack{}, errors.New("no stack can be reserved")
	}
	cfg := probe.Config{
		Workload:   probe.WorkloadTouch,
		StackBytes: stackBytes,
		Depths:     []int64{depth},
		Tasks:      int(n),
		Guard:      guard,
		THP:        mmapstack.THPSystem,
		MapStack:   true,
		Release:    mmapstack.ReleaseNone,
		TouchMode:  probe.TouchPages,
	}
	if guard != mmapstack.GuardNone {
		cfg.GuardBytes = int64(mmapstack.PageSize())
	}
	run, err := probe.Start(ctx, cfg, probe.Env{Command: "stackprobe limits (calibration)"})
	if err != nil {
		return limits.PerStack{}, err
	}
	defer func() { err = errors.Join(err, run.Close()) }()
	if _, err := run.Measure(ctx); err != nil {
		return limits.PerStack{}, err
	}
	c, err := run.Cost()
	if err != nil {
		return limits.PerStack{}, err
	}
	if c.PageTables == nil {
		return limits.PerStack{}, errors.New("page tables not measured: " + c.PageTablesMissing)
	}
	return limits.PerStack{
		DepthBytes:    depth,
		Stacks:        c.Stacks,
		Resident:      c.ResidentBytes,
		PageTables:    c.PageTables.PerStackBytes,
		Kernel:        c.KernelBytes,
		KernelMissing: c.KernelMissing,
		Total:         c.TotalBytes,
	}, nil
}

// limitsJSON is what limits --format=json prints.
type limitsJSON struct {
	Prediction   limits.Prediction    `json:"prediction"`
	Verification *limits.Verification `json:"verification,omitempty"`
	// PerStack and Fit are set with --depth.
	PerStack *limits.PerStack  `json:"per_stack_bytes,omitempty"`
	Fit      *limits.MemoryFit `json:"fit_in_memory,omitempty"`
}
