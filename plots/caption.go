package plots

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/mmapstack"
	"stackprobe/probe"
)

// caption is the line under a chart that says what it was measured on: the
// kernel, the THP advice (and the system's THP mode, which decides when the
// advice is "system"), the guard, MAP_STACK, the release mode and the stack
// size. Parts are joined with " · " and wrapped at captionWidth.
func caption(r *probe.Result) string {
	return wrap(captionParts(r), " · ", captionWidth)
}

// workloadCaption is caption with the ping-pong's transport and pattern.
func workloadCaption(r *probe.Result) string {
	parts := captionParts(r)
	if c := r.Config; c.Workload == probe.WorkloadPingPong {
		w := "pingpong"
		if c.Transport != "" {
			w += " over " + c.Transport
		}
		if c.Pattern != "" {
			w += ", pattern " + string(c.Pattern)
		}
		parts = append(parts, w)
	}
	return wrap(parts, " · ", captionWidth)
}

// captionParts are the pieces of caption, unwrapped.
func captionParts(r *probe.Result) []string {
	c := r.Config
	kernel := r.Environment.Kernel
	if kernel == "" {
		kernel = "unknown"
	}
	parts := []string{
		"kernel " + kernel,
		fmt.Sprintf("THP %s (thp_enabled %s)", c.THP, thpMode(r.Environment.THPEnabled)),
		fmt.Sprintf("guard %s", c.Guard),
		fmt.Sprintf("map_stack %s", onOff(c.MapStack)),
	}
	release := fmt.Sprintf("release %s", c.Release)
	if c.KeepTopBytes > 0 && c.Release != mmapstack.ReleaseNone {
		release += ", keep top " + iecLabel(float64(c.KeepTopBytes))
	}
	parts = append(parts, release)
	if c.StackBytes > 0 {
		parts = append(parts, fmt.Sprintf("%s stacks", iecLabel(float64(c.StackBytes))))
	}
	return parts
}

// captionWidth is the longest caption line, in characters: at 10 pt it stays
// well inside a 20 cm chart. gonum pads the data area so the axis label's
// box fits, so a longer line would squeeze the data instead of being clipped.
const captionWidth = 90

// wrap joins parts with sep into lines of at most width characters, never
// splitting a part.
func wrap(parts []string, sep string, width int) string {
	var b strings.Builder
	line := 0
	for i, p := range parts {
		n := utf8.RuneCountInString(p)
		switch {
		case i == 0:
		case line+utf8.RuneCountInString(sep)+n > width:
			b.WriteString("\n")
			line = 0
		default:
			b.WriteString(sep)
			line += utf8.RuneCountInString(sep)
		}
		b.WriteString(p)
		line += n
	}
	return b.String()
}

// labelSize is the type size of axis labels and captions.
const labelSize = 10

// setLabel sets an axis label: the axis's name, then the caption, if any,
// below it.
func setLabel(ax *plot.Axis, name, caption string) {
	ax.Label.Text = name
	if caption != "" {
		ax.Label.Text += "\n" + caption
	}
	ax.Label.TextStyle.Font.Size = vg.Points(labelSize)
}

// titled appends a warning to a chart title when the run did not finish.
func titled(title string, r *probe.Result) string {
	if r.Partial {
		return title + " (partial run)"
	}
	return title
}

// thpMode reduces the contents of
// /sys/kernel/mm/transparent_hugepage/enabled ("always [madvise] never") to
// the selected mode; a value without brackets is returned as is.
func thpMode(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	if s == "" {
		return "unknown"
	}
	return s
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// legendOutside moves p's legend into a margin to the right of the data
// area, so it never hides a point whatever the data look like. gonum draws
// the legend inside the area the axes leave; the margin comes from
// legendMargin, which asks for room beyond the right edge the way a glyph
// near the edge does.
func legendOutside(p *plot.Plot) {
	p.Legend.Top, p.Legend.Left = true, false
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.ThumbnailWidth = vg.Points(16)
	p.Legend.XOffs = -legendInset
	p.Add(legendMargin{})
}

// legendInset keeps the legend off the image's right edge.
const legendInset = 4 * vg.Millimeter

// legendMargin is a plot.Plotter that draws nothing and reserves the legend's
// width (plus a gap) on the right of the data area.
type legendMargin struct{}

// Plot implements plot.Plotter.
func (legendMargin) Plot(draw.Canvas, *plot.Plot) {}

// GlyphBoxes implements plot.GlyphBoxer.
func (legendMargin) GlyphBoxes(p *plot.Plot) []plot.GlyphBox {
	r := p.Legend.Rectangle(draw.Canvas{})
	w := r.Max.X - r.Min.X
	if w <= 0 {
		return nil
	}
	gap := p.Legend.TextStyle.Rectangle(" ").Max.X + legendInset + 2*vg.Millimeter
	return []plot.GlyphBox{{X: 1, Y: 0.5, Rectangle: vg.Rectangle{Max: vg.Point{X: w + gap}}}}
}
