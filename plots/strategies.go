package plots

import (
	"errors"
	"fmt"
	"image/color"
	"slices"
	"strings"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/procread"
)

// strategyLine is one strategy's series in Strategies, in bytes per stack
// against the step index.
type strategyLine struct {
	// legend is the strategy's name in the legend.
	legend string
	// mean has one point per step: X the step index, Y RSSBytesMean.
	mean plotter.XYs
	// peaks are the steps whose PeakRSSBytesMax is not RSSBytesMax, that is
	// where a release gave pages back after the touch: X the step index, Y
	// the peak.
	peaks plotter.XYs
	// shape is the strategy's position among the drawn lines, which picks
	// its colour and marker.
	shape int
	// goStacks marks goroutine stacks: mean is the runtime's stack bytes
	// per goroutine, drawn with a cross marker of its own.
	goStacks bool
}

// strategiesData is what Strategies draws, before mapping to plot
// coordinates.
type strategiesData struct {
	// depths is the depth of each step of the schedule, in order; a depth
	// may repeat or be shallower than the one before.
	depths []int64
	// claim is the seed's claim ceil(depth/page)·page at each step.
	claim []float64
	// lines has one entry per strategy that measured at least one step.
	lines []strategyLine
	// skipped names the strategies that did not run, with the reason.
	skipped []string
	// noData names the strategies that ran but measured no step.
	noData []string
	// mayHuge is true when a strategy that ran could be backed by
	// transparent huge pages (THP advice other than never).
	mayHuge bool
}

// maxLegendLabel is the longest strategy label, in characters, the legend
// shows; beyond it the legend would take the data area's width, and every
// strategy is shown by its short name instead.
const maxLegendLabel = 30

// strategySeries extracts Strategies' series from c.
//
// The schedule is the longest of the strategies' steps, extended by the
// configured depths a partial run did not reach. Step i of every strategy
// is drawn at X = i whatever its depth.
func strategySeries(c *probe.Comparison) strategiesData {
	var d strategiesData
	page := int64(c.PageSize)
	if page <= 0 {
		page = defaultPage
	}
	for _, sr := range c.Strategies {
		for i, st := range sr.Steps {
			if i >= len(d.depths) {
				d.depths = append(d.depths, st.DepthBytes)
			}
		}
	}
	for i := len(d.depths); i < len(c.Config.Depths); i++ {
		d.depths = append(d.depths, c.Config.Depths[i])
	}
	for _, dep := range d.depths {
		d.claim = append(d.claim, float64(probe.ExpectedPages(dep, int(page))*page))
	}

	var ran []probe.Strategy
	for _, sr := range c.Strategies {
		st := sr.Strategy
		switch {
		case sr.Skipped != "":
			d.skipped = append(d.skipped, fmt.Sprintf("%s (%s)", st.Name, sr.Skipped))
			continue
		case len(sr.Steps) == 0:
			d.noData = append(d.noData, string(st.Name))
			continue
		}
		l := strategyLine{shape: len(d.lines), goStacks: st.GoStacks}
		for i, step := range sr.Steps {
			x := float64(i)
			if step.Overflow {
				continue // the stack cannot hold this depth: not run
			}
			if g := step.Go; g != nil {
				// The runtime's stack accounting, drawn as what it is.
				if v := g.RuntimeStackBytesPerGoroutine; v != nil {
					l.mean = append(l.mean, plotter.XY{X: x, Y: float64(*v)})
				}
				continue
			}
			l.mean = append(l.mean, plotter.XY{X: x, Y: float64(step.RSSBytesMean)})
			if step.PeakRSSBytesMax != step.RSSBytesMax && step.PeakRSSBytesMax > 0 {
				l.peaks = append(l.peaks, plotter.XY{X: x, Y: float64(step.PeakRSSBytesMax)})
			}
		}
		d.lines = append(d.lines, l)
		ran = append(ran, st)
		d.mayHuge = d.mayHuge || (!st.GoStacks && st.THP != mmapstack.THPNoHuge)
	}
	for i, name := range legendNames(ran) {
		d.lines[i].legend = name
		if d.lines[i].goStacks {
			d.lines[i].legend = name + ": runtime stack bytes per goroutine, not residency"
		}
	}
	return d
}

