package limits

import (
	"math"
	"testing"

	"stackprobe/mmapstack"
)

// TestVerifyFull reserves stacks until the kernel refuses, in a child
// process, and holds the verified count against the prediction. Cases:
//
//   - 100 MiB stacks, up to 40000, in each guard mode. With guard mprotect
//     and the default vm.max_map_count the map count binds near 32k, and
//     the prediction must be exact: both count mm->map_count, 2 VMAs per
//     stack. With madvise and none side-by-side stacks merge and nothing
//     binds below 40000: all 40000 must be reserved.
//   - 1 TiB stacks without a guard: the free ranges of the 128 TiB address
//     space bind. The Go runtime (or the race detector) may map or unmap
//     between the prediction and the reservations, so the count may move
//     by a stack; more than Tolerance percent fails.
func TestVerifyFull(t *testing.T) {
	if testing.Short() {
		t.Skip("reserves up to 40000 stacks of 100 MiB; skipped with -short")
	}
	cases := []struct {
		name  string
		cfg   childConfig
		exact bool // predicted must equal verified
	}{
		{"100MiB/mprotect", childConfig{StackBytes: 100 << 20, Guard: "mprotect", N: 40000}, true},
		{"100MiB/madvise", childConfig{StackBytes: 100 << 20, Guard: "madvise", N: 40000}, false},
		{"100MiB/none", childConfig{StackBytes: 100 << 20, Guard: "none", N: 40000}, false},
		{"1TiB/none", childConfig{StackBytes: 1 << 40, Guard: "none", N: 1000}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Guard == "madvise" {
				skipIfNoGuardInstall(t, mmapstack.GuardMadvise)
			}
			r := child(t, c.cfg)
			v := r.Verification
			t.Logf("\n%s", r.Text)
			if v.Stopped == "" { // the requested count was reached
				if v.Reserved != c.cfg.N {
					t.Errorf("reserved %d of %d without being refused", v.Reserved, c.cfg.N)
				}
				if r.Max >= 0 && r.Max < v.Reserved {
					t.Errorf("predicted %d, yet %d were reserved", r.Max, v.Reserved)
				}
				return
			}
			if v.Errno != "ENOMEM" {
				t.Errorf("stopped by %q (%s), want ENOMEM", v.Stopped, v.Errno)
			}
			if c.exact {
				// The rule is exact: each stack takes 2 VMAs, the last
				// fitting while 2 more fit. Mappings the runtime (or the
				// race detector) made between the read and the peak take
				// theirs first; with none, the count is the prediction.
				extra := v.VMAsPeak - v.VMAsBefore - 2*int(v.Reserved)
				drift := v.VMAsBefore - r.Current.VMAs
				want := (r.MaxMapCount - int64(v.VMAsBefore) - int64(extra)) / 2
				if v.Reserved != want || extra == 0 && drift == 0 && v.Reserved != r.Max {
					t.Errorf("predicted %d, verified %d; with %d VMAs before the loop and %d mapped by the runtime during it, want %d",
						r.Max, v.Reserved, v.VMAsBefore, extra, want)
				}
				if extra != 0 || drift != 0 {
					t.Logf("the runtime mapped %d VMAs before the loop and %d during it", drift, extra)
				}
			}
			if d := v.Deviation(r.Max); math.IsNaN(d) || math.Abs(d) > Tolerance {
				t.Errorf("predicted %d, verified %d: deviation %+.4f%%, outside the %.0f%% tolerance", r.Max, v.Reserved, d, Tolerance)
			}
			if c.cfg.Guard == "mprotect" && r.Usable != r.Max-RuntimeHeadroomVMAs/2 {
				t.Errorf("usable %d, want %d less %d VMAs of headroom (%d stacks)", r.Usable, r.Max, RuntimeHeadroomVMAs, RuntimeHeadroomVMAs/2)
			}
		})
	}
}
