package plots

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/watch"
)

// maxDepthBins is the most bins StackDepths draws; wider data get bins a
// whole number of pages wide.
const maxDepthBins = 64

// depthBins is the histogram StackDepths draws: bin i counts the stacks
// whose resident bytes lie in [lo+i·width, lo+(i+1)·width).
type depthBins struct {
	// lo is the first bin's lower bound and width every bin's width, bytes
	// (a whole number of pages).
	lo, width int64
	// end counts stacks by their resident bytes at the last sample they
	// were alive in; max by the most they held in any sample.
	end, max []float64
}

// stackDepthBins bins the stacks' resident bytes, at the end and at their
// maximum, in bins one page wide while at most maxBins bins cover the
// values, else the narrowest power of two pages wide that does.
func stackDepthBins(stacks []watch.Stack, page int64, maxBins int) depthBins {
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, st := range stacks {
		lo = min(lo, st.RSSBytes, st.RSSBytesMax)
		hi = max(hi, st.RSSBytes, st.RSSBytesMax)
	}
	d := depthBins{width: page}
	for {
		d.lo = lo / d.width * d.width
		if (hi-d.lo)/d.width < int64(maxBins) {
			break
		}
		d.width *= 2
	}
	n := int((hi-d.lo)/d.width) + 1
	d.end, d.max = make([]float64, n), make([]float64, n)
	for _, st := range stacks {
		d.end[(st.RSSBytes-d.lo)/d.width]++
		d.max[(st.RSSBytesMax-d.lo)/d.width]++
	}
	return d
}

// binTicks labels about maxLabels bins (those whose index is a multiple of
// a step) with their lower bound in IEC units.
func (d depthBins) binTicks() plot.ConstantTicks {
	n := len(d.end)
	step := max(1, (n+maxLabels*2-1)/(maxLabels*2))
	var ticks plot.ConstantTicks
	for i := range n {
		t := plot.Tick{Value: float64(i)}
		if i%step == 0 {
			t.Label = iecLabel(float64(d.lo + int64(i)*d.width))
		}
		ticks = append(ticks, t)
	}
	return ticks
}

var (
	colEnd = color.NRGBA{R: 31, G: 119, B: 180, A: 255}
	colMax = color.NRGBA{R: 255, G: 127, B: 14, A: 200}
)

