package plots

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/probe"
)

// maxScatterPoints bounds the per-stack scatter. Above it (thousands of stacks
// times several depths) single points only overplot each other, so each depth
// is drawn instead as a bar from its smallest to its largest stack with a mark
// at the mean. A bar keeps every outlier visible, where a sampled subset could
// drop the one stack that disagrees with the claim.
const maxScatterPoints = 2000

// defaultPage is the base page assumed when a Result does not record one.
const defaultPage = 4096

// stackRange is one depth's spread over all stacks, in bytes.
type stackRange struct {
	depth, min, mean, max float64
}

// depthData is what RSSVsDepth draws, in bytes rather than plot coordinates.
type depthData struct {
	// stacks has one point per stack per depth: x depth, y resident bytes.
	// It is nil when ranges is used instead.
	stacks plotter.XYs
	// ranges has one entry per depth when there are more than
	// maxScatterPoints per-stack values, or when per-stack values are missing
	// (a Result read back from summary.json has only min, max and total).
	ranges []stackRange
	// highWater is each depth's HighWaterBytes; nil when it equals the claim
	// at every depth.
	highWater plotter.XYs
	// afterRelease is each depth's ExpectedAfterReleaseBytes; nil when it
	// equals the claim at every depth, or equals highWater (then highWater
	// stands for both).
	afterRelease plotter.XYs
	// highWaterIsAfter is true when highWater also stands for the
	// after-release expectation.
	highWaterIsAfter bool
	// depths are the measured depths, in measurement order.
	depths []float64
	// stackCount is the largest number of stacks measured at one depth.
	stackCount int
	// live is set when ranges are the ping-pong's live steps
	// (probe.LiveStep) rather than stacks measured once per depth.
	live bool
	// fallback (live only) are depths no live sample caught in a clean
	// step, drawn from the high-water groups measured after the IO.
	fallback []stackRange
	// notes are sentences for the caption saying what the data are.
	notes []string
}

// depthSeries extracts the chart's series from r. Depths with no stack
// measured are skipped.
func depthSeries(r *probe.Result, maxPoints int) depthData {
	if r.Config.Workload == probe.WorkloadPingPong && r.PingPong != nil && len(r.PingPong.LiveSteps) > 0 {
		return liveDepthSeries(r)
	}
	var d depthData
	rows := r.Rows()
	perStack := func(i int) []int64 {
		if i < len(r.Series.PerStackRSS) {
			return r.Series.PerStackRSS[i]
		}
		return nil
	}
	total, complete := 0, true
	for i, dr := range rows {
		total += len(perStack(i))
		if len(perStack(i)) == 0 && dr.Stacks > 0 {
			complete = false
		}
	}
	useRanges := !complete || total > maxPoints

	var hw, after plotter.XYs
	hwDiffers, afterDiffers, afterIsHW := false, false, true
	for i, dr := range rows {
		n := max(len(perStack(i)), dr.Stacks)
		if n == 0 {
			continue
		}
		x := float64(dr.DepthBytes)
		d.depths = append(d.depths, x)
		if r.Config.Workload == probe.WorkloadPingPong {
			d.stackCount += n // groups partition the stacks
		} else {
			d.stackCount = max(d.stackCount, n)
		}
		if useRanges {
			d.ranges = append(d.ranges, rangeOf(dr, perStack(i)))
		} else {
			for _, rss := range perStack(i) {
				d.stacks = append(d.stacks, plotter.XY{X: x, Y: float64(rss)})
			}
		}
		hw = append(hw, plotter.XY{X: x, Y: float64(dr.HighWaterBytes)})
		after = append(after, plotter.XY{X: x, Y: float64(dr.ExpectedAfterReleaseBytes)})
		hwDiffers = hwDiffers || dr.HighWaterBytes != dr.ExpectedRSSBytes
		afterDiffers = afterDiffers || dr.ExpectedAfterReleaseBytes != dr.ExpectedRSSBytes
		afterIsHW = afterIsHW && dr.ExpectedAfterReleaseBytes == dr.HighWaterBytes
	}
	if hwDiffers {
		d.highWater = hw
	}
	d.highWaterIsAfter = hwDiffers && afterIsHW
	if afterDiffers && !d.highWaterIsAfter {
		d.afterRelease = after
	}
	return d
}