// legendNames are the strategies' labels when every one fits in
// maxLegendLabel characters, and their short names otherwise: a legend that
// mixes the two reads worse than either. A strategy without a label is
// shown by its name.
func legendNames(ss []probe.Strategy) []string {
	names := make([]string, len(ss))
	useLabels := true
	for i, s := range ss {
		names[i] = s.Label
		if s.Label == "" {
			names[i] = string(s.Name)
		}
		useLabels = useLabels && utf8.RuneCountInString(names[i]) <= maxLegendLabel
	}
	if !useLabels {
		count := map[probe.StrategyName]int{}
		for _, s := range ss {
			count[s.Name]++
		}
		for i, s := range ss {
			// A name that several strategies share (one per stack size)
			// keeps its label, which tells them apart.
			if s.Name != "" && (count[s.Name] == 1 || s.Label == "") {
				names[i] = string(s.Name)
			}
		}
	}
	return names
}

// Strategy styles. Colour and marker cycle with different periods, so two
// strategies never share both.
var (
	strategyColors = []color.Color{
		color.NRGBA{R: 31, G: 119, B: 180, A: 255},
		color.NRGBA{R: 255, G: 127, B: 14, A: 255},
		color.NRGBA{R: 44, G: 160, B: 44, A: 255},
		color.NRGBA{R: 214, G: 39, B: 40, A: 255},
		color.NRGBA{R: 148, G: 103, B: 189, A: 255},
		color.NRGBA{R: 140, G: 86, B: 75, A: 255},
		color.NRGBA{R: 227, G: 119, B: 194, A: 255},
		color.NRGBA{R: 23, G: 190, B: 207, A: 255},
	}
	// strategyGlyphs pairs each filled marker (the mean) with its hollow
	// counterpart (the peak before release).
	strategyGlyphs = []struct{ filled, hollow draw.GlyphDrawer }{
		{draw.CircleGlyph{}, draw.RingGlyph{}},
		{draw.BoxGlyph{}, draw.SquareGlyph{}},
		{draw.PyramidGlyph{}, draw.TriangleGlyph{}},
	}
	colReference = color.NRGBA{R: 110, G: 110, B: 110, A: 255}
)

