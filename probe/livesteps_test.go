package probe

import (
	"context"
	"slices"
	"testing"
	"time"

	"stackprobe/mmapstack"
)

// setTask sets a task's state as onStep leaves it after n steps, the last
// (and deepest so far) at depth d, deepest hw.
func setTask(s *taskState, steps, d, hw int64) {
	s.changes.Store(2 * steps)
	s.steps.Store(steps)
	s.depth.Store(d)
	s.highWater.Store(hw)
	s.sinceIdle.Store(hw)
}

// Only clean steps count: a task that never stepped, one caught mid-step
// (odd count), one that changed during the walk, and one whose latest
// depth is below its high-water mark are left out; the rest give exact
// min, max, total, stack and sample counts.
func TestLiveStepsCleanOnly(t *testing.T) {
	cfg := Config{Depths: []int64{4096, 65536, 4096, 1 << 20}, Release: mmapstack.ReleaseNone}
	const page = 4096
	states := make([]taskState, 6)
	l := newLiveSteps(cfg, page, len(states))
	if len(l.steps) != 3 {
		t.Fatalf("%d accumulators for 3 distinct depths", len(l.steps))
	}
	sample := func(rss ...int64) *Sample {
		s := &Sample{Stacks: make([]StackSample, len(rss))}
		for i, r := range rss {
			s.Stacks[i].RSS = r
		}
		return s
	}

	// Sample 1: tasks 0 and 1 clean at 4 KiB, 2 never stepped, 3 mid-step,
	// 4 clean at 64 KiB, 5 back at 4 KiB after 64 KiB (high water).
	setTask(&states[0], 3, 4096, 4096)
	setTask(&states[1], 1, 4096, 4096)
	setTask(&states[3], 2, 4096, 4096)
	states[3].changes.Add(1)
	setTask(&states[4], 5, 65536, 65536)
	setTask(&states[5], 5, 4096, 65536)
	l.begin(states)
	l.end(states, sample(4096, 8192, 0, 0, 65536, 65536))

	// Sample 2: task 0 steps to 64 KiB during the walk (its count moves),
	// task 4 is clean again at 64 KiB, task 1 clean at 4 KiB.
	l.begin(states)
	setTask(&states[0], 4, 65536, 65536)
	l.end(states, sample(4096, 4096, 0, 0, 61440, 65536))

	got, missing := l.result()
	want := []LiveStep{
		{DepthBytes: 4096, ExpectedBytes: 4096, Stacks: 2, Samples: 2, Observations: 3, Matched: 2,
			RSSBytesMin: 4096, RSSBytesMax: 8192, RSSBytesTotal: 4096 + 8192 + 4096},
		{DepthBytes: 65536, ExpectedBytes: 65536, Stacks: 1, Samples: 2, Observations: 2, Matched: 1,
			RSSBytesMin: 61440, RSSBytesMax: 65536, RSSBytesTotal: 65536 + 61440},
	}
	if !slices.Equal(got, want) {
		t.Errorf("live steps\n got %+v\nwant %+v", got, want)
	}
	if !slices.Equal(missing, []int64{1 << 20}) {
		t.Errorf("missing %v, want [1 MiB]", missing)
	}
	if m := got[0].RSSBytesMean(); m != float64(4096+8192+4096)/3 {
		t.Errorf("mean %v", m)
	}
}

// With --release=dontneed a step leaves the kept top; with --release=idle
// a stack idle-released since its last use of the depth is not clean.
func TestLiveStepsReleaseModes(t *testing.T) {
	const page = 4096
	cfg := Config{Depths: []int64{65536}, Release: mmapstack.ReleaseDontneed, KeepTopBytes: 8192}
	l := newLiveSteps(cfg, page, 1)
	if e := l.steps[0].ExpectedBytes; e != 8192 {
		t.Errorf("dontneed keep 8 KiB at 64 KiB: expected %d, want 8192", e)
	}

	cfg = Config{Depths: []int64{65536}, Release: mmapstack.ReleaseIdle}
	states := make([]taskState, 1)
	l = newLiveSteps(cfg, page, 1)
	setTask(&states[0], 2, 65536, 65536)
	states[0].sinceIdle.Store(0) // released while idle, not used since
	l.begin(states)
	l.end(states, &Sample{Stacks: []StackSample{{RSS: 4096}}})
	if got, missing := l.result(); len(got) != 0 || len(missing) != 1 {
		t.Errorf("an idle-released stack counted: %+v", got)
	}
}

// Every depth of a live ramp gets a live step, and a stack caught in a
// clean step holds exactly ceil(depth/page) pages: the staircase the
// final high-water groups cannot show, since every task ends at the last
// depth.
func TestPingPongLiveStepsRamp(t *testing.T) {
	page := int64(mmapstack.PageSize())
	depths := []int64{1, 4096, 5000, 64 << 10, 1 << 20}
	const clients = 2
	cfg := pingpongConfig("unix", clients, 2500, PatternRamp, depths...)
	cfg.Interval = time.Millisecond
	res, err := runOnce(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	p := res.PingPong
	if len(p.LiveStepsMissing) != 0 || len(p.LiveSteps) != len(depths) {
		t.Fatalf("live steps %+v, missing %v: want one per depth (%d samples in %.3f s)",
			p.LiveSteps, p.LiveStepsMissing, p.Sampler.Samples, p.Seconds)
	}
	for i, ls := range p.LiveSteps {
		want := ExpectedPages(depths[i], int(page)) * page
		if ls.DepthBytes != depths[i] || ls.ExpectedBytes != want || ls.RSSBytesMin != want || ls.RSSBytesMax != want ||
			ls.Matched != ls.Observations || ls.Observations < 1 || ls.Stacks < 1 || ls.Stacks > 2*clients {
			t.Errorf("depth %d: %+v; want every observation at %d bytes", depths[i], ls, want)
		}
	}
	// The last live sample is taken after the IO stopped: every stack is
	// then clean at the last depth.
	if last := p.LiveSteps[len(p.LiveSteps)-1]; last.Stacks != 2*clients {
		t.Errorf("last depth seen in %d stacks, want all %d", last.Stacks, 2*clients)
	}
}
