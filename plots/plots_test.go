package plots

import (
	"bytes"
	"image"
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
)

const (
	kib  = 1 << 10
	mib  = 1 << 20
	page = 4096
)

// seedDepths are the depths of the main fixture: either side of one page, and
// two decades further.
var seedDepths = []int64{1, 4 * kib, 4*kib + 1, 64 * kib, 1 * mib}

// ceilPage is the seed's claim for one stack.
func ceilPage(d int64) int64 { return probe.ExpectedPages(d, page) * page }

// newResult builds a touch-workload Result as probe.Run would: depths in the
// order given, release none, each stack's resident bytes from rss.
func newResult(depths []int64, stacks int, rss func(depth int64, stack int) int64) *probe.Result {
	r := &probe.Result{Summary: probe.Summary{Header: probe.Header{
		Command:     "stackprobe --stack=100MB",
		Environment: procread.System{Kernel: "6.18.0-test", THPEnabled: "always [madvise] never"},
		Config: probe.Config{
			Workload:   probe.WorkloadTouch,
			StackBytes: 100 * mib,
			GuardBytes: page,
			Depths:     depths,
			Tasks:      stacks,
			Guard:      mmapstack.GuardMprotect,
			THP:        mmapstack.THPSystem,
			Release:    mmapstack.ReleaseNone,
		},
		PageSize: page,
	}}}
	var deepest int64
	for _, d := range depths {
		deepest = max(deepest, d)
		dr := probe.DepthResult{
			DepthBytes:                d,
			ExpectedRSSBytes:          ceilPage(d),
			ExpectedPages:             probe.ExpectedPages(d, page),
			HighWaterBytes:            ceilPage(deepest),
			ExpectedAfterReleaseBytes: ceilPage(deepest),
			Stacks:                    stacks,
		}
		var per []int64
		for k := range stacks {
			v := rss(d, k)
			per = append(per, v)
			dr.RSSBytesTotal += v
		}
		if stacks > 0 {
			dr.RSSBytesMin, dr.RSSBytesMax = slices.Min(per), slices.Max(per)
		}
		r.Steps = append(r.Steps, dr)
		r.Series.PerStackRSS = append(r.Series.PerStackRSS, per)
	}
	return r
}

func asClaimed(d int64, _ int) int64 { return ceilPage(d) }
func hugePage(int64, int) int64      { return 2 * mib }

// byteRange is an axis's range in bytes and whether it is logarithmic (a
// log axis's plot coordinates are log2 of the bytes).
func byteRange(ax plot.Axis) (lo, hi float64, log bool) {
	if bt, ok := ax.Tick.Marker.(bytesTicks); ok && bt.log {
		return math.Exp2(ax.Min), math.Exp2(ax.Max), true
	}
	return ax.Min, ax.Max, false
}

// labels returns the labelled ticks the axis draws over its range.
func labels(ax plot.Axis) []string {
	var out []string
	for _, t := range ax.Tick.Marker.Ticks(ax.Min, ax.Max) {
		if t.Label != "" && t.Value >= ax.Min && t.Value <= ax.Max {
			out = append(out, t.Label)
		}
	}
	return out
}

var iecRE = regexp.MustCompile(`^\d+(\.\d+)? (B|KiB|MiB|GiB|TiB)$`)

func checkIEC(t *testing.T, name string, ls []string) {
	t.Helper()
	if len(ls) < 2 {
		t.Errorf("%s axis: %d labelled ticks %q, want at least 2", name, len(ls), ls)
	}
	for _, l := range ls {
		if !iecRE.MatchString(l) {
			t.Errorf("%s axis: tick label %q is not an IEC size", name, l)
		}
	}
}

func TestDepthSeriesScatter(t *testing.T) {
	r := newResult(seedDepths, 3, asClaimed)
	d := depthSeries(r, maxScatterPoints)
	if got, want := len(d.stacks), 3*len(seedDepths); got != want {
		t.Fatalf("scatter has %d points, want %d", got, want)
	}
	if d.ranges != nil || d.highWater != nil || d.afterRelease != nil {
		t.Errorf("ranges/highWater/afterRelease = %v/%v/%v, want none: ascending depths with release none meet the claim",
			d.ranges, d.highWater, d.afterRelease)
	}
	for i, pt := range d.stacks {
		dep := seedDepths[i/3]
		if pt.X != float64(dep) || pt.Y != float64(ceilPage(dep)) {
			t.Errorf("point %d = (%v, %v), want (%d, %d)", i, pt.X, pt.Y, dep, ceilPage(dep))
		}
	}
	if d.stackCount != 3 {
		t.Errorf("stackCount = %d, want 3", d.stackCount)
	}
}