// liveDepthSeries draws the ping-pong's live steps: for each depth of the
// list, the spread of what the stacks held in the live samples that caught
// them in a clean step (probe.LiveStep). A depth no sample caught falls back
// to its high-water group measured after the IO, drawn apart and named in
// the notes; a depth with neither is named as not drawn.
func liveDepthSeries(r *probe.Result) depthData {
	d := depthData{live: true}
	page := int64(r.PageSize)
	if page <= 0 {
		page = defaultPage
	}
	live := map[int64]bool{}
	var after plotter.XYs
	afterDiffers := false
	minSamples, maxSamples := math.MaxInt, 0
	var observed, matched int64
	for _, ls := range r.PingPong.LiveSteps {
		x := float64(ls.DepthBytes)
		live[ls.DepthBytes] = true
		d.depths = append(d.depths, x)
		d.ranges = append(d.ranges, stackRange{depth: x, min: float64(ls.RSSBytesMin), mean: ls.RSSBytesMean(), max: float64(ls.RSSBytesMax)})
		d.stackCount = max(d.stackCount, ls.Stacks)
		after = append(after, plotter.XY{X: x, Y: float64(ls.ExpectedBytes)})
		afterDiffers = afterDiffers || ls.ExpectedBytes != probe.ExpectedPages(ls.DepthBytes, int(page))*page
		minSamples, maxSamples = min(minSamples, ls.Samples), max(maxSamples, ls.Samples)
		observed, matched = observed+ls.Observations, matched+ls.Matched
	}
	if afterDiffers {
		d.afterRelease = after
	}
	samples := fmt.Sprintf("%d", minSamples)
	if maxSamples != minSamples {
		samples = fmt.Sprintf("%d–%d", minSamples, maxSamples)
	}
	d.notes = append(d.notes, fmt.Sprintf("Live samples: each bar spans the stacks caught in a clean step of that depth "+
		"(latest depth = deepest so far, no step during the sample), %s samples per depth; "+
		"%d of %d observations held exactly what a step of their depth leaves.", samples, matched, observed))

	rows := r.Rows()
	var fellBack, notDrawn []string
	drawn := map[int64]bool{}
	for i, dr := range rows {
		if live[dr.DepthBytes] || dr.Stacks == 0 {
			continue
		}
		var per []int64
		if i < len(r.Series.PerStackRSS) {
			per = r.Series.PerStackRSS[i]
		}
		x := float64(dr.DepthBytes)
		d.fallback = append(d.fallback, rangeOf(dr, per))
		d.depths = append(d.depths, x)
		drawn[dr.DepthBytes] = true
		fellBack = append(fellBack, unbroken(iecLabel(x)))
	}
	for _, m := range r.PingPong.LiveStepsMissing {
		if !drawn[m] {
			notDrawn = append(notDrawn, unbroken(iecLabel(float64(m))))
		}
	}
	if len(fellBack) > 0 {
		d.notes = append(d.notes, fmt.Sprintf("No clean live sample at %s: drawn from the stacks whose deepest depth it was, "+
			"measured after the IO.", strings.Join(fellBack, ", ")))
	}
	if len(notDrawn) > 0 {
		d.notes = append(d.notes, fmt.Sprintf("Not drawn (no clean live sample, no stack ended there): %s.", strings.Join(notDrawn, ", ")))
	}
	return d
}

