package procread

import (
	"errors"
	"testing"
)

// TestProcDirTotals reads ProcTotals from fixture trees: a sleeping
// process, and one exiting, whose status has lost its Vm lines (its
// address space is gone) while its state is not yet Z.
func TestProcDirTotals(t *testing.T) {
	d, err := OpenProcDir("testdata/totals-proc", 4242)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Totals()
	if err != nil {
		t.Fatal(err)
	}
	want := ProcTotals{VmRSS: 1740 << 10, VmPTE: 48 << 10, MinorFaults: 142, Threads: 1}
	if got != want {
		t.Errorf("Totals = %+v, want %+v", got, want)
	}

	d, err = OpenProcDir("testdata/totals-exiting", 4242)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Totals(); !errors.Is(err, ErrGone) {
		t.Errorf("Totals of an exiting process = %+v, %v; want ErrGone", got, err)
	}
}
