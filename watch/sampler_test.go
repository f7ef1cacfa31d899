package watch

import (
	"errors"
	"os"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"stackprobe/procread"
	"stackprobe/stackfind"
)

// confirmStep is one pending sample and the maps read that confirms it.
type confirmStep struct {
	measured []stackfind.Stack // the pending sample's stacks, by address
	rss      []int64           // their resident bytes
	next     []stackfind.Stack // the mappings of the next maps read
}

// allKnown is every page class: the scan method on Linux >= 6.14.
const allKnown = procread.ClassResident | procread.ClassHuge | procread.ClassZeroPage | procread.ClassSwapped | procread.ClassGuard

func fs(start, end uint64, by stackfind.FoundBy) stackfind.Stack {
	return stackfind.Stack{Start: start, End: end, FoundBy: by}
}

// TestConfirm checks which stacks a confirmed sample records, the indexes
// they keep across samples, and which are marked gone: a stack unmapped
// between its measurement and the next maps read is dropped from that
// sample; a mapping that ends where an earlier one ended but starts
// elsewhere is a new stack (the old one gone), except the main stack,
// which grows down.
func TestConfirm(t *testing.T) {
	g, m := stackfind.Guard, stackfind.Main
	steps := []confirmStep{
		{
			measured: []stackfind.Stack{fs(0x10000, 0x20000, g), fs(0x30000, 0x40000, g), fs(0x50000, 0x60000, g), fs(0x70000, 0x80000, m)},
			rss:      []int64{4096, 8192, 12288, 4096},
			// 0x30000 is replaced by a mapping ending at the same address.
			next: []stackfind.Stack{fs(0x10000, 0x20000, g), fs(0x38000, 0x40000, g), fs(0x50000, 0x60000, g), fs(0x70000, 0x80000, m)},
		},
		{
			measured: []stackfind.Stack{fs(0x10000, 0x20000, g), fs(0x38000, 0x40000, g), fs(0x50000, 0x60000, g), fs(0x70000, 0x80000, m)},
			rss:      []int64{8192, 4096, 12288, 8192},
			// 0x50000 is unmapped; the main stack grew again.
			next: []stackfind.Stack{fs(0x10000, 0x20000, g), fs(0x38000, 0x40000, g), fs(0x6e000, 0x80000, m), fs(0x90000, 0xa0000, g)},
		},
		{
			measured: []stackfind.Stack{fs(0x10000, 0x20000, g), fs(0x38000, 0x40000, g), fs(0x6e000, 0x80000, m), fs(0x90000, 0xa0000, g)},
			rss:      []int64{8192, 4096, 8192, 4096},
			// 0x38000 is replaced by a mapping ending where it ended.
			next: []stackfind.Stack{fs(0x10000, 0x20000, g), fs(0x30000, 0x40000, g), fs(0x6e000, 0x80000, m), fs(0x90000, 0xa0000, g)},
		},
	}
	want := []struct {
		indexes []int
		rssSum  int64
	}{
		{[]int{0, 1, 2}, 4096 + 12288 + 4096},
		{[]int{0, 3, 2}, 8192 + 4096 + 8192},
		{[]int{0, 2, 4}, 8192 + 8192 + 4096},
	}
	rec := &recordAll{}
	s := &sampler{known: allKnown, rec: rec, timeline: timeline{max: 16}}
	for n, st := range steps {
		counts := make([]procread.PageCounts, len(st.rss))
		for i, b := range st.rss {
			counts[i] = procread.PageCounts{ResidentBytes: b, Lowest: st.measured[i].End - uint64(b), Runs: 1}
		}
		// Every stack's row is mapped: one run from its top.
		p := &pending{timeNS: int64(n) * 1000, found: st.measured, counts: counts}
		for i, b := range st.rss {
			p.mapAt = append(p.mapAt, i)
			p.rows = append(p.rows, []PageRun{{From: 0, To: b, Class: procread.ClassResident}})
		}
		s.pending = p
		s.maps, s.found = mappings(st.next), st.next
		if err := s.confirm(); err != nil {
			t.Fatal(err)
		}
		got := rec.samples[n]
		var idx []int
		for _, ss := range got.Stacks {
			idx = append(idx, ss.Index)
		}
		// The page map holds the rows of the stacks recorded, not those
		// unmapped since.
		if !equalInts(s.pageMap.Stacks, want[n].indexes) || s.pageMap.TimeNS != int64(n)*1000 || s.pageMap.Found != len(want[n].indexes) {
			t.Errorf("sample %d: page map of stacks %v at %d ns (%d found), want %v", n, s.pageMap.Stacks, s.pageMap.TimeNS, s.pageMap.Found, want[n].indexes)
		}
		for r, row := range s.pageMap.Rows {
			if len(row) != 1 || row[0].To != got.Stacks[r].RSSBytes {
				t.Errorf("sample %d: page map row %d = %v, want one run of %d bytes", n, r, row, got.Stacks[r].RSSBytes)
			}
		}
		if !equalInts(idx, want[n].indexes) || got.Totals.StacksRSSBytes != want[n].rssSum || got.Totals.Stacks != len(want[n].indexes) {
			t.Errorf("sample %d: indexes %v, stacks rss %d, want %v and %d", n, idx, got.Totals.StacksRSSBytes, want[n].indexes, want[n].rssSum)
		}
	}
	// Index: start, end, gone, samples, first and last seen.
	wantStacks := []struct {
		start, end  uint64
		gone        bool
		samples     int
		first, last int64
		rss, rssMax int64
		foundByMain bool
	}{
		{0x10000, 0x20000, false, 3, 0, 2000, 8192, 8192, false},
		{0x50000, 0x60000, true, 1, 0, 0, 12288, 12288, false},
		{0x6e000, 0x80000, false, 3, 0, 2000, 8192, 8192, true},
		{0x38000, 0x40000, true, 1, 1000, 1000, 4096, 4096, false},
		{0x90000, 0xa0000, false, 1, 2000, 2000, 4096, 4096, false},
	}
	if len(s.stacks) != len(wantStacks) {
		t.Fatalf("%d stacks, want %d: %+v", len(s.stacks), len(wantStacks), s.stacks)
	}
	for i, w := range wantStacks {
		st := s.stacks[i]
		if st.Index != i || st.Start != w.start || st.End != w.end || st.Gone != w.gone || st.Samples != w.samples ||
			st.FirstSeenNS != w.first || st.LastSeenNS != w.last || st.RSSBytes != w.rss || st.RSSBytesMax != w.rssMax ||
			(st.FoundBy&stackfind.Main != 0) != w.foundByMain {
			t.Errorf("stack %d = %+v, want %+v", i, st, w)
		}
		if st.HugeBytes == nil || *st.HugeBytes != 0 || st.ZeroPageBytes == nil || *st.ZeroPageBytes != 0 {
			t.Errorf("stack %d: huge %v zero page %v, want measured 0", i, st.HugeBytes, st.ZeroPageBytes)
		}
	}
}

