package plots

import (
	"slices"
	"strings"
	"testing"

	"stackprobe/probe"
)

func TestResidentRuns(t *testing.T) {
	tests := []struct {
		name string
		row  []bool
		want []pageRun
	}{
		{"empty", nil, nil},
		{"none resident", []bool{false, false, false}, nil},
		{"all resident", []bool{true, true, true}, []pageRun{{0, 3}}},
		{"top page", []bool{true, false, false}, []pageRun{{0, 1}}},
		{"bottom page", []bool{false, false, true}, []pageRun{{2, 1}}},
		{"split", []bool{true, true, false, true, false, true, true}, []pageRun{{0, 2}, {3, 1}, {5, 2}}},
	}
	for _, tt := range tests {
		if got := residentRuns(tt.row); !slices.Equal(got, tt.want) {
			t.Errorf("%s: residentRuns = %v, want %v", tt.name, got, tt.want)
		}
	}

	// A lazy 4 KiB stack used to 1 MiB, and one backed by a huge page.
	if got := residentRuns(topRows(1, 2048, 256).Rows[0]); !slices.Equal(got, []pageRun{{0, 256}}) {
		t.Errorf("1 MiB of 4 KiB pages: %v", got)
	}
	if got := residentRuns(topRows(1, 2048, 512).Rows[0]); !slices.Equal(got, []pageRun{{0, 512}}) {
		t.Errorf("a 2 MiB huge page: %v", got)
	}
}

func TestResidencyData(t *testing.T) {
	var d residencyData
	lazy := topRows(8, 512, 256)
	d.add(lazy, maxCompareRows, func(i int) string { return "lazy-4k " + stackLabel(lazy, i) })
	thp := topRows(2, 2048, 512)
	thp.Stacks = thp.Stacks[:1] // a row the map does not name
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
	if r := d.rows[0]; r.width != 2*mib || !slices.Equal(r.resident, []byteRun{{0, mib}}) {
		t.Errorf("lazy row: width %v runs %v, want 2 MiB and [0, 1 MiB)", r.width, r.resident)
	}
	if r := d.rows[4]; r.width != 8*mib || !slices.Equal(r.resident, []byteRun{{0, 2 * mib}}) {
		t.Errorf("THP row: width %v runs %v, want 8 MiB and [0, 2 MiB)", r.width, r.resident)
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
	for i := 0; i < len(rm.Rows); i += 4 {
		for j := range 512 {
			rm.Rows[i][j] = true
		}
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
	if !strings.Contains(p.X.Label.Text, "32 stacks, top 8 MiB of each, 4 KiB pages") {
		t.Errorf("caption %q", p.X.Label.Text)
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
		"no pages": {PageSize: page, Stacks: []int{0}, Rows: [][]bool{{}}},
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
