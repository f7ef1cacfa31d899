package plots

import (
	"slices"
	"strings"
	"testing"

	"stackprobe/probe"
)

func TestKindOf(t *testing.T) {
	for _, tt := range []struct {
		run  probe.ResidentRun
		want runKind
	}{
		{probe.ResidentRun{From: 0, To: page}, runBase},
		{probe.ResidentRun{From: 0, To: 2 * mib, Huge: true}, runHuge},
		{probe.ResidentRun{From: 0, To: page, ZeroPage: true}, runZeroPage},
	} {
		if got := kindOf(tt.run); got != tt.want {
			t.Errorf("kindOf(%+v) = %d, want %d", tt.run, got, tt.want)
		}
	}
}

func TestResidencyData(t *testing.T) {
	var d residencyData
	lazy := topRows(8, 512, 256)
	d.add(lazy, maxCompareRows, func(i int) string { return "lazy-4k " + stackLabel(lazy, i) })
	thp := topRows(2, 2048, 512)
	thp.Stacks = thp.Stacks[:1] // a row the map does not name
	thp.Rows[0][0].Huge = true
	// A run past the window is not drawn; one reaching past it is cut.
	thp.Rows[1] = []probe.ResidentRun{{From: 0, To: page}, {From: 8*mib - page, To: 9 * mib}, {From: 9 * mib, To: 10 * mib}}
	d.add(thp, maxCompareRows, func(i int) string { return "lazy-thp " + stackLabel(thp, i) })

	var labels []string
	var pos []float64
	for _, r := range d.rows {
		labels = append(labels, r.label)
		pos = append(pos, r.pos)
	}
	// Four of eight lazy rows, evenly spread; both THP rows.
	if want := []string{"lazy-4k #0", "lazy-4k #20", "lazy-4k #40", "lazy-4k #60", "lazy-thp #0", "lazy-thp row 1"}; !slices.Equal(labels, want) {
		t.Errorf("labels %q, want %q", labels, want)
	}
	if want := []float64{0, 1, 2, 3, 4 + groupGap, 5 + groupGap}; !slices.Equal(pos, want) {
		t.Errorf("positions %v, want %v", pos, want)
	}
	if d.window != 8*mib || d.page != page || d.groups != 2 {
		t.Errorf("window %v page %v groups %d, want 8 MiB, 4 KiB, 2", d.window, d.page, d.groups)
	}
	if r := d.rows[0]; r.width != 2*mib || !slices.Equal(r.resident, []byteRun{{0, mib, runBase}}) {
		t.Errorf("lazy row: width %v runs %v, want 2 MiB and [0, 1 MiB)", r.width, r.resident)
	}
	if r := d.rows[4]; r.width != 8*mib || !slices.Equal(r.resident, []byteRun{{0, 2 * mib, runHuge}}) {
		t.Errorf("THP row: width %v runs %v, want 8 MiB and a huge [0, 2 MiB)", r.width, r.resident)
	}
	if r := d.rows[5]; !slices.Equal(r.resident, []byteRun{{0, page, runBase}, {8*mib - page, 8 * mib, runBase}}) {
		t.Errorf("clipped row: runs %v, want the top page and the window's last page", r.resident)
	}
	if d.kinds != [3]bool{runBase: true, runHuge: true} {
		t.Errorf("kinds %v, want base and huge", d.kinds)
	}
}

func TestRowTicks(t *testing.T) {
	rows := make([]residencyRow, 100)
	for i := range rows {
		rows[i] = residencyRow{label: "x", pos: float64(i)}
	}
	n := 0
	for i, tk := range rowTicks(rows) {
		if tk.Value != -float64(i) {
			t.Fatalf("tick %d at %v, want %d", i, tk.Value, -i)
		}
		if tk.Label != "" {
			n++
		}
	}
	if n > maxRowLabels || n < maxRowLabels/2 {
		t.Errorf("100 rows: %d labels, want about %d", n, maxRowLabels)
	}
}

