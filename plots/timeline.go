package plots

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/probe"
)

// depthStep is a moment the ramp moved every task to a new depth.
type depthStep struct {
	seconds float64
	depth   int64
}

// timelineData is what RSSOverTime draws, in bytes against seconds since the
// run started, before mapping to plot coordinates.
type timelineData struct {
	stacks, expected, vmRSS, vmPTE plotter.XYs
	steps                          []depthStep
	// tail is set when the chart is cut short of a long flat end.
	tail *flatTail
}

// flatTail is the end of a timeline in which the stacks no longer change:
// from the sample that first held the final stack residency, prediction
// and ramp depth, to the last sample.
type flatTail struct {
	// from and end are seconds since the run started; cut is where the
	// chart's x axis ends, a little past from.
	from, end, cut float64
	// samples counts the kept points after from.
	samples int
	// stackRSS is what the stacks held throughout; vmRSS and vmPTE are
	// the process figures' least and most over the tail.
	stackRSS           int64
	vmRSSMin, vmRSSMax uint64
	vmPTEMin, vmPTEMax uint64
}

// flatTailOf finds a flat end of tl worth cutting: one longer than all that
// comes before it, after at least one change. The x axis then ends a tenth
// of the active part past the last change, so the flat line still shows.
func flatTailOf(tl []probe.TimelinePoint) *flatTail {
	if len(tl) < 2 {
		return nil
	}
	last := tl[len(tl)-1]
	k := len(tl) - 1
	for k > 0 {
		p := tl[k-1]
		if p.StackRSS != last.StackRSS || p.Expected != last.Expected || p.Depth != last.Depth {
			break
		}
		k--
	}
	from, end := tl[k].Elapsed.Seconds(), last.Elapsed.Seconds()
	if k == 0 || end-from <= from {
		return nil
	}
	t := &flatTail{from: from, end: end, cut: math.Min(end, 1.1*from), samples: len(tl) - 1 - k, stackRSS: last.StackRSS,
		vmRSSMin: tl[k].VmRSS, vmRSSMax: tl[k].VmRSS, vmPTEMin: tl[k].VmPTE, vmPTEMax: tl[k].VmPTE}
	for _, p := range tl[k:] {
		t.vmRSSMin, t.vmRSSMax = min(t.vmRSSMin, p.VmRSS), max(t.vmRSSMax, p.VmRSS)
		t.vmPTEMin, t.vmPTEMax = min(t.vmPTEMin, p.VmPTE), max(t.vmPTEMax, p.VmPTE)
	}
	return t
}

// note is the caption's sentence on the part of the run not drawn.
func (t *flatTail) note() string {
	span := func(lo, hi uint64) string {
		if lo == hi {
			return unbroken(iecLabel(float64(lo)))
		}
		return unbroken(iecLabel(float64(lo)) + "–" + iecLabel(float64(hi)))
	}
	return fmt.Sprintf("Cut at %.3g s: from %.3g s to the end at %.3g s (%d more samples) the stacks held %s throughout, "+
		"VmRSS %s, VmPTE %s.", t.cut, t.from, t.end, t.samples, unbroken(iecLabel(float64(t.stackRSS))),
		span(t.vmRSSMin, t.vmRSSMax), span(t.vmPTEMin, t.vmPTEMax))
}

// timelineSeries extracts the chart's series from the timeline. A step is
// recorded at the first sample when it already has a depth, and wherever the
// depth changes; patterns other than the ramp record depth 0 throughout and
// get no steps. A long flat end (see flatTailOf) is noted in tail.
func timelineSeries(tl []probe.TimelinePoint) timelineData {
	d := timelineData{
		tail:     flatTailOf(tl),
		stacks:   make(plotter.XYs, len(tl)),
		expected: make(plotter.XYs, len(tl)),
		vmRSS:    make(plotter.XYs, len(tl)),
		vmPTE:    make(plotter.XYs, len(tl)),
	}
	for i, pt := range tl {
		t := pt.Elapsed.Seconds()
		d.stacks[i] = plotter.XY{X: t, Y: float64(pt.StackRSS)}
		d.expected[i] = plotter.XY{X: t, Y: float64(pt.Expected)}
		d.vmRSS[i] = plotter.XY{X: t, Y: float64(pt.VmRSS)}
		d.vmPTE[i] = plotter.XY{X: t, Y: float64(pt.VmPTE)}
		if (i == 0 && pt.Depth != 0) || (i > 0 && pt.Depth != tl[i-1].Depth) {
			d.steps = append(d.steps, depthStep{seconds: t, depth: pt.Depth})
		}
	}
	return d
}

