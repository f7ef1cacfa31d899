package probe

import (
	"context"
	"testing"

	"stackprobe/mmapstack"
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
