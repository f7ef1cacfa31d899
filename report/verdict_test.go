package report

import (
	"strings"
	"testing"

	"stackprobe/frames"
	"stackprobe/mmapstack"
	"stackprobe/probe"
)

const (
	kib = int64(1024)
	mib = 1024 * kib
)

// step builds a touch step of n stacks used to depth, every stack holding
// after (after the release) and peak (right after the touch), given the
// deepest depth so far.
func step(n int, depth, highWater, peak, after, expectedAfter int64) probe.DepthResult {
	page := int64(4096)
	claim := probe.ExpectedPages(depth, 4096) * page
	d := probe.DepthResult{
		DepthBytes: depth, ExpectedRSSBytes: claim, ExpectedPages: claim / page,
		HighWaterBytes:            probe.ExpectedPages(highWater, 4096) * page,
		ExpectedAfterReleaseBytes: expectedAfter,
		RSSBytesMin:               after, RSSBytesMax: after, RSSBytesTotal: after * int64(n),
		Stacks:   n,
		Smaps:    probe.SmapsCheck{VMAs: n, OwnVMAStacks: n, Agree: true},
		VMACount: 100, VmPTEBytes: 200 * uint64(kib), VmRSSBytes: 10 * uint64(mib),
		Step: &probe.StepCost{PeakRSSBytesMin: peak, PeakRSSBytesMax: peak, UsedBytes: depth, PeakRSSBytesTotal: peak * int64(n)},
	}
	if peak == claim {
		d.Matched = n
	}
	if after == expectedAfter {
		d.MatchedAfterRelease = n
	}
	return d
}

// touchResult is a touch run of n stacks of 100 MiB over the given steps.
func touchResult(n int, release mmapstack.Release, steps ...probe.DepthResult) *probe.Result {
	mmc := int64(65530)
	r := &probe.Result{}
	r.PageSize = 4096
	r.Environment.MaxMapCount = &mmc
	r.Environment.THPEnabled = "madvise"
	r.Config = probe.Config{Workload: probe.WorkloadTouch, StackBytes: 100 * mib, Tasks: n, Guard: mmapstack.GuardNone,
		THP: mmapstack.THPNoHuge, MapStack: true, Release: release, KeepTopBytes: 4096, TouchMode: probe.TouchPages}
	r.Baseline.VmPTE = 100 * uint64(kib)
	r.Reserved.VmPTE = 100 * uint64(kib)
	r.Residency = probe.ResidencyInfo{Requested: "scan", Method: "scan",
		CrossCheck: &probe.CrossCheck{Method: "mincore", Stacks: n, StacksOf: n, PresentBytes: 40 * kib, Agree: true}}
	r.Steps = steps
	for _, s := range steps {
		r.Config.Depths = append(r.Config.Depths, s.DepthBytes)
	}
	return r
}

// has fails unless some verdict contains every one of want.
func has(t *testing.T, verdicts []string, want ...string) {
	t.Helper()
	for _, v := range verdicts {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(v, w)
		}
		if ok {
			return
		}
	}
	t.Errorf("no verdict contains all of %q:\n%s", want, strings.Join(verdicts, "\n"))
}

func hasNot(t *testing.T, verdicts []string, bad string) {
	t.Helper()
	for _, v := range verdicts {
		if strings.Contains(v, bad) {
			t.Errorf("verdict %q contains %q", v, bad)
		}
	}
}

