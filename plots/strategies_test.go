package plots

import (
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot/plotter"

	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
)

// rampDepths is a deep-then-shallow schedule: the last step goes back to
// 4 KiB, where a stack that keeps its pages stays at its high-water mark.
var rampDepths = []int64{1, 4 * kib, 64 * kib, mib, 4 * kib}

// fixtureStack is the stack size of the comparison fixture: 100 MB rounded
// up to whole pages, as probe resolves --stack=100MB.
const fixtureStack = (100e6 + page - 1) / page * page

// topRows is a residency map of n stacks over a window of pages pages, the
// top resident pages of each resident.
func topRows(n, pages, resident int) *probe.ResidencyMap {
	rm := &probe.ResidencyMap{WindowBytes: int64(pages) * page, PageSize: page}
	for i := range n {
		var row []probe.ResidentRun
		if resident > 0 {
			row = []probe.ResidentRun{{From: 0, To: int64(min(resident, pages)) * page}}
		}
		rm.Stacks = append(rm.Stacks, i*10)
		rm.Rows = append(rm.Rows, row)
	}
	return rm
}

// strategyResult is one strategy over rampDepths: mean[i] resident bytes
// per stack after step i, peak[i] before the step's release.
func strategyResult(st probe.Strategy, mean, peak []int64, rm *probe.ResidencyMap) probe.StrategyResult {
	sr := probe.StrategyResult{Strategy: st, Stacks: 100, TopsAligned2M: 100, Residency: rm}
	for i, d := range rampDepths {
		if st.GoStacks {
			v := mean[i]
			sr.Steps = append(sr.Steps, probe.StrategyStep{DepthBytes: d, Go: &probe.GoStackStep{RuntimeStackBytesPerGoroutine: &v}})
			continue
		}
		sr.Steps = append(sr.Steps, probe.StrategyStep{
			DepthBytes:      d,
			RSSBytesMin:     mean[i],
			RSSBytesMax:     mean[i],
			RSSBytesMean:    mean[i],
			PeakRSSBytesMax: peak[i],
		})
	}
	return sr
}

// comparisonFixture is what probe.Compare records for --stack=100MB
// --depth=1B,4KB,64KB,1MB,4KB --tasks=100 on a THP madvise machine whose
// stack tops are 2 MiB aligned: lazy 4 KiB stacks keep their high-water
// mark, THP makes 2 MiB resident at a 1-byte touch, MADV_DONTNEED falls back
// to the kept page, MADV_FREE stays resident, eager holds the whole stack,
// goroutine stacks grow in powers of two. A strategy that was skipped
// closes the list.
func comparisonFixture() *probe.Comparison {
	ss := probe.Strategies()
	hw := []int64{4 * kib, 4 * kib, 64 * kib, mib, mib}
	claim := []int64{4 * kib, 4 * kib, 64 * kib, mib, 4 * kib}
	huge := []int64{2 * mib, 2 * mib, 2 * mib, 2 * mib, 2 * mib}
	kept := []int64{4 * kib, 4 * kib, 4 * kib, 4 * kib, 4 * kib}
	eager := slices.Repeat([]int64{fixtureStack - page}, 5)
	goStacks := []int64{8 * kib, 8 * kib, 128 * kib, 2 * mib, 8 * kib}
	window := 512 // 2 MiB: the deepest depth rounded up to a huge page
	return &probe.Comparison{
		Header: probe.Header{
			Command:     "stackprobe compare --stack=100MB --depth=1B,4KB,64KB,1MB,4KB --tasks=100",
			PageSize:    page,
			Environment: procread.System{Kernel: "6.18.0-test", THPEnabled: "always [madvise] never", THPPMDSize: 2 * mib},
			Config: probe.Config{
				Workload:   probe.WorkloadTouch,
				StackBytes: fixtureStack,
				GuardBytes: page,
				Depths:     rampDepths,
				Tasks:      100,
				Guard:      mmapstack.GuardMprotect,
			},
		},
		Strategies: []probe.StrategyResult{
			strategyResult(ss[0], hw, hw, topRows(32, window, 256)),
			strategyResult(ss[1], huge, huge, topRows(32, window, 512)),
			strategyResult(ss[2], kept, claim, topRows(32, window, 1)),
			strategyResult(ss[3], hw, hw, topRows(32, window, 256)),
			strategyResult(ss[4], eager, eager, topRows(32, window, window)),
			strategyResult(ss[5], goStacks, goStacks, nil),
			{Strategy: probe.Strategy{Name: "eager-thp", Label: "eager, huge pages"}, Stacks: 100,
				Skipped: "100 populated stacks would need more than half of MemAvailable"},
		},
	}
}

