package probe

import (
	"context"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

func TestCompareStrategies(t *testing.T) {
	cfg := touchConfig(4, 1, 1*mib, 4096)
	cfg.StackBytes = 16 * mib // a multiple of 2 MiB: tops are usually 2 MiB aligned
	c, err := NewCompare(cfg, Env{}).Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	page := int64(mmapstack.PageSize())
	by := map[StrategyName]StrategyResult{}
	for _, s := range c.Strategies {
		by[s.Strategy.Name] = s
		if s.Skipped == "" && len(s.Steps) != 3 {
			t.Fatalf("%s: %d steps, want 3", s.Strategy.Name, len(s.Steps))
		}
	}
	if len(by) != len(Strategies()) {
		t.Fatalf("%d strategies ran, want %d", len(by), len(Strategies()))
	}
	want := func(name StrategyName, step int, lo, hi int64) {
		t.Helper()
		st := by[name].Steps[step]
		if st.RSSBytesMin < lo || st.RSSBytesMax > hi {
			t.Errorf("%s step %d (depth %d): %d..%d bytes per stack, want within [%d, %d]",
				name, step, st.DepthBytes, st.RSSBytesMin, st.RSSBytesMax, lo, hi)
		}
	}
	// 4 KiB pages: exactly the claim, and the high-water mark after the
	// shallow last step.
	want("lazy-4k", 0, page, page)
	want("lazy-4k", 1, 1*mib, 1*mib)
	want("lazy-4k", 2, 1*mib, 1*mib)
	// MADV_DONTNEED gives everything below the kept page back; the peak
	// before the release still shows the step's depth.
	want("lazy-dontneed", 1, page, page)
	want("lazy-dontneed", 2, page, page)
	if p := by["lazy-dontneed"].Steps[1].PeakRSSBytesMax; p != 1*mib {
		t.Errorf("dontneed peak at 1 MiB: %d", p)
	}
	// MADV_FREE pages stay resident until memory pressure.
	want("lazy-free", 2, 1*mib, 1*mib)
	// MAP_POPULATE backs the whole stack at once.
	want("eager", 0, 16*mib, 16*mib)
	// Huge pages: a 1-byte touch makes 2 MiB resident where the top is aligned.
	if thp := by["lazy-thp"]; thp.TopsAligned2M == thp.Stacks {
		want("lazy-thp", 0, 2*mib, 2*mib)
	} else {
		t.Logf("only %d of %d stack tops 2 MiB aligned; THP step not asserted", thp.TopsAligned2M, thp.Stacks)
	}
	// Goroutines: a copying stack at least as large as the depth.
	if g := by["goroutine"].Steps[1].Go; g == nil || g.RuntimeStackBytesPerGoroutine == nil || *g.RuntimeStackBytesPerGoroutine < 1*mib {
		t.Errorf("goroutine stack at 1 MiB depth: %+v", g)
	}
	for _, name := range []StrategyName{StrategyLazy4K, StrategyDontneed} {
		if v := by[name].Steps[1].VMAsPerStack; v != 2 {
			t.Errorf("%s: %.2f VMAs per stack with guard mprotect, want 2", name, v)
		}
	}
	if len(c.Guards) != 3 {
		t.Fatalf("%d guard modes measured, want 3", len(c.Guards))
	}
	for _, g := range c.Guards {
		switch {
		case g.Skipped != "":
			t.Logf("guard %s skipped: %s", g.Guard, g.Skipped)
		case g.Guard == mmapstack.GuardMprotect && (g.VMAsPerStack < 1.75 || g.VMAsPerStack > 2.5):
			t.Errorf("guard mprotect: %.2f VMAs per stack, want 2", g.VMAsPerStack)
		case g.Guard != mmapstack.GuardMprotect && g.VMAsPerStack > 1:
			// No VMA for the guard; neighbours usually merge, but the kernel
			// does not promise to place stacks side by side.
			t.Errorf("guard %s: %.2f VMAs per stack, want at most 1", g.Guard, g.VMAsPerStack)
		case g.RSSBytesPerStack != page:
			t.Errorf("guard %s: %d resident bytes per stack after a 1-byte touch", g.Guard, g.RSSBytesPerStack)
		}
	}
}

// KeepLast keeps each size's last mmap strategy's stacks mapped until
// Close, and what it lists for them is what smaps shows there.
func TestCompareKeepLast(t *testing.T) {
	cfg := touchConfig(2, 4096, 64<<10)
	sizes := []int64{4 * mib, 8 * mib}
	cr := NewCompareSizes(cfg, sizes, Env{})
	cr.KeepLast()
	defer cr.Close()
	c, err := cr.Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	last := map[int64]StrategyResult{} // per size, the last mmap strategy that ran
	for _, s := range c.Strategies {
		if !s.Strategy.GoStacks && s.Skipped == "" {
			last[s.StackBytes] = s
		}
	}
	kept := cr.Kept()
	if len(kept) != len(sizes)*cfg.Tasks {
		t.Fatalf("%d stacks kept, want %d (%d per size)", len(kept), len(sizes)*cfg.Tasks, cfg.Tasks)
	}
	rss := smapsRSSByRange(t)
	for i, k := range kept {
		want := last[k.StackBytes]
		step := want.Steps[len(want.Steps)-1]
		if k.Strategy != want.Strategy.Name || k.StackBytes != sizes[i/cfg.Tasks] || k.Index != i%cfg.Tasks || int64(k.Size) != k.StackBytes {
			t.Errorf("kept %d: %+v; want strategy %s, stack %d of size %d", i, k, want.Strategy.Name, i%cfg.Tasks, sizes[i/cfg.Tasks])
		}
		if k.RSSBytes < step.RSSBytesMin || k.RSSBytes > step.RSSBytesMax {
			t.Errorf("kept %d: %d resident bytes, outside the last step's %d..%d", i, k.RSSBytes, step.RSSBytesMin, step.RSSBytesMax)
		}
		if got, vmas := rss(k.Base, k.Size); vmas == 0 || got != k.RSSBytes {
			t.Errorf("kept %d at %#x: smaps holds %d bytes in %d VMAs, Kept lists %d", i, k.Base, got, vmas, k.RSSBytes)
		}
	}
	if err := cr.Close(); err != nil {
		t.Fatal(err)
	}
	rss = smapsRSSByRange(t)
	for _, k := range kept {
		if _, vmas := rss(k.Base, k.Size); vmas != 0 {
			t.Errorf("stack at %#x still mapped after Close (%d VMAs)", k.Base, vmas)
		}
	}
	if len(cr.Kept()) != 0 {
		t.Errorf("Kept after Close lists %d stacks", len(cr.Kept()))
	}
}

// smapsRSSByRange reads /proc/self/smaps once and returns a function that
// sums the Rss of the VMAs inside [base, base+size) and counts them.
func smapsRSSByRange(t *testing.T) func(base uintptr, size int) (rss int64, vmas int) {
	t.Helper()
	type vma struct{ start, end, rss uint64 }
	var all []vma
	err := procread.ReadSmaps("/proc/self/smaps", func(v *procread.VMA) error {
		all = append(all, vma{v.Start, v.End, v.Rss})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return func(base uintptr, size int) (int64, int) {
		lo, hi := uint64(base), uint64(base)+uint64(size)
		var sum int64
		n := 0
		for _, v := range all {
			if v.start >= lo && v.end <= hi {
				sum += int64(v.rss)
				n++
			} else if v.start < hi && v.end > lo {
				t.Errorf("VMA %#x-%#x straddles the stack %#x-%#x", v.start, v.end, lo, hi)
			}
		}
		return sum, n
	}
}
