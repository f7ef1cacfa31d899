package report

import (
	"fmt"
	"io"
	"strings"

	"stackprobe/limits"
	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/sizes"
)

// Answer is the block that opens evidence.md: three or four sentences a
// design note can quote, each computed from r — what one coroutine costs
// (r.Cost), how many fit in the memory the run found (MemAvailable or the
// cgroup's limit, from r.Environment), which limit binds first (the
// limits package's prediction from the run's environment and VMA count,
// with that memory fit added), and, for the ping-pong, what a connection
// adds in socket memory. A figure the run did not measure is left out
// and the sentence says why.
func Answer(r *probe.Result) []string {
	c := r.Config
	stack := fmt.Sprintf("%s (%d-byte) lazy stack with guard %s", sizes.IEC(c.StackBytes), c.StackBytes, c.Guard)
	cost := r.Cost
	if cost == nil || cost.Stacks == 0 {
		return append([]string{"The cost per coroutine on a " + stack + " was not measured in this run, so neither is how many fit"},
			connectionAnswer(r)...)
	}
	var out []string
	var b strings.Builder
	switch {
	case cost.DepthBytes == 0 && c.Workload != probe.WorkloadTouch:
		fmt.Fprintf(&b, "At the end of this ping-pong a coroutine on a %s holds %s on average", stack, sizes.IEC(cost.TotalBytes))
	case heldDepth(r, cost) != cost.DepthBytes:
		fmt.Fprintf(&b, "After depths up to %s (last step %s) a coroutine on a %s holds %s",
			sizes.IEC(cost.HighWaterBytes), sizes.IEC(cost.DepthBytes), stack, sizes.IEC(cost.TotalBytes))
	default:
		fmt.Fprintf(&b, "At depth %s a coroutine on a %s holds %s", sizes.IEC(cost.DepthBytes), stack, sizes.IEC(cost.TotalBytes))
	}
	pt := cost.PageTables
	fmt.Fprintf(&b, " (%s resident", sizes.IEC(cost.ResidentBytes))
	if pt != nil {
		fmt.Fprintf(&b, " + %s page tables", sizes.IEC(pt.PerStackBytes))
	}
	if cost.KernelBytes != nil {
		fmt.Fprintf(&b, " + %s kernel: %.3g VMAs of %d B", sizes.IEC(*cost.KernelBytes), cost.VMAsPerStack, *cost.VMAObjectBytes)
	}
	b.WriteString(")")
	if pt == nil {
		fmt.Fprintf(&b, "; the page tables are left out: %s", cost.PageTablesMissing)
	}
	if cost.KernelBytes == nil {
		fmt.Fprintf(&b, "; the kernel's VMA cost (%.3g VMAs per stack) is left out: %s", cost.VMAsPerStack, cost.KernelMissing)
	}
	fmt.Fprintf(&b, ", measured over %d stacks", cost.Stacks)
	if pt != nil {
		fmt.Fprintf(&b, "; the page tables are %s of PTE pages + %s of PMD + %s of PUD share",
			sizes.IEC(pt.PTEBytes), sizes.IEC(pt.PMDShareBytes), sizes.IEC(pt.PUDShareBytes))
	}
	switch f := cost.AttributedOverDelta; {
	case f != nil && *f > 1:
		fmt.Fprintf(&b, " (%.1f%% of the process's VmPTE growth: PMD and PUD pages count by address, also those that mapped other memory before the stacks)", 100**f)
	case f != nil:
		fmt.Fprintf(&b, " (%.1f%% of the process's VmPTE growth)", 100**f)
	}
	out = append(out, b.String())
	if pt == nil {
		// A fit without the page tables would count too many.
		out = append(out, "How many fit in memory is left out: the page tables were not measured")
	} else {
		out = append(out, fitAnswer(r, cost)...)
	}
	return append(out, connectionAnswer(r)...)
}

// heldDepth is the depth whose pages the costed stacks hold: the deepest
// step when the release keeps pages (none; free, whose pages stay in Rss
// until memory is short), else the last step.
func heldDepth(r *probe.Result, cost *probe.Cost) int64 {
	if rel := r.Config.Release; (rel == mmapstack.ReleaseNone || rel == mmapstack.ReleaseFree) && cost.HighWaterBytes > cost.DepthBytes {
		return cost.HighWaterBytes
	}
	return cost.DepthBytes
}

// fitAnswer is how many coroutines fit in memory and which limit binds.
func fitAnswer(r *probe.Result, cost *probe.Cost) []string {
	in := procread.LimitInputs{System: r.Environment, Usage: procread.Usage{VMAs: r.Baseline.VMAs}}
	mem, source, ok := limits.MachineMemory(in)
	if !ok {
		return []string{"How many fit in memory is left out: neither MemAvailable nor a cgroup limit was read"}
	}
	per := limits.PerStack{DepthBytes: heldDepth(r, cost), Stacks: cost.Stacks, Resident: cost.ResidentBytes,
		PageTables: cost.PageTables.PerStackBytes, Kernel: cost.KernelBytes, KernelMissing: cost.KernelMissing, Total: cost.TotalBytes}
	fit := limits.FitMemory(per, mem, source)
	out := []string{fmt.Sprintf("%d such coroutines fit in this machine's memory (%s %s at the start of the run)",
		fit.Stacks, source, sizes.IEC(int64(mem)))}
	p := limits.Predict(r.Environment, in.Usage, r.Config.StackBytes, r.Config.Guard).WithMemory(per, fit)
	if !p.Binding.Bounded() {
		return append(out, "No limit bounds their number")
	}
	s := fmt.Sprintf("The binding limit is %s: %d stacks", p.Binding.Name, p.Binding.Max)
	if p.Binding.Name != limits.NameMemory {
		s += fmt.Sprintf(" (%s), before memory's %d", p.Binding.Detail, fit.Stacks)
	} else if next := runnerUp(p); next != nil {
		s += fmt.Sprintf(", before %s at %d", next.Name, next.Max)
	}
	return append(out, s)
}

// runnerUp is the bounded limit of p with the smallest Max other than the
// binding one; nil when there is none.
func runnerUp(p limits.Prediction) *limits.Limit {
	var best *limits.Limit
	for i, l := range p.Limits {
		if l.Bounded() && l.Name != p.Binding.Name && (best == nil || l.Max < best.Max) {
			best = &p.Limits[i]
		}
	}
	return best
}

// connectionAnswer is the ping-pong's socket memory per connection.
func connectionAnswer(r *probe.Result) []string {
	p := r.PingPong
	switch {
	case p == nil:
		return nil
	case p.SocketBytesPerConnection.MeanEnd == nil:
		return []string{"A connection's socket memory is left out: no look saw every connection open"}
	}
	s := p.SocketBytesPerConnection
	msg := fmt.Sprintf("A connection adds %s of socket memory (its two sockets' SO_MEMINFO, mean over %d connections at the last of %d looks",
		sizes.IEC(*s.MeanEnd), p.Clients, s.Looks)
	if s.Max != nil {
		msg += "; at most " + sizes.IEC(*s.Max)
	}
	return []string{msg + ")"}
}

// WriteAnswer writes the answer block: a heading and Answer's sentences.
func WriteAnswer(w io.Writer, r *probe.Result) error {
	var b strings.Builder
	b.WriteString("## Answer\n\n")
	for _, s := range Answer(r) {
		fmt.Fprintf(&b, "%s.\n", s)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