func TestStrategySeries(t *testing.T) {
	d := strategySeries(comparisonFixture())
	if !slices.Equal(d.depths, rampDepths) {
		t.Errorf("depths %v, want %v", d.depths, rampDepths)
	}
	if want := []float64{4 * kib, 4 * kib, 64 * kib, mib, 4 * kib}; !slices.Equal(d.claim, want) {
		t.Errorf("claim %v, want %v", d.claim, want)
	}
	var names []string
	for _, l := range d.lines {
		names = append(names, l.legend)
	}
	// The labels are longer than maxLegendLabel: every strategy goes by
	// its name, and the skipped one has no line.
	if want := []string{"lazy-4k", "lazy-thp", "lazy-dontneed", "lazy-free", "eager", "goroutine: runtime stack bytes per goroutine, not residency"}; !slices.Equal(names, want) {
		t.Errorf("lines %q, want %q", names, want)
	}
	if len(d.skipped) != 1 || !strings.HasPrefix(d.skipped[0], "eager-thp (100 populated") {
		t.Errorf("skipped %q, want eager-thp with its reason", d.skipped)
	}
	if !d.mayHuge {
		t.Error("mayHuge false with lazy-thp in the comparison")
	}

	// lazy-4k stays at 1 MiB when the depth drops back to 4 KiB.
	if got := yValues(d.lines[0].mean); !slices.Equal(got, []float64{4 * kib, 4 * kib, 64 * kib, mib, mib}) {
		t.Errorf("lazy-4k means %v", got)
	}
	if got := d.lines[1].mean[0]; got != (plotter.XY{X: 0, Y: 2 * mib}) {
		t.Errorf("lazy-thp at the 1-byte step %v, want 2 MiB", got)
	}
	// Only dontneed gives pages back: its peaks at 64 KiB and 1 MiB.
	for i, l := range d.lines {
		var want plotter.XYs
		if l.legend == "lazy-dontneed" {
			want = plotter.XYs{{X: 2, Y: 64 * kib}, {X: 3, Y: mib}}
		}
		if !slices.Equal(l.peaks, want) {
			t.Errorf("line %d (%s) peaks %v, want %v", i, l.legend, l.peaks, want)
		}
	}
}

func TestStrategySeriesPartial(t *testing.T) {
	// Interrupted during the third strategy: it has two steps, the rest
	// none; the schedule still spans every configured depth.
	c := comparisonFixture()
	c.Partial = true
	c.Strategies[2].Steps = c.Strategies[2].Steps[:2]
	c.Strategies = c.Strategies[:3]
	for i := range c.Strategies[:2] {
		c.Strategies[i].Steps = c.Strategies[i].Steps[:3]
	}
	c.Strategies = append(c.Strategies, probe.StrategyResult{Strategy: probe.Strategies()[3]})
	d := strategySeries(c)
	if !slices.Equal(d.depths, rampDepths) {
		t.Errorf("depths %v, want the whole schedule %v", d.depths, rampDepths)
	}
	if len(d.lines) != 3 || len(d.lines[2].mean) != 2 {
		t.Errorf("%d lines, want 3 (the last with 2 steps)", len(d.lines))
	}
	if !slices.Equal(d.noData, []string{"lazy-free"}) {
		t.Errorf("noData %q, want lazy-free", d.noData)
	}
}

func TestLegendNames(t *testing.T) {
	short := []probe.Strategy{{Name: "a", Label: "lazy, 4 KiB pages"}, {Name: "b"}}
	if got := legendNames(short); !slices.Equal(got, []string{"lazy, 4 KiB pages", "b"}) {
		t.Errorf("short labels: %q", got)
	}
	long := append(short, probe.Strategy{Name: "c", Label: strings.Repeat("x", maxLegendLabel+1)})
	if got := legendNames(long); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("one long label: %q, want every name", got)
	}
}

func TestPadLog(t *testing.T) {
	vals := []float64{4 * kib, 2 * mib}
	if got, want := padLog(newLogByteAxis(vals), vals), (byteAxis{log: true, min: 2 * kib, max: 4 * mib}); got != want {
		t.Errorf("4 KiB .. 2 MiB: %+v, want %+v", got, want)
	}
	vals = []float64{0, 4 * kib, 3 * mib}
	if got, want := padLog(newLogByteAxis(vals), vals), (byteAxis{log: true, floor: kib, min: 512, max: 4 * mib}); got != want {
		t.Errorf("0, 4 KiB .. 3 MiB: %+v, want %+v", got, want)
	}
	vals = []float64{4 * kib}
	if got := padLog(newLogByteAxis(vals), vals); got.log || got.min != 0 {
		t.Errorf("one value: %+v, want the linear axis unchanged", got)
	}
}

func TestStepTicks(t *testing.T) {
	var got []string
	for _, tk := range stepTicks(rampDepths) {
		got = append(got, tk.Label)
	}
	if want := []string{"1 B", "4 KiB", "64 KiB", "1 MiB", "4 KiB"}; !slices.Equal(got, want) {
		t.Errorf("labels %q, want %q", got, want)
	}
	many := stepTicks(make([]int64, 30))
	labelled := 0
	for i, tk := range many {
		if tk.Value != float64(i) {
			t.Fatalf("tick %d at %v", i, tk.Value)
		}
		if tk.Label != "" {
			labelled++
		}
	}
	if labelled > maxStepLabels || labelled < maxStepLabels/2 {
		t.Errorf("30 steps: %d labels, want about %d", labelled, maxStepLabels)
	}
}

