package plots

import (
	"errors"
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"stackprobe/probe"
)

// byteRun is a run of present bytes below the top of a stack: [from, to),
// of one kind.
type byteRun struct {
	from, to float64
	kind     runKind
}

// runKind is what a run of present pages is.
type runKind uint8

const (
	runBase     runKind = iota // resident base pages
	runHuge                    // resident as part of a transparent huge page
	runZeroPage                // mapped to the shared zero page: present, not memory
)

// kindOf is the kind of a ResidencyMap run.
func kindOf(r probe.ResidentRun) runKind {
	switch {
	case r.ZeroPage:
		return runZeroPage
	case r.Huge:
		return runHuge
	}
	return runBase
}

// residencyRow is one row of a residency chart.
type residencyRow struct {
	label string
	// pos is the row's place from the top of the chart, in rows; groups of
	// rows are separated by groupGap.
	pos float64
	// width is how many bytes below the top the row's map covers; the
	// chart is blank beyond it.
	width float64
	// resident are the row's runs of present pages, in bytes.
	resident []byteRun
}

// residencyData is what Residency and ResidencyCompare draw.
type residencyData struct {
	rows []residencyRow
	// window is the widest row's window (or the widest map's recorded
	// WindowBytes), in bytes: the X range.
	window float64
	// page is the base page of the first map, bytes, for the caption.
	page int64
	// groups counts the maps added.
	groups int
	// kinds[k] is set when some row has a run of kind k.
	kinds [3]bool
	// method is the residency method of the first map that names one.
	method string
}

// groupGap is the blank space between two maps' rows, in rows.
const groupGap = 0.6

// add appends up to n rows of rm, evenly spread over its rows, each
// labelled by label(i) with i the row's index in rm. Rows of a second map
// start groupGap below the last row of the first.
func (d *residencyData) add(rm *probe.ResidencyMap, n int, label func(i int) string) {
	page := int64(rm.PageSize)
	if page <= 0 {
		page = defaultPage
	}
	if d.groups == 0 {
		d.page = page
	}
	pos := 0.0
	if len(d.rows) > 0 {
		pos = d.rows[len(d.rows)-1].pos + 1 + groupGap
	}
	d.groups++
	d.window = max(d.window, float64(rm.WindowBytes))
	if d.method == "" {
		d.method = rm.Method
	}
	n = min(n, len(rm.Rows))
	for k := range n {
		i := k * len(rm.Rows) / n
		row := residencyRow{label: label(i), pos: pos, width: float64(rm.WindowBytes)}
		for _, r := range rm.Rows[i] {
			if r.From >= rm.WindowBytes {
				continue
			}
			row.resident = append(row.resident, byteRun{
				from: float64(r.From),
				to:   float64(min(r.To, rm.WindowBytes)),
				kind: kindOf(r),
			})
			d.kinds[kindOf(r)] = true
		}
		d.rows = append(d.rows, row)
		d.window = max(d.window, row.width)
		pos++
	}
}

// stackLabel is the Y label of rm's row i: the stack's index, or the row's
// when the map does not say which stack the row is.
func stackLabel(rm *probe.ResidencyMap, i int) string {
	if i < len(rm.Stacks) {
		return fmt.Sprintf("#%d", rm.Stacks[i])
	}
	return fmt.Sprintf("row %d", i)
}

// Residency colours: a resident base page is dark blue, a page of a
// transparent huge page orange, a zero-page mapping green; a page the map
// covers that is not present is light; where a row's map ends the chart is
// left white.
var (
	colResident    = color.NRGBA{R: 23, G: 55, B: 120, A: 255}
	colHuge        = color.NRGBA{R: 230, G: 120, B: 20, A: 255}
	colZeroPage    = color.NRGBA{R: 60, G: 160, B: 80, A: 255}
	colNotResident = color.NRGBA{R: 220, G: 220, B: 220, A: 255}
	colOutside     = color.NRGBA{R: 255, G: 255, B: 255, A: 255}
)

// maxMapRows is the most rows Residency draws: more would be thinner than a
// line of text and the map is a sample of the stacks anyway.
const maxMapRows = 256

// maxCompareRows is how many stacks of each strategy ResidencyCompare draws.
const maxCompareRows = 4

