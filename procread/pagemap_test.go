//go:build linux

package procread

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stackprobe/internal/sys"
)

var methods = []Method{MethodScan, MethodPagemap, MethodMincore}

// openMethod opens this process's pagemap with m; MethodScan must not fall
// back on this kernel unless the ioctl is missing, which skips the test.
func openMethod(t testing.TB, m Method) *Pagemap {
	t.Helper()
	p, err := OpenPagemap("", 0, m)
	if err != nil {
		t.Fatalf("OpenPagemap(%v): %v", m, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.Method() != m {
		t.Skipf("PAGEMAP_SCAN missing on this kernel: %v fell back to %v", m, p.Method())
	}
	return p
}

// guardMode is how reserve guards a stack's lowest page.
type guardMode string

const (
	guardMprotect guardMode = "mprotect"
	guardMadvise  guardMode = "madvise"
	guardNone     guardMode = "none"
)

// reserve maps n stacks of size bytes as ONE private anonymous
// MAP_NORESERVE mapping (stacks side by side, as the kernel would merge
// them anyway), guards each stack's lowest page with g and returns the
// stacks' ranges in address order. The memory is unmapped at cleanup.
func reserve(tb testing.TB, n int, size uint64, g guardMode) (mem []byte, ranges []PageRange) {
	tb.Helper()
	mem, err := unix.Mmap(-1, 0, n*int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		tb.Fatalf("mmap %d stacks of %d bytes: %v", n, size, err)
	}
	tb.Cleanup(func() { _ = unix.Munmap(mem) })
	if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil {
		tb.Fatalf("madvise(MADV_NOHUGEPAGE): %v", err)
	}
	ps := os.Getpagesize()
	base := uint64(addrOf(mem))
	for i := range n {
		low := mem[i*int(size) : i*int(size)+ps]
		switch g {
		case guardMprotect:
			err = unix.Mprotect(low, unix.PROT_NONE)
		case guardMadvise:
			err = unix.Madvise(low, unix.MADV_GUARD_INSTALL)
			if errors.Is(err, unix.EINVAL) {
				tb.Skip("MADV_GUARD_INSTALL unsupported (Linux < 6.13): " + err.Error())
			}
		}
		if err != nil {
			tb.Fatalf("guard %s of stack %d: %v", g, i, err)
		}
		ranges = append(ranges, PageRange{base + uint64(i)*size, base + uint64(i+1)*size})
	}
	return mem, ranges
}

// touch writes one byte to every page of [end-depth, end) of mem, whose
// first byte is at address base.
func touch(mem []byte, base, start, end uint64) {
	ps := uint64(os.Getpagesize())
	for a := start; a < end; a += ps {
		mem[a-base] = 1
	}
}

// wantPTEBlocks is the model of PageCounts.PTEBlocks: entries[i] are the
// spans of ranges[i] that hold page-table entries, ascending; a block of
// 2^PTEBlockShift bytes counts in the lowest range with an entry in it.
func wantPTEBlocks(entries [][]PageRange) []int {
	shift := PTEBlockShift(os.Getpagesize())
	seen := map[uint64]bool{}
	out := make([]int, len(entries))
	for i, spans := range entries {
		for _, sp := range spans {
			for b := sp.Start >> shift; sp.End > sp.Start && b <= (sp.End-1)>>shift; b++ {
				if !seen[b] {
					seen[b] = true
					out[i]++
				}
			}
		}
	}
	return out
}

func TestPTEBlockShift(t *testing.T) {
	for ps, want := range map[int]uint{4 << 10: 21, 16 << 10: 25, 64 << 10: 29} {
		if got := PTEBlockShift(ps); got != want {
			t.Errorf("PTEBlockShift(%d) = %d, want %d", ps, got, want)
		}
	}
}

// TestPTEBlocks places entries across 2 MiB boundaries of side-by-side
// stacks that are not 2 MiB multiples, so blocks are shared between
// neighbours, and checks the count against the model for every method.
func TestPTEBlocks(t *testing.T) {
	ps := uint64(os.Getpagesize())
	block := uint64(1) << PTEBlockShift(int(ps))
	const n = 6
	size := 3*block + 5*ps
	for _, g := range []guardMode{guardMprotect, guardMadvise} {
		t.Run(string(g), func(t *testing.T) {
			mem, ranges := reserve(t, n, size, g)
			base := ranges[0].Start
			entries := make([][]PageRange, n)
			for i, r := range ranges {
				if g == guardMadvise {
					entries[i] = append(entries[i], PageRange{r.Start, r.Start + ps})
				}
				var spans []PageRange
				switch i % 3 {
				case 0: // the top 16 KiB
					spans = []PageRange{{r.End - 4*ps, r.End}}
				case 1: // one page in each block of the stack, and its top
					for a := (r.Start + block) &^ (block - 1); a < r.End-ps; a += block {
						spans = append(spans, PageRange{a, a + ps})
					}
					spans = append(spans, PageRange{r.End - ps, r.End})
				case 2: // nothing
				}
				for _, sp := range spans {
					touch(mem, base, sp.Start, sp.End)
				}
				entries[i] = append(entries[i], spans...)
			}
			for _, m := range methods {
				t.Run(m.String(), func(t *testing.T) {
					p := openMethod(t, m)
					got := make([]PageCounts, n)
					if err := p.Measure(ranges, got); err != nil {
						t.Fatal(err)
					}
					// Guard markers are entries to every method but
					// mincore, told apart or read as swap entries.
					seen := entries
					if p.Method() == MethodMincore && g == guardMadvise {
						seen = make([][]PageRange, n)
						for i := range entries {
							seen[i] = entries[i][1:]
						}
					}
					want := wantPTEBlocks(seen)
					for i := range got {
						if got[i].PTEBlocks != want[i] {
							t.Errorf("stack %d: PTEBlocks %d, want %d", i, got[i].PTEBlocks, want[i])
						}
					}
				})
			}
		})
	}
}

// mincorePages counts the pages of r that mincore calls resident.
func mincorePages(t testing.TB, r PageRange) int64 {
	t.Helper()
	n, _, err := ResidentPages(uintptr(r.Start), uintptr(r.End-r.Start), nil)
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// smapsRss sums smaps Rss over the VMAs inside [lo, hi).
func smapsRss(t testing.TB, lo, hi uint64) int64 {
	t.Helper()
	var rss int64
	err := ReadSmaps("/proc/self/smaps", func(v *VMA) error {
		if v.Start >= lo && v.End <= hi {
			rss += int64(v.Rss)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

func TestMeasureStacks(t *testing.T) {
	ps := uint64(os.Getpagesize())
	const size = 100 << 20
	// Depths touched from the top of each stack, and for some a lone page
	// 1 MiB above the guard, which makes a second run.
	depths := []uint64{0, 1, 4 << 10, 5000, 64 << 10, 1 << 20, 8<<20 + 1}
	for _, g := range []guardMode{guardMprotect, guardMadvise, guardNone} {
		t.Run(string(g), func(t *testing.T) {
			mem, ranges := reserve(t, len(depths), size, g)
			base := ranges[0].Start
			want := make([]PageCounts, len(ranges))
			entries := make([][]PageRange, len(ranges)) // without the guards
			for i, r := range ranges {
				pages := (depths[i] + ps - 1) / ps
				touch(mem, base, r.End-pages*ps, r.End)
				entries[i] = []PageRange{{r.End - pages*ps, r.End}}
				w := &want[i]
				w.ResidentBytes = int64(pages * ps)
				if pages > 0 {
					w.Lowest, w.Runs = r.End-pages*ps, 1
				}
				if i%2 == 1 {
					lone := r.Start + 1<<20
					touch(mem, base, lone, lone+ps)
					entries[i] = append([]PageRange{{lone, lone + ps}}, entries[i]...)
					w.ResidentBytes += int64(ps)
					w.Lowest, w.Runs = lone, w.Runs+1
				}
				w.PresentBytes = w.ResidentBytes
				if g == guardMadvise {
					w.GuardBytes = int64(ps)
				}
			}
			var total int64
			for i, r := range ranges {
				if got := mincorePages(t, r) * int64(ps); got != want[i].ResidentBytes {
					t.Fatalf("stack %d: mincore says %d bytes, touched %d", i, got, want[i].ResidentBytes)
				}
				total += want[i].ResidentBytes
			}
			if rss := smapsRss(t, ranges[0].Start, ranges[len(ranges)-1].End); rss != total {
				t.Errorf("smaps Rss over the stacks = %d, touched %d", rss, total)
			}
			for _, m := range methods {
				t.Run(m.String(), func(t *testing.T) {
					p := openMethod(t, m)
					got := make([]PageCounts, len(ranges))
					if err := p.Measure(ranges, got); err != nil {
						t.Fatal(err)
					}
					seen := make([][]PageRange, len(ranges))
					for i, r := range ranges {
						if g == guardMadvise && p.Method() != MethodMincore {
							seen[i] = append(seen[i], PageRange{r.Start, r.Start + ps})
						}
						seen[i] = append(seen[i], entries[i]...)
					}
					blocks := wantPTEBlocks(seen)
					for i := range ranges {
						w := want[i]
						w.Known = p.Known()
						w.PTEBlocks = blocks[i]
						if w.Known&ClassGuard == 0 {
							w.GuardBytes = 0
						}
						if got[i] != w {
							t.Errorf("stack %d (depth %d):\n got %+v\nwant %+v", i, depths[i], got[i], w)
						}
					}
				})
			}
		})
	}
}

// TestMethodKnown checks each method's Known against what this kernel
// offers, as the probes find it: PAGEMAP_SCAN and its PAGE_IS_GUARD, guard
// markers and pagemap bit 58, and /proc/kpageflags with CAP_SYS_ADMIN.
func TestMethodKnown(t *testing.T) {
	scan, err := OpenPagemap("", 0, MethodScan)
	if err != nil {
		t.Fatal(err)
	}
	defer scan.Close()
	scanGuard, hasScan, err := scan.probeScan()
	if err != nil {
		t.Fatal(err)
	}
	markers, bit := probeGuardMarkers("/proc")
	kpageflags := false
	if f, err := os.Open("/proc/kpageflags"); err == nil {
		kpageflags = hasCapSysAdmin()
		f.Close()
	}
	t.Logf("PAGEMAP_SCAN %v (PAGE_IS_GUARD %v), guard markers %v (pagemap bit 58 %v), kpageflags with CAP_SYS_ADMIN %v",
		hasScan, scanGuard, markers, bit, kpageflags)
	// untold drops the guard class where the method cannot tell markers,
	// and the swapped class too where markers exist: they read as swap
	// entries.
	untold := func(k PageClass, tells bool) PageClass {
		if !tells {
			k &^= ClassGuard
			if markers {
				k &^= ClassSwapped
			}
		}
		return k
	}
	pagemap := ClassResident | ClassSwapped | ClassGuard
	if kpageflags {
		pagemap |= ClassZeroPage
	}
	want := map[Method]PageClass{
		MethodScan:    untold(allClasses, scanGuard),
		MethodPagemap: untold(pagemap, bit),
		MethodMincore: ClassResident,
	}
	if !hasScan {
		want[MethodScan] = want[MethodPagemap]
	}
	for _, m := range methods {
		p, err := OpenPagemap("", 0, m)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if p.Known() != want[m] {
			t.Errorf("%v knows %v, want %v", m, p.Known(), want[m])
		}
	}
}

// TestGuardMarkersUntold measures stacks with guard markers as a kernel
// with MADV_GUARD_INSTALL but without PAGE_IS_GUARD and pagemap bit 58
// would: the markers read as swap entries, so neither guard nor swapped
// bytes are known, and none are counted; their page-table entries still
// count in PTEBlocks.
func TestGuardMarkersUntold(t *testing.T) {
	ps := uint64(os.Getpagesize())
	const n = 3
	mem, ranges := reserve(t, n, 4<<20, guardMadvise)
	entries := make([][]PageRange, n)
	for i, r := range ranges {
		touch(mem, ranges[0].Start, r.End-2*ps, r.End)
		entries[i] = []PageRange{{r.Start, r.Start + ps}, {r.End - 2*ps, r.End}}
	}
	blocks := wantPTEBlocks(entries)
	for _, m := range []Method{MethodScan, MethodPagemap} {
		t.Run(m.String(), func(t *testing.T) {
			p := openMethod(t, m)
			p.setClasses(guardSupport{markers: true})
			want := ClassResident | ClassHuge | ClassZeroPage
			if m == MethodPagemap {
				want = ClassResident | p.Known()&ClassZeroPage
			}
			if p.Known() != want {
				t.Errorf("knows %v, want %v", p.Known(), want)
			}
			got := make([]PageCounts, n)
			if err := p.Measure(ranges, got); err != nil {
				t.Fatal(err)
			}
			for i, r := range ranges {
				w := PageCounts{PresentBytes: int64(2 * ps), ResidentBytes: int64(2 * ps), Lowest: r.End - 2*ps, Runs: 1,
					PTEBlocks: blocks[i], Known: p.Known()}
				if got[i] != w {
					t.Errorf("stack %d:\n got %+v\nwant %+v", i, got[i], w)
				}
			}
			var runs []string
			if err := p.Runs(ranges[0], func(s, e uint64, c PageClass) { runs = append(runs, fmt.Sprintf("%#x-%#x %v", s, e, c)) }); err != nil {
				t.Fatal(err)
			}
			if w := []string{fmt.Sprintf("%#x-%#x resident", ranges[0].End-2*ps, ranges[0].End)}; !slices.Equal(runs, w) {
				t.Errorf("Runs = %q, want %q", runs, w)
			}
		})
	}
}

// TestMeasureManyStacks walks more than 512 adjacent stacks with two runs
// each in one call: more than two full batches of regions.
func TestMeasureManyStacks(t *testing.T) {
	ps := uint64(os.Getpagesize())
	n, size := 600, uint64(100<<20)
	if testing.Short() {
		n = 520
	}
	mem, ranges := reserve(t, n, size, guardNone)
	base := ranges[0].Start
	want := make([]PageCounts, n)
	entries := make([][]PageRange, n)
	for i, r := range ranges {
		top := uint64(i%3+1) * ps
		touch(mem, base, r.End-top, r.End)
		touch(mem, base, r.Start+ps, r.Start+2*ps)
		entries[i] = []PageRange{{r.Start + ps, r.Start + 2*ps}, {r.End - top, r.End}}
	}
	blocks := wantPTEBlocks(entries)
	for i, r := range ranges {
		top := uint64(i%3+1) * ps
		want[i] = PageCounts{PTEBlocks: blocks[i],
			PresentBytes: int64(top + ps), ResidentBytes: int64(top + ps),
			Lowest: r.Start + ps, Runs: 2,
		}
	}
	for _, m := range methods {
		// 3 makes many calls per walk; 1024 lets one call cross the
		// kernel's 512-region batch, where walk_end lags behind.
		for _, vecLen := range []int{scanVecLen, 3, 1024} {
			if vecLen != scanVecLen && m != MethodScan {
				continue
			}
			t.Run(fmt.Sprintf("%v/vec%d", m, vecLen), func(t *testing.T) {
				p := openMethod(t, m)
				if m == MethodScan {
					p.lanes[0].regions = make([]sys.PageRegion, vecLen)
				}
				got := make([]PageCounts, n)
				if err := p.Measure(ranges, got); err != nil {
					t.Fatal(err)
				}
				bad := 0
				for i := range got {
					w := want[i]
					w.Known = p.Known()
					if got[i] != w && bad < 5 {
						bad++
						t.Errorf("stack %d:\n got %+v\nwant %+v", i, got[i], w)
					}
				}
			})
		}
	}
}

// TestMeasureLanes splits side-by-side stacks that are not 2 MiB multiples
// over several lanes, so that lanes meet inside a PTE block both sides
// hold entries in, and checks every figure against one lane's, and the
// PTE blocks against the model.
func TestMeasureLanes(t *testing.T) {
	ps := uint64(os.Getpagesize())
	const n, lanes = 64, 4
	size := uint64(2<<20) + ps
	mem, ranges := reserve(t, n, size, guardNone)
	base := ranges[0].Start
	entries := make([][]PageRange, n)
	for i, r := range ranges {
		top := uint64(i%5+1) * ps
		touch(mem, base, r.Start, r.Start+ps)
		touch(mem, base, r.End-top, r.End)
		entries[i] = []PageRange{{r.Start, r.Start + ps}, {r.End - top, r.End}}
	}
	shift := PTEBlockShift(int(ps))
	shared := 0
	for i := 1; i < lanes; i++ {
		k := i * n / lanes
		if (ranges[k-1].End-1)>>shift == ranges[k].Start>>shift {
			shared++
		}
	}
	if shared == 0 {
		t.Fatalf("no lane boundary falls inside a PTE block; the layout does not test the join")
	}
	blocks := wantPTEBlocks(entries)
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			p := openMethod(t, m)
			one := make([]PageCounts, n)
			if err := p.Measure(ranges, one); err != nil {
				t.Fatal(err)
			}
			p.SetLanes(lanes)
			p.laneMin = 1
			got := make([]PageCounts, n)
			if err := p.Measure(ranges, got); err != nil {
				t.Fatal(err)
			}
			if len(p.lanes) != lanes {
				t.Fatalf("Measure used %d lanes, want %d", len(p.lanes), lanes)
			}
			for i := range got {
				if got[i] != one[i] {
					t.Errorf("stack %d on %d lanes:\n got %+v\nwant %+v (one lane)", i, lanes, got[i], one[i])
				}
				if got[i].PTEBlocks != blocks[i] {
					t.Errorf("stack %d: %d PTE blocks, want %d", i, got[i].PTEBlocks, blocks[i])
				}
			}
		})
	}
}

// TestMeasureNoAllocs checks that Measure does not allocate once its
// lanes exist: on one lane, and with 1100 stacks on two lanes and on
// three.
func TestMeasureNoAllocs(t *testing.T) {
	ps := uint64(os.Getpagesize())
	for _, tc := range []struct{ stacks, lanes int }{{4, 1}, {1100, 2}, {1100, 3}} {
		mem, ranges := reserve(t, tc.stacks, 64<<10, guardMprotect)
		for _, r := range ranges {
			touch(mem, ranges[0].Start, r.End-3*ps, r.End)
		}
		out := make([]PageCounts, len(ranges))
		for _, m := range methods {
			p := openMethod(t, m)
			p.SetLanes(tc.lanes)
			p.laneMin = tc.stacks / tc.lanes
			if err := p.Measure(ranges, out); err != nil {
				t.Fatal(err)
			}
			if len(p.lanes) != tc.lanes {
				t.Fatalf("%v: %d stacks on %d lanes, want %d", m, tc.stacks, len(p.lanes), tc.lanes)
			}
			if a := testing.AllocsPerRun(20, func() { _ = p.Measure(ranges, out) }); a != 0 {
				t.Errorf("%v: %d stacks on %d lanes: Measure allocates %v times per call", m, tc.stacks, tc.lanes, a)
			}
		}
	}
}

func TestMeasureRejects(t *testing.T) {
	p := openMethod(t, MethodScan)
	ps := uint64(os.Getpagesize())
	out := make([]PageCounts, 2)
	bad := map[string][]PageRange{
		"unaligned start": {{ps + 1, 2 * ps}},
		"unaligned end":   {{ps, 2*ps + 1}},
		"reversed":        {{2 * ps, ps}},
		"overlapping":     {{ps, 3 * ps}, {2 * ps, 4 * ps}},
		"unsorted":        {{4 * ps, 5 * ps}, {ps, 2 * ps}},
		"short out":       {{ps, 2 * ps}, {2 * ps, 3 * ps}, {3 * ps, 4 * ps}},
	}
	for name, rs := range bad {
		if err := p.Measure(rs, out); err == nil {
			t.Errorf("%s: Measure(%v) succeeded", name, rs)
		}
	}
}

func TestRuns(t *testing.T) {
	ps := uint64(os.Getpagesize())
	mem, ranges := reserve(t, 1, 1<<20, guardMadvise)
	r := ranges[0]
	touch(mem, r.Start, r.Start+4*ps, r.Start+6*ps)
	touch(mem, r.Start, r.End-3*ps, r.End)
	type run struct {
		start, end uint64
		class      PageClass
	}
	for _, m := range methods {
		p := openMethod(t, m)
		var got []run
		err := p.Runs(r, func(s, e uint64, c PageClass) { got = append(got, run{s, e, c}) })
		if err != nil {
			t.Fatal(err)
		}
		var want []run
		if p.Known()&ClassGuard != 0 {
			want = append(want, run{r.Start, r.Start + ps, ClassGuard})
		}
		want = append(want, run{r.Start + 4*ps, r.Start + 6*ps, ClassResident}, run{r.End - 3*ps, r.End, ClassResident})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%v: Runs = %v, want %v", m, got, want)
		}
	}
}

// TestHugePageStraddle makes two transparent huge pages and measures them
// through ranges whose bounds cut them: each range gets the part of a huge
// page inside it.
func TestHugePageStraddle(t *testing.T) {
	const huge = 2 << 20
	_, base := hugePages(t, 2)
	ranges := []PageRange{
		{base, base + huge/2},
		{base + huge/2, base + huge + huge/4},
		{base + huge + huge/4, base + 2*huge},
	}
	for _, m := range methods {
		t.Run(m.String(), func(t *testing.T) {
			p := openMethod(t, m)
			got := make([]PageCounts, len(ranges))
			if err := p.Measure(ranges, got); err != nil {
				t.Fatal(err)
			}
			for i, r := range ranges {
				n := int64(r.End - r.Start)
				w := PageCounts{PresentBytes: n, ResidentBytes: n, Lowest: r.Start, Runs: 1, Known: p.Known()}
				// Two huge pages, each a block: counted in the first
				// range that reaches it.
				w.PTEBlocks = []int{1, 1, 0}[i]
				if p.Known()&ClassHuge != 0 {
					w.HugeBytes = n
				}
				if got[i] != w {
					t.Errorf("range %d:\n got %+v\nwant %+v", i, got[i], w)
				}
				if mc := mincorePages(t, r) * int64(os.Getpagesize()); mc != got[i].PresentBytes {
					t.Errorf("range %d: mincore %d bytes, measured %d", i, mc, got[i].PresentBytes)
				}
			}
		})
	}
}

// TestHugePagePartlyFreed makes a transparent huge page and frees its low
// half with MADV_DONTNEED: the kernel splits the PMD, and the high half
// stays resident in PTE-mapped pages of the huge folio. Those are not
// huge pages to PAGE_IS_HUGE or smaps AnonHugePages; /proc/kpageflags
// still flags them KPF_THP, so the pagemap method must not call them huge.
func TestHugePagePartlyFreed(t *testing.T) {
	const huge = 2 << 20
	region, base := hugePages(t, 1)
	// MADV_NOHUGEPAGE keeps khugepaged from collapsing the half page back
	// into a huge one; it leaves the huge page mapped as it is.
	if err := unix.Madvise(region, unix.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	if err := unix.Madvise(region[:huge/2], unix.MADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if rss := smapsRss(t, base, base+huge); rss != huge/2 {
		t.Fatalf("Rss of the region %d after freeing its low half, want %d", rss, huge/2)
	}
	r := PageRange{base, base + huge}
	for _, m := range []Method{MethodScan, MethodPagemap} {
		p := openMethod(t, m)
		got := make([]PageCounts, 1)
		if err := p.Measure([]PageRange{r}, got); err != nil {
			t.Fatal(err)
		}
		w := PageCounts{PresentBytes: huge / 2, ResidentBytes: huge / 2, Lowest: base + huge/2, Runs: 1, PTEBlocks: 1, Known: p.Known()}
		if got[0] != w {
			t.Errorf("%v:\n got %+v\nwant %+v", m, got[0], w)
		}
		if m == MethodScan && got[0].Known&ClassHuge == 0 {
			t.Errorf("scan cannot tell huge pages: knows %v", got[0].Known)
		}
		if m == MethodPagemap && got[0].Known&ClassHuge != 0 {
			t.Errorf("pagemap knows %v: it cannot tell PMD-mapped huge pages from PTE-mapped ones", got[0].Known)
		}
	}
}

// hugePages maps n transparent huge pages, 2 MiB aligned, writes a byte
// into each, and returns them and their address; it skips the test when
// the kernel grants no huge pages. The memory is unmapped at cleanup.
func hugePages(t *testing.T, n int) (region []byte, base uint64) {
	t.Helper()
	const huge = 2 << 20
	mem, err := unix.Mmap(-1, 0, (n+1)*huge, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Munmap(mem) })
	off := (huge - addrOf(mem)%huge) % huge
	region = mem[off : int(off)+n*huge]
	if err := unix.Madvise(region, unix.MADV_HUGEPAGE); err != nil {
		t.Skip("MADV_HUGEPAGE: " + err.Error())
	}
	for i := range n {
		region[i*huge] = 1
	}
	base = uint64(addrOf(region))
	if rss := smapsRss(t, base, base+uint64(n)*huge); rss != int64(n)*huge {
		t.Skipf("no transparent huge pages granted (THP %s): Rss of the region %d, want %d", thpEnabled(), rss, n*huge)
	}
	return region, base
}

func thpEnabled() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

func TestParseMethod(t *testing.T) {
	for _, m := range methods {
		got, err := ParseMethod(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMethod(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMethod("smaps"); err == nil {
		t.Error(`ParseMethod("smaps") succeeded`)
	}
	if s := Method(7).String(); s != "Method(7)" {
		t.Errorf("Method(7) = %q", s)
	}
}

func TestPageClassString(t *testing.T) {
	tests := map[PageClass]string{
		0:                              "none",
		ClassResident | ClassHuge:      "resident|huge",
		ClassGuard:                     "guard",
		allClasses:                     "resident|huge|zero-page|swapped|guard",
		ClassSwapped | PageClass(1<<7): "swapped|0x80",
	}
	for c, want := range tests {
		if got := c.String(); got != want {
			t.Errorf("PageClass(%#x) = %q, want %q", uint8(c), got, want)
		}
	}
}

func TestOpenPagemapErrors(t *testing.T) {
	if _, err := OpenPagemap("", 1, MethodMincore); err == nil {
		t.Error("mincore of pid 1 succeeded")
	}
	if _, err := OpenPagemap("", -1, MethodScan); err == nil {
		t.Error("pid -1 succeeded")
	}
	// A pid above pid_max never exists.
	_, err := OpenPagemap("", 1<<23, MethodScan)
	if !errors.Is(err, ErrGone) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("OpenPagemap of a missing pid: %v, want ErrGone wrapping ENOENT", err)
	}
}