func TestDepthSeriesRanges(t *testing.T) {
	r := newResult(seedDepths, 3, func(d int64, k int) int64 { return ceilPage(d) + int64(k)*page })
	d := depthSeries(r, 14) // 15 per-stack values: one too many
	if d.stacks != nil || len(d.ranges) != len(seedDepths) {
		t.Fatalf("got %d points and %d ranges, want 0 and %d", len(d.stacks), len(d.ranges), len(seedDepths))
	}
	want := stackRange{depth: 4*kib + 1, min: 8 * kib, mean: 12 * kib, max: 16 * kib}
	if got := d.ranges[2]; got != want {
		t.Errorf("range at 4097 B = %+v, want %+v", got, want)
	}

	// A Result read back from summary.json has no per-stack values: the
	// recorded min, max and total stand in.
	for i := range r.Rows() {
		r.Series.PerStackRSS[i] = nil
	}
	d = depthSeries(r, maxScatterPoints)
	if d.stacks != nil || len(d.ranges) != len(seedDepths) {
		t.Fatalf("without per-stack values: %d points, %d ranges; want 0 and %d", len(d.stacks), len(d.ranges), len(seedDepths))
	}
	if got := d.ranges[2]; got != want {
		t.Errorf("range from summary at 4097 B = %+v, want %+v", got, want)
	}
}

func TestDepthSeriesExpectations(t *testing.T) {
	// Deepest first: a stack that keeps its pages stays at 1 MiB.
	r := newResult([]int64{mib, 4 * kib}, 2, func(int64, int) int64 { return mib })
	d := depthSeries(r, maxScatterPoints)
	if d.highWater == nil || !d.highWaterIsAfter || d.afterRelease != nil {
		t.Fatalf("release none: highWater=%v isAfter=%v afterRelease=%v; want high-water standing for both",
			d.highWater, d.highWaterIsAfter, d.afterRelease)
	}
	if got := d.highWater[1]; got != (plotter.XY{X: 4 * kib, Y: mib}) {
		t.Errorf("high-water at 4 KiB = %v, want 1 MiB", got)
	}

	// dontneed keeping one page: after release differs from both.
	r.Config.Release = mmapstack.ReleaseDontneed
	r.Config.KeepTopBytes = page
	for i := range r.Rows() {
		r.Rows()[i].ExpectedAfterReleaseBytes = page
	}
	d = depthSeries(r, maxScatterPoints)
	if d.highWater == nil || d.highWaterIsAfter || len(d.afterRelease) != 2 {
		t.Fatalf("release dontneed: highWater=%v isAfter=%v afterRelease=%v; want both series",
			d.highWater, d.highWaterIsAfter, d.afterRelease)
	}
	if _, err := RSSVsDepth(r); err != nil {
		t.Fatal(err)
	}
}

func TestClaimSteps(t *testing.T) {
	got := claimSteps(1, 3*page+1, page, false)
	want := plotter.XYs{{X: 1, Y: page}, {X: page, Y: page}, {X: 2 * page, Y: 2 * page}, {X: 3 * page, Y: 3 * page}, {X: 3*page + 1, Y: 4 * page}}
	if !slices.Equal(got, want) {
		t.Errorf("claimSteps(1, 3 pages + 1) = %v, want %v", got, want)
	}

	// 1 B to 100 MB on a log axis: 24415 pages, thinned, every corner exact
	// and the first 256 steps all present.
	got = claimSteps(1, 100e6, page, true)
	if n := len(got); n < 256 || n > 5000 {
		t.Errorf("claimSteps over 100 MB: %d corners, want 256..5000", n)
	}
	for i, pt := range got {
		if pt.Y != float64(ceilPage(int64(pt.X))) {
			t.Fatalf("corner %d = %v, off the staircase", i, pt)
		}
		if i > 0 && pt.X <= got[i-1].X {
			t.Fatalf("corner %d x = %v not increasing", i, pt.X)
		}
		if i >= 1 && i <= 256 && pt.X != float64(i*page) {
			t.Fatalf("corner %d at x = %v, want every page step (%d)", i, pt.X, i*page)
		}
	}
	if last := got[len(got)-1]; last.X != 100e6 {
		t.Errorf("last corner %v, want x = 100e6", last)
	}

	if got := claimSteps(0, 0, page, false); len(got) != 2 || got[0] != (plotter.XY{}) {
		t.Errorf("claimSteps(0, 0) = %v, want a point at 0", got)
	}
}

