package probe

import (
	"context"
	"slices"
	"testing"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// Every task of a ramp over one depth reaches 128 KiB at its first
// message: each strategy's end state is then exact.
func TestPingPongCompareRamp128K(t *testing.T) {
	page := int64(mmapstack.PageSize())
	const clients, messages, rounds = 4, 40, 2
	cfg := pingpongConfig("unix", clients, messages, PatternRamp, 128<<10)
	cfg.StackBytes = 2 * mib
	cfg.Idle = time.Millisecond
	c, err := NewPingPongCompare(cfg, rounds, Env{}).Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []StrategyName
	by := map[StrategyName]PingPongStrategy{}
	for _, s := range c.Strategies {
		names = append(names, s.Name)
		by[s.Name] = s
		if s.Skipped != "" || s.Error != "" {
			t.Fatalf("%s: skipped %q, error %q", s.Name, s.Skipped, s.Error)
		}
		if len(s.Rounds) != rounds || s.PingPongFigures == nil || s.RoundsMeasured != rounds {
			t.Fatalf("%s: %d rounds, figures %+v", s.Name, len(s.Rounds), s.PingPongFigures)
		}
		for i, r := range s.Rounds {
			if r.Round != i+1 || r.RoundTrips != clients*messages || r.Errors != 0 || r.Stacks != 2*clients {
				t.Errorf("%s round %d: %+v; want %d round trips, 0 errors", s.Name, i+1, r, clients*messages)
			}
		}
		f := s.PingPongFigures
		if f.RoundTrips != clients*messages || f.Errors != 0 ||
			f.RoundTripsPerSecondMin > f.RoundTripsPerSecond || f.RoundTripsPerSecond > f.RoundTripsPerSecondMax || f.RoundTripsPerSecondMin <= 0 {
			t.Errorf("%s figures: %+v", s.Name, f)
		}
	}
	want := []StrategyName{"lazy-4k", "lazy-thp", "dontneed", "free", "idle-dontneed", "eager", "no-touch"}
	if !slices.Equal(names, want) {
		t.Fatalf("strategies %v, want %v", names, want)
	}
	end := func(name StrategyName, lo, hi int64) {
		t.Helper()
		for _, r := range by[name].Rounds {
			if r.EndRSSBytesMin != lo || r.EndRSSBytesMax != hi {
				t.Errorf("%s round %d: %d..%d bytes per stack at the end, want %d..%d", name, r.Round, r.EndRSSBytesMin, r.EndRSSBytesMax, lo, hi)
			}
		}
	}
	// No release: the high-water mark, exactly; MADV_FREE'd pages stay
	// resident without memory pressure.
	end(StrategyLazy4K, 128<<10, 128<<10)
	end(StrategyFreeEach, 128<<10, 128<<10)
	// DONTNEED after every message: exactly the kept top.
	end(StrategyDontneedEach, page, page)
	// Touching nothing leaves nothing resident.
	end(StrategyNoTouch, 0, 0)
	for _, name := range []StrategyName{StrategyLazy4K, StrategyFreeEach, StrategyDontneedEach} {
		for _, r := range by[name].Rounds {
			if r.EndAsPredicted != r.Stacks {
				t.Errorf("%s round %d: %d of %d stacks as predicted", name, r.Round, r.EndAsPredicted, r.Stacks)
			}
		}
	}
	if f := by[StrategyLazy4K].PingPongFigures; f.EndRSSBytesPerStack != 128<<10 || f.PeakRSSBytesPerStack > 128<<10 {
		t.Errorf("lazy-4k: end %d, peak %d bytes per stack", f.EndRSSBytesPerStack, f.PeakRSSBytesPerStack)
	}
	// Every message both tasks of a round trip release: two calls.
	for name, calls := range map[StrategyName]float64{StrategyDontneedEach: 2, StrategyFreeEach: 2, StrategyLazy4K: 0, StrategyNoTouch: 0} {
		if got := by[name].MadviseCallsPerRoundTrip; got != calls {
			t.Errorf("%s: %v madvise calls per round trip, want %v", name, got, calls)
		}
	}
	// Idle policy: every stack whose last event was an idle release holds
	// exactly the kept top; the others at most their high-water mark. (A
	// task closes its socket right after its last message, so a stack is
	// rarely idle at the end; releases during the run are logged.)
	var checked int64
	for _, r := range by[StrategyIdleDontneed].Rounds {
		// Every idle release, measured right after, left exactly the kept top.
		checked += r.IdleReleasesChecked
		if r.IdleReleasesKeptTop != r.IdleReleasesChecked {
			t.Errorf("idle-dontneed round %d: %d of %d idle releases left exactly the kept top", r.Round, r.IdleReleasesKeptTop, r.IdleReleasesChecked)
		}
		if r.IdleAtEnd != r.IdleAtEndKeptTop || r.EndRSSBytesMax > 128<<10 {
			t.Errorf("idle-dontneed round %d: %d stacks idle at the end, %d of them at the kept top; max %d bytes",
				r.Round, r.IdleAtEnd, r.IdleAtEndKeptTop, r.EndRSSBytesMax)
		}
		if r.IdleAtEnd > 0 && r.EndRSSBytesMin != page {
			t.Errorf("idle-dontneed round %d: %d stacks idle at the end but none at %d bytes (min %d)", r.Round, r.IdleAtEnd, page, r.EndRSSBytesMin)
		}
		t.Logf("idle-dontneed round %d: %d stacks released when idle (%d releases checked), %d idle at the end", r.Round, r.IdleStacks, r.IdleReleasesChecked, r.IdleAtEnd)
	}
	if checked == 0 {
		t.Errorf("idle-dontneed: no idle release was checked in %d rounds: the idle policy went untested", len(by[StrategyIdleDontneed].Rounds))
	}
	// MAP_POPULATE backs every page of the mapping; the guard page,
	// made PROT_NONE after the mapping was populated, keeps its page.
	end(StrategyEager, cfg.StackBytes, cfg.StackBytes)
	// Page tables: the 4 KiB stacks that keep 128 KiB each built at least
	// part of a PTE page; VmPTE is process-wide, so bound it loosely.
	if p := by[StrategyLazy4K].PTEBytesPerStack; p != nil && *p > 64<<10 {
		t.Errorf("lazy-4k: %d bytes of page tables per stack", *p)
	}
}

func TestFiguresOf(t *testing.T) {
	pte := int64(4096)
	rounds := []PingPongRound{
		{Round: 1, RoundTrips: 100, RoundTripsPerSecond: new(300.0), LatencyNanos: &Latency{P50: 10, P99: 30, Max: 50}, EndRSSBytesPerStack: 8192, PTEBytesPerStack: &pte, VmRSSBytes: 3},
		{Round: 2, RoundTrips: 100, RoundTripsPerSecond: new(100.0), LatencyNanos: &Latency{P50: 30, P99: 50, Max: 90}, EndRSSBytesPerStack: 8192, VmRSSBytes: 1},
		{Round: 3, RoundTrips: 40, Error: "watchdog", RoundTripsPerSecond: new(1.0)},
		{Round: 4, RoundTrips: 100, Errors: 1, RoundTripsPerSecond: new(200.0), LatencyNanos: &Latency{P50: 20, P99: 40, Max: 70}, EndRSSBytesPerStack: 4096, VmRSSBytes: 2},
	}
	f := figuresOf(rounds)
	if f.RoundsMeasured != 3 || f.RoundTrips != 100 || f.Errors != 1 {
		t.Errorf("rounds %d, round trips %d, errors %d; want 3, 100, 1 (the failed round left out)", f.RoundsMeasured, f.RoundTrips, f.Errors)
	}
	if f.RoundTripsPerSecond != 200 || f.RoundTripsPerSecondMin != 100 || f.RoundTripsPerSecondMax != 300 {
		t.Errorf("throughput %v [%v, %v], want 200 [100, 300]", f.RoundTripsPerSecond, f.RoundTripsPerSecondMin, f.RoundTripsPerSecondMax)
	}
	if f.LatencyNanos != (Latency{P50: 20, P99: 40, Max: 70}) || f.EndRSSBytesPerStack != 8192 || f.VmRSSBytes != 2 {
		t.Errorf("latency %+v, end %d, vmrss %d", f.LatencyNanos, f.EndRSSBytesPerStack, f.VmRSSBytes)
	}
	if f.PTEBytesPerStack == nil || *f.PTEBytesPerStack != 4096 {
		t.Errorf("page tables %v, want the one round that measured them", f.PTEBytesPerStack)
	}
	if figuresOf(rounds[2:3]) != nil {
		t.Error("figures of failed rounds only, want nil (absent)")
	}
	if m := median([]int64{1, 4}); m != 2 {
		t.Errorf("median of 1, 4 = %d, want 2", m)
	}
	if m := median([]float64{1, 4}); m != 2.5 {
		t.Errorf("median of 1.0, 4.0 = %v, want 2.5", m)
	}
}

func TestPopulateUnfit(t *testing.T) {
	b := procread.MemoryLimit{Bytes: 1000 << 20, Source: "MemAvailable"}
	if got := populateUnfit(100<<20, 10, b, true); got == "" {
		t.Error("10 × 100 MiB populated with 1000 MiB available: want skipped")
	}
	if got := populateUnfit(100<<20, 5, b, true); got != "" {
		t.Errorf("5 × 100 MiB with 1000 MiB available: skipped %q", got)
	}
	if got := populateUnfit(100<<20, 1000, b, false); got != "" {
		t.Errorf("no bound known: skipped %q", got)
	}
}
