package plots

import (
	"slices"
	"strings"
	"testing"

	"stackprobe/probe"
	"stackprobe/procread"
	"stackprobe/watch"
)

func watchStacks(rss ...[2]int64) []watch.Stack {
	var s []watch.Stack
	for i, r := range rss {
		s = append(s, watch.Stack{Index: i, RSSBytes: r[0], RSSBytesMax: r[1]})
	}
	return s
}

func TestStackDepthBins(t *testing.T) {
	// 4 KiB bins from 4 KiB to 64 KiB: 16 bins.
	d := stackDepthBins(watchStacks([2]int64{4096, 4096}, [2]int64{4096, 8192}, [2]int64{8192, 8192}, [2]int64{65536, 65536}), 4096, 64)
	if d.lo != 4096 || d.width != 4096 || len(d.end) != 16 {
		t.Fatalf("lo %d width %d bins %d", d.lo, d.width, len(d.end))
	}
	if d.end[0] != 2 || d.end[1] != 1 || d.end[15] != 1 || d.max[0] != 1 || d.max[1] != 2 || d.max[15] != 1 {
		t.Errorf("end %v max %v", d.end, d.max)
	}
	// 0 .. 1 MiB in at most 64 bins: 8 pages (32 KiB) each, 33 bins.
	d = stackDepthBins(watchStacks([2]int64{0, 0}, [2]int64{1 << 20, 1 << 20}, [2]int64{16383, 16384}), 4096, 64)
	if d.lo != 0 || d.width != 8*4096 || len(d.end) != 33 || d.end[0] != 2 || d.max[0] != 2 || d.max[32] != 1 || d.end[32] != 1 {
		t.Errorf("lo %d width %d bins %d end %v max %v", d.lo, d.width, len(d.end), d.end, d.max)
	}
	ticks := d.binTicks()
	if len(ticks) != 33 || ticks[0].Label != "0 B" {
		t.Errorf("ticks %v", ticks[:3])
	}
	var labelled int
	for _, tk := range ticks {
		if tk.Label != "" {
			labelled++
		}
	}
	if labelled < 5 || labelled > 2*maxLabels+1 {
		t.Errorf("%d labelled ticks", labelled)
	}
}

func TestStackDepths(t *testing.T) {
	r := &watch.Result{Stacks: watchStacks([2]int64{4096, 4096}, [2]int64{65536, 65536}, [2]int64{8192, 1 << 20})}
	p, err := StackDepths(r, 4096, "t")
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != -0.5 || p.X.Max != 32.5 || p.Y.Min != 0 || p.Y.Max < 1 {
		t.Errorf("axes x %v..%v y %v..%v", p.X.Min, p.X.Max, p.Y.Min, p.Y.Max)
	}
	savePNG(t, p)
	if _, err := StackDepths(&watch.Result{}, 4096, "t"); err == nil {
		t.Error("no stacks: no error")
	}
}

func TestWatchRSSOverTime(t *testing.T) {
	r := &watch.Result{Timeline: []watch.Point{
		{TimeNS: 0, StacksRSSBytes: 4096, VmRSSBytes: 1 << 20, VmPTEBytes: 8192},
		{TimeNS: 5e8, StacksRSSBytes: 1 << 20, VmRSSBytes: 2 << 20, VmPTEBytes: 12288},
	}}
	d := watchTimelineSeries(r.Timeline)
	if d.stacks[1].X != 0.5 || d.stacks[1].Y != 1<<20 || d.vmRSS[0].Y != 1<<20 || d.vmPTE[1].Y != 12288 {
		t.Errorf("series %+v", d)
	}
	p, err := WatchRSSOverTime(r, "t")
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != 0 || p.X.Max != 0.5 {
		t.Errorf("x %v..%v", p.X.Min, p.X.Max)
	}
	savePNG(t, p)
	if _, err := WatchRSSOverTime(&watch.Result{}, "t"); err == nil {
		t.Error("no timeline: no error")
	}
}