func TestRSSVsDepthAxes(t *testing.T) {
	tests := []struct {
		name                   string
		r                      *probe.Result
		xlog, ylog             bool
		xmin, xmax, ymin, ymax float64
		xlabels, ylabels       []string // some labels the axes must show
	}{{
		name: "seed depths",
		r:    newResult(seedDepths, 3, asClaimed),
		xlog: true, ylog: true,
		xmin: 1, xmax: mib, ymin: 4 * kib, ymax: mib,
		xlabels: []string{"1 B", "1 KiB", "1 MiB"},
		ylabels: []string{"4 KiB", "1 MiB"},
	}, {
		name: "THP: every stack 2 MiB",
		r:    newResult(seedDepths, 3, hugePage),
		xlog: true, ylog: true,
		xmin: 1, xmax: mib, ymin: 4 * kib, ymax: 2 * mib,
		ylabels: []string{"2 MiB"},
	}, {
		name: "one depth, one stack",
		r:    newResult([]int64{4 * kib}, 1, asClaimed),
		// Linear axes end one tick step above the data.
		xmin: 0, xmax: 5 * kib, ymin: 0, ymax: 5 * kib,
		xlabels: []string{"0 B", "4 KiB"},
		ylabels: []string{"0 B", "4 KiB"},
	}, {
		name: "one depth, all 2 MiB",
		r:    newResult([]int64{mib}, 5, hugePage),
		xmin: 0, xmax: 1.25 * mib, ymin: 0, ymax: 2.5 * mib,
		ylabels: []string{"0 B", "2 MiB"},
	}, {
		name: "depth 0 only",
		r:    newResult([]int64{0}, 2, asClaimed),
		// The axis reaches one page, so the claim's first step shows.
		xmin: 0, xmax: 5 * kib, ymin: 0, ymax: 5 * kib,
	}, {
		name: "depth 0 on a log axis",
		r:    newResult([]int64{0, 4 * kib, mib}, 3, asClaimed),
		xlog: true, ylog: true,
		// Zeros sit at a floor a quarter of the smallest power of two.
		xmin: kib, xmax: mib, ymin: kib, ymax: mib,
		xlabels: []string{"0 B", "1 MiB"},
		ylabels: []string{"0 B", "1 MiB"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := RSSVsDepth(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			xmin, xmax, xlog := byteRange(p.X)
			ymin, ymax, ylog := byteRange(p.Y)
			if xlog != tt.xlog || ylog != tt.ylog {
				t.Errorf("log x, y = %v, %v; want %v, %v", xlog, ylog, tt.xlog, tt.ylog)
			}
			if xmin != tt.xmin || xmax != tt.xmax {
				t.Errorf("x range [%v, %v], want [%v, %v]", xmin, xmax, tt.xmin, tt.xmax)
			}
			if ymin != tt.ymin || ymax != tt.ymax {
				t.Errorf("y range [%v, %v], want [%v, %v]", ymin, ymax, tt.ymin, tt.ymax)
			}
			xl, yl := labels(p.X), labels(p.Y)
			checkIEC(t, "x", xl)
			checkIEC(t, "y", yl)
			for _, l := range tt.xlabels {
				if !slices.Contains(xl, l) {
					t.Errorf("x labels %q lack %q", xl, l)
				}
			}
			for _, l := range tt.ylabels {
				if !slices.Contains(yl, l) {
					t.Errorf("y labels %q lack %q", yl, l)
				}
			}
			if p.Title.Text != "Resident stack memory vs depth" {
				t.Errorf("title %q", p.Title.Text)
			}
			for _, want := range []string{"kernel 6.18.0-test", "THP system (thp_enabled madvise)", "guard mprotect", "map_stack off", "release none"} {
				if !strings.Contains(p.X.Label.Text, want) {
					t.Errorf("caption %q lacks %q", p.X.Label.Text, want)
				}
			}
			// Every case must draw: a zero-width range or a zero on a log
			// axis would panic here.
			savePNG(t, p)
		})
	}
}

func TestRSSVsDepthManyStacks(t *testing.T) {
	r := newResult(seedDepths, 1000, func(d int64, k int) int64 { return ceilPage(d) + int64(k%2)*page })
	if d := depthSeries(r, maxScatterPoints); d.stacks != nil || len(d.ranges) != len(seedDepths) {
		t.Fatalf("5000 values: %d points, %d ranges; want min–max ranges", len(d.stacks), len(d.ranges))
	}
	p, err := RSSVsDepth(r)
	if err != nil {
		t.Fatal(err)
	}
	savePNG(t, p)
}

func TestRSSVsDepthErrors(t *testing.T) {
	if _, err := RSSVsDepth(nil); err == nil {
		t.Error("nil result: no error")
	}
	if _, err := RSSVsDepth(&probe.Result{}); err == nil {
		t.Error("no depths: no error")
	}
	if _, err := RSSVsDepth(newResult(seedDepths, 0, asClaimed)); err == nil {
		t.Error("no stacks: no error")
	}
}

func TestPartialTitle(t *testing.T) {
	r := newResult(seedDepths, 1, asClaimed)
	r.Partial = true
	p, err := RSSVsDepth(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p.Title.Text, "(partial run)") {
		t.Errorf("title %q does not say the run is partial", p.Title.Text)
	}
}

// rampTimeline is a ping-pong ramp over 4 KiB, 64 KiB, 1 MiB for 2 stacks,
// one sample every 100 ms, the first two before any depth was reached.
func rampTimeline() []probe.TimelinePoint {
	var tl []probe.TimelinePoint
	depths := []int64{0, 0, 4 * kib, 4 * kib, 4 * kib, 64 * kib, 64 * kib, mib, mib, mib}
	for i, d := range depths {
		tl = append(tl, probe.TimelinePoint{
			Elapsed:  time.Duration(i) * 100 * time.Millisecond,
			StackRSS: 2 * ceilPage(d),
			Expected: 2 * ceilPage(d),
			VmRSS:    uint64(8*mib + 2*ceilPage(d)),
			VmPTE:    uint64(64*kib + 2*page*min(1, d)),
			Depth:    d,
		})
	}
	return tl
}

func TestTimelineSeries(t *testing.T) {
	d := timelineSeries(rampTimeline())
	for name, s := range map[string]plotter.XYs{"stacks": d.stacks, "expected": d.expected, "vmrss": d.vmRSS, "vmpte": d.vmPTE} {
		if len(s) != 10 {
			t.Errorf("%s: %d points, want 10", name, len(s))
		}
	}
	if got := d.stacks[9]; math.Abs(got.X-0.9) > 1e-9 || got.Y != 2*mib {
		t.Errorf("last stacks point %v, want (0.9 s, 2 MiB)", got)
	}
	want := []depthStep{{0.2, 4 * kib}, {0.5, 64 * kib}, {0.7, mib}}
	if len(d.steps) != len(want) {
		t.Fatalf("steps %v, want %v", d.steps, want)
	}
	for i, s := range d.steps {
		if math.Abs(s.seconds-want[i].seconds) > 1e-9 || s.depth != want[i].depth {
			t.Errorf("step %d = %v, want %v", i, s, want[i])
		}
	}

	// A pattern other than the ramp records depth 0: no steps.
	tl := rampTimeline()
	for i := range tl {
		tl[i].Depth = 0
	}
	if d := timelineSeries(tl); len(d.steps) != 0 {
		t.Errorf("depth 0 throughout: steps %v, want none", d.steps)
	}
	// A timeline that starts at a depth marks it at t = 0.
	if d := timelineSeries(rampTimeline()[2:]); len(d.steps) != 3 || d.steps[0].depth != 4*kib {
		t.Errorf("starting at 4 KiB: steps %v, want the first at 4 KiB", d.steps)
	}
}

func TestRSSOverTime(t *testing.T) {
	r := newResult(seedDepths, 2, asClaimed)
	r.Config.Workload = probe.WorkloadPingPong
	r.Series.Timeline = rampTimeline()
	p, err := RSSOverTime(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != 0 || math.Abs(p.X.Max-0.9) > 1e-9 {
		t.Errorf("x range [%v, %v], want [0, 0.9] s", p.X.Min, p.X.Max)
	}
	// 0 B to 10 MiB, more than two decades with zeros: log with a floor a
	// quarter of the smallest positive value, 8 KiB of stacks.
	if ymin, ymax, log := byteRange(p.Y); !log || ymin != 2*kib || ymax != 16*mib {
		t.Errorf("y axis [%v, %v] log %v, want [2 KiB, 16 MiB] log", ymin, ymax, log)
	}
	yl := labels(p.Y)
	checkIEC(t, "y", yl)
	if !slices.Contains(yl, "0 B") {
		t.Errorf("y labels %q lack the 0 B floor", yl)
	}
	savePNG(t, p)

	// One sample, all values equal.
	r.Series.Timeline = []probe.TimelinePoint{{Elapsed: time.Second, StackRSS: 8 * kib, Expected: 8 * kib, VmRSS: 8 * kib, VmPTE: 8 * kib, Depth: 4 * kib}}
	p, err = RSSOverTime(r)
	if err != nil {
		t.Fatal(err)
	}
	if !(p.X.Max > p.X.Min) || !(p.Y.Max > p.Y.Min) {
		t.Errorf("one sample: ranges x [%v, %v] y [%v, %v] are empty", p.X.Min, p.X.Max, p.Y.Min, p.Y.Max)
	}
	savePNG(t, p)

	// One sample at t = 0, all zero.
	r.Series.Timeline = []probe.TimelinePoint{{}}
	p, err = RSSOverTime(r)
	if err != nil {
		t.Fatal(err)
	}
	savePNG(t, p)
}

func TestRSSOverTimeErrors(t *testing.T) {
	if _, err := RSSOverTime(newResult(seedDepths, 1, asClaimed)); err == nil || !strings.Contains(err.Error(), "timeline") {
		t.Errorf("empty timeline: err = %v, want one naming the timeline", err)
	}
	if _, err := RSSOverTime(nil); err == nil {
		t.Error("nil result: no error")
	}
}

// savePNG saves p and checks the file decodes as a PNG of sane size and that
// no temporary file is left beside it.
func savePNG(t *testing.T, p *plot.Plot) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "chart.png")
	if err := Save(p, path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	b := img.Bounds()
	if format != "png" || b.Dx() < 500 || b.Dx() > 3000 || b.Dy() < 300 || b.Dy() > 2000 {
		t.Errorf("saved %s image %v, want a PNG 500..3000 px wide, 300..2000 high", format, b)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Save, want only chart.png", len(entries))
	}
}

func TestSaveSVG(t *testing.T) {
	p, err := RSSVsDepth(newResult(seedDepths, 3, asClaimed))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "chart.SVG")
	if err := Save(p, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("%s is not SVG: starts %q", path, b[:min(len(b), 40)])
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Save(nil, filepath.Join(dir, "x.png")); err == nil {
		t.Error("nil plot: no error")
	}
	// A plot gonum cannot draw (zero on a log axis) fails and leaves nothing.
	p := plot.New()
	l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 2}})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(l)
	p.X.Scale = plot.LogScale{}
	if err := Save(p, filepath.Join(dir, "bad.png")); err == nil {
		t.Error("undrawable plot: no error")
	}
	if err := Save(plot.New(), filepath.Join(dir, "missing", "x.png")); err == nil {
		t.Error("missing directory: no error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed saves left %d entries", len(entries))
	}

	// Replacing an existing file.
	path := filepath.Join(dir, "chart.png")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Save(plot.New(), path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); bytes.Equal(b, []byte("old")) {
		t.Error("Save did not replace the existing file")
	}
}