// StackDepths charts how deep a watched program's stacks go: the number of
// stacks by resident bytes, at the last sample each was alive in and at
// its maximum over the watch, in bins one page wide (or a power of two pages
// when that would need more than maxDepthBins bins). page is the base page size.
func StackDepths(r *watch.Result, page int64, title string) (*plot.Plot, error) {
	if r == nil || len(r.Stacks) == 0 {
		return nil, errors.New("stack depths: no stack was measured")
	}
	if page <= 0 {
		return nil, fmt.Errorf("stack depths: page size %d", page)
	}
	d := stackDepthBins(r.Stacks, page, maxDepthBins)
	p := plot.New()
	p.Title.Text = title
	setLabel(&p.X, fmt.Sprintf("resident bytes per stack (bins of %s, labelled by their lower bound)", iecLabel(float64(d.width))), "")
	setLabel(&p.Y, "stacks", "")
	legendOutside(p)
	p.Add(plotter.NewGrid())
	w := vg.Points(math.Max(1, math.Min(12, 600/float64(2*len(d.end)))))
	for _, s := range []struct {
		vals   []float64
		name   string
		col    color.Color
		offset vg.Length
	}{
		{d.end, "at the end", colEnd, -w / 2},
		{d.max, "at its maximum", colMax, w / 2},
	} {
		b, err := plotter.NewBarChart(plotter.Values(s.vals), w)
		if err != nil {
			return nil, fmt.Errorf("stack depths: %s: %w", s.name, err)
		}
		b.Color, b.Offset = s.col, s.offset
		b.LineStyle.Width = 0
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	p.X.Min, p.X.Max = -0.5, float64(len(d.end))-0.5
	p.X.Tick.Marker = d.binTicks()
	p.Y.Min = 0
	p.Y.Max = math.Max(1, p.Y.Max*1.05)
	return p, nil
}

// watchTimeline is what WatchRSSOverTime draws: bytes against seconds.
type watchTimeline struct {
	stacks, vmRSS, vmPTE plotter.XYs
}

func watchTimelineSeries(tl []watch.Point) watchTimeline {
	d := watchTimeline{make(plotter.XYs, len(tl)), make(plotter.XYs, len(tl)), make(plotter.XYs, len(tl))}
	for i, pt := range tl {
		t := float64(pt.TimeNS) / 1e9
		d.stacks[i] = plotter.XY{X: t, Y: float64(pt.StacksRSSBytes)}
		d.vmRSS[i] = plotter.XY{X: t, Y: float64(pt.VmRSSBytes)}
		d.vmPTE[i] = plotter.XY{X: t, Y: float64(pt.VmPTEBytes)}
	}
	return d
}

// WatchRSSOverTime charts a watched process over time: the resident bytes
// of all its stacks together (from the page tables), its VmRSS and its page
// tables (VmPTE), against seconds since the watch started.
func WatchRSSOverTime(r *watch.Result, title string) (*plot.Plot, error) {
	if r == nil || len(r.Timeline) == 0 {
		return nil, errors.New("watch rss over time: no sample was recorded")
	}
	d := watchTimelineSeries(r.Timeline)
	ya := newByteAxis(yValues(d.stacks), yValues(d.vmRSS), yValues(d.vmPTE))
	p := plot.New()
	p.Title.Text = title
	setLabel(&p.X, "seconds since the watch started", "")
	setLabel(&p.Y, "bytes", "")
	legendOutside(p)
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		xys   plotter.XYs
		name  string
		color color.Color
		width float64
	}{
		{d.stacks, "stacks, resident", colStacks, 2},
		{d.vmRSS, "VmRSS (process)", colVmRSS, 1.2},
		{d.vmPTE, "VmPTE (page tables)", colVmPTE, 1.2},
	} {
		l, err := plotter.NewLine(plotYs(s.xys, ya))
		if err != nil {
			return nil, fmt.Errorf("watch rss over time: %s: %w", s.name, err)
		}
		l.LineStyle = draw.LineStyle{Color: s.color, Width: vg.Points(s.width)}
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	t1 := d.stacks[len(d.stacks)-1].X
	timeAxis(&p.X, t1)
	ya.apply(&p.Y)
	return p, nil
}

// watchResidencyMap turns a watch's page map into the map Residency
// draws, with the window chosen as for a run: the smallest power of two at
// least twice the deepest present byte below any row's top, at least 16
// pages (so one page is a sixteenth of it), at most the largest stack
// mapped.
func watchResidencyMap(r *watch.Result) (*probe.ResidencyMap, error) {
	pm := r.PageMap
	if pm == nil || len(pm.Rows) == 0 {
		return nil, errors.New("watch residency: no page map was recorded")
	}
	if len(pm.Stacks) != len(pm.Rows) {
		return nil, fmt.Errorf("watch residency: %d rows for %d stacks", len(pm.Rows), len(pm.Stacks))
	}
	page := int64(pm.PageSize)
	if page <= 0 {
		page = defaultPage
	}
	var deepest, size int64
	for i, row := range pm.Rows {
		if n := len(row); n > 0 {
			deepest = max(deepest, row[n-1].To)
		}
		if idx := pm.Stacks[i]; idx >= 0 && idx < len(r.Stacks) {
			size = max(size, int64(r.Stacks[idx].SizeBytes))
		}
	}
	window := 16 * page
	for window < 2*deepest && (size == 0 || window < size) {
		window *= 2
	}
	if size > 0 {
		window = min(window, size)
	}
	rm := &probe.ResidencyMap{WindowBytes: window, PageSize: int(page), Method: pm.Method, Stacks: append([]int(nil), pm.Stacks...)}
	for _, row := range pm.Rows {
		out := []probe.ResidentRun{}
		for _, run := range row {
			if run.From >= window {
				continue
			}
			out = append(out, probe.ResidentRun{
				From: run.From, To: min(run.To, window),
				Huge: run.Class&procread.ClassHuge != 0, ZeroPage: run.Class&procread.ClassZeroPage != 0,
			})
		}
		rm.Rows = append(rm.Rows, out)
	}
	return rm, nil
}

// WatchResidency draws residency.png for a watch: which pages at the top
// of up to watch.DefaultPageMapStacks of the stacks (evenly spread over
// those found) were present at the last recorded sample, one row per stack
// labelled with its index in Result.Stacks, as Residency draws a run's
// stacks: base pages, huge pages and zero-page mappings in their own
// colours, in a window chosen from the data. An empty title gets a default
// naming the sample's time and how many stacks it found. Stacks gone before
// that sample have no row. It fails when no page map was recorded.
func WatchResidency(r *watch.Result, title string) (*plot.Plot, error) {
	if r == nil {
		return nil, errors.New("watch residency: no result")
	}
	rm, err := watchResidencyMap(r)
	if err != nil {
		return nil, err
	}
	if title == "" {
		title = fmt.Sprintf("Resident pages at the top of %d of the %d stacks of pid %d at %.2f s (the last sample)",
			len(rm.Rows), r.PageMap.Found, r.Target.PID, float64(r.PageMap.TimeNS)/1e9)
	}
	return Residency(rm, title)
}
