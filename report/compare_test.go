package report

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/probe"
)

func i64(v int64) *int64     { return &v }
func f64(v float64) *float64 { return &v }
func mmapStep(depth, rss, peak, pte int64, faults, ns float64) probe.StrategyStep {
	return probe.StrategyStep{DepthBytes: depth, RSSBytesMin: rss, RSSBytesMax: rss, RSSBytesMean: rss, PeakRSSBytesMax: peak,
		AnonHugeBytesPerStack: i64(0), PTEBytesPerStack: i64(pte), VMAsPerStack: 1, MinorFaultsPerPage: f64(faults), TouchNsPerPage: ns,
		VmRSSBytes: 50 << 20}
}

// comparison is a compare run of 64 tasks over 4 KiB, 1 MiB, 4 KiB with
// every strategy measured.
func comparison() *probe.Comparison {
	st := map[probe.StrategyName]probe.Strategy{}
	for _, s := range probe.Strategies() {
		st[s.Name] = s
	}
	c := &probe.Comparison{}
	c.PageSize = 4096
	c.Command = "stackprobe compare --tasks=64"
	c.Config = probe.Config{Tasks: 64, StackBytes: 100 * mib, Depths: []int64{4 * kib, mib, 4 * kib}, Guard: mmapstack.GuardMprotect}
	c.Strategies = []probe.StrategyResult{
		{Strategy: st[probe.StrategyLazy4K], Stacks: 64, ReserveNsPerStack: 2000, ReserveMinorFaultsPerStack: f64(0), Steps: []probe.StrategyStep{
			mmapStep(4*kib, 4*kib, 4*kib, 4096, 1, 2500), mmapStep(mib, mib, mib, 4096, 1, 2400), mmapStep(4*kib, mib, mib, 4096, 0, 100)}},
		{Strategy: st[probe.StrategyLazyTHP], Stacks: 64, TopsAligned2M: 60, ReserveNsPerStack: 2000, Steps: []probe.StrategyStep{
			func() probe.StrategyStep {
				s := mmapStep(4*kib, 4*kib, 2*mib, 4096, 0.01, 30000)
				s.RSSBytesMax, s.AnonHugeBytesPerStack = 2*mib, i64(15*mib/8)
				return s
			}()}},
		{Strategy: st[probe.StrategyDontneed], Stacks: 64, ReserveNsPerStack: 2000, Steps: []probe.StrategyStep{
			mmapStep(4*kib, 4*kib, 4*kib, 4096, 1, 2500),
			func() probe.StrategyStep {
				s := mmapStep(mib, 4*kib, mib, 4096, 1, 2400)
				s.PeakPTEBytesPerStack = i64(8192)
				return s
			}(),
			mmapStep(4*kib, 4*kib, 4*kib, 4096, 1, 2400)}},
		{Strategy: st[probe.StrategyFree], Stacks: 64, ReserveNsPerStack: 2000, Steps: []probe.StrategyStep{
			mmapStep(4*kib, 4*kib, 4*kib, 4096, 1, 2500), mmapStep(mib, mib, mib, 4096, 1, 2400), mmapStep(4*kib, mib, mib, 4096, 0, 100)}},
		{Strategy: st[probe.StrategyEager], Stacks: 64, ReserveNsPerStack: 5_552_633, ReserveMinorFaultsPerStack: f64(25600),
			ReservePTEBytesPerStack: i64(208 * kib), Steps: []probe.StrategyStep{
				mmapStep(4*kib, 100*mib, 100*mib, 0, 0, 50), mmapStep(mib, 100*mib, 100*mib, 0, 0, 50), mmapStep(4*kib, 100*mib, 100*mib, 0, 0, 50)}},
		{Strategy: st[probe.StrategyGoroutines], Stacks: 64, Steps: []probe.StrategyStep{
			{DepthBytes: 4 * kib, Go: &probe.GoStackStep{RuntimeStackBytesPerGoroutine: i64(8 * kib), SpawnNsPerGoroutine: 3000,
				Note: "VmRSS did not grow (100 to 90 bytes): the runtime reused memory it already held, so VmRSS growth per goroutine is not measured"}},
			{DepthBytes: mib, Go: &probe.GoStackStep{RuntimeStackBytesPerGoroutine: i64(2 * mib), VmRSSGrowthBytesPerGoroutine: i64(2 * mib), SpawnNsPerGoroutine: 400000}},
			{DepthBytes: 4 * kib, Go: &probe.GoStackStep{RuntimeStackBytesPerGoroutine: i64(8 * kib), VmRSSGrowthBytesPerGoroutine: i64(12 * kib), SpawnNsPerGoroutine: 3000}},
		}},
	}
	c.Guards = []probe.GuardCost{
		{Guard: mmapstack.GuardMprotect, VMAsPerStack: 2, PTEBytesPerStack: i64(4608), VmPTEDeltaBytesPerStack: 4864, RSSBytesPerStack: 4096},
		{Guard: mmapstack.GuardMadvise, Skipped: "MADV_GUARD_INSTALL: EINVAL"},
		{Guard: mmapstack.GuardNone, VMAsPerStack: 0.02, PTEBytesPerStack: i64(4608), VmPTEDeltaBytesPerStack: 4480, RSSBytesPerStack: 4096},
	}
	return c
}

