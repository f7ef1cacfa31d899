package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"stackprobe/limits"
	"stackprobe/mmapstack"
	"stackprobe/procread"
	"stackprobe/report"
	"stackprobe/sizes"
)

// checkRun is the one step between parsing and running that looks at the
// machine and the file system: whether the limits let the stacks be
// reserved, and whether the outputs can be written. Every refusal is a
// usageError (exit 2) and nothing has been reserved or written yet.
func checkRun(stacks, clients int, stackBytes int64, guard mmapstack.Guard, pingpong bool, o options) error {
	if err := checkTaskLimits(int64(stacks), stackBytes, guard, pingpong, clients); err != nil {
		return err
	}
	return checkOutputs(o)
}

// checkOutputs checks --notes and --out.
func checkOutputs(o options) error {
	if o.notes != "" {
		if err := report.CheckNotes(o.notes); err != nil {
			return usagef("--notes: %v (it must be an existing, writable Markdown file)", err)
		}
	}
	if err := report.CheckOutDir(o.out, o.force); err != nil {
		return usagef("--out: %v", err)
	}
	return nil
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

// withHint adds to a runtime failure the advice that fits its cause: the
// limits that usually make mmap, mprotect or madvise fail with ENOMEM.
func withHint(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return err
	}
	if errors.Is(err, unix.ENOMEM) {
		return fmt.Errorf("%w (hint: vm.max_map_count caps mappings, 2 per stack with --guard=mprotect; "+
			"vm.overcommit_memory=2 charges every stack in full despite MAP_NORESERVE; check RLIMIT_AS with ulimit -v)", err)
	}
	return err
}