// mappings returns the maps read holding exactly the mappings of stacks,
// the main stack's named "[stack]".
func mappings(stacks []stackfind.Stack) []procread.Mapping {
	var maps []procread.Mapping
	for _, f := range stacks {
		m := procread.Mapping{Start: f.Start, End: f.End, Perms: procread.PermRead | procread.PermWrite}
		if f.FoundBy&stackfind.Main != 0 {
			m.Path = "[stack]"
		}
		maps = append(maps, m)
	}
	return maps
}

// TestConfirmNotFound checks that a stack still mapped but not found in
// one sample (found by thread, its thread running at that maps read)
// stays one stack: that sample records no figures for it, it is not
// marked gone, and the next sample that finds it records under its index.
// Its mapping is there throughout; the scans find {A}, {A}, {}, {A}, {A}.
// Once the mapping is gone, it is gone.
func TestConfirmNotFound(t *testing.T) {
	a := stackfind.Stack{Start: 0x10000, End: 0x20000, FoundBy: stackfind.Thread, TID: 7, Threads: 1}
	maps := mappings([]stackfind.Stack{a})
	rec := &recordAll{}
	s := &sampler{known: allKnown, rec: rec, timeline: timeline{max: 16}}
	scans := [][]stackfind.Stack{{a}, {a}, {}, {a}, {a}}
	var wantStacks []int
	for n, found := range scans {
		// The maps read of sample n confirms sample n-1, then sample n is
		// measured: 4096 bytes times n+1.
		s.maps, s.found = maps, found
		if err := s.confirm(); err != nil {
			t.Fatal(err)
		}
		counts := make([]procread.PageCounts, len(found))
		for i := range counts {
			b := int64(n+1) * 4096
			counts[i] = procread.PageCounts{ResidentBytes: b, Lowest: a.End - uint64(b), Runs: 1}
		}
		s.pending = &pending{timeNS: int64(n) * 1000, found: found, counts: counts}
		wantStacks = append(wantStacks, len(found))
	}
	s.maps, s.found = maps, []stackfind.Stack{a}
	if err := s.confirm(); err != nil {
		t.Fatal(err)
	}
	if len(rec.samples) != len(scans) {
		t.Fatalf("%d samples recorded, want %d", len(rec.samples), len(scans))
	}
	for n, got := range rec.samples {
		if len(got.Stacks) != wantStacks[n] || got.Totals.Stacks != wantStacks[n] || (wantStacks[n] == 1 && got.Stacks[0].Index != 0) {
			t.Errorf("sample %d: stacks %+v, want %d of index 0", n, got.Stacks, wantStacks[n])
		}
	}
	if len(s.stacks) != 1 {
		t.Fatalf("%d stacks, want 1: %+v", len(s.stacks), s.stacks)
	}
	st := s.stacks[0]
	if st.Gone || st.Samples != 4 || st.FirstSeenNS != 0 || st.LastSeenNS != 4000 || st.RSSBytes != 5*4096 || st.RSSBytesMax != 5*4096 || st.TID != 7 {
		t.Errorf("stack = %+v, want not gone, 4 samples, seen 0 to 4000 ns, 20480 bytes", st)
	}
	// A sample that does not find it, then a maps read without it.
	s.pending = &pending{timeNS: 5000}
	s.maps, s.found = nil, nil
	if err := s.confirm(); err != nil {
		t.Fatal(err)
	}
	if st := s.stacks[0]; !st.Gone || st.Samples != 4 || len(s.live) != 0 {
		t.Errorf("after unmap: stack %+v, live %v; want gone", st, s.live)
	}
}