func TestWatchResidencyMap(t *testing.T) {
	res := procread.ClassResident
	r := &watch.Result{
		Stacks: []watch.Stack{{Index: 0, SizeBytes: 100 << 20}, {Index: 1, SizeBytes: 100 << 20}, {Index: 2, SizeBytes: 100 << 20}, {Index: 3, SizeBytes: 8 << 20}},
		PageMap: &watch.PageMap{
			PageSize: page, Method: "scan", Found: 4, Stacks: []int{0, 2, 3},
			Rows: [][]watch.PageRun{
				{{From: 0, To: 3 * page, Class: res}},
				{{From: 0, To: 2 * mib, Class: res | procread.ClassHuge}},
				{{From: 0, To: page, Class: procread.ClassZeroPage}, {From: 2 * page, To: 4 * page, Class: res}},
			},
		},
	}
	rm, err := watchResidencyMap(r)
	if err != nil {
		t.Fatal(err)
	}
	// The deepest present byte is 2 MiB below a top: the window is the
	// smallest power of two at least twice that.
	if rm.WindowBytes != 4*mib || rm.PageSize != page || rm.Method != "scan" || !slices.Equal(rm.Stacks, []int{0, 2, 3}) {
		t.Errorf("window %d page %d method %q stacks %v, want 4 MiB, 4 KiB, scan, [0 2 3]", rm.WindowBytes, rm.PageSize, rm.Method, rm.Stacks)
	}
	want := [][]probe.ResidentRun{
		{{From: 0, To: 3 * page}},
		{{From: 0, To: 2 * mib, Huge: true}},
		{{From: 0, To: page, ZeroPage: true}, {From: 2 * page, To: 4 * page}},
	}
	for i := range want {
		if !slices.Equal(rm.Rows[i], want[i]) {
			t.Errorf("row %d = %v, want %v", i, rm.Rows[i], want[i])
		}
	}

	// Stacks of 64 KiB used to 60 KiB: the window stops at their size;
	// a stack with nothing present keeps an empty row.
	small := &watch.Result{
		Stacks: []watch.Stack{{Index: 0, SizeBytes: 16 * page}, {Index: 1, SizeBytes: 16 * page}},
		PageMap: &watch.PageMap{PageSize: page, Found: 2, Stacks: []int{0, 1},
			Rows: [][]watch.PageRun{{{From: 0, To: 15 * page, Class: res}}, {}}},
	}
	if rm, err = watchResidencyMap(small); err != nil {
		t.Fatal(err)
	}
	if rm.WindowBytes != 16*page || len(rm.Rows) != 2 || len(rm.Rows[1]) != 0 || !slices.Equal(rm.Rows[0], []probe.ResidentRun{{From: 0, To: 15 * page}}) {
		t.Errorf("window %d rows %v, want 64 KiB, [[0, 60 KiB)] []", rm.WindowBytes, rm.Rows)
	}
	// Nothing present anywhere: 16 pages.
	empty := &watch.Result{Stacks: []watch.Stack{{SizeBytes: 100 << 20}}, PageMap: &watch.PageMap{PageSize: page, Found: 1, Stacks: []int{0}, Rows: [][]watch.PageRun{{}}}}
	if rm, err = watchResidencyMap(empty); err != nil || rm.WindowBytes != 16*page {
		t.Errorf("empty map: window %v, err %v; want 64 KiB", rm, err)
	}

	p, err := WatchResidency(r, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.X.Min != 0 || p.X.Max != 4*mib || !strings.Contains(p.Title.Text, "3 of the 4 stacks") {
		t.Errorf("x %v..%v title %q", p.X.Min, p.X.Max, p.Title.Text)
	}
	savePNG(t, p)
	for _, bad := range []*watch.Result{nil, {}, {PageMap: &watch.PageMap{}}, {PageMap: &watch.PageMap{Stacks: []int{0}}}} {
		if _, err := WatchResidency(bad, "t"); err == nil {
			t.Errorf("WatchResidency(%+v): no error", bad)
		}
	}
}