// rangeOf is one depth's min, mean and max over its stacks, from the
// per-stack values when present, else from the recorded summary.
func rangeOf(dr probe.DepthResult, perStack []int64) stackRange {
	sr := stackRange{depth: float64(dr.DepthBytes)}
	if len(perStack) == 0 {
		sr.min, sr.max = float64(dr.RSSBytesMin), float64(dr.RSSBytesMax)
		sr.mean = float64(dr.RSSBytesTotal) / float64(dr.Stacks)
		return sr
	}
	var sum float64
	sr.min, sr.max = math.Inf(1), math.Inf(-1)
	for _, v := range perStack {
		f := float64(v)
		sr.min, sr.max = math.Min(sr.min, f), math.Max(sr.max, f)
		sum += f
	}
	sr.mean = sum / float64(len(perStack))
	return sr
}

// claimSteps is the seed's claim ceil(d/page)·page for depths lo..hi as the
// corners of a step line drawn with plotter.PreStep: over (x[i-1], x[i]] the
// line is at y[i]. Every corner is exact. Each page step is its own corner
// while steps are wide on screen; beyond that corners are thinned (every
// k/256-th page on a log axis, about 2000 corners on a linear one), where the
// skipped steps are far below a pixel and the line reads as a ramp anyway.
func claimSteps(lo, hi float64, page int64, logX bool) plotter.XYs {
	if page <= 0 {
		page = defaultPage
	}
	a, b := int64(math.Max(0, math.Floor(lo))), int64(math.Max(0, math.Ceil(hi)))
	if b < a {
		a, b = b, a
	}
	ceilPage := func(d int64) float64 { return float64(probe.ExpectedPages(d, int(page)) * page) }
	pts := plotter.XYs{{X: float64(a), Y: ceilPage(a)}}
	k0, k1 := a/page+1, b/page
	for k := k0; k <= k1; {
		pts = append(pts, plotter.XY{X: float64(k * page), Y: float64(k * page)})
		step := max(1, (k1-k0)/2000)
		if logX {
			step = max(1, k/256)
		}
		k += step
	}
	if last := pts[len(pts)-1].X; last < float64(b) || len(pts) == 1 {
		pts = append(pts, plotter.XY{X: float64(b), Y: ceilPage(b)})
	}
	return pts
}

// Series colours, fixed so the same quantity looks the same in every chart.
var (
	colStacks   = color.NRGBA{R: 31, G: 119, B: 180, A: 160}
	colClaim    = color.NRGBA{R: 40, G: 40, B: 40, A: 255}
	colHW       = color.NRGBA{R: 255, G: 127, B: 14, A: 255}
	colAfter    = color.NRGBA{R: 44, G: 160, B: 44, A: 255}
	colVmRSS    = color.NRGBA{R: 148, G: 103, B: 189, A: 255}
	colVmPTE    = color.NRGBA{R: 140, G: 86, B: 75, A: 255}
	colStepMark = color.NRGBA{R: 127, G: 127, B: 127, A: 255}
	colFallback = color.NRGBA{R: 214, G: 39, B: 40, A: 255}
)