type recordAll struct{ samples []Sample }

func (r *recordAll) RecordSample(s *Sample) error {
	c := *s
	c.Stacks = append([]StackSample(nil), s.Stacks...)
	r.samples = append(r.samples, c)
	return nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMarkersReplaced checks the guard-marker bookkeeping against real
// page tables (this process's): a mapping with a MADV_GUARD_INSTALL
// marker on its lowest page is a stack; once it is replaced by a mapping
// at the same Start with another End and no marker, that one is not a
// stack; replaced again by one with a marker after two looks at the
// unmarked one, it is looked at afresh and found; and once unmapped,
// nothing is kept of any of them.
func TestMarkersReplaced(t *testing.T) {
	page := uint64(os.Getpagesize())
	pm, err := procread.OpenPagemap("", 0, procread.MethodScan)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if pm.Known()&procread.ClassGuard == 0 {
		t.Skipf("the %v method cannot see guard markers on this kernel (PAGE_IS_GUARD, Linux >= 6.14)", pm.Method())
	}
	mem, err := unix.Mmap(-1, 0, int(4*page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	defer unix.Munmap(mem)
	// remap makes [base, base+pages*page) a fresh mapping (the rest of the
	// four pages unmapped), with a guard marker on its lowest page if
	// marker; it returns the maps read holding just that mapping.
	remap := func(pages uint64, marker bool) []procread.Mapping {
		t.Helper()
		if _, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&mem[0]), uintptr(4*page), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED); err != nil {
			t.Fatal(err)
		}
		if pages < 4 {
			if err := unix.MunmapPtr(unsafe.Pointer(&mem[pages*page]), uintptr((4-pages)*page)); err != nil {
				t.Fatal(err)
			}
		}
		if marker {
			err := unix.Madvise(mem[:page], unix.MADV_GUARD_INSTALL)
			if errors.Is(err, unix.EINVAL) {
				t.Skipf("MADV_GUARD_INSTALL not supported here: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return []procread.Mapping{{Start: base, End: base + pages*page, Perms: procread.PermRead | procread.PermWrite}}
	}
	s := newSampler(nil, pm, stackfind.Options{Guard: true}, nil, 16)
	look := func(step string, maps []procread.Mapping, want []stackfind.Stack) {
		t.Helper()
		s.maps, s.found = maps, s.found[:0]
		if err := s.markers(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.found, want) {
			t.Errorf("%s: found %+v, want %+v", step, s.found, want)
		}
	}
	marked := func(pages uint64) []stackfind.Stack {
		return []stackfind.Stack{{Start: base, End: base + pages*page, FoundBy: stackfind.Guard, Guard: stackfind.GuardMarkers, GuardBytes: page}}
	}
	maps := remap(4, true)
	look("marked", maps, marked(4))
	look("marked, looked at again", maps, marked(4))
	maps = remap(2, false)
	look("replaced by 2 pages without marker", maps, nil)
	look("2 pages, second look", maps, nil)
	look("2 pages, no more looks", maps, nil)
	maps = remap(3, true)
	look("replaced by 3 pages with a marker", maps, marked(3))
	look("unmapped", nil, nil)
	if len(s.checked) != 0 || len(s.marked) != 0 {
		t.Errorf("after unmap: looked at %v, marked %v; want none", s.checked, s.marked)
	}
}

// TestSamplerKnown checks that the figures a stack and a sample carry, and
// the figures named missing, follow the classes the residency method
// tells apart: each known class gives a measured figure (0 included), each
// unknown one an absent figure and a name in missing. The pagemap method
// is opened for real: its classes depend on the kernel (bit 58) and on
// CAP_SYS_ADMIN (huge and zero page), and differ from the scan's.
func TestSamplerKnown(t *testing.T) {
	pm, err := procread.OpenPagemap("", 0, procread.MethodPagemap)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	const res, huge, zero, swap, guard = procread.ClassResident, procread.ClassHuge, procread.ClassZeroPage, procread.ClassSwapped, procread.ClassGuard
	ps := newSampler(nil, pm, stackfind.Options{}, nil, 16)
	if ps.known != pm.Known() {
		t.Errorf("pagemap: sampler knows %v, want %v", ps.known, pm.Known())
	}
	t.Logf("pagemap here tells %v apart", pm.Known())
	cases := []struct {
		name    string
		known   procread.PageClass
		missing []string
	}{
		{"scan", allKnown, nil},
		{"scan before 6.14", allKnown &^ guard, []string{"guard_marker_bytes"}},
		{"pagemap", res | swap | guard, []string{"huge_bytes", "zero_page_bytes"}},
		{"pagemap with CAP_SYS_ADMIN", res | swap | guard | huge | zero, nil},
		{"pagemap before 6.14", res | swap, []string{"huge_bytes", "zero_page_bytes", "guard_marker_bytes"}},
		{"mincore", res, []string{"huge_bytes", "zero_page_bytes", "swapped_bytes", "guard_marker_bytes"}},
	}
	for _, c := range cases {
		rec := &recordAll{}
		s := &sampler{known: c.known, rec: rec, timeline: timeline{max: 16}}
		a := fs(0x10000, 0x20000, stackfind.Guard)
		s.pending = &pending{found: []stackfind.Stack{a}, counts: []procread.PageCounts{{ResidentBytes: 8192, Lowest: 0x1e000, Runs: 1, Known: c.known}}}
		s.maps = mappings([]stackfind.Stack{a})
		if err := s.confirm(); err != nil {
			t.Fatal(err)
		}
		if got := s.missing(); !slices.Equal(got, c.missing) {
			t.Errorf("%s: missing %q, want %q", c.name, got, c.missing)
		}
		if rec.samples[0].Known != c.known {
			t.Errorf("%s: sample knows %v, want %v", c.name, rec.samples[0].Known, c.known)
		}
		st := s.stacks[0]
		for _, f := range []struct {
			name string
			p    *int64
		}{{"huge_bytes", st.HugeBytes}, {"zero_page_bytes", st.ZeroPageBytes}, {"swapped_bytes", st.SwappedBytes}, {"guard_marker_bytes", st.GuardMarkerBytes}} {
			if absent := slices.Contains(c.missing, f.name); (f.p == nil) != absent || (f.p != nil && *f.p != 0) {
				t.Errorf("%s: %s = %v, want absent %v (else measured 0)", c.name, f.name, f.p, absent)
			}
		}
	}
}
