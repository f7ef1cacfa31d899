package plots

import (
	"errors"
	"fmt"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/probe"
	"stackprobe/sizes"
)

// tradeoffPoint is one strategy in Tradeoff.
type tradeoffPoint struct {
	name string
	// bytes is the resident stack bytes per connection at the end (median
	// over the rounds).
	bytes float64
	// rate is the median round trips per second; lo and hi the slowest
	// and fastest round.
	rate, lo, hi float64
}

// tradeoffData is one point per strategy that measured something, in the
// comparison's order, and the names of those that did not, with why.
func tradeoffData(c *probe.PingPongComparison) (points []tradeoffPoint, missing []string) {
	for _, s := range c.Strategies {
		switch {
		case s.Skipped != "":
			missing = append(missing, fmt.Sprintf("%s skipped", s.Name))
		case s.PingPongFigures == nil:
			missing = append(missing, fmt.Sprintf("%s failed", s.Name))
		default:
			f := s.PingPongFigures
			points = append(points, tradeoffPoint{
				name:  string(s.Name),
				bytes: float64(c.PerConnection(f.EndRSSBytesPerStack)),
				rate:  f.RoundTripsPerSecond, lo: f.RoundTripsPerSecondMin, hi: f.RoundTripsPerSecondMax,
			})
		}
	}
	return points, missing
}

// Tradeoff draws what each strategy costs in memory against what it gives
// in throughput: x the resident stack bytes per connection at the end, y
// the median round trips per second, error bars the slowest to the fastest
// round.
func Tradeoff(c *probe.PingPongComparison) (*plot.Plot, error) {
	points, missing := tradeoffData(c)
	if len(points) == 0 {
		return nil, errors.New("tradeoff chart: no strategy measured a round")
	}
	var xs, ys []float64
	for _, pt := range points {
		xs = append(xs, pt.bytes)
		ys = append(ys, pt.hi)
	}
	xa := newByteAxis(xs)
	p := plot.New()
	p.Title.Text = "Stack memory against throughput, per strategy"
	if c.Partial {
		p.Title.Text += " (partial run)"
	}
	cfg := c.Config
	caption := fmt.Sprintf("%d clients × %d messages over %s, depths %s (%s), %d rounds each; bars: slowest–fastest round",
		cfg.Tasks, cfg.Messages, cfg.Transport, depthWords(cfg.Depths), cfg.Pattern, c.Rounds)
	if len(missing) > 0 {
		caption += "; not drawn: " + strings.Join(missing, ", ")
	}
	setLabel(&p.X, "resident stack bytes per connection at the end (client + server stack)", caption)
	setLabel(&p.Y, "round trips per second (median)", "")

	type bars struct {
		plotter.XYs
		plotter.YErrors
	}
	var b bars
	var labels plotter.XYLabels
	for _, pt := range points {
		xy := plotter.XY{X: xa.pos(pt.bytes), Y: pt.rate}
		b.XYs = append(b.XYs, xy)
		b.YErrors = append(b.YErrors, struct{ Low, High float64 }{pt.rate - pt.lo, pt.hi - pt.rate})
		labels.XYs = append(labels.XYs, xy)
		labels.Labels = append(labels.Labels, " "+pt.name)
	}
	eb, err := plotter.NewYErrorBars(b)
	if err != nil {
		return nil, fmt.Errorf("tradeoff chart: %w", err)
	}
	eb.LineStyle = draw.LineStyle{Color: colStacks, Width: vg.Points(1.5)}
	marks, err := plotter.NewScatter(b.XYs)
	if err != nil {
		return nil, fmt.Errorf("tradeoff chart: %w", err)
	}
	marks.GlyphStyle = draw.GlyphStyle{Color: colStacks, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
	names, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("tradeoff chart: %w", err)
	}
	p.Add(plotter.NewGrid(), eb, marks, names)
	xa.apply(&p.X)
	// Throughput from 0, so that the eye reads ratios; room above for
	// the highest bar.
	p.Y.Min = 0
	p.Y.Max = max(1.1*slicesMaxF(ys), 1)
	return p, nil
}

func depthWords(d []int64) string {
	parts := make([]string, len(d))
	for i, v := range d {
		parts[i] = sizes.IEC(v)
	}
	return strings.Join(parts, ", ")
}

func slicesMaxF(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}