// RSSVsDepth charts each stack's resident bytes against the depth it was used
// to, over the seed's claim: a staircase that rises one page per page of
// depth. When the run expects something else (the high-water mark of a stack
// that keeps its pages, or what the release mode leaves), that expectation is
// drawn too. With more than maxScatterPoints per-stack values, or when they
// are missing, each depth is a min–max bar with its mean marked.
//
// A ping-pong run with live steps draws them instead of the groups measured
// after the IO (where a ramp leaves every stack at its last depth): each
// depth's bar spans what the stacks held while the IO ran, in the live
// samples that caught them in a clean step. A depth no sample caught falls
// back to its high-water group, in its own colour, and the caption says so.
func RSSVsDepth(r *probe.Result) (*plot.Plot, error) {
	if r == nil {
		return nil, errors.New("rss vs depth: no result")
	}
	d := depthSeries(r, maxScatterPoints)
	if len(d.depths) == 0 {
		return nil, errors.New("rss vs depth: no depth was measured")
	}
	page := int64(r.PageSize)
	if page <= 0 {
		page = defaultPage
	}

	// The claim spans the measured depths, from 0 on a linear axis, and the
	// whole axis when every depth is 0. The axis reaches at least one page,
	// so a depth of a few bytes shows the claim's first page step instead
	// of an axis of 0–2 B. Depths spread evenly (a ramp, a short list) are
	// drawn on a linear axis; log only when they span decades unevenly.
	xa := newByteAxis(append(slices.Clone(d.depths), float64(page)))
	if evenlySpaced(d.depths) {
		xa = newLinearByteAxis(append(slices.Clone(d.depths), float64(page)))
	}
	lo, hi := slices.Min(d.depths), slices.Max(d.depths)
	if !xa.log {
		lo = xa.min
	}
	if hi <= 0 {
		hi = float64(page)
	}
	claim := claimSteps(lo, hi, page, xa.log)

	ySeries := [][]float64{yValues(claim), yValues(d.stacks), yValues(d.highWater), yValues(d.afterRelease)}
	for _, sr := range slices.Concat(d.ranges, d.fallback) {
		ySeries = append(ySeries, []float64{sr.min, sr.max})
	}
	// A log y axis only helps beside a log x axis: on a linear one the claim
	// rises linearly, and a huge page dwarfing it is the point to show.
	ya := newByteAxis(ySeries...)
	if !xa.log {
		ya = newLinearByteAxis(ySeries...)
	}

	p := plot.New()
	p.Title.Text = titled("Resident stack memory vs depth", r)
	setLabel(&p.X, "depth used per stack", notesCaption(caption(r), d.notes))
	setLabel(&p.Y, "resident bytes per stack ("+methodWords(r.Residency.Method)+")", "")
	legendOutside(p)
	p.Add(plotter.NewGrid())

	cl, err := plotter.NewLine(plotXYs(claim, xa, ya))
	if err != nil {
		return nil, fmt.Errorf("rss vs depth: claim: %w", err)
	}
	cl.StepStyle = plotter.PreStep
	cl.LineStyle = draw.LineStyle{Color: colClaim, Width: vg.Points(1.2)}
	p.Add(cl)
	p.Legend.Add(fmt.Sprintf("claim ceil(d/%s)·%s", iecLabel(float64(page)), iecLabel(float64(page))), cl)

	if d.stacks != nil {
		sc, err := plotter.NewScatter(plotXYs(d.stacks, xa, ya))
		if err != nil {
			return nil, fmt.Errorf("rss vs depth: stacks: %w", err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: colStacks, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("measured, %d stack%s", d.stackCount, plural(d.stackCount)), sc)
	} else if len(d.ranges) > 0 {
		bars, mean, err := rangePlotters(d.ranges, xa, ya, colStacks, draw.CircleGlyph{})
		if err != nil {
			return nil, fmt.Errorf("rss vs depth: stacks: %w", err)
		}
		p.Add(bars, mean)
		if d.live {
			p.Legend.Add("live samples, min–max", barThumb{bars.LineStyle})
			p.Legend.Add("live samples, mean", mean)
		} else {
			p.Legend.Add(fmt.Sprintf("min–max of %d stacks", d.stackCount), barThumb{bars.LineStyle})
			p.Legend.Add("mean of the stacks", mean)
		}
	}
	if len(d.fallback) > 0 {
		bars, mean, err := rangePlotters(d.fallback, xa, ya, colFallback, draw.SquareGlyph{})
		if err != nil {
			return nil, fmt.Errorf("rss vs depth: high-water fallback: %w", err)
		}
		p.Add(bars, mean)
		p.Legend.Add("after the IO, by deepest depth", mean)
	}

	if d.highWater != nil {
		name := "high-water mark"
		if d.highWaterIsAfter {
			name = "high-water = after release"
		}
		if err := addMarks(p, d.highWater, xa, ya, colHW, draw.TriangleGlyph{}, name); err != nil {
			return nil, fmt.Errorf("rss vs depth: high-water: %w", err)
		}
	}
	if d.afterRelease != nil {
		name := fmt.Sprintf("after release %s", r.Config.Release)
		if err := addMarks(p, d.afterRelease, xa, ya, colAfter, draw.RingGlyph{}, name); err != nil {
			return nil, fmt.Errorf("rss vs depth: after release: %w", err)
		}
	}

	xa.apply(&p.X)
	ya.apply(&p.Y)
	return p, nil
}

// rangePlotters draws each depth's min–max as an error bar around a mark at
// its mean, in plot coordinates.
func rangePlotters(rs []stackRange, xa, ya byteAxis, c color.Color, g draw.GlyphDrawer) (*plotter.YErrorBars, *plotter.Scatter, error) {
	type barData struct {
		plotter.XYs
		plotter.YErrors
	}
	var b barData
	for _, sr := range rs {
		m := ya.pos(sr.mean)
		b.XYs = append(b.XYs, plotter.XY{X: xa.pos(sr.depth), Y: m})
		b.YErrors = append(b.YErrors, struct{ Low, High float64 }{m - ya.pos(sr.min), ya.pos(sr.max) - m})
	}
	bars, err := plotter.NewYErrorBars(b)
	if err != nil {
		return nil, nil, err
	}
	bars.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1.5)}
	mean, err := plotter.NewScatter(b.XYs)
	if err != nil {
		return nil, nil, err
	}
	mean.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3), Shape: g}
	return bars, mean, nil
}

