package main

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"stackprobe/limits"
	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/sizes"
)

// checkRun is the one step between parsing and running that looks at the
// machine and the file system: whether the limits let the stacks be
// reserved and used, and whether the outputs can be written. Every refusal
// is a usageError (exit 2) and nothing has been reserved or written yet.
func checkRun(need runNeeds, o options) error {
	if err := checkTaskLimits(need); err != nil {
		return err
	}
	return checkOutputs(o)
}

// runNeeds is what a run will ask of the machine.
type runNeeds struct {
	stacks, clients int
	stackBytes      int64
	guard           mmapstack.Guard
	pingpong        bool
	// usedBytes is what one stack will hold at most: its deepest depth in
	// whole pages (a 2 MiB block with huge pages), the whole stack when
	// populated.
	usedBytes int64
}

// needsOf is what cfg's run will ask of the machine.
func needsOf(cfg probe.Config) runNeeds {
	page := int64(mmapstack.PageSize())
	var deepest int64
	for _, d := range cfg.Depths {
		deepest = max(deepest, d)
	}
	used := probe.ExpectedPages(deepest, int(page)) * page
	if cfg.THP == mmapstack.THPHuge {
		used = (used + mmapstack.HugeBlock - 1) / mmapstack.HugeBlock * mmapstack.HugeBlock
	}
	if cfg.Populate {
		used = cfg.StackBytes
	}
	return runNeeds{stacks: cfg.Stacks(), clients: cfg.Tasks, stackBytes: cfg.StackBytes, guard: cfg.Guard,
		pingpong: cfg.Workload == probe.WorkloadPingPong, usedBytes: min(used, cfg.StackBytes)}
}

// perStackOverhead is what a stack costs besides its pages: a page-table
// page for its top, and the run's own bookkeeping (a few hundred bytes).
const perStackOverhead = 4096 + 1024

// checkTaskLimits refuses a task count that the machine's limits predict
// cannot be reserved, or whose pages cannot fit in the memory the run may
// use, before anything is reserved. Facts that cannot be read skip the
// check (the run itself then reports what failed).
func checkTaskLimits(n runNeeds) error {
	in, err := procread.ReadLimitInputs("/proc", "/sys")
	if err != nil {
		return nil
	}
	what := fmt.Sprintf("--tasks %d", n.stacks)
	if n.pingpong {
		what = fmt.Sprintf("--tasks %d (= %d stacks)", n.clients, n.stacks)
	}
	if nofile := in.System.RlimitNofile; n.pingpong && nofile > 0 {
		// Two sockets per client (its own and its peer's), plus the
		// listener, two epoll and two event fds, and the files the run
		// writes.
		if maxClients := (int64(nofile) - 32) / 2; int64(n.clients) > maxClients {
			return usagef("--tasks %d: at most %d clients here, each needs 2 sockets and RLIMIT_NOFILE is %d (raise it with ulimit -n)",
				n.clients, max(maxClients, 0), nofile)
		}
	}
	maxStacks, lim := limits.MaxTasks(in.System, in.Usage, n.stackBytes, n.guard)
	if maxStacks >= 0 && int64(n.stacks) > maxStacks {
		msg := fmt.Sprintf("%s: at most %d stacks of %s with guard %s here (%s: %s)", what, maxStacks, sizes.IEC(n.stackBytes), n.guard, lim.Name, lim.Detail)
		if h := limits.Hint(lim.Name); h != "" {
			msg += "; " + h
		}
		return usagef("%s", msg)
	}
	if b, ok := in.MemoryBound(); ok {
		each := n.usedBytes + perStackOverhead
		if need := uint64(n.stacks) * uint64(each); need > b.Binding.Bytes {
			return usagef("%s: the stacks would hold about %s (%s each, used to the deepest depth, plus page tables and bookkeeping), more than the %s that %s allows",
				what, sizes.IEC(int64(need)), sizes.IEC(each), sizes.IEC(int64(b.Binding.Bytes)), b.Binding.Source)
		}
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