// RSSOverTime charts the ping-pong run's sampled history: resident bytes of
// all stacks together (as the run's residency method read them), the schedule's prediction for them, the
// process's VmRSS and its page tables (VmPTE), against seconds since the run
// started. Each depth step of a ramp is a dashed vertical line labelled with
// the new depth. When the stacks stop changing early in a long run, the time
// axis ends shortly after their last change and the caption says what the
// cut part held. It fails when the Result has no timeline.
func RSSOverTime(r *probe.Result) (*plot.Plot, error) {
	if r == nil {
		return nil, errors.New("rss over time: no result")
	}
	if len(r.Series.Timeline) == 0 {
		return nil, errors.New("rss over time: the result has no timeline (only the ping-pong workload records one)")
	}
	d := timelineSeries(r.Series.Timeline)
	ya := newByteAxis(yValues(d.stacks), yValues(d.expected), yValues(d.vmRSS), yValues(d.vmPTE))

	p := plot.New()
	p.Title.Text = titled("Stack and process memory over time", r)
	var notes []string
	if d.tail != nil {
		notes = append(notes, d.tail.note())
	}
	setLabel(&p.X, "seconds since the run started", notesCaption(workloadCaption(r), notes))
	setLabel(&p.Y, "resident bytes", "")
	legendOutside(p)
	p.Add(plotter.NewGrid())

	series := []struct {
		xys   plotter.XYs
		name  string
		color color.Color
		width float64
		dash  []vg.Length
	}{
		{d.expected, "stacks, predicted", colClaim, 1.2, []vg.Length{vg.Points(5), vg.Points(3)}},
		{d.stacks, "stacks, " + methodWords(r.Residency.Method), colStacks, 2, nil},
		{d.vmRSS, "VmRSS (process)", colVmRSS, 1.2, nil},
		{d.vmPTE, "VmPTE (page tables)", colVmPTE, 1.2, nil},
	}
	for _, s := range series {
		l, err := plotter.NewLine(plotYs(s.xys, ya))
		if err != nil {
			return nil, fmt.Errorf("rss over time: %s: %w", s.name, err)
		}
		l.LineStyle = draw.LineStyle{Color: s.color, Width: vg.Points(s.width), Dashes: s.dash}
		p.Add(l)
		p.Legend.Add(s.name, l)
	}

	if len(d.steps) > 0 {
		m := newStepMarks(d.steps)
		p.Add(m)
		p.Legend.Add("new ramp depth", m)
	}

	// Time starts at 0 s; a single sample at 0 s still gets a one-second axis.
	t1 := 0.0
	for _, pt := range d.stacks {
		t1 = math.Max(t1, pt.X)
	}
	if d.tail != nil {
		t1 = d.tail.cut
	}
	timeAxis(&p.X, t1)
	ya.apply(&p.Y)
	return p, nil
}

// timeAxis is a linear axis of seconds from 0 to end (to 1 when nothing
// was timed).
func timeAxis(ax *plot.Axis, end float64) {
	ax.Min, ax.Max = 0, end
	if !(end > 0) {
		ax.Max = 1
	}
	ax.Scale = plot.LinearScale{}
	ax.Tick.Marker = plot.DefaultTicks{}
}

// plotYs maps points' Y from bytes to plot coordinates (see byteAxis.pos).
func plotYs(xys plotter.XYs, ya byteAxis) plotter.XYs {
	out := make(plotter.XYs, len(xys))
	for i, pt := range xys {
		out[i] = plotter.XY{X: pt.X, Y: ya.pos(pt.Y)}
	}
	return out
}

// stepMarks is a plot.Plotter that draws a dashed vertical line across the
// data area at each depth step, with the new depth in IEC units at its top.
// A label that would overlap the previous one is left out; its line stays.
type stepMarks struct {
	steps []depthStep
	line  draw.LineStyle
	label text.Style
}

func newStepMarks(steps []depthStep) *stepMarks {
	m := &stepMarks{steps: steps}
	m.line, m.label = markStyle(colStepMark, 2, 9, draw.YTop)
	return m
}

// markStyle is the thin dashed line and the small label of a marker drawn
// across a chart (a depth step, a reference level): dash is the dash length
// and size the font size, in points.
func markStyle(c color.Color, dash, size float64, yAlign text.YAlignment) (draw.LineStyle, text.Style) {
	return draw.LineStyle{
			Color:  c,
			Width:  vg.Points(0.8),
			Dashes: []vg.Length{vg.Points(dash), vg.Points(2)},
		}, text.Style{
			Color:   c,
			Font:    font.From(plot.DefaultFont, vg.Length(size)),
			XAlign:  draw.XLeft,
			YAlign:  yAlign,
			Handler: plot.DefaultTextHandler,
		}
}

// Plot implements plot.Plotter.
func (m *stepMarks) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	gap := vg.Points(2)
	right := c.Min.X
	for _, s := range m.steps {
		x := trX(s.seconds)
		if !c.ContainsX(x) {
			continue
		}
		c.StrokeLine2(m.line, x, c.Min.Y, x, c.Max.Y)
		label := iecLabel(float64(s.depth))
		w := m.label.Width(label)
		lx := min(x+gap, c.Max.X-w) // the last label may sit left of its line
		if lx < right {
			continue
		}
		c.FillText(m.label, vg.Point{X: lx, Y: c.Max.Y}, label)
		right = lx + w + 2*gap
	}
}

// Thumbnail implements plot.Thumbnailer for the legend.
func (m *stepMarks) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(m.line, x, c.Min.Y, x, c.Max.Y)
}