// Residency draws which pages at the top of some stacks are resident: one
// row per stack, labelled with the stack's index, bytes below the top from
// left to right over the map's window, dark where a base page is resident,
// orange where a transparent huge page is. A stack used to depth d under
// 4 KiB pages shows a dark run ceil(d/4 KiB) pages long; one backed by a
// huge page an orange run to the huge page's end. Every run is at least
// about a pixel wide, so a single page shows. The caption gives the window
// and the method that read the map. An empty title gets a default. A map
// of more than maxMapRows rows is drawn with that many, evenly spread. It
// fails for a nil map or one with no rows.
func Residency(rm *probe.ResidencyMap, title string) (*plot.Plot, error) {
	if rm == nil {
		return nil, errors.New("residency: no map")
	}
	if len(rm.Rows) == 0 {
		return nil, errors.New("residency: the map has no rows")
	}
	var d residencyData
	d.add(rm, maxMapRows, func(i int) string { return stackLabel(rm, i) })
	if d.window <= 0 {
		return nil, errors.New("residency: the map covers no page")
	}
	if title == "" {
		title = "Resident pages at the top of each stack"
	}
	caption := fmt.Sprintf("%d stack%s, top %s of each (the window holds every present page drawn), %s pages",
		len(d.rows), plural(len(d.rows)), iecLabel(d.window), iecLabel(float64(d.page)))
	if d.method != "" {
		caption += ", read by " + methodWords(d.method)
	}
	return residencyPlot(d, title, "stack", caption)
}

// ResidencyCompare is Residency for a comparison: the rows of up to
// maxCompareRows stacks of every strategy that recorded a page map, grouped
// by strategy and labelled "strategy #stack". Maps of different window
// sizes share the X axis of the widest; a narrower map's row is blank beyond
// its window. Strategies without a map are named in the caption. It fails
// when no strategy recorded a map.
func ResidencyCompare(c *probe.Comparison) (*plot.Plot, error) {
	if c == nil {
		return nil, errors.New("residency compare: no comparison")
	}
	var d residencyData
	var without []string
	for _, sr := range c.Strategies {
		rm := sr.Residency
		if sr.Skipped != "" || rm == nil || len(rm.Rows) == 0 {
			without = append(without, string(sr.Strategy.Name))
			continue
		}
		name := string(sr.Strategy.Name)
		d.add(rm, maxCompareRows, func(i int) string { return name + " " + stackLabel(rm, i) })
	}
	if len(d.rows) == 0 || d.window <= 0 {
		return nil, errors.New("residency compare: no strategy recorded a page map")
	}

	sys := c.Environment
	kernel := sys.Kernel
	if kernel == "" {
		kernel = "unknown"
	}
	parts := []string{
		"kernel " + kernel,
		"thp_enabled " + thpMode(sys.THPEnabled),
		fmt.Sprintf("up to %d stacks per strategy", maxCompareRows),
		fmt.Sprintf("%s pages", iecLabel(float64(d.page))),
	}
	if c.Config.StackBytes > 0 {
		parts = append(parts, fmt.Sprintf("%s stacks", iecLabel(float64(c.Config.StackBytes))))
	}
	if len(without) > 0 {
		parts = append(parts, truncate("no page map: "+strings.Join(without, ", "), captionWidth))
	}
	title := "Resident pages at the top of the stacks, by strategy"
	if c.Partial {
		title += " (partial run)"
	}
	return residencyPlot(d, title, "strategy #stack", wrap(parts, " · ", captionWidth))
}

// legendEntry is one line of a residency chart's legend.
type legendEntry struct {
	text string
	swatch
}

// legend lists the colours d's chart uses: huge and zero-page runs only
// when some row has them, "beyond the map" only when a row is narrower
// than the window.
func (d *residencyData) legend() []legendEntry {
	out := []legendEntry{{"resident page", swatch{fill: colResident}}}
	if d.kinds[runHuge] {
		out = append(out, legendEntry{"huge page", swatch{fill: colHuge}})
	}
	if d.kinds[runZeroPage] {
		out = append(out, legendEntry{"zero page (not memory)", swatch{fill: colZeroPage}})
	}
	out = append(out, legendEntry{"not resident", swatch{fill: colNotResident}})
	for _, r := range d.rows {
		if r.width < d.window {
			return append(out, legendEntry{"beyond the map", swatch{fill: colOutside, edge: colNotResident}})
		}
	}
	return out
}

