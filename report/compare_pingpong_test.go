package report

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/probe"
)

// pingpongComparison is a made-up comparison: 10 clients (20 stacks)
// ramping to 128 KiB, three rounds per strategy.
func pingpongComparison() *probe.PingPongComparison {
	cfg := probe.Config{Workload: probe.WorkloadPingPong, Tasks: 10, Messages: 100, Transport: "tcp", Pattern: probe.PatternRamp,
		Depths: []int64{4096, 128 << 10}, StackBytes: 100 << 20, KeepTopBytes: 4096, Guard: mmapstack.GuardMprotect, Idle: 10 * time.Millisecond}
	strategy := func(name probe.StrategyName, rate, lo, hi float64, end int64, madvise float64, idleAtEnd int) probe.PingPongStrategy {
		pte := int64(4096)
		s := probe.PingPongStrategy{Name: name, Label: string(name)}
		for i := range 3 {
			s.Rounds = append(s.Rounds, probe.PingPongRound{Round: i + 1, RoundTrips: 1000, RoundTripsPerSecond: new([]float64{lo, rate, hi}[i]),
				EndRSSBytesPerStack: end, EndRSSBytesMin: end, EndRSSBytesMax: end, EndAsPredicted: 20, Stacks: 20,
				IdleStacks: idleAtEnd, IdleAtEnd: idleAtEnd, IdleAtEndKeptTop: idleAtEnd})
		}
		s.PingPongFigures = &probe.PingPongFigures{RoundsMeasured: 3, RoundTrips: 1000, RoundTripsPerSecond: rate,
			RoundTripsPerSecondMin: lo, RoundTripsPerSecondMax: hi, EndRSSBytesPerStack: end, PeakRSSBytesPerStack: end,
			MadviseCallsPerRoundTrip: madvise, PTEBytesPerStack: &pte, VmRSSBytes: 10 << 20}
		return s
	}
	return &probe.PingPongComparison{
		Header: probe.Header{Command: "stackprobe compare --workload=pingpong", PageSize: 4096, Config: cfg},
		Rounds: 3,
		Strategies: []probe.PingPongStrategy{
			strategy("lazy-4k", 1000, 950, 1050, 128<<10, 0, 0),
			strategy("dontneed", 480, 470, 490, 4096, 2, 0),
			strategy("idle-dontneed", 990, 900, 1000, 4096, 0.5, 20),
			{Name: "eager", Label: "eager", Skipped: "too big"},
			strategy("no-touch", 1200, 1190, 1210, 0, 0, 0),
		},
	}
}

func TestPingPongCompareVerdicts(t *testing.T) {
	vs := PingPongCompareVerdicts(pingpongComparison())
	all := strings.Join(vs, "\n")
	for _, want := range []string{
		"eager did not run: too big",
		"lazy-4k: every stack ended holding exactly its high-water mark ceil(deepest depth/page) pages (128 KiB) in every round",
		"dontneed: every stack ended holding exactly the kept top (4 KiB) in every round",
		// (1 - 480/1000) = 52%; per connection two stacks: 256 KiB - 8 KiB.
		"releasing after every message (MADV_DONTNEED) cost 52% of throughput (480 [470–490] against 1000 [950–1050] round trips/s, medians) and saved 248 KiB of stack per connection at the end (8 KiB against 256 KiB)",
		// [900–1000] overlaps [950–1050].
		"releasing when idle differed from no release by less than the spread of the rounds (990 [900–1000] against 1000 [950–1050] round trips/s, medians) and saved 248 KiB",
		"60 were idle at the end and 60 of them held exactly the kept top (4 KiB)",
		// 1000/1200 = 83%; [950–1050] and [1190–1210] do not overlap.
		"lazy-4k's throughput (using depths 4 KiB, 128 KiB per message) was 83% of no-touch's",
		"page tables per stack at the end (VmPTE growth from before the reservation over the stack count; not in Rss): lazy-4k 4 KiB, dontneed 4 KiB",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("verdicts lack %q:\n%s", want, all)
		}
	}
}

// With spread or random depths each stack is predicted from its own
// deepest depth: the sentence that counts those matches names the
// per-stack figure and its range, not the list's deepest beside the count.
func TestPingPongCompareVerdictsByStack(t *testing.T) {
	c := pingpongComparison()
	c.Config.Pattern = probe.PatternRandom
	for i := range c.Strategies[0].Rounds {
		r := &c.Strategies[0].Rounds[i]
		r.EndRSSBytesMin, r.EndAsPredicted = 4096, 19
	}
	vs := PingPongCompareVerdicts(c)
	has(t, vs, "lazy-4k: 57 of 60 stacks (over the rounds) ended holding exactly their own high-water mark, ceil(the deepest depth their task used/page) pages (4 KiB to 128 KiB, by stack, with pattern random); mean 128 KiB per stack")
	// The kept top is 4 KiB whatever a stack's deepest depth.
	has(t, vs, "dontneed: every stack ended holding exactly the kept top (4 KiB) in every round")
	hasNot(t, vs, "lazy-4k: every stack")

	// Spread: 20 stacks over 2 depths, both used; all matching, yet not
	// one figure for every stack.
	c.Config.Pattern = probe.PatternSpread
	for i := range c.Strategies[0].Rounds {
		c.Strategies[0].Rounds[i].EndAsPredicted = 20
	}
	has(t, PingPongCompareVerdicts(c), "lazy-4k: 60 of 60 stacks (over the rounds) ended holding exactly their own high-water mark", "(4 KiB to 128 KiB, by stack, with pattern spread)")
}

func TestPingPongCompareEvidenceAndJSON(t *testing.T) {
	c := pingpongComparison()
	var ev bytes.Buffer
	if err := WritePingPongCompareEvidence(&ev, c, []string{"tradeoff.png"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| lazy-4k | 3 | 1000 | 0 | 1000 [950–1050] |",
		"| 128 KiB | 256 KiB | 4 KiB | 10 MiB |",
		"| eager | skipped: too big |",
		"![tradeoff](tradeoff.png)",
	} {
		if !strings.Contains(ev.String(), want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, c); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Rounds     int              `json:"rounds"`
		Strategies []map[string]any `json:"strategies"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{"name", "label", "rounds_measured", "round_trips", "errors", "round_trips_per_second", "round_trips_per_second_min",
		"round_trips_per_second_max", "latency_ns", "cpu_ns", "minor_faults_per_round_trip", "madvise_calls_per_round_trip",
		"peak_rss_bytes_per_stack", "end_rss_bytes_per_stack", "pte_bytes_per_stack", "vmrss_bytes", "rounds"}
	var keys []string
	for k := range doc.Strategies[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("strategies[0] keys %v, want %v", keys, want)
	}
	if lat := doc.Strategies[0]["latency_ns"].(map[string]any); len(lat) != 3 || lat["p99"] == nil {
		t.Errorf("latency_ns %v", lat)
	}
	// A skipped strategy says why and reports no figure, not zeros.
	if s := doc.Strategies[3]; s["skipped"] != "too big" || len(s) != 3 {
		t.Errorf("skipped strategy: %v, want name, label and skipped only", s)
	}
	if neg := NegativeSizes(map[string]any{"s": doc.Strategies}); len(neg) > 0 {
		t.Errorf("negative sizes: %v", neg)
	}
}
