package limits

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// runtimeVMAs bounds the mappings the Go runtime (and, under -race, the
// race detector) may add to the process while a test reserves stacks:
// heap growth and new threads. They stay after the stacks are released.
const runtimeVMAs = 8

// skipIfNoGuardInstall skips a GuardMadvise test on a kernel without
// MADV_GUARD_INSTALL.
func skipIfNoGuardInstall(t *testing.T, g mmapstack.Guard) {
	t.Helper()
	if g != mmapstack.GuardMadvise {
		return
	}
	s, err := mmapstack.Reserve(mmapstack.Options{Size: 1 << 20, Guard: g})
	if errors.Is(err, unix.EINVAL) {
		t.Skipf("MADV_GUARD_INSTALL not supported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// TestVerifyReleases reserves a few stacks in each guard mode, well below
// any limit, and checks the VMAs they cost and that all are released.
func TestVerifyReleases(t *testing.T) {
	const n = 64
	for _, g := range []mmapstack.Guard{mmapstack.GuardMprotect, mmapstack.GuardMadvise, mmapstack.GuardNone} {
		t.Run(g.String(), func(t *testing.T) {
			skipIfNoGuardInstall(t, g)
			before, err := procread.ReadUsage("", 0)
			if err != nil {
				t.Fatal(err)
			}
			v, err := Verify(context.Background(), mmapstack.Options{Size: 100 * mib, Guard: g, MapStack: true}, n)
			if err != nil {
				t.Fatal(err)
			}
			after, err := procread.ReadUsage("", 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", v)
			if v.Requested != n || v.Reserved != n || v.StoppedBy != nil || v.Errno != "" || v.Stopped != "" {
				t.Errorf("reserved %d of %d, stopped by %v (%s)", v.Reserved, v.Requested, v.StoppedBy, v.Errno)
			}
			// mprotect: exactly 2 VMAs per stack, plus whatever the runtime
			// added meanwhile. madvise, none: the stacks merge into one or
			// a few VMAs.
			lo, hi := 0.0, float64(1+runtimeVMAs)/n
			if g == mmapstack.GuardMprotect {
				lo, hi = 2, 2+float64(runtimeVMAs)/n
			}
			if v.VMAsPerStack < lo || v.VMAsPerStack > hi {
				t.Errorf("%.3f VMAs per stack, want %.3f to %.3f", v.VMAsPerStack, lo, hi)
			}
			if d := v.VMAsAfter - v.VMAsBefore; d < -runtimeVMAs || d > runtimeVMAs { // the runtime maps and unmaps meanwhile
				t.Errorf("VMAs %d before, %d after release", v.VMAsBefore, v.VMAsAfter)
			}
			// Every stack unmapped: VmSize grew by less than one stack.
			if after.VmSizeBytes > before.VmSizeBytes && after.VmSizeBytes-before.VmSizeBytes >= 100*mib {
				t.Errorf("VmSize %d before, %d after release", before.VmSizeBytes, after.VmSizeBytes)
			}
		})
	}
}

func TestVerifyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v, err := Verify(ctx, mmapstack.Options{Size: 1 * mib}, 10)
	if !errors.Is(err, context.Canceled) || !errors.Is(v.StoppedBy, context.Canceled) || v.Reserved != 0 {
		t.Errorf("cancelled: %+v, %v", v, err)
	}
}

func TestVerifyBadInput(t *testing.T) {
	if _, err := Verify(context.Background(), mmapstack.Options{Size: 1 * mib}, -1); err == nil {
		t.Error("negative count accepted")
	}
	// A reservation refused for its options is a finding, not an error.
	v, err := Verify(context.Background(), mmapstack.Options{Size: 0}, 3)
	if err != nil || v.Reserved != 0 || v.StoppedBy == nil || v.Errno != "" {
		t.Errorf("zero size: %+v, %v", v, err)
	}
}

// TestVerifyRlimit lowers RLIMIT_AS or RLIMIT_DATA in a child process so
// that six 256 MiB stacks fit, and checks that the prediction names the
// limit and the kernel refuses the seventh stack, not one earlier or
// later. Half a stack is left to spare so the Go runtime can still grow.
func TestVerifyRlimit(t *testing.T) {
	for _, c := range []struct{ rlimit, name string }{{"as", NameRlimitAS}, {"data", NameRlimitData}} {
		for _, guard := range []string{"mprotect", "none"} {
			t.Run(c.rlimit+"/"+guard, func(t *testing.T) {
				r := child(t, childConfig{StackBytes: 256 * mib, Guard: guard, N: 100, Rlimit: c.rlimit, RlimitStacks: 6})
				v := r.Verification
				if r.Binding.Name != c.name || r.Max != 6 {
					t.Errorf("predicted %d bound by %s, want 6 by %s\n%s", r.Max, r.Binding.Name, c.name, r.Text)
				}
				if v.Reserved != 6 || v.Errno != "ENOMEM" {
					t.Errorf("verified %d, stopped by %q (%s), want 6 and ENOMEM\n%s", v.Reserved, v.Stopped, v.Errno, r.Text)
				}
				if d := v.VMAsAfter - v.VMAsBefore; d < -runtimeVMAs || d > runtimeVMAs { // the runtime maps and unmaps meanwhile
					t.Errorf("VMAs %d before, %d after release", v.VMAsBefore, v.VMAsAfter)
				}
				if !strings.Contains(r.Text, "exact") || !strings.Contains(r.Text, "ulimit") {
					t.Errorf("report lacks the agreement or the hint:\n%s", r.Text)
				}
			})
		}
	}
}

// TestNoreserveSkipsOvercommitHeuristic shows why Predict does not apply
// mode 0's heuristic to stacks: a MAP_NORESERVE mapping twice the size of
// RAM is accepted, the same mapping without MAP_NORESERVE is refused.
func TestNoreserveSkipsOvercommitHeuristic(t *testing.T) {
	sys, err := procread.ReadSystem("", "")
	if sys.OvercommitMemory == nil || *sys.OvercommitMemory != 0 || sys.MemTotal == 0 {
		t.Skipf("needs vm.overcommit_memory=0 and MemTotal (read error: %v)", err)
	}
	size := int(2 * (sys.MemTotal + 1<<30))
	s, err := mmapstack.Reserve(mmapstack.Options{Size: size, Guard: mmapstack.GuardNone})
	if err != nil {
		t.Fatalf("MAP_NORESERVE stack of %d bytes (twice RAM) refused: %v", size, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Swap would raise the heuristic's bound past 2x RAM only if it were
	// as large as RAM; skip the contrast with any swap, or unknown swap.
	if sys.SwapTotal == nil || *sys.SwapTotal > 0 {
		return
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err == nil {
		_ = unix.Munmap(mem)
		t.Fatalf("a %d-byte mapping without MAP_NORESERVE was accepted under overcommit_memory=0", size)
	}
	if !errors.Is(err, unix.ENOMEM) {
		t.Fatalf("mmap without MAP_NORESERVE: %v, want ENOMEM", err)
	}
}

func TestDeviation(t *testing.T) {
	v := Verification{Reserved: 32742}
	if d := v.Deviation(32743); math.Abs(d+0.003054) > 1e-5 {
		t.Errorf("deviation %f", d)
	}
	if d := v.Deviation(0); !math.IsNaN(d) {
		t.Errorf("deviation from 0: %f", d)
	}
}
