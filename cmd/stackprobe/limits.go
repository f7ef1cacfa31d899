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
	"stackprobe/report"
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
	fs := newFlagSet("stackprobe limits")
	stack := fs.String("stack", "100MB", "size of each stack, guard page included")
	guardName := fs.String("guard", "mprotect", "guard mode: mprotect, madvise or none")
	var verifyN int64
	verify := &verifyN
	fs.Var(decimal64{verify}, "verify", "reserve up to this many stacks to check the prediction (0: predict only)")
	format := fs.String("format", "text", "stdout format: text or json")
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
	in, err := procread.ReadLimitInputs("/proc", "/sys")
	if err != nil {
		return fmt.Errorf("read limits: %w", err)
	}
	p := limits.PredictInputs(in, stackBytes, guard)
	var v *limits.Verification
	if *verify > 0 {
		ver, err := limits.Verify(ctx, mmapstack.Options{Size: int(stackBytes), Guard: guard, MapStack: true}, *verify)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		v = &ver
	}
	if *format == "json" {
		return report.WriteJSON(stdout, limitsJSON{Prediction: p, Verification: v})
	}
	return limits.WriteText(stdout, p, v)
}

// limitsJSON is what limits --format=json prints.
type limitsJSON struct {
	Prediction   limits.Prediction    `json:"prediction"`
	Verification *limits.Verification `json:"verification,omitempty"`
}
