package limits

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"stackprobe/sizes"
)

// Tolerance is the largest deviation, in percent, at which a verified
// count is said to agree with its prediction.
const Tolerance = 1.0

// WriteText writes a report for people: every limit with the stacks it
// allows, the prediction and the binding limit, and, if v is not nil, the
// verified count, its agreement with the prediction and how to raise the
// binding limit.
func WriteText(w io.Writer, p Prediction, v *Verification) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Stacks of %s (%d bytes, %d mapped), guard %s\n\n",
		sizes.IEC(p.StackBytes), p.StackBytes, p.MappedBytes, p.Guard)
	tw := tabwriter.NewWriter(bw, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "LIMIT\tMAX STACKS\tDETAIL")
	for _, l := range p.Limits {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, l.MaxString(), l.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(bw)
	if p.Binding.Bounded() {
		fmt.Fprintf(bw, "Predicted: %d stacks, bound by %s.\n", p.Max, p.Binding.Name)
	} else {
		fmt.Fprintln(bw, "Predicted: no limit bounds the number of stacks.")
	}
	if p.UsableBinding.Name != "" && p.Usable != p.Max {
		fmt.Fprintf(bw, "Usable:    %d stacks by a run, keeping %d VMAs for the Go runtime's threads and heap.\n", p.Usable, p.HeadroomVMAs)
	}
	if v != nil {
		writeVerification(bw, p, *v)
	}
	if h := Hint(p.Binding.Name); h != "" && (p.Binding.Bounded() || v != nil && v.StoppedBy != nil) {
		fmt.Fprintf(bw, "To raise it: %s.\n", h)
	}
	return bw.Flush()
}

// writeVerification writes the verified count and its agreement with p.
func writeVerification(w io.Writer, p Prediction, v Verification) {
	if v.StoppedBy != nil {
		why := v.StoppedBy.Error()
		if v.Errno != "" {
			why = v.Errno + ": " + why
		}
		fmt.Fprintf(w, "Verified:  %d stacks reserved in %.2f s, then refused (%s).\n", v.Reserved, v.Seconds, why)
	} else {
		fmt.Fprintf(w, "Verified:  all %d requested stacks reserved in %.2f s; no limit was reached.\n", v.Reserved, v.Seconds)
	}
	fmt.Fprintf(w, "VMAs:      %d before, %d with the stacks held (%.3f per stack), %d after release",
		v.VMAsBefore, v.VMAsPeak, v.VMAsPerStack, v.VMAsAfter)
	if v.VMAsAfter != v.VMAsBefore {
		fmt.Fprintf(w, " (%+d against the baseline)", v.VMAsAfter-v.VMAsBefore)
	}
	fmt.Fprintln(w, ".")
	fmt.Fprintf(w, "Agreement: %s.\n", agreement(p, v))
}

// agreement compares the verified count with the prediction.
func agreement(p Prediction, v Verification) string {
	switch {
	case v.StoppedBy == nil && (!p.Binding.Bounded() || v.Reserved < p.Max):
		if !p.Binding.Bounded() {
			return fmt.Sprintf("consistent: %d reserved, no bound predicted", v.Reserved)
		}
		return fmt.Sprintf("consistent, not tested to the bound: %d requested, predicted %d", v.Requested, p.Max)
	case v.StoppedBy == nil:
		return fmt.Sprintf("verified %d, predicted %d: the prediction is too low", v.Reserved, p.Max)
	case !p.Binding.Bounded():
		return fmt.Sprintf("refused after %d stacks, but no bound was predicted", v.Reserved)
	}
	d := v.Deviation(p.Max)
	if v.Reserved == p.Max {
		return fmt.Sprintf("verified %d, predicted %d: exact", v.Reserved, p.Max)
	}
	verdict := "within"
	if math.IsNaN(d) || math.Abs(d) > Tolerance {
		verdict = "off by"
	}
	return fmt.Sprintf("verified %d, predicted %d: %s %s%%", v.Reserved, p.Max, verdict, percent(math.Abs(d)))
}

// percent formats a non-negative percentage with enough digits to show it.
func percent(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "NaN"
	case x < 0.01:
		return fmt.Sprintf("%.3f", x)
	case x < 1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.1f", x)
	}
}

// Hint says how to raise the limit called name; "" if there is no advice.
func Hint(name string) string {
	switch name {
	case NameMapCount:
		return "sysctl -w vm.max_map_count=N, N >= 2 x stacks + VMAs in use (guard mprotect), " +
			"or --guard=madvise (Linux >= 6.13: no VMA per guard, side-by-side stacks merge)"
	case NameOvercommit:
		return "sysctl -w vm.overcommit_memory=0 (MAP_NORESERVE stacks are then not charged), " +
			"or lift CommitLimit with a larger vm.overcommit_ratio or more swap"
	case NameRlimitAS:
		return "ulimit -v unlimited (or a larger value, in KiB) in the shell that starts stackprobe"
	case NameRlimitData:
		return "ulimit -d unlimited (or a larger value, in KiB) in the shell that starts stackprobe"
	case NameAddressSpace:
		return "use smaller stacks (--stack); the user address space is fixed"
	case NamePageTables:
		return "use --guard=mprotect (no page tables per guard, but 2 VMAs per stack) or larger stacks"
	case NameCgroup:
		return "raise the cgroup's memory.max, or use --guard=mprotect (no page tables per guard)"
	case NameGuardSupport:
		return "use --guard=mprotect, or a kernel >= 6.13"
	case NameStackSize:
		return "use a --stack of at least two pages"
	}
	return ""
}
