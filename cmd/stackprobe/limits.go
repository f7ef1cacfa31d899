package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"stackprobe/limits"
	"stackprobe/mmapstack"
	"stackprobe/procread"
	"stackprobe/sizes"
)

const limitsHelp = `stackprobe limits predicts how many stacks of --stack bytes this process can
reserve with the chosen guard, and which kernel limit binds first:
vm.max_map_count (2 VMAs per stack with --guard=mprotect), overcommit_memory=2
(which ignores MAP_NORESERVE), RLIMIT_AS, RLIMIT_DATA, the 47-bit address
space, page tables and the cgroup. With --verify=N it then reserves up to N
stacks one by one, reports where it really stopped, and releases them all.

Usage:
  stackprobe limits [flags]

Flags:
`

// runLimits is the limits subcommand.
func runLimits(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stackprobe limits", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	stack := fs.String("stack", "100MB", "size of each stack, guard page included")
	guardName := fs.String("guard", "mprotect", "guard mode: mprotect, madvise or none")
	verify := fs.Int64("verify", 0, "reserve up to this many stacks to check the prediction (0: predict only)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, limitsHelp)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usagef("limits: %s", flagError(err))
	}
	if fs.NArg() > 0 {
		return usagef("limits: unexpected argument %q", fs.Arg(0))
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
	stackBytes := int64(mmapstack.RoundUp(int(size)))
	if guard != mmapstack.GuardNone && stackBytes <= int64(mmapstack.PageSize()) {
		return usagef("--stack %s leaves no usable bytes above the guard page", *stack)
	}
	sys, err := procread.ReadSystem("/proc", "/sys")
	if err != nil {
		return fmt.Errorf("read system facts: %w", err)
	}
	cur, err := limits.ReadCurrent("/proc")
	if err != nil {
		return fmt.Errorf("read process state: %w", err)
	}
	p := limits.Predict(sys, cur, stackBytes, guard)
	var v *limits.Verification
	if *verify > 0 {
		ver, err := limits.Verify(ctx, mmapstack.Options{Size: int(stackBytes), Guard: guard, MapStack: true}, *verify)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		v = &ver
	}
	return limits.WriteText(stdout, p, v)
}

// checkTaskLimits refuses a task count that the machine's limits predict
// cannot be reserved, before anything is. Facts that cannot be read skip
// the check (the run itself then reports what failed).
func checkTaskLimits(stacks int64, stackBytes int64, guard mmapstack.Guard, pingpong bool, clients int) error {
	sys, err := procread.ReadSystem("/proc", "/sys")
	if err != nil {
		return nil
	}
	if pingpong && sys.RlimitNofile > 0 {
		// Two sockets per client (its own and its peer's), plus the
		// listener, two epoll and two event fds, and the files the run
		// writes.
		if maxClients := (int64(sys.RlimitNofile) - 32) / 2; int64(clients) > maxClients {
			return usagef("--tasks %d: at most %d clients here, each needs 2 sockets and RLIMIT_NOFILE is %d (raise it with ulimit -n)",
				clients, max(maxClients, 0), sys.RlimitNofile)
		}
	}
	cur, err := limits.ReadCurrent("/proc")
	if err != nil {
		return nil
	}
	n, lim := limits.MaxTasks(sys, cur, stackBytes, guard)
	if n >= 0 && stacks > n {
		var what string
		if pingpong {
			what = fmt.Sprintf("--tasks %d (= %d stacks)", clients, stacks)
		} else {
			what = fmt.Sprintf("--tasks %d", stacks)
		}
		msg := fmt.Sprintf("%s: at most %d stacks of %s with guard %s here (%s: %s)", what, n, sizes.IEC(stackBytes), guard, lim.Name, lim.Detail)
		if h := limits.Hint(lim.Name); h != "" {
			msg += "; " + h
		}
		return usagef("%s", msg)
	}
	return nil
}