// Strategies charts, step by step through the schedule, the resident bytes
// per stack under each stack strategy of a comparison, against the seed's
// claim ceil(depth/page)·page. X is the step's position in the schedule
// (ticks read its depth), so a schedule that goes back to a shallow depth
// shows what each strategy keeps. Y is the mean over the stacks on a log
// scale; where a release gave pages back, the most a stack held before it
// is a hollow marker. The stack size and, when a strategy may use
// transparent huge pages, the huge page size are labelled reference lines.
// Skipped strategies are named in the caption.
func Strategies(c *probe.Comparison) (*plot.Plot, error) {
	if c == nil {
		return nil, errors.New("strategies: no comparison")
	}
	d := strategySeries(c)
	if len(d.lines) == 0 {
		return nil, errors.New("strategies: no strategy measured a step")
	}
	sys := c.Environment
	huge := float64(sys.THPPMDSize)
	if huge <= 0 {
		huge = 2 << 20
	}

	ySeries := [][]float64{d.claim}
	for _, l := range d.lines {
		ySeries = append(ySeries, yValues(l.mean), yValues(l.peaks))
	}
	ya := padLog(newLogByteAxis(ySeries...), ySeries...)

	p := plot.New()
	p.Title.Text = "Stack strategies side by side"
	if c.Partial {
		p.Title.Text += " (partial run)"
	}
	setLabel(&p.X, "schedule step, labelled with the depth each stack was used to", strategiesCaption(c, sys, d))
	setLabel(&p.Y, "resident bytes per stack (mean)", "")
	legendOutside(p)
	p.Add(plotter.NewGrid())

	var levels []level
	for _, b := range c.Sizes() {
		levels = append(levels, level{bytes: float64(b), label: "stack size " + iecLabel(float64(b))})
	}
	if d.mayHuge {
		levels = append(levels, level{bytes: huge, label: "huge page " + iecLabel(huge)})
	}
	p.Add(newLevelMarks(levels, ya))

	// The claim is drawn last, over the strategies, so that a strategy that
	// meets it does not hide it; its legend entry comes first.
	var claim []plot.Plotter
	for i, bar := range claimBars(d.claim, ya) {
		cl, err := plotter.NewLine(bar)
		if err != nil {
			return nil, fmt.Errorf("strategies: claim: %w", err)
		}
		cl.LineStyle = draw.LineStyle{Color: colClaim, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(4), vg.Points(2.5)}}
		claim = append(claim, cl)
		if i == 0 {
			page := int64(c.PageSize)
			if page <= 0 {
				page = defaultPage
			}
			p.Legend.Add(fmt.Sprintf("claim ceil(d/%s)·%s", iecLabel(float64(page)), iecLabel(float64(page))), cl)
		}
	}

	// Each step is its own measurement: points, not lines joining steps,
	// and at the step's own X (identical strategies overlap; their markers
	// differ in shape, so both stay readable).
	for _, l := range d.lines {
		col := strategyColors[l.shape%len(strategyColors)]
		g := strategyGlyphs[l.shape%len(strategyGlyphs)]
		filled := g.filled
		if l.goStacks {
			filled = draw.CrossGlyph{}
		}
		sc, err := plotter.NewScatter(dodged(l.mean, 0, ya))
		if err != nil {
			return nil, fmt.Errorf("strategies: %s: %w", l.legend, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: filled}
		p.Add(sc)
		p.Legend.Add(l.legend, sc)
		if len(l.peaks) > 0 {
			pk, err := plotter.NewScatter(dodged(l.peaks, 0, ya))
			if err != nil {
				return nil, fmt.Errorf("strategies: %s peaks: %w", l.legend, err)
			}
			pk.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(4.5), Shape: g.hollow}
			p.Add(pk)
			// The legend shows the very marker drawn.
			p.Legend.Add(l.legend+", peak before release", pk)
		}
	}
	p.Add(claim...)

	p.X.Min, p.X.Max = -0.5, float64(len(d.depths))-0.5
	p.X.Scale = plot.LinearScale{}
	p.X.Tick.Marker = stepTicks(d.depths)
	ya.apply(&p.Y)
	if t, ok := p.Y.Tick.Marker.(bytesTicks); ok {
		t.labels = strategyYLabels
		p.Y.Tick.Marker = t
	}
	return p, nil
}

// padLog widens a log axis by one doubling below, and by one above when a
// value sits on its top, so that no marker is cut in half by the frame:
// values here are mostly whole powers of two, exactly where a log axis
// ends. The zero floor keeps its place; a linear axis is returned as is.
func padLog(a byteAxis, series ...[]float64) byteAxis {
	if !a.log {
		return a
	}
	a.min /= 2
	for _, vals := range series {
		if slices.Contains(vals, a.max) {
			a.max *= 2
			break
		}
	}
	return a
}

// strategyYLabels is how many labelled ticks the strategies chart's Y axis
// aims for: over the usual 4 KiB .. 128 MiB, a label every other doubling
// (4 KiB, 16 KiB, .. 1 MiB, 4 MiB ..), where the default gives three.
const strategyYLabels = 10