func TestStrategies(t *testing.T) {
	t.Parallel() // rendering the PNG is the slow part
	p, err := Strategies(comparisonFixture())
	if err != nil {
		t.Fatal(err)
	}
	if p.Title.Text != "Stack strategies side by side" {
		t.Errorf("title %q", p.Title.Text)
	}
	if p.X.Min != -0.5 || p.X.Max != 4.5 {
		t.Errorf("x range [%v, %v], want one unit per step", p.X.Min, p.X.Max)
	}
	if xl := labels(p.X); !slices.Equal(xl, []string{"1 B", "4 KiB", "64 KiB", "1 MiB", "4 KiB"}) {
		t.Errorf("x labels %q", xl)
	}
	// 4 KiB .. 95.37 MiB: log, from a doubling below 4 KiB up to 128 MiB,
	// labelled every other doubling.
	ymin, ymax, ylog := byteRange(p.Y)
	if !ylog || ymin != 2*kib || ymax != 128*mib {
		t.Errorf("y axis [%v, %v] log %v, want [2 KiB, 128 MiB] log", ymin, ymax, ylog)
	}
	yl := labels(p.Y)
	checkIEC(t, "y", yl)
	for _, want := range []string{"4 KiB", "64 KiB", "1 MiB"} {
		if !slices.Contains(yl, want) {
			t.Errorf("y labels %q lack %q", yl, want)
		}
	}
	for _, want := range []string{"kernel 6.18.0-test", "thp_enabled madvise", "100 stacks per strategy", "95.37 MiB stacks", "skipped eager-thp (100 populated"} {
		if !strings.Contains(p.X.Label.Text, want) {
			t.Errorf("caption %q lacks %q", p.X.Label.Text, want)
		}
	}
	for _, line := range strings.Split(p.X.Label.Text, "\n")[1:] { // the axis name, then the caption
		if n := len([]rune(line)); n > captionWidth {
			t.Errorf("caption line %q is %d characters", line, n)
		}
	}
	savePNG(t, p)
}

func TestStrategiesZeros(t *testing.T) {
	// A goroutine step can measure no growth at all, and the claim at
	// depth 0 is 0: both sit on the log axis's "0 B" floor.
	c := comparisonFixture()
	zero := int64(0)
	c.Strategies[5].Steps[0].Go.RuntimeStackBytesPerGoroutine = &zero
	c.Config.Depths = append([]int64{0}, rampDepths...)
	for i := range c.Strategies {
		if len(c.Strategies[i].Steps) > 0 {
			c.Strategies[i].Steps = append([]probe.StrategyStep{{}}, c.Strategies[i].Steps...)
		}
	}
	c.Environment = procread.System{}
	p, err := Strategies(c)
	if err != nil {
		t.Fatal(err)
	}
	yl := labels(p.Y)
	checkIEC(t, "y", yl)
	if !slices.Contains(yl, "0 B") {
		t.Errorf("y labels %q lack the 0 B floor", yl)
	}
	if xl := labels(p.X); xl[0] != "0 B" {
		t.Errorf("x labels %q, want 0 B first", xl)
	}
	if !strings.Contains(p.X.Label.Text, "kernel unknown · thp_enabled unknown") {
		t.Errorf("caption %q does not say the environment is unknown", p.X.Label.Text)
	}
}

func TestStrategiesErrors(t *testing.T) {
	if _, err := Strategies(nil); err == nil {
		t.Error("nil comparison: no error")
	}
	c := comparisonFixture()
	c.Strategies = c.Strategies[6:] // only the skipped one
	if _, err := Strategies(c); err == nil {
		t.Error("every strategy skipped: no error")
	}
}

func TestStrategiesOneValue(t *testing.T) {
	// One strategy, one step, every value 4 KiB: no span for a log axis.
	c := comparisonFixture()
	c.Config.Depths = rampDepths[1:2]
	c.Strategies = c.Strategies[:1]
	c.Strategies[0].Steps = c.Strategies[0].Steps[1:2]
	p, err := Strategies(c)
	if err != nil {
		t.Fatal(err)
	}
	if ymin, ymax, log := byteRange(p.Y); log || !(ymax > ymin) || ymin > 0 || ymax < 4*kib {
		t.Errorf("y axis [%v, %v] log %v, want a linear axis from 0 B past 4 KiB", ymin, ymax, log)
	}
	if p.X.Min != -0.5 || p.X.Max != 0.5 {
		t.Errorf("x range [%v, %v]", p.X.Min, p.X.Max)
	}
	checkIEC(t, "y", labels(p.Y))
}