// residencyPlot draws d.
func residencyPlot(d residencyData, title, yName, caption string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	setLabel(&p.X, "bytes below the top of the stack", caption)
	setLabel(&p.Y, yName, "")
	legendOutside(p)

	cells := &residencyCells{rows: d.rows, height: 1}
	if len(d.rows) <= 64 {
		cells.height = 0.8 // a gap between rows while they are tall
	}
	p.Add(cells)
	for _, e := range d.legend() {
		p.Legend.Add(e.text, e.swatch)
	}

	xa := byteAxis{min: 0, max: d.window}
	xa.apply(&p.X)
	last := d.rows[len(d.rows)-1].pos
	p.Y.Min, p.Y.Max = -last-0.5, 0.5
	p.Y.Scale = plot.LinearScale{}
	p.Y.Tick.Marker = rowTicks(d.rows)
	return p, nil
}

// maxRowLabels is the most rows labelled on the Y axis; beyond it every
// k-th row is.
const maxRowLabels = 24

// rowTicks labels the rows, top down, at Y = -pos.
func rowTicks(rows []residencyRow) plot.ConstantTicks {
	stride := max(1, (len(rows)+maxRowLabels-1)/maxRowLabels)
	ticks := make(plot.ConstantTicks, len(rows))
	for i, r := range rows {
		ticks[i].Value = -r.pos
		if i%stride == 0 {
			ticks[i].Label = r.label
		}
	}
	return ticks
}

// colour is the fill of a run of kind k.
func (k runKind) colour() color.Color {
	switch k {
	case runHuge:
		return colHuge
	case runZeroPage:
		return colZeroPage
	}
	return colResident
}

// methodWords names a residency method for a label: "page tables" when
// the result does not say.
func methodWords(m string) string {
	switch m {
	case "scan":
		return "PAGEMAP_SCAN"
	case "pagemap":
		return "/proc/self/pagemap"
	case "":
		return "page tables"
	}
	return m
}

// minRunWidth is the narrowest a resident run is drawn: about one pixel at
// the PNG resolution, so a single resident page in a window of thousands
// stays visible.
const minRunWidth = vg.Length(72.0 / dpi)

// residencyCells is a plot.Plotter that draws residency rows as
// rectangles: one light rectangle for the window of each row, then one dark
// rectangle per run of resident pages, so a map of thousands of pages costs
// a few shapes per row. X is bytes below the top; row r is centred at
// Y = -r.pos and height rows tall.
type residencyCells struct {
	rows   []residencyRow
	height float64
}

// Plot implements plot.Plotter.
func (rc *residencyCells) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, r := range rc.rows {
		y0, y1 := trY(-r.pos-rc.height/2), trY(-r.pos+rc.height/2)
		fillRect(&c, colNotResident, trX(0), y0, trX(r.width), y1)
		for _, run := range r.resident {
			x0, x1 := trX(run.from), trX(run.to)
			x1 = max(x1, x0+minRunWidth)
			fillRect(&c, run.kind.colour(), x0, y0, x1, y1)
		}
	}
}

// DataRange implements plot.DataRanger.
func (rc *residencyCells) DataRange() (xmin, xmax, ymin, ymax float64) {
	for _, r := range rc.rows {
		xmax = max(xmax, r.width)
		ymin = min(ymin, -r.pos-0.5)
	}
	return 0, xmax, ymin, 0.5
}

// fillRect fills the rectangle with corners (x0, y0) and (x1, y1), clipped
// to the canvas.
func fillRect(c *draw.Canvas, col color.Color, x0, y0, x1, y1 vg.Length) {
	pts := c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
	c.FillPolygon(col, pts)
}

// swatch is a legend icon: a filled square, outlined when edge is set.
type swatch struct {
	fill, edge color.Color
}

// Thumbnail implements plot.Thumbnailer.
func (s swatch) Thumbnail(c *draw.Canvas) {
	side := min(c.Max.X-c.Min.X, c.Max.Y-c.Min.Y)
	x0 := (c.Min.X+c.Max.X)/2 - side/2
	pts := []vg.Point{{X: x0, Y: c.Min.Y}, {X: x0 + side, Y: c.Min.Y}, {X: x0 + side, Y: c.Min.Y + side}, {X: x0, Y: c.Min.Y + side}}
	c.FillPolygon(s.fill, pts)
	if s.edge != nil {
		c.StrokeLines(draw.LineStyle{Color: s.edge, Width: vg.Points(0.8)}, append(pts, pts[0]))
	}
}
