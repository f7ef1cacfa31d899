package limits

import (
	"testing"

	"stackprobe/mmapstack"
)

// TestVerifyFull reserves stacks until the kernel refuses, in a child
// process, and reports the prediction next to the verified count; it
// checks nothing but that the child ran. Cases:
//
//   - 100 MiB stacks, up to 40000, in each guard mode. With guard mprotect
//     and the default vm.max_map_count the map count binds near 32k; with
//     madvise and none side-by-side stacks merge and nothing binds below
//     40000.
//   - 1 TiB stacks without a guard: the 128 TiB address space binds.
func TestVerifyFull(t *testing.T) {
	if testing.Short() {
		t.Skip("reserves up to 40000 stacks of 100 MiB; skipped with -short")
	}
	cases := []struct {
		name string
		cfg  childConfig
	}{
		{"100MiB/mprotect", childConfig{StackBytes: 100 << 20, Guard: "mprotect", N: 40000}},
		{"100MiB/madvise", childConfig{StackBytes: 100 << 20, Guard: "madvise", N: 40000}},
		{"100MiB/none", childConfig{StackBytes: 100 << 20, Guard: "none", N: 40000}},
		{"1TiB/none", childConfig{StackBytes: 1 << 40, Guard: "none", N: 1000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Guard == "madvise" {
				skipIfNoGuardInstall(t, mmapstack.GuardMadvise)
			}
			r := child(t, c.cfg)
			if r.Verification.Stopped != "" { // the bound was reached
				t.Logf("deviation %+.4f%%", r.Verification.Deviation(r.Max))
			}
			t.Logf("\n%s", r.Text)
		})
	}
}