// barThumb is the legend icon of a min–max bar: a vertical line.
type barThumb struct{ line draw.LineStyle }

// Thumbnail implements plot.Thumbnailer.
func (b barThumb) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(b.line, x, c.Min.Y, x, c.Max.Y)
}

// addMarks adds an expectation as unconnected marks: depths are in
// measurement order, which need not be sorted, and a line through them would
// zigzag.
func addMarks(p *plot.Plot, xys plotter.XYs, xa, ya byteAxis, c color.Color, g draw.GlyphDrawer, name string) error {
	s, err := plotter.NewScatter(plotXYs(xys, xa, ya))
	if err != nil {
		return err
	}
	s.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: g}
	p.Add(s)
	p.Legend.Add(name, s)
	return nil
}

// notesCaption is a chart's caption followed by notes on its data, each
// wrapped at captionWidth on its own lines.
func notesCaption(caption string, notes []string) string {
	for _, n := range notes {
		caption += "\n" + wrap(strings.Split(n, " "), " ", captionWidth)
	}
	return caption
}

// unbroken joins a size's number and unit with a no-break space, so that
// wrapping a note never parts them.
func unbroken(s string) string { return strings.ReplaceAll(s, " ", "\u00a0") }

// plotXYs maps points from bytes to plot coordinates (see byteAxis.pos).
func plotXYs(xys plotter.XYs, xa, ya byteAxis) plotter.XYs {
	out := make(plotter.XYs, len(xys))
	for i, pt := range xys {
		out[i] = plotter.XY{X: xa.pos(pt.X), Y: ya.pos(pt.Y)}
	}
	return out
}

// yValues is the Y of every point.
func yValues(xys plotter.XYs) []float64 {
	out := make([]float64, len(xys))
	for i, pt := range xys {
		out[i] = pt.Y
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// evenlySpaced reports whether the distinct depths, sorted, are equally far
// apart (within a page), as in a ramp 1B..40KiB/41; fewer than three
// distinct depths count as even only when they are within two decades.
func evenlySpaced(depths []float64) bool {
	ds := slices.Clone(depths)
	slices.Sort(ds)
	ds = slices.Compact(ds)
	if len(ds) < 3 {
		return len(ds) < 2 || ds[len(ds)-1] <= logSpan*math.Max(ds[0], 1)
	}
	gap := ds[1] - ds[0]
	for i := 2; i < len(ds); i++ {
		if math.Abs(ds[i]-ds[i-1]-gap) > defaultPage {
			return false
		}
	}
	return true
}