func TestResidency(t *testing.T) {
	t.Parallel() // rendering the PNG is the slow part
	// 32 stacks over an 8 MiB window: the lazy ones used to 1 MiB, every
	// fourth backed by a huge page.
	rm := topRows(32, 2048, 256)
	rm.Method = "scan"
	for i := 0; i < len(rm.Rows); i += 4 {
		rm.Rows[i] = []probe.ResidentRun{{From: 0, To: 2 * mib, Huge: true}}
	}
	p, err := Residency(rm, "Resident pages at the top of 32 of 320 stacks")
	if err != nil {
		t.Fatal(err)
	}
	if p.Title.Text != "Resident pages at the top of 32 of 320 stacks" {
		t.Errorf("title %q", p.Title.Text)
	}
	if p.X.Min != 0 || p.X.Max != 8*mib {
		t.Errorf("x range [%v, %v], want [0, 8 MiB]", p.X.Min, p.X.Max)
	}
	xl := labels(p.X)
	checkIEC(t, "x", xl)
	if want := []string{"0 B", "2 MiB", "4 MiB", "6 MiB", "8 MiB"}; !slices.Equal(xl, want) {
		t.Errorf("x labels %q, want %q", xl, want)
	}
	yl := labels(p.Y)
	if len(yl) != 16 || yl[0] != "#0" || yl[1] != "#20" {
		t.Errorf("y labels %q, want every other stack from #0", yl)
	}
	if p.Y.Min != -31.5 || p.Y.Max != 0.5 {
		t.Errorf("y range [%v, %v], want [-31.5, 0.5]", p.Y.Min, p.Y.Max)
	}
	if !strings.Contains(p.X.Label.Text, "32 stacks, top 8 MiB of each (the window holds every present page drawn), 4 KiB pages, read by PAGEMAP_SCAN") {
		t.Errorf("caption %q", p.X.Label.Text)
	}
	var d residencyData
	d.add(rm, maxMapRows, func(i int) string { return stackLabel(rm, i) })
	var legend []string
	for _, e := range d.legend() {
		legend = append(legend, e.text)
	}
	if want := []string{"resident page", "huge page", "not resident"}; !slices.Equal(legend, want) {
		t.Errorf("legend %q, want %q", legend, want)
	}
	savePNG(t, p)

	p, err = Residency(topRows(1, 1, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Title.Text == "" {
		t.Error("empty title not replaced")
	}
}

func TestResidencyErrors(t *testing.T) {
	for name, rm := range map[string]*probe.ResidencyMap{
		"nil":      nil,
		"no rows":  {WindowBytes: 2 * mib, PageSize: page},
		"no pages": {PageSize: page, Stacks: []int{0}, Rows: [][]probe.ResidentRun{{}}},
	} {
		if _, err := Residency(rm, "x"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestResidencyCompare(t *testing.T) {
	t.Parallel() // rendering the PNG is the slow part
	c := comparisonFixture()
	// lazy-thp mapped a wider window than the others.
	c.Strategies[1].Residency = topRows(32, 1024, 512)
	p, err := ResidencyCompare(c)
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != 0 || p.X.Max != 4*mib {
		t.Errorf("x range [%v, %v], want the widest window, 4 MiB", p.X.Min, p.X.Max)
	}
	checkIEC(t, "x", labels(p.X))
	yl := labels(p.Y)
	// Five strategies with a map, four stacks each.
	if len(yl) != 20 || yl[0] != "lazy-4k #0" || yl[4] != "lazy-thp #0" || yl[19] != "eager #240" {
		t.Errorf("y labels %q", yl)
	}
	if !strings.Contains(p.X.Label.Text, "no page map: goroutine, eager-thp") {
		t.Errorf("caption %q does not name the strategies without a map", p.X.Label.Text)
	}
	savePNG(t, p)

	if _, err := ResidencyCompare(nil); err == nil {
		t.Error("nil comparison: no error")
	}
	for i := range c.Strategies {
		c.Strategies[i].Residency = nil
	}
	if _, err := ResidencyCompare(c); err == nil {
		t.Error("no map at all: no error")
	}
}