func TestVerdicts(t *testing.T) {
	const n = 10
	hw := func(r *probe.Result) *probe.Result { return r }
	cases := []struct {
		name string
		r    *probe.Result
		want [][]string
		not  []string
	}{
		{
			name: "claim holds",
			r: touchResult(n, mmapstack.ReleaseNone,
				step(n, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib),
				step(n, 64*kib, 64*kib, 64*kib, 64*kib, 64*kib)),
			want: [][]string{
				{"all 10 stacks matched ceil(depth/4 KiB) pages at all 2 depths: the claim holds"},
				{"smaps Rss and PAGEMAP_SCAN agreed to the page for all 10 stacks at every measurement (after each step)"},
				{"the stacks occupy 10 VMAs (1.00 per stack, guard none) of vm.max_map_count 65530"},
			},
			not: []string{"failed", "did not hold"},
		},
		{
			name: "high-water after a deeper step is not a failure",
			r: touchResult(n, mmapstack.ReleaseNone,
				step(n, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib),
				step(n, 8*mib, 8*mib, 8*mib, 8*mib, 8*mib),
				step(n, 4*kib, 8*mib, 8*mib, 8*mib, 8*mib)),
			want: [][]string{
				{"all 10 stacks matched ceil(depth/4 KiB) pages at every step that went deeper than the steps before it (2 of 3 steps)"},
				{"at 1 step after a deeper one every stack still held its high-water mark (8 MiB at depth 4 KiB)", "touched pages are never given back"},
			},
			not: []string{"failed", "did not hold"},
		},
		{
			name: "single byte, huge pages",
			r: func() *probe.Result {
				d := step(4, 1, 1, 2*mib, 2*mib, 4*kib)
				d.AnonHugeBytesTotal = 8 * mib
				r := touchResult(4, mmapstack.ReleaseNone, d)
				r.Config.THP, r.Config.MapStack, r.TopsAligned2M = mmapstack.THPHuge, false, 3
				return r
			}(),
			want: [][]string{
				{"the claim did not hold at 1 of 1 steps"},
				{"at depth 1 B (1 byte) 4 of 4 stacks differed: resident 2 MiB per stack against the claimed 4 KiB (511 pages more)", "transparent huge pages (AnonHugePages), 2 MiB per stack"},
				{"huge pages were asked for and 8 MiB of the stacks' memory is in transparent huge pages (smaps AnonHugePages), though only 3 of 4 stack tops are 2 MiB aligned", "not only an aligned top"},
			},
			not: []string{"(1 bytes)", "+511", "2 MiB..2 MiB"},
		},
		{
			name: "huge pages then a shallow step: the high-water mark, not huge pages",
			r: func() *probe.Result {
				a := step(4, 1, 1, 2*mib, 2*mib, 4*kib)
				a.AnonHugeBytesTotal = 8 * mib
				b := step(4, 8*mib, 8*mib, 8*mib+2*mib, 8*mib+2*mib, 8*mib)
				b.AnonHugeBytesTotal = 4 * 10 * mib
				c := step(4, 4*kib, 8*mib, 10*mib, 10*mib, 8*mib)
				c.AnonHugeBytesTotal = 4 * 10 * mib
				r := touchResult(4, mmapstack.ReleaseNone, a, b, c)
				r.Config.THP, r.Config.MapStack, r.TopsAligned2M = mmapstack.THPHuge, false, 4
				return r
			}(),
			want: [][]string{
				{"the claim did not hold at 3 of 3 steps"},
				{"at depth 4 KiB", "a deeper earlier step left a high-water mark of 8 MiB", "10 MiB per stack in transparent huge pages from that step"},
			},
		},
		{
			name: "dontneed: the peak holds, the release keeps the top",
			r: touchResult(n, mmapstack.ReleaseDontneed,
				step(n, 64*kib, 64*kib, 64*kib, 4*kib, 4*kib),
				step(n, 8*mib, 8*mib, 8*mib, 4*kib, 4*kib)),
			want: [][]string{
				{"all 10 stacks matched ceil(depth/4 KiB) pages at all 2 depths"},
				{"after each release (--release=dontneed) every stack held exactly the kept top"},
			},
		},
		{
			name: "dontneed: the release left too much",
			r: touchResult(n, mmapstack.ReleaseDontneed,
				step(n, 64*kib, 64*kib, 64*kib, 8*kib, 4*kib)),
			want: [][]string{
				{"after the release (--release=dontneed) stacks did not hold what it should leave", "at 1 of 1 depths"},
				{"at depth 64 KiB 10 of 10 stacks held 8 KiB, not the expected 4 KiB"},
			},
		},
		{
			name: "dontneed shallower than the kept top",
			r: func() *probe.Result {
				r := touchResult(n, mmapstack.ReleaseDontneed, step(n, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib))
				r.Config.KeepTopBytes = 64 * kib
				return r
			}(),
			want: [][]string{{"no step went below the kept top (--keep-top), so nothing was released", "at the only depth"}},
		},
		{
			name: "free keeps the high-water mark",
			r: hw(touchResult(n, mmapstack.ReleaseFree,
				step(n, 1*mib, 1*mib, 1*mib, 1*mib, 1*mib),
				step(n, 4*kib, 1*mib, 1*mib, 1*mib, 1*mib))),
			want: [][]string{
				{"at 1 step after a deeper one every stack still held its high-water mark (1 MiB at depth 4 KiB)", "MADV_FREE pages stay counted in Rss"},
				{"after each release (--release=free) every stack held exactly the high-water mark"},
			},
		},
		{
			name: "unexplained extra pages",
			r:    touchResult(n, mmapstack.ReleaseNone, step(n, 4*kib, 4*kib, 12*kib, 12*kib, 4*kib)),
			want: [][]string{{"resident 12 KiB per stack against the claimed 4 KiB (2 pages more)", "unexplained"}},
		},
		{
			name: "fewer pages than claimed",
			r: func() *probe.Result {
				d := step(n, 64*kib, 64*kib, 60*kib, 60*kib, 64*kib)
				d.Step.PeakRSSBytesMin, d.RSSBytesMin = 56*kib, 56*kib
				return touchResult(n, mmapstack.ReleaseNone, d)
			}(),
			want: [][]string{{"resident 56 KiB–60 KiB per stack against the claimed 64 KiB (1 to 2 pages fewer)"}},
		},
		{
			name: "merged VMAs",
			r: func() *probe.Result {
				d := step(n, 4*kib, 4*kib, 8*kib, 8*kib, 4*kib)
				d.Smaps = probe.SmapsCheck{VMAs: 1, Groups: 1, Agree: true}
				d.AnonHugeBytesTotal = -1
				return touchResult(n, mmapstack.ReleaseNone, d)
			}(),
			want: [][]string{
				{"share VMAs with others, so smaps cannot attribute huge pages to them"},
				{"smaps and PAGEMAP_SCAN agreed at every measurement (after each step): 0 stacks with VMAs of their own, and 1 run of merged stacks compared as sums"},
			},
		},
		{
			name: "smaps disagreed, some stacks not comparable",
			r: func() *probe.Result {
				d := step(n, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)
				d.Smaps = probe.SmapsCheck{VMAs: 9, OwnVMAStacks: 9, Agree: false, Disagreements: 1}
				return touchResult(n, mmapstack.ReleaseNone, d)
			}(),
			want: [][]string{{"smaps and PAGEMAP_SCAN DISAGREED 1 time at every measurement"}},
		},
		{
			name: "smaps: some stacks share VMAs with other memory",
			r: func() *probe.Result {
				d := step(n, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)
				d.Smaps = probe.SmapsCheck{VMAs: 9, OwnVMAStacks: 9, Agree: true}
				return touchResult(n, mmapstack.ReleaseNone, d)
			}(),
			want: [][]string{{"for the 9 of 10 stacks that are their own VMAs; the other 1 share VMAs"}},
		},
		{
			name: "smaps: nothing comparable",
			r: func() *probe.Result {
				d := step(n, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)
				d.Smaps = probe.SmapsCheck{}
				return touchResult(n, mmapstack.ReleaseNone, d)
			}(),
			want: [][]string{{"no stack's VMAs could be compared with smaps"}},
		},
		{
			name: "guard madvise: page tables at reservation and per step",
			r: func() *probe.Result {
				d := step(100, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)
				r := touchResult(100, mmapstack.ReleaseNone, d)
				r.Config.Guard = mmapstack.GuardMadvise
				r.Baseline.VmPTE = 100 * uint64(kib)
				r.Reserved.VmPTE = r.Baseline.VmPTE + 100*4096
				r.Steps[0].VmPTEBytes = r.Reserved.VmPTE + 100*4096 + 100*400
				return r
			}(),
			want: [][]string{
				{"page tables grew by 400 KiB, 4 KiB per stack when the stacks were reserved, before any touch (MADV_GUARD_INSTALL"},
				{"from the reservation on, page tables (VmPTE, memory Rss does not count) grew after each step by 439.1 KiB, 4496 B per stack at 4 KiB"},
			},
		},
		{
			name: "populate: page tables at reservation; a little churn not attributed",
			r: func() *probe.Result {
				r := touchResult(100, mmapstack.ReleaseNone, step(100, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib))
				r.Config.Populate = true
				r.Reserved.VmPTE = r.Baseline.VmPTE + 100*8192
				r.Steps[0].VmPTEBytes = r.Reserved.VmPTE + 4096
				return r
			}(),
			want: [][]string{
				{"800 KiB, 8 KiB per stack when the stacks were reserved", "MAP_POPULATE"},
				{"grew after each step by 4 KiB, too little per stack to attribute to the stacks at 4 KiB"},
			},
		},
		{
			name: "dontneed: page tables at the peak and after the release",
			r: func() *probe.Result {
				d := step(100, 8*mib, 8*mib, 8*mib, 4*kib, 4*kib)
				d.Step.PeakVmPTEBytes = 100*uint64(kib) + 100*8192
				d.VmPTEBytes = 100*uint64(kib) + 100*4096
				return touchResult(100, mmapstack.ReleaseDontneed, d)
			}(),
			want: [][]string{{"800 KiB, 8 KiB per stack at 8 MiB's peak and 400 KiB after its release"}},
		},
		{
			name: "frames one page deeper",
			r: func() *probe.Result {
				d := step(n, 4096, 4096, 4096, 4096, 4096)
				d.Step.UsedBytes = 4096 + 100
				r := touchResult(n, mmapstack.ReleaseNone, d)
				r.Config.TouchMode = probe.TouchFrames
				return r
			}(),
			want: [][]string{{"whole frames of", "4196 bytes for depth 4096 (+100)", "one page more than ceil(depth/page)"}},
		},
		{
			name: "frames exact",
			r: func() *probe.Result {
				r := touchResult(n, mmapstack.ReleaseNone, step(n, 4096, 4096, 4096, 4096, 4096))
				r.Config.TouchMode = probe.TouchFrames
				return r
			}(),
			want: [][]string{{"real call frames (--touch=frames) used exactly the scheduled depths", "the claim's page count applies to frames unchanged"}},
		},
		{
			name: "partial run with nothing measured",
			r:    touchResult(n, mmapstack.ReleaseNone),
			want: [][]string{{"no depth was measured"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Verdicts(c.r)
			for _, w := range c.want {
				has(t, v, w...)
			}
			for _, bad := range c.not {
				hasNot(t, v, bad)
			}
		})
	}
	_ = frames.FrameBytes
}

// pingPongResult is a ping-pong of tasks clients (2·tasks stacks) whose
// stacks ended in groups by depth.
func pingPongResult(tasks int, release mmapstack.Release, groups ...probe.DepthResult) *probe.Result {
	r := touchResult(tasks, release)
	r.Config.Workload = probe.WorkloadPingPong
	r.HighWaterGroups = groups
	r.Steps = nil
	r.PingPong = &probe.PingPongResult{Transport: "unix", Clients: tasks, MessagesPerClient: 100, RoundTrips: int64(tasks) * 100,
		Seconds: 0.5, RoundTripsPerSecond: new(float64(tasks) * 200), LatencyNanos: &probe.Latency{P50: 1e6, P99: 3e6, Max: 5e6}}
	r.PingPong.Sampler = probe.SamplerStats{Samples: 50, IntervalNs: 10e6, MeanCostNs: 2e5, MaxCostNs: 4e5}
	r.PingPong.PredictionExactSamples = 48
	r.PingPong.PredictionMaxGapBytes = 8 * kib
	for i := range r.HighWaterGroups {
		r.HighWaterGroups[i].Step = nil
	}
	return r
}

func TestPingPongVerdicts(t *testing.T) {
	a := step(60, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)
	b := step(40, 64*kib, 64*kib, 64*kib, 64*kib, 64*kib)
	r := pingPongResult(50, mmapstack.ReleaseNone, a, b)
	r.PingPong.UnusedDepths = []int64{mib}
	r.Reserved.VmPTE = r.Baseline.VmPTE
	r.HighWaterGroups[1].VmPTEBytes = r.Reserved.VmPTE + 100*4096
	v := Verdicts(r)
	has(t, v, "after the ping-pong, all 100 stacks held exactly ceil(d/4 KiB) pages", "2 depth groups")
	has(t, v, "no task ever used 1 depth of the depth list (1 MiB)")
	has(t, v, "equalled the schedule's prediction in 48 of 50 live samples", "the largest gap was 8 KiB (2 pages)")
	has(t, v, "smaps Rss and PAGEMAP_SCAN agreed to the page", "when smaps was read, once, after the IO stopped (PAGEMAP_SCAN read at the same moment)")
	has(t, v, "grew by the end of the ping-pong by 400 KiB, 4 KiB per stack at 64 KiB")
	hasNot(t, v, "at every measurement")

	// With a release, what is judged is what the release leaves.
	d := step(100, 64*kib, 64*kib, 64*kib, 4*kib, 4*kib)
	r = pingPongResult(50, mmapstack.ReleaseDontneed, d)
	v = Verdicts(r)
	has(t, v, "after each release (--release=dontneed) every stack held exactly the kept top")
	hasNot(t, v, "claim holds")

	// A group that differs is explained.
	d = step(100, 64*kib, 64*kib, 64*kib, 64*kib, 64*kib)
	d.Matched, d.RSSBytesMax = 90, 68*kib
	r = pingPongResult(50, mmapstack.ReleaseNone, d)
	has(t, Verdicts(r), "at depth 64 KiB", "10 of 100 stacks differed: resident 64 KiB–68 KiB per stack against the claimed 64 KiB (up to 1 page more)")
}

// With --release=idle each stack is judged against its own state (the
// kept top after an idle release, or what it used since): a group whose
// stacks hold 4 KiB to 1 MiB that way holds what the release should leave.
// The repro: 16 stacks that reached 1 MiB, 7 idle at the end at the kept
// top, the rest holding what they used since their last idle release.
func TestPingPongIdleVerdicts(t *testing.T) {
	d := step(16, mib, mib, mib, mib, mib)
	d.RSSBytesMin, d.RSSBytesTotal = 4*kib, 7*4*kib+9*mib
	d.Matched = 9
	r := pingPongResult(8, mmapstack.ReleaseIdle, d)
	r.PingPong.IdleReleases, r.PingPong.IdleStacks, r.PingPong.IdleAtEnd, r.PingPong.IdleAtEndKeptTop = 4342, 16, 7, 7
	v := Verdicts(r)
	has(t, v, "after each release (--release=idle) every stack held exactly the kept top (--keep-top) after an idle release, or what it used since (its high-water mark if it was never idle), at the only depth")
	has(t, v, "16 stacks were released for being idle at least once (4342 idle releases); 7 stacks were idle at the end (released, unused since) and 7 of them held exactly the kept top")
	hasNot(t, v, "did not hold")
	hasNot(t, v, "not the expected")

	// A stack holding neither is counted, and no single figure is named
	// as what every stack should hold.
	r.HighWaterGroups[0].MatchedAfterRelease = 13
	v = Verdicts(r)
	has(t, v, "after the release (--release=idle) stacks did not hold what it should leave (the kept top (--keep-top) after an idle release, or what it used since", "at 1 of 1 depths")
	has(t, v, "at depth 1 MiB 3 of 16 stacks held neither the kept top after an idle release nor what they used since (the group held 4 KiB–1 MiB)")
	hasNot(t, v, "not the expected")
}

// The residency verdicts name the method, the classes it could not see,
// and the cross-check, from the run's own figures.
func TestResidencyVerdicts(t *testing.T) {
	r := touchResult(10, mmapstack.ReleaseNone, step(10, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib))
	v := Verdicts(r)
	has(t, v, "every residency figure was read with PAGEMAP_SCAN over each stack's whole mapping (guard included), all stacks in one walk per measurement")
	has(t, v, "mincore(2) agreed with PAGEMAP_SCAN page for page at the final measurement (after the last step), for all 10 stacks (40 KiB present)")
	hasNot(t, v, "missing")

	// Many stacks, walked in parts at once.
	r.Residency.Lanes = 4
	has(t, Verdicts(r), "every residency figure was read with PAGEMAP_SCAN over each stack's whole mapping (guard included), each measurement in 4 walks run at once, over parts of the stacks by address")
	r.Residency.Lanes = 1

	// The fallback, its missing classes, and a cross-check of a subset.
	r.Residency = probe.ResidencyInfo{Requested: "scan", Method: "pagemap", Missing: []string{"huge_bytes", "zero_page_bytes"},
		CrossCheck: &probe.CrossCheck{Method: "mincore", Stacks: 5, StacksOf: 10, PresentBytes: 20 * kib, Agree: true}}
	v = Verdicts(r)
	has(t, v, "every residency figure was read with /proc/self/pagemap", "; PAGEMAP_SCAN was asked for (--residency=scan), but this kernel lacks it; it cannot tell huge_bytes, zero_page_bytes apart, so those figures are missing, not 0")
	has(t, v, "for 5 of 10 stacks, evenly spread")

	r.Residency.CrossCheck = &probe.CrossCheck{Method: "mincore", Stacks: 10, StacksOf: 10, PresentBytes: 40 * kib, DifferingBytes: 8 * kib, DifferingStacks: 2}
	has(t, Verdicts(r), "mincore(2) DISAGREED with /proc/self/pagemap at the final measurement (after the last step): 8 KiB of pages in 2 of 10 compared stacks were present to one and not the other")

	r.Residency.CrossCheck = nil
	has(t, Verdicts(r), "no second method could cross-check the residency figures here")
}

// The repro of issue 10: 100 stacks of 100 MiB side by side with huge
// pages, one aligned top, and each stack's top huge page reaching into the
// stack above. The alignment verdict must not call the unaligned tops
// ineligible next to the huge pages it measured.
func TestStraddleAndAlignmentVerdicts(t *testing.T) {
	hugeTotal, lowStacks, lowBytes := 298*mib, 49, int64(49)*(mib+512*kib)
	a := step(60, 64*kib, 64*kib, 2*mib, 2*mib, 64*kib)
	b := step(40, mib, mib, 2*mib, 2*mib, mib)
	for i, d := range []*probe.DepthResult{&a, &b} {
		h, n, l := hugeTotal/2, lowStacks/2+i, lowBytes/2
		if i == 1 {
			l = lowBytes - l
		}
		d.HugeBytesTotal, d.LowHugeStacks, d.LowHugeBytesTotal = &h, &n, &l
		d.AnonHugeBytesTotal = -1
	}
	r := pingPongResult(50, mmapstack.ReleaseNone, a, b)
	r.Config.THP, r.Config.MapStack, r.TopsAligned2M = mmapstack.THPHuge, false, 1
	v := Verdicts(r)
	has(t, v, "49 stacks hold at their low end part of a 2 MiB page that begins in the stack below (73.5 MiB in all)", "every page counts for the stack whose range holds its address")
	has(t, v, "huge pages were asked for and 298 MiB of the stacks' memory is in transparent huge pages (page tables), though only 1 of 100 stack tops are 2 MiB aligned", "here the blocks straddle stack boundaries")
	hasNot(t, v, "eligible only when aligned")

	// No huge page at all: said so, with where the figure comes from.
	zero, none := int64(0), 0
	for i := range r.HighWaterGroups {
		r.HighWaterGroups[i].HugeBytesTotal, r.HighWaterGroups[i].LowHugeStacks, r.HighWaterGroups[i].LowHugeBytesTotal = &zero, &none, &zero
	}
	v = Verdicts(r)
	has(t, v, "huge pages were asked for, but no stack holds one (page tables): only 1 of 100 stack tops are 2 MiB aligned")
	hasNot(t, v, "begins in the stack below")
}

func TestLiveStepsVerdict(t *testing.T) {
	p := &probe.PingPongResult{
		LiveSteps: []probe.LiveStep{
			{DepthBytes: 4096, ExpectedBytes: 4096, Observations: 10, Matched: 10},
			{DepthBytes: 64 << 10, ExpectedBytes: 64 << 10, Observations: 7, Matched: 6},
		},
		LiveStepsMissing: []int64{1 << 20},
	}
	want := "live samples that caught a stack in a clean step of a depth found it holding exactly what one step leaves, by depth: " +
		"4 KiB: 10 of 10 (4 KiB each); 64 KiB: 6 of 7 (64 KiB each); no live sample caught 1 MiB clean"
	if got := liveStepsVerdict(p); got != want {
		t.Errorf("got\n %s\nwant\n %s", got, want)
	}
	p.LiveSteps[1].Matched, p.LiveStepsMissing = 7, nil
	if got := liveStepsVerdict(p); !strings.HasSuffix(got, "— every observation, at every depth caught") {
		t.Errorf("all matched: %s", got)
	}
}