func TestIECLabel(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0 B", -1: "0 B", 1: "1 B", 100: "100 B", 1023: "1023 B",
		4096: "4 KiB", 1536: "1.5 KiB", mib: "1 MiB", 1.25 * mib: "1.25 MiB",
		1.0625 * mib: "1.0625 MiB", 768 * kib: "768 KiB", 100 * mib: "100 MiB",
		100e6: "95.37 MiB", 4097: "4.001 KiB",
	} {
		if got := iecLabel(v); got != want {
			t.Errorf("iecLabel(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestBytesTicks(t *testing.T) {
	var got []string
	for _, tk := range (bytesTicks{}).Ticks(0, mib) {
		if tk.Label != "" {
			got = append(got, tk.Label)
		}
	}
	if want := []string{"0 B", "256 KiB", "512 KiB", "768 KiB", "1 MiB"}; !slices.Equal(got, want) {
		t.Errorf("linear 0..1 MiB labels %q, want %q", got, want)
	}
	got = nil
	for _, tk := range (bytesTicks{log: true}).Ticks(12, 20) { // 4 KiB..1 MiB
		if tk.Label != "" {
			got = append(got, tk.Label)
		}
	}
	if want := []string{"4 KiB", "16 KiB", "64 KiB", "256 KiB", "1 MiB"}; !slices.Equal(got, want) {
		t.Errorf("log 4 KiB..1 MiB labels %q, want %q", got, want)
	}
	got = nil
	for _, tk := range (bytesTicks{log: true, zero: -2, hasZero: true}).Ticks(-2, 23) { // 0, 1 B..8 MiB
		if tk.Label != "" {
			got = append(got, tk.Label)
		}
	}
	// 8 MiB is three doublings above 1 MiB: far enough to be labelled too.
	if want := []string{"0 B", "1 B", "32 B", "1 KiB", "32 KiB", "1 MiB", "8 MiB"}; !slices.Equal(got, want) {
		t.Errorf("log 0, 1 B..8 MiB labels %q, want %q", got, want)
	}
	// Degenerate ranges must not loop or panic.
	if ts := (bytesTicks{}).Ticks(5, 5); len(ts) != 1 {
		t.Errorf("zero-width range: %d ticks, want 1", len(ts))
	}
}

func TestNewByteAxis(t *testing.T) {
	tests := []struct {
		name string
		vals []float64
		want byteAxis
	}{
		{"empty", nil, byteAxis{max: emptyAxisMax}},
		{"all zero", []float64{0, 0}, byteAxis{max: emptyAxisMax}},
		{"one value", []float64{3000}, byteAxis{max: 3072}},
		{"power of two", []float64{4096}, byteAxis{max: 5120}},
		{"two decades exactly", []float64{100, 10000}, byteAxis{max: 10240}},
		{"wide", []float64{100, 10001}, byteAxis{log: true, min: 64, max: 16384}},
		{"wide with zero", []float64{0, 4096, mib}, byteAxis{log: true, floor: 1024, min: 1024, max: mib}},
	}
	for _, tt := range tests {
		if got := newByteAxis(tt.vals); got != tt.want {
			t.Errorf("%s: newByteAxis(%v) = %+v, want %+v", tt.name, tt.vals, got, tt.want)
		}
	}
}

func TestCaption(t *testing.T) {
	r := newResult(seedDepths, 1, asClaimed)
	r.Config.StackBytes = 100e6
	r.Config.Release = mmapstack.ReleaseDontneed
	r.Config.KeepTopBytes = page
	r.Config.MapStack = true
	want := "kernel 6.18.0-test · THP system (thp_enabled madvise) · guard mprotect · map_stack on\n" +
		"release dontneed, keep top 4 KiB · 95.37 MiB stacks"
	if got := caption(r); got != want {
		t.Errorf("caption:\n%s\nwant:\n%s", got, want)
	}
	for _, line := range strings.Split(caption(r), "\n") {
		if n := len([]rune(line)); n > captionWidth {
			t.Errorf("caption line %q is %d characters, over %d", line, n, captionWidth)
		}
	}
	r.Config.Workload, r.Config.Transport, r.Config.Pattern = probe.WorkloadPingPong, "unix", probe.PatternRamp
	if got := workloadCaption(r); !strings.HasSuffix(got, " · pingpong over unix, pattern ramp") {
		t.Errorf("workload caption %q lacks the ping-pong", got)
	}
	if got := wrap([]string{"aaaa", "bb", "cc"}, " · ", 9); got != "aaaa · bb\ncc" {
		t.Errorf("wrap = %q", got)
	}
}

func TestTHPMode(t *testing.T) {
	for in, want := range map[string]string{"always [madvise] never": "madvise", "never": "never", "": "unknown", "[always] madvise never\n": "always"} {
		if got := thpMode(in); got != want {
			t.Errorf("thpMode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEvenlySpaced(t *testing.T) {
	ramp := make([]float64, 41)
	for i := range ramp {
		ramp[i] = float64(1 + i*1024)
	}
	for _, c := range []struct {
		depths []float64
		want   bool
	}{
		{ramp, true},
		{[]float64{4 * kib, 8 * kib, 12 * kib, 4 * kib}, true},
		{[]float64{4 * kib, 64 * kib, mib, 8 * mib}, false},
		{[]float64{1}, true},
		{[]float64{4 * kib, mib}, false},
		{[]float64{4 * kib, 64 * kib}, true},
	} {
		if got := evenlySpaced(c.depths); got != c.want {
			t.Errorf("evenlySpaced(%v) = %v, want %v", c.depths, got, c.want)
		}
	}
}

// liveResult is a ping-pong ramp over 4 KiB, 64 KiB, 1 MiB and 8 MiB for 4
// stacks whose live samples caught 4 KiB and 64 KiB in clean steps, and
// neither 1 MiB (every stack ended there: its high-water group stands in)
// nor 8 MiB (never used).
func liveResult() *probe.Result {
	r := newResult([]int64{mib}, 4, asClaimed)
	r.Config.Workload = probe.WorkloadPingPong
	r.Config.Depths = []int64{4 * kib, 64 * kib, mib, 8 * mib}
	r.HighWaterGroups, r.Steps = r.Steps, nil
	r.PingPong = &probe.PingPongResult{
		LiveSteps: []probe.LiveStep{
			{DepthBytes: 4 * kib, ExpectedBytes: 4 * kib, Stacks: 4, Samples: 3, Observations: 10, Matched: 9,
				RSSBytesMin: 4 * kib, RSSBytesMax: 8 * kib, RSSBytesTotal: 9*4*kib + 8*kib},
			{DepthBytes: 64 * kib, ExpectedBytes: 64 * kib, Stacks: 4, Samples: 5, Observations: 4, Matched: 4,
				RSSBytesMin: 64 * kib, RSSBytesMax: 64 * kib, RSSBytesTotal: 4 * 64 * kib},
		},
		LiveStepsMissing: []int64{mib, 8 * mib},
	}
	return r
}

// The ping-pong's chart draws the live steps, one bar per depth with its
// exact min, mean and max, the high-water group where no live sample was
// clean, and notes saying which is which.
func TestDepthSeriesLive(t *testing.T) {
	r := liveResult()
	d := depthSeries(r, maxScatterPoints)
	if !d.live || d.stacks != nil || d.highWater != nil || d.afterRelease != nil {
		t.Fatalf("live=%v stacks=%v highWater=%v afterRelease=%v; want live ranges alone", d.live, d.stacks, d.highWater, d.afterRelease)
	}
	wantRanges := []stackRange{
		{depth: 4 * kib, min: 4 * kib, mean: (9*4*kib + 8*kib) / 10.0, max: 8 * kib},
		{depth: 64 * kib, min: 64 * kib, mean: 64 * kib, max: 64 * kib},
	}
	if !slices.Equal(d.ranges, wantRanges) {
		t.Errorf("ranges %+v, want %+v", d.ranges, wantRanges)
	}
	if want := []stackRange{{depth: mib, min: mib, mean: mib, max: mib}}; !slices.Equal(d.fallback, want) {
		t.Errorf("fallback %+v, want %+v", d.fallback, want)
	}
	if !slices.Equal(d.depths, []float64{4 * kib, 64 * kib, mib}) || d.stackCount != 4 {
		t.Errorf("depths %v stacks %d, want 4 KiB, 64 KiB, 1 MiB and 4", d.depths, d.stackCount)
	}
	notes := strings.Join(strings.Fields(strings.Join(d.notes, " ")), " ")
	for _, want := range []string{"3–5 samples per depth; 13 of 14 observations held exactly", "No clean live sample at 1 MiB", "Not drawn (no clean live sample, no stack ended there): 8 MiB."} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", notes, want)
		}
	}
	p, err := RSSVsDepth(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(p.X.Label.Text), " "), "No clean live sample at 1 MiB") {
		t.Errorf("caption %q does not name the fallback", p.X.Label.Text)
	}
	for _, l := range strings.Split(p.X.Label.Text, "\n") {
		if len([]rune(l)) > captionWidth {
			t.Errorf("caption line of %d characters: %q", len([]rune(l)), l)
		}
	}
	if lo, hi, _ := byteRange(p.Y); lo > 4*kib || hi < mib {
		t.Errorf("y axis [%v, %v] does not hold 4 KiB..1 MiB", lo, hi)
	}
	savePNG(t, p)

	// dontneed keeping one page: the live steps' expectation is drawn.
	for i := range r.PingPong.LiveSteps {
		r.PingPong.LiveSteps[i].ExpectedBytes = page
	}
	d = depthSeries(r, maxScatterPoints)
	if want := (plotter.XYs{{X: 4 * kib, Y: page}, {X: 64 * kib, Y: page}}); !slices.Equal(d.afterRelease, want) {
		t.Errorf("after release %v, want %v", d.afterRelease, want)
	}

	// Without live steps the ping-pong chart is the high-water groups'.
	r.PingPong.LiveSteps = nil
	if d := depthSeries(r, maxScatterPoints); d.live || len(d.stacks) != 4 {
		t.Errorf("no live steps: live=%v, %d points; want the 4 stacks of the 1 MiB group", d.live, len(d.stacks))
	}
}

// A long run whose stacks stop changing early is cut a tenth past the last
// change; the caption gives the cut part's figures. The ramp, whose flat
// end is shorter than what came before, is not cut.
func TestRSSOverTimeFlatTail(t *testing.T) {
	if d := timelineSeries(rampTimeline()); d.tail != nil {
		t.Errorf("ramp: cut %+v, want none (its flat end, 0.2 s, is shorter than the 0.7 s before it)", d.tail)
	}
	// Stacks rise at 0.1 s and 0.2 s, then hold 128 KiB to 10 s while
	// VmRSS wobbles; one sample every 100 ms.
	var tl []probe.TimelinePoint
	for i := range 101 {
		rss := min(int64(i), 2) * 64 * kib
		tl = append(tl, probe.TimelinePoint{
			Elapsed: time.Duration(i) * 100 * time.Millisecond, StackRSS: rss, Expected: rss,
			VmRSS: uint64(8*mib + rss + int64(i%3)*page), VmPTE: 64 * kib,
		})
	}
	d := timelineSeries(tl)
	want := flatTail{from: 0.2, end: 10, cut: 0.22, samples: 98, stackRSS: 128 * kib,
		vmRSSMin: 8*mib + 128*kib, vmRSSMax: 8*mib + 128*kib + 2*page, vmPTEMin: 64 * kib, vmPTEMax: 64 * kib}
	if d.tail == nil {
		t.Fatal("no cut")
	}
	got := *d.tail
	if math.Abs(got.from-want.from) > 1e-9 || math.Abs(got.end-want.end) > 1e-9 || math.Abs(got.cut-want.cut) > 1e-9 {
		t.Errorf("cut %+v, want %+v", got, want)
	}
	got.from, got.end, got.cut = want.from, want.end, want.cut
	if got != want {
		t.Errorf("cut %+v, want %+v", got, want)
	}

	r := newResult(seedDepths, 2, asClaimed)
	r.Config.Workload = probe.WorkloadPingPong
	r.Series.Timeline = tl
	p, err := RSSOverTime(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != 0 || math.Abs(p.X.Max-0.22) > 1e-9 {
		t.Errorf("x range [%v, %v], want [0, 0.22] s", p.X.Min, p.X.Max)
	}
	const note = "Cut at 0.22 s: from 0.2 s to the end at 10 s (98 more samples) the stacks held 128 KiB throughout, VmRSS 8.125 MiB–8.133 MiB, VmPTE 64 KiB."
	if text := strings.Join(strings.Fields(p.X.Label.Text), " "); !strings.Contains(text, note) {
		t.Errorf("caption %q lacks %q", p.X.Label.Text, note)
	}
	savePNG(t, p)
}
