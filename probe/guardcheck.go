package probe

import (
	"fmt"

	"stackprobe/mmapstack"
)

// GuardCheck is one deliberate overflow: a byte written one past the
// usable bottom of a stack that has another stack mapped directly below it.
type GuardCheck struct {
	Guard mmapstack.Guard `json:"guard"`
	// Target is the address written (the stack's Lo-1).
	Target string `json:"target_addr"`
	// Faulted is true when the write faulted and was caught.
	Faulted bool `json:"faulted"`
	// FaultAddr is the address the kernel reported for the fault.
	FaultAddr string `json:"fault_addr,omitempty"`
	// Corrupted is true when the write silently changed the stack below.
	Corrupted bool `json:"corrupted"`
	// Detail says what happened, in words.
	Detail string `json:"detail"`
}

// CheckGuards overflows a small stack by one byte under each guard mode
// and reports what the write did.
func CheckGuards() []GuardCheck {
	var out []GuardCheck
	for _, g := range []mmapstack.Guard{mmapstack.GuardMprotect, mmapstack.GuardMadvise, mmapstack.GuardNone} {
		out = append(out, checkGuard(g))
	}
	return out
}

func checkGuard(g mmapstack.Guard) GuardCheck {
	c := GuardCheck{Guard: g}
	upper, lower, err := mmapstack.ReservePair(mmapstack.Options{Size: 16 * mmapstack.PageSize(), Guard: g})
	if err != nil {
		c.Detail = fmt.Sprintf("could not set up: %v", err)
		return c
	}
	defer upper.Close()
	defer lower.Close()
	target := upper.Lo() - 1
	c.Target = fmt.Sprintf("%#x", target)
	before := lower.TopByte()
	f := upper.WriteBelow()
	switch {
	case f != nil:
		c.Faulted = true
		c.FaultAddr = fmt.Sprintf("%#x", f.Addr)
		c.Detail = fmt.Sprintf("the write faulted at %#x and was caught (%v)", f.Addr, f.Err)
	case lower.TopByte() != before:
		c.Corrupted = true
		c.Detail = fmt.Sprintf("no fault: the write silently changed the top byte of the stack below from %#x to %#x", before, lower.TopByte())
	default:
		c.Detail = "no fault, and the stack below is unchanged"
	}
	return c
}