func TestCompareVerdicts(t *testing.T) {
	c := comparison()
	v := CompareVerdicts(c)
	has(t, v, "lazy mmap with 4 KiB pages held exactly ceil(depth/4 KiB) pages per stack at 2 of 3 steps")
	has(t, v, "after going back to 4 KiB at step 3, lazy-4k stacks still held 1 MiB each: residency is a high-water mark",
		"while MADV_DONTNEED brought them to 4 KiB", "MADV_FREE left 1 MiB counted in Rss")
	has(t, v, "THP-eligible stacks held 4 KiB–2 MiB per stack at the first step (depth 4 KiB, claim 4 KiB; AnonHugePages 1.9 MiB per stack; 60 of 64 stack tops 2 MiB aligned)")
	has(t, v, "eager (MAP_POPULATE) stacks held 100 MiB each from the first step, the same at all 3 steps; reserving one took 5553 µs and 25600 minor faults")
	has(t, v, "Go goroutine stacks are not mappings", "the runtime's stack memory grew by 8 KiB at 4 KiB, 2 MiB at 1 MiB, 8 KiB at 4 KiB per goroutine",
		"VmRSS grew by 2 MiB at 1 MiB, 12 KiB at 4 KiB per goroutine", "at 4 KiB VmRSS did not grow")
	has(t, v, "per stack, guard mprotect 2.00 VMAs and 4608 B of page tables (by address; VmPTE grew 4864 B); none 0.02 VMAs and 4608 B of page tables (by address; VmPTE grew 4480 B)")
	has(t, v, "eager: page tables per stack (VmPTE growth over the stack count) 208 KiB at reservation")
	has(t, v, "lazy-dontneed: page tables per stack", "4 KiB more by the last step")
	hasNot(t, v, "madvise 0.00") // a skipped guard is left out, not shown as 0
	for _, s := range v {
		if strings.Contains(s, "-") && strings.Contains(s, "B per") && strings.Contains(s, " -") {
			t.Errorf("negative size in %q", s)
		}
	}

	// The dontneed strategy's peak page tables show beside the release's.
	c.Strategies[2].Steps = c.Strategies[2].Steps[:2]
	has(t, CompareVerdicts(c), "lazy-dontneed: page tables per stack", "8 KiB more at the last step's peak, 4 KiB after its release")

	// Coarse and skipped goroutines.
	c = comparison()
	c.Strategies[5].Stacks = 2
	has(t, CompareVerdicts(c), "some steps grew it by less than 8 of its 32 KiB spans")
	c.Strategies[5] = probe.StrategyResult{Strategy: c.Strategies[5].Strategy, Skipped: "too deep"}
	has(t, CompareVerdicts(c), "goroutine did not run: too deep")
}

// Lazy 4 KiB stacks' cost per size; a size whose page tables were not
// measured shows its resident bytes and why, not a total to compare.
func TestCompareSizeCosts(t *testing.T) {
	c := comparison()
	lazy := c.Strategies[0]
	lazy.StackBytes = 8 * mib
	lazy.Cost = &probe.Cost{Stacks: 64, ResidentBytes: mib, PageTables: &probe.PageTableCost{PerStackBytes: 4608}, TotalBytes: mib + 4608}
	big := lazy
	big.StackBytes = 100 * mib
	big.Cost = &probe.Cost{Stacks: 64, ResidentBytes: mib, PageTablesMissing: "no page-table scan could run", TotalBytes: mib}
	c.Strategies = append(c.Strategies, big)
	c.Strategies[0] = lazy
	has(t, CompareVerdicts(c), "per coroutine after the last step, lazy 4 KiB pages: 8 MiB stacks 1.0 MiB (1 MiB resident + 4608 B page tables); 100 MiB stacks 1 MiB resident (page tables not measured: no page-table scan could run)")
}

