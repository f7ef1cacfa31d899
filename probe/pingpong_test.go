package probe

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"stackprobe/mmapstack"
)

func pingpongConfig(transport string, clients, messages int, pattern Pattern, depths ...int64) Config {
	cfg := touchConfig(clients, depths...)
	cfg.Workload = WorkloadPingPong
	cfg.Transport = transport
	cfg.Messages = messages
	cfg.Pattern = pattern
	cfg.Interval = 2 * time.Millisecond
	cfg.Watchdog = 30 * time.Second
	return cfg
}

func TestPingPongResidencyFollowsSchedule(t *testing.T) {
	page := int64(mmapstack.PageSize())
	for _, tr := range []string{"tcp", "unix"} {
		t.Run(tr, func(t *testing.T) {
			const clients, messages = 4, 60
			cfg := pingpongConfig(tr, clients, messages, PatternSpread, 4096, 64<<10, 1*mib)
			rec := &memRecorder{}
			res, err := runOnce(context.Background(), cfg, Env{Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			p := res.PingPong
			if p.RoundTrips != clients*messages || p.Errors != 0 || p.Transport != tr {
				t.Fatalf("round trips %d errors %d transport %s; want %d, 0, %s", p.RoundTrips, p.Errors, p.Transport, clients*messages, tr)
			}
			if p.Sampler.Samples < 1 || rec.samples != p.Sampler.Samples+1 || len(rec.infos) != 2*clients {
				t.Fatalf("sampler %d samples, recorder %d samples, %d stacks", p.Sampler.Samples, rec.samples, len(rec.infos))
			}
			// Spread: task k used depth k mod 3 for the whole run; tasks 0..3
			// are clients and 4..7 peers, so depths 4K:3 stacks, 64K:3, 1M:2.
			wantStacks := map[int64]int{4096: 3, 64 << 10: 3, 1 * mib: 2}
			if len(res.Rows()) != 3 {
				t.Fatalf("%d depth groups, want 3", len(res.Rows()))
			}
			for _, d := range res.Rows() {
				want := ExpectedPages(d.DepthBytes, int(page)) * page
				if d.Stacks != wantStacks[d.DepthBytes] || d.Matched != d.Stacks || d.RSSBytesMin != want || d.RSSBytesMax != want {
					t.Errorf("depth %d: %d stacks, matched %d, rss %d..%d; want %d stacks at %d bytes",
						d.DepthBytes, d.Stacks, d.Matched, d.RSSBytesMin, d.RSSBytesMax, wantStacks[d.DepthBytes], want)
				}
				if !d.Smaps.Agree || d.Smaps.OwnVMAStacks != 2*clients {
					t.Errorf("depth %d: smaps check %+v", d.DepthBytes, d.Smaps)
				}
			}
		})
	}
}

func TestPingPongRamp(t *testing.T) {
	const clients, messages = 3, 90
	cfg := pingpongConfig("unix", clients, messages, PatternRamp, 4096, 256<<10, 2*mib)
	res, err := runOnce(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows()) != 1 || res.Rows()[0].DepthBytes != 2*mib || res.Rows()[0].Matched != 2*clients {
		t.Fatalf("ramp ended with %+v, want every stack at 2 MiB", res.Rows())
	}
	if len(res.Series.Timeline) == 0 {
		t.Fatal("no timeline points")
	}
	last := res.Series.Timeline[len(res.Series.Timeline)-1]
	if last.StackRSS > last.Expected {
		t.Errorf("last sample: %d resident over %d predicted", last.StackRSS, last.Expected)
	}
}

func TestSchedule(t *testing.T) {
	s := schedule{depths: []int64{1, 2, 3}, messages: 6, pattern: PatternRamp}
	var got []int64
	for step := range 6 {
		got = append(got, s.depth(0, step))
	}
	if want := []int64{1, 1, 2, 2, 3, 3}; !slices.Equal(got, want) {
		t.Errorf("ramp = %v, want %v", got, want)
	}
	s.pattern = PatternSpread
	if s.depth(4, 0) != 2 || s.depth(4, 5) != 2 {
		t.Error("spread: task 4 should use depth index 1 at every step")
	}
	s.pattern, s.seed = PatternRandom, 7
	a, b := s.depth(1, 3), s.depth(1, 3)
	seen := map[int64]bool{}
	for step := range 100 {
		seen[s.depth(2, step)] = true
	}
	if a != b || len(seen) != 3 {
		t.Errorf("random: not reproducible (%d vs %d) or not covering the list (%v)", a, b, seen)
	}
}

// However long a run, the chart's timeline stays bounded: when full it keeps
// every other point and samples half as often.
func TestTimelineBounded(t *testing.T) {
	s := &sampler{stride: 1}
	for i := range 100 * maxTimeline {
		s.seq = i
		s.keep(TimelinePoint{Elapsed: time.Duration(i)})
	}
	if n := len(s.timeline); n < maxTimeline/2 || n > maxTimeline {
		t.Fatalf("%d points kept after %d samples", n, 100*maxTimeline)
	}
	for i := 1; i < len(s.timeline); i++ {
		if gap := s.timeline[i].Elapsed - s.timeline[i-1].Elapsed; gap != time.Duration(s.stride) {
			t.Fatalf("points %d and %d are %v apart, want an even %d", i-1, i, gap, s.stride)
		}
	}
}

// The sampler keeps its interval while the IO threads are busy: they must
// not starve it of a processor.
func TestSamplerKeepsItsInterval(t *testing.T) {
	cfg := pingpongConfig("tcp", 20, 4000, PatternRamp, 4096)
	cfg.Interval = 5 * time.Millisecond
	res, err := runOnce(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	p := res.PingPong
	want := int(0.5 * p.Seconds / cfg.Interval.Seconds())
	if p.Sampler.Samples < want {
		t.Errorf("%d samples in %.3f s at %v, want at least %d", p.Sampler.Samples, p.Seconds, cfg.Interval, want)
	}
}

// Each connection's two sockets are measured with the stacks: the looks
// that saw every connection open give the socket memory per connection,
// and its maximum, from SO_MEMINFO; echoes in flight hold buffers.
func TestSocketBytesPerConnection(t *testing.T) {
	const clients = 6
	cfg := pingpongConfig("tcp", clients, 400, PatternRamp, 4096)
	cfg.Interval = time.Millisecond
	res, err := runOnce(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	sb := res.PingPong.SocketBytesPerConnection
	if sb.Looks == 0 || sb.MeanEnd == nil {
		t.Fatalf("no look saw all %d connections open: %+v", clients, sb)
	}
	if sb.Max == nil || sb.AtClose == nil {
		t.Fatalf("socket bytes per connection %+v: max or at_close not measured", sb)
	}
	if *sb.Max <= 0 || *sb.MeanEnd < 0 || *sb.MeanEnd > *sb.Max || *sb.AtClose < 0 {
		t.Errorf("socket bytes per connection %+v (mean_end %d, max %d): want max > 0 and 0 <= mean_end <= max", sb, *sb.MeanEnd, *sb.Max)
	}
	// Every socket of every connection is read just before its close.
	if sb.AtCloseSockets != 2*clients {
		t.Errorf("at close: %d sockets read, want %d", sb.AtCloseSockets, 2*clients)
	}
	t.Logf("per connection: mean_end %d B, max %d B, at close %d B over %d looks", *sb.MeanEnd, *sb.Max, *sb.AtClose, sb.Looks)
}

// With --release=idle each stack of a high-water group is held to its own
// task's state: the kept top after an idle release, what it used since
// that release, or its high-water mark if it never idled. The group's
// high-water mark is what none but the never-idle stack should hold.
func TestByHighWaterIdle(t *testing.T) {
	const page = 4096
	cfg := Config{Workload: WorkloadPingPong, Tasks: 2, Depths: []int64{4096, 65536, mib}, Release: mmapstack.ReleaseIdle, KeepTopBytes: 4096}
	states := make([]taskState, 4)
	for i := range states {
		setTask(&states[i], 10, mib, mib)
	}
	states[0].idled.Store(1)
	states[0].sinceIdle.Store(0) // idle at the end: the kept top
	states[1].idled.Store(3)
	states[1].sinceIdle.Store(65536) // used 64 KiB since its last idle release
	states[2].idled.Store(2)
	states[2].sinceIdle.Store(0) // idle at the end, yet holding more than the kept top
	// states[3] never idled: its high-water mark.
	s := &Sample{Stacks: []StackSample{{RSS: 4096}, {RSS: 65536}, {RSS: 8192}, {RSS: mib}}}
	groups, perStack := byHighWater(cfg, s, states, page, nil)
	if len(groups) != 1 || len(perStack) != 1 {
		t.Fatalf("%d groups, want 1", len(groups))
	}
	g := groups[0]
	if g.Stacks != 4 || g.MatchedAfterRelease != 3 || g.ExpectedAfterReleaseBytes != mib || g.RSSBytesMin != 4096 || g.RSSBytesMax != mib {
		t.Errorf("group %+v: want 4 stacks, 3 matched after release (stack 2 holds 8 KiB, not its 4 KiB kept top), expected at most 1 MiB, 4 KiB..1 MiB", g)
	}
	// Without idle releases every stack is held to the high-water mark.
	cfg.Release = mmapstack.ReleaseNone
	if groups, _ = byHighWater(cfg, s, states, page, nil); groups[0].MatchedAfterRelease != 1 {
		t.Errorf("release none: %d matched after release, want 1", groups[0].MatchedAfterRelease)
	}
}

// A ping-pong interrupted before its first round trip leaves every
// per-round-trip figure out of summary.json, not 0; a touch run
// interrupted before its first depth leaves the tool's non-stack memory
// out. Socket memory at close is absent unless a socket was read then,
// and then averaged over the sockets read.
func TestInterruptedFiguresAbsent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := pingpongConfig("unix", 4, 50, PatternRamp, 4096)
	r, err := Start(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Measure(ctx)
	if err == nil || res.PingPong == nil || res.PingPong.RoundTrips != 0 {
		t.Fatalf("err %v, ping-pong %+v: want an interrupted run with no round trip", err, res.PingPong)
	}
	b, err := json.Marshal(res.Summary)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		PingPong map[string]json.RawMessage `json:"pingpong"`
		Tool     map[string]json.RawMessage `json:"tool"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"latency_ns", "round_trips_per_second", "minor_faults_per_round_trip", "madvise_calls_per_round_trip"} {
		if v, ok := doc.PingPong[k]; ok {
			t.Errorf("pingpong.%s = %s after no round trip, want absent", k, v)
		}
	}
	if _, ok := doc.Tool["non_stack_rss_bytes"]; !ok {
		t.Errorf("tool %v: the ping-pong's final measurement gives non_stack_rss_bytes", doc.Tool)
	}

	// A touch run stopped before its first depth measured no row.
	r2, err := Start(context.Background(), touchConfig(2, 4096), Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	res, _ = r2.Measure(ctx)
	if len(res.Rows()) != 0 || res.Tool.NonStackRSSBytes != nil {
		t.Errorf("%d rows, non-stack RSS %v: want none and absent", len(res.Rows()), res.Tool.NonStackRSSBytes)
	}
	if b, _ := json.Marshal(res.Tool); strings.Contains(string(b), "non_stack_rss_bytes") {
		t.Errorf("tool %s: want non_stack_rss_bytes absent", b)
	}

	// At close: twice the mean per socket read, absent when none was.
	if p, n := atClose(0, 0); p != nil || n != 0 {
		t.Errorf("no socket read at close: %v, %d; want absent", p, n)
	}
	if p, n := atClose(3000, 3); p == nil || *p != 2000 || n != 3 {
		t.Errorf("3 sockets holding 3000 B: %v per connection, want 2000", p)
	}
}

// HighWaterRange bounds a task's deepest depth from the schedule alone.
func TestHighWaterRange(t *testing.T) {
	for _, c := range []struct {
		pattern  Pattern
		tasks    int
		messages int
		depths   []int64
		lo, hi   int64
	}{
		{PatternRamp, 2, 100, []int64{4096, 1 << 20, 65536}, 1 << 20, 1 << 20},
		{PatternRamp, 2, 2, []int64{4096, 65536, 1 << 20}, 65536, 65536},    // 2 steps reach index 1 of 3
		{PatternSpread, 1, 100, []int64{4096, 65536, 1 << 20}, 4096, 65536}, // 2 stacks: the first two depths
		{PatternSpread, 4, 100, []int64{65536, 4096, 1 << 20}, 4096, 1 << 20},
		{PatternRandom, 4, 100, []int64{65536, 4096, 1 << 20}, 4096, 1 << 20},
	} {
		cfg := pingpongConfig("unix", c.tasks, c.messages, c.pattern, c.depths...)
		if lo, hi := HighWaterRange(cfg); lo != c.lo || hi != c.hi {
			t.Errorf("%s, %d tasks, %d messages, %v: %d..%d, want %d..%d", c.pattern, c.tasks, c.messages, c.depths, lo, hi, c.lo, c.hi)
		}
	}
}