// strategiesCaption is the line under the strategies chart: kernel and THP
// mode when the comparison recorded them, the stacks per strategy, their
// size and guard, and the strategies that did not run or measured nothing.
func strategiesCaption(c *probe.Comparison, sys procread.System, d strategiesData) string {
	kernel := sys.Kernel
	if kernel == "" {
		kernel = "unknown"
	}
	cfg := c.Config
	parts := []string{
		"kernel " + kernel,
		"thp_enabled " + thpMode(sys.THPEnabled),
		fmt.Sprintf("%d stack%s per strategy", cfg.Tasks, plural(cfg.Tasks)),
	}
	switch stacks := c.Sizes(); {
	case len(stacks) > 1:
		var list []string
		for _, b := range stacks {
			list = append(list, iecLabel(float64(b)))
		}
		parts = append(parts, strings.Join(list, " and ")+" stacks (overflowed steps not drawn)")
	case cfg.StackBytes > 0:
		parts = append(parts, fmt.Sprintf("%s stacks", iecLabel(float64(cfg.StackBytes))))
	}
	parts = append(parts, fmt.Sprintf("guard %s", cfg.Guard))
	for _, s := range d.skipped {
		parts = append(parts, truncate("skipped "+s, captionWidth))
	}
	for _, s := range d.noData {
		parts = append(parts, "no data: "+s)
	}
	return wrap(parts, " · ", captionWidth)
}

// truncate shortens s to at most n characters, ending in "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// claimHalfWidth is half the width of the claim's bar at each step, in
// steps: it spans the step's markers.
const claimHalfWidth = 0.35

// claimBars is the claim as one level bar per step across the step's
// markers, in plot coordinates. The bars are not joined: a line from one
// step to the next would read as a measurement between them.
func claimBars(claim []float64, ya byteAxis) []plotter.XYs {
	bars := make([]plotter.XYs, len(claim))
	for i, v := range claim {
		y := ya.pos(v)
		bars[i] = plotter.XYs{{X: float64(i) - claimHalfWidth, Y: y}, {X: float64(i) + claimHalfWidth, Y: y}}
	}
	return bars
}

// dodged maps points to plot coordinates, shifting X by dx steps.
func dodged(xys plotter.XYs, dx float64, ya byteAxis) plotter.XYs {
	out := make(plotter.XYs, len(xys))
	for i, pt := range xys {
		out[i] = plotter.XY{X: pt.X + dx, Y: ya.pos(pt.Y)}
	}
	return out
}

// maxStepLabels is the most step ticks labelled; beyond it every k-th is.
const maxStepLabels = 12

// stepTicks puts a tick on every step, labelled with its depth in IEC
// units; with more than maxStepLabels steps only every k-th is labelled.
func stepTicks(depths []int64) plot.ConstantTicks {
	stride := (len(depths) + maxStepLabels - 1) / maxStepLabels
	ticks := make(plot.ConstantTicks, len(depths))
	for i, dep := range depths {
		ticks[i].Value = float64(i)
		if i%max(stride, 1) == 0 {
			ticks[i].Label = iecLabel(float64(dep))
		}
	}
	return ticks
}

// level is a labelled horizontal reference line at a byte value.
type level struct {
	bytes float64
	label string
}

// levelMarks is a plot.Plotter that draws each level inside the y range as
// a thin dotted line across the data area, labelled at its left end just
// above the line (below it when the line is at the top of the area).
type levelMarks struct {
	levels []level
	ya     byteAxis
	line   draw.LineStyle
	label  text.Style
}

func newLevelMarks(levels []level, ya byteAxis) *levelMarks {
	m := &levelMarks{levels: levels, ya: ya}
	m.line, m.label = markStyle(colReference, 1, 8, draw.YBottom)
	return m
}

// Plot implements plot.Plotter.
func (m *levelMarks) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	for _, l := range m.levels {
		if l.bytes < m.ya.min || l.bytes > m.ya.max {
			continue
		}
		y := trY(m.ya.pos(l.bytes))
		c.StrokeLine2(m.line, c.Min.X, y, c.Max.X, y)
		sty, ly := m.label, y+vg.Points(1)
		if ly+sty.Height(l.label) > c.Max.Y { // no room above: below the line
			sty.YAlign, ly = draw.YTop, y-vg.Points(1)
		}
		c.FillText(sty, vg.Point{X: c.Min.X + vg.Points(3), Y: ly}, l.label)
	}
}