func TestCompareVerdictsPowersOfTwo(t *testing.T) {
	c := comparison()
	c.Strategies[5].Stacks = 1000
	has(t, CompareVerdicts(c), "every size a power of two")
}

func TestWriteCompareEvidence(t *testing.T) {
	c := comparison()
	c.Partial, c.Error = true, "interrupted before goroutine"
	var b bytes.Buffer
	if err := WriteCompareEvidence(&b, c, []string{"strategies.png"}); err != nil {
		t.Fatal(err)
	}
	ev := b.String()
	for _, want := range []string{
		"**PARTIAL RUN** — interrupted before goroutine",
		"| eager | 1 | 4 KiB | 100 MiB | 0 B | 0 B | 1.00 | 0.00 | 0.05 µs |",
		"| lazy-dontneed | 2 | 1 MiB | 4 KiB (peak 1 MiB) | 0 B | 4 KiB (peak 8 KiB) | 1.00 | 1.00 | 2.40 µs |",
		"| 1 | 4 KiB | 8 KiB |  | 3.00 µs | VmRSS did not grow",
		"| 2 | 1 MiB | 2 MiB | 2 MiB | 400 µs |  |",
		"| madvise | skipped: MADV_GUARD_INSTALL: EINVAL | | | |",
		"| mprotect | 2.000 | 4608 B | 4864 B | 4 KiB |",
		"- `eager`: eager mmap (MAP_POPULATE) (5553 µs, page tables 208 KiB, 25600 minor faults)",
		"![strategies](strategies.png)",
		// --residency's default: the scan, not mincore.
		"resident bytes per stack after each step (read with PAGEMAP_SCAN),",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	if strings.Contains(ev, "| goroutine | 1 |") {
		t.Errorf("goroutines drawn in the residency table:\n%s", ev)
	}
	// The method the runs really used, after any fallback.
	c.Strategies[0].Residency = &probe.ResidencyMap{Method: "pagemap"}
	b.Reset()
	if err := WriteCompareEvidence(&b, c, nil); err != nil {
		t.Fatal(err)
	}
	contains(t, "evidence.md", b.String(), "resident bytes per stack after each step (read with /proc/self/pagemap),")

	b.Reset()
	if err := WriteCompareText(&b, c, "out"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"touch/page", "runtime 2 MiB", "PARTIAL: interrupted before goroutine", "results in out (evidence.md, summary.json, charts)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	c.Strategies[4].Skipped = "too big"
	b.Reset()
	if err := WriteCompareText(&b, c, "out"); err != nil || !regexp.MustCompile(`eager +- +- +- +skipped`).MatchString(b.String()) {
		t.Errorf("skipped strategy: %v\n%s", err, b.String())
	}
}

func TestMicros(t *testing.T) {
	for ns, want := range map[float64]string{2412: "2.41 µs", 55_000: "55.0 µs", 5_552_633: "5553 µs", 0: "0.00 µs"} {
		if got := micros(ns); got != want {
			t.Errorf("micros(%v) = %q, want %q", ns, got, want)
		}
	}
}

// TestNoNegativeSizes writes every kind of result as summary.json and
// scans it: no key naming a size (bytes) may hold a negative number.
func TestNoNegativeSizes(t *testing.T) {
	results := map[string]any{
		"compare": comparison(),
		"touch": touchResult(4, mmapstack.ReleaseNone,
			step(4, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)),
		"dontneed": touchResult(4, mmapstack.ReleaseDontneed,
			step(4, mib, mib, mib, 4*kib, 4*kib)),
		"pingpong": pingPongResult(2, mmapstack.ReleaseNone, step(4, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)),
	}
	for name, r := range results {
		var b bytes.Buffer
		if err := WriteJSON(&b, r); err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		for _, bad := range NegativeSizes(v) {
			t.Errorf("%s: %s", name, bad)
		}
	}
	// The scan finds one.
	var v any
	_ = json.Unmarshal([]byte(`{"a":[{"rss_bytes_min":-4096,"x":-1},{"pte_bytes_per_stack":-1536}]}`), &v)
	if got := NegativeSizes(v); len(got) != 2 {
		t.Errorf("NegativeSizes found %q, want 2", got)
	}
}
