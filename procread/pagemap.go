//go:build linux

package procread

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stackprobe/internal/sys"
)

// ErrGone is matched (errors.Is) by the errors of OpenPagemap, Measure and
// Runs when the process being measured has exited: its /proc directory is
// gone (ENOENT, ESRCH), or it is a zombie, or its address space was torn
// down. A process that called exec has not exited: Measure and Runs reach
// its new address space.
var ErrGone = errors.New("process gone")

// errNoMM says that a pagemap read returned nothing: the open file no
// longer reaches an address space (the process exited, or called exec).
var errNoMM = errors.New("empty read: no address space")

// PageRange is the half-open address range [Start, End) of one stack, in
// the measured process's address space. Both ends are page aligned.
type PageRange struct{ Start, End uint64 }

// PageClass is a set of page classes. A page carries at most one of
// ClassResident, ClassZeroPage, ClassSwapped and ClassGuard; ClassHuge is
// only ever added to ClassResident. PageCounts.Known and Pagemap.Known use
// the same bits to say which classes a method can tell apart.
type PageClass uint8

const (
	// ClassResident: mapped to a page of memory of its own (present and not
	// the shared zero page). Without ClassZeroPage in Known, zero-page
	// mappings cannot be told apart and are reported as resident.
	ClassResident PageClass = 1 << iota
	// ClassHuge: resident as part of a PMD-mapped transparent huge page
	// (or hugetlb page): PAGEMAP_SCAN's PAGE_IS_HUGE.
	ClassHuge
	// ClassZeroPage: mapped to the shared zero page (PAGE_IS_PFNZERO). Such
	// a page is present to mincore and pagemap but holds no memory; smaps
	// Rss leaves it out.
	ClassZeroPage
	// ClassSwapped: swapped out (a swap entry in the page table).
	ClassSwapped
	// ClassGuard: a MADV_GUARD_INSTALL guard marker (PAGE_IS_GUARD).
	ClassGuard
)

var classNames = [...]string{"resident", "huge", "zero-page", "swapped", "guard"}

// String names the classes in the set joined by "|", or "none".
func (c PageClass) String() string {
	if c == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range classNames {
		if c&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(name)
		}
	}
	if rest := c &^ (1<<len(classNames) - 1); rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		fmt.Fprintf(&b, "%#x", uint8(rest))
	}
	return b.String()
}

// PageCounts is what the page tables say about one PageRange. All figures
// are in bytes and are multiples of the page size.
type PageCounts struct {
	PresentBytes  int64  // pages present (what mincore and pagemap bit 63 call present), zero page included
	ResidentBytes int64  // memory actually held = PresentBytes - ZeroPageBytes; equals smaps Rss for the range
	HugeBytes     int64  // resident bytes that are part of a transparent huge page (PAGE_IS_HUGE); a huge page counts the base pages it has inside the range
	ZeroPageBytes int64  // present bytes mapped to the shared zero page (PAGE_IS_PFNZERO): not memory
	SwappedBytes  int64  // pages swapped out
	GuardBytes    int64  // MADV_GUARD_INSTALL guard markers (PAGE_IS_GUARD, bit 8)
	Lowest        uint64 // lowest address of a resident (non-zero-page) page, 0 when none
	Runs          int    // number of maximal contiguous runs of resident pages inside the range

	// PTEBlocks is the number of page-table pages the range's entries
	// need: the PTE-page-sized blocks (2 MiB with 4 KiB pages: a page of
	// 8-byte entries maps pagesize/8 pages) that hold a page of the range
	// with an entry of any class the method sees — present (zero page and
	// huge pages included: the kernel deposits a PTE page for each PMD-
	// mapped transparent huge page), swapped, or a guard marker (also one
	// the method reads as a swap entry and counts nowhere else). A block
	// shared by ranges of one Measure call counts once, in the lowest
	// range that has an entry in it, so the sum over the ranges is the
	// number of PTE pages they need together, in pages (bytes: times the
	// page size). With MethodMincore only resident pages are seen.
	PTEBlocks int

	// Known is the set of classes the method could tell apart for this
	// measurement. A figure whose class is missing from Known was not
	// measured and must be shown as missing, not as 0: HugeBytes needs
	// ClassHuge, ZeroPageBytes ClassZeroPage (without it ResidentBytes equals
	// PresentBytes and may include zero-page mappings), SwappedBytes
	// ClassSwapped, GuardBytes ClassGuard. ClassResident is always known.
	// Where MADV_GUARD_INSTALL guard markers can exist but the method
	// cannot tell them (they are swap-like entries), neither ClassGuard
	// nor ClassSwapped is known.
	Known PageClass
}

// Method is how a Pagemap reads residency.
type Method int

const (
	// MethodScan asks the PAGEMAP_SCAN ioctl (Linux >= 6.7): it walks only
	// populated page tables, so its cost follows the pages touched, not
	// the bytes reserved. It tells every class; guard markers only on
	// kernels whose PAGEMAP_SCAN takes PAGE_IS_GUARD (on others that have
	// MADV_GUARD_INSTALL, swapped pages are not told either).
	MethodScan Method = iota
	// MethodPagemap reads the 8-byte /proc/PID/pagemap entries of every
	// page (bit 63 present, bit 62 swapped, bit 58 guard marker where the
	// kernel sets it, which OpenPagemap finds out on a marker of its own;
	// where markers exist without it, swapped pages are not told either,
	// as for MethodScan). Zero-page mappings are told apart only with
	// CAP_SYS_ADMIN (which shows the page frame numbers) and a readable
	// /proc/kpageflags; otherwise ClassZeroPage is missing from Known.
	// ClassHuge always is: kpageflags marks every page of a large folio
	// KPF_THP, whether a PMD maps it whole or PTEs map it (after part of
	// it was freed, or a multi-size THP), and nothing there tells which.
	MethodPagemap
	// MethodMincore asks mincore(2): this process only, present pages only
	// (zero-page mappings count as resident; huge, swapped and guard are
	// unknown), and its cost follows the bytes reserved.
	MethodMincore
)

var methodNames = [...]string{"scan", "pagemap", "mincore"}

// String returns "scan", "pagemap" or "mincore", the names ParseMethod takes.
func (m Method) String() string {
	if m >= 0 && int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// ParseMethod parses "scan", "pagemap" or "mincore".
func ParseMethod(s string) (Method, error) {
	for i, name := range methodNames {
		if s == name {
			return Method(i), nil
		}
	}
	return 0, fmt.Errorf("residency method %q: want scan, pagemap or mincore", s)
}

const (
	// scanVecLen is the number of regions asked of one PAGEMAP_SCAN call.
	// The kernel collects regions in batches of 512; with vec_len above
	// that, a call that fills more than one batch returns every region but
	// leaves walk_end at a batch boundary, and a loop restarting from
	// walk_end counts pages twice. At 512 no call crosses a batch.
	scanVecLen = 512
	// pagemapChunk is the number of 8-byte pagemap entries read at once
	// (32 KiB, 16 MiB of address space with 4 KiB pages).
	pagemapChunk = 4096
	// mincoreChunk is the number of pages asked of one mincore call.
	mincoreChunk = 64 << 10

	// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
	pmPresent  = 1 << 63
	pmSwapped  = 1 << 62
	pmGuard    = 1 << 58
	pmPFNMask  = 1<<55 - 1
	kpfZero    = 1 << 24 // /proc/kpageflags: the zero page (or huge zero page)
	capSysAdm  = 21      // CAP_SYS_ADMIN
	allClasses = ClassResident | ClassHuge | ClassZeroPage | ClassSwapped | ClassGuard
)

// Pagemap measures the residency of address ranges in one process from its
// page tables. It keeps its buffers between calls, so Measure on one lane
// does not allocate in steady state. A Pagemap is not safe for concurrent
// use.
type Pagemap struct {
	pid  int    // 0: this process
	path string // /proc/PID/pagemap
	// proc reads /proc/PID/stat when a walk fails: set for another
	// process only.
	proc procfs.Proc
	// started is the process's start time (stat field 22, clock ticks
	// after boot) when the pagemap was opened: a process that reuses the
	// pid starts later.
	started  uint64
	fd       int // the open pagemap, -1 for MethodMincore
	kflags   int // /proc/kpageflags for MethodPagemap when PFNs are visible, else -1
	method   Method
	known    PageClass
	pageSize uint64
	// blockShift is log2 of the bytes one PTE page maps: pageSize/8
	// entries of pageSize bytes each (21, 2 MiB, with 4 KiB pages).
	blockShift uint

	anyof, ret uint64 // PAGEMAP_SCAN category masks

	// lanes[0] serves Runs and small measurements; Measure walks large
	// sets of ranges on up to maxLanes lanes at once.
	lanes    []*lane
	maxLanes int
	laneMin  int            // fewest ranges per lane: minLaneRanges
	used     int            // lanes the last Measure walked on
	wg       sync.WaitGroup // Measure's lanes on goroutines of their own
}

// OpenPagemap opens /proc/PID/pagemap under procRoot ("" means "/proc") for
// process pid (0 means this process) and returns a Pagemap reading it with
// method m. MethodScan falls back to MethodPagemap when the kernel lacks
// the PAGEMAP_SCAN ioctl (ENOTTY, EINVAL), and Method then says so.
// MethodMincore works on this process only and opens nothing.
func OpenPagemap(procRoot string, pid int, m Method) (_ *Pagemap, err error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	if pid < 0 {
		return nil, fmt.Errorf("pagemap: invalid pid %d", pid)
	}
	if m < MethodScan || m > MethodMincore {
		return nil, fmt.Errorf("pagemap: unknown method %v", m)
	}
	name := "self"
	if pid != 0 {
		name = strconv.Itoa(pid)
	}
	p := &Pagemap{
		pid:      pid,
		path:     filepath.Join(procRoot, name, "pagemap"),
		fd:       -1,
		kflags:   -1,
		method:   m,
		pageSize: uint64(os.Getpagesize()),
	}
	p.blockShift = PTEBlockShift(int(p.pageSize))
	p.maxLanes, p.laneMin = defaultLanes(), minLaneRanges
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	if m == MethodMincore {
		if pid != 0 && pid != os.Getpid() {
			return nil, fmt.Errorf("pagemap: mincore measures this process only, not pid %d", pid)
		}
		p.known = ClassResident
		p.lanes = []*lane{p.newLane()}
		return p, nil
	}
	if p.fd, err = p.open(); err != nil {
		return nil, err
	}
	if p.other() {
		pfs, err := procfs.NewFS(procRoot)
		if err != nil {
			return nil, fmt.Errorf("pagemap: %w", err)
		}
		if p.proc, err = pfs.Proc(pid); err != nil {
			return nil, goneErr("pagemap", err)
		}
		st, err := p.readStat()
		if err != nil {
			return nil, goneErr("pagemap", err)
		}
		p.started = st.started
	}
	var g guardSupport
	var scan bool
	g.scan, scan, err = p.probeScan()
	if err != nil {
		return nil, p.gone(err)
	}
	if !scan {
		p.method = MethodPagemap
	}
	if !g.scan || p.method == MethodPagemap {
		g.markers, g.bit = probeGuardMarkers(procRoot)
	}
	if p.method == MethodPagemap && hasCapSysAdmin() {
		kf, err := unix.Open(filepath.Join(procRoot, "kpageflags"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			p.kflags = kf
		}
	}
	p.setClasses(g)
	p.lanes = []*lane{p.newLane()}
	return p, nil
}

// guardSupport is what the kernel tells of MADV_GUARD_INSTALL guard
// markers. A marker is a swap-like page-table entry: where the method
// cannot tell it apart, it reads as a swapped page.
type guardSupport struct {
	markers bool // madvise takes MADV_GUARD_INSTALL: markers can exist
	scan    bool // PAGEMAP_SCAN takes PAGE_IS_GUARD
	bit     bool // pagemap entries of markers have bit 58 set
}

// setClasses sets p.known for p.method and the kernel's guard support g,
// and the PAGEMAP_SCAN category masks for MethodScan. Where guard markers
// can exist but the method cannot tell them from swap entries, neither
// ClassGuard nor ClassSwapped is known.
func (p *Pagemap) setClasses(g guardSupport) {
	const base = sys.PAGE_IS_PRESENT | sys.PAGE_IS_SWAPPED
	var guard uint64
	if g.scan {
		guard = sys.PAGE_IS_GUARD
	}
	p.anyof = base | guard
	p.ret = base | sys.PAGE_IS_PFNZERO | sys.PAGE_IS_HUGE | guard
	tells := g.bit // whether the method tells guard markers
	switch p.method {
	case MethodScan:
		p.known = allClasses
		tells = g.scan
	case MethodPagemap:
		p.known = ClassResident | ClassSwapped | ClassGuard
		if p.kflags >= 0 {
			p.known |= ClassZeroPage
		}
	}
	if !tells {
		p.known &^= ClassGuard
		if g.markers {
			p.known &^= ClassSwapped
		}
	}
}

// probeGuardMarkers installs a guard marker on a page of this process and
// reads its pagemap entry under procRoot: it reports whether markers can
// exist (madvise takes MADV_GUARD_INSTALL) and whether pagemap sets bit 58
// on them. When it cannot tell, it reports markers without the bit.
func probeGuardMarkers(procRoot string) (markers, bit bool) {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return true, false
	}
	defer unix.Munmap(mem)
	if err := unix.Madvise(mem, unix.MADV_GUARD_INSTALL); err != nil {
		// EINVAL: an advice this kernel does not know.
		return !errors.Is(err, unix.EINVAL), false
	}
	fd, err := unix.Open(filepath.Join(procRoot, "self", "pagemap"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, false
	}
	defer unix.Close(fd)
	var b [8]byte
	n, err := unix.Pread(fd, b[:], int64(uintptr(unsafe.Pointer(&mem[0]))/uintptr(ps)*8))
	return true, err == nil && n == len(b) && binary.NativeEndian.Uint64(b[:])&pmGuard != 0
}

// probeScan reports whether PAGEMAP_SCAN works on p.fd, and whether it
// takes PAGE_IS_GUARD. It tries an empty walk with the guard category,
// then without: a category the kernel does not know is EINVAL.
func (p *Pagemap) probeScan() (guard, scan bool, err error) {
	const base = sys.PAGE_IS_PRESENT | sys.PAGE_IS_SWAPPED
	l := &lane{p: p, regions: make([]sys.PageRegion, 1)}
	for _, g := range []uint64{sys.PAGE_IS_GUARD, 0} {
		p.anyof = base | g
		p.ret = base | sys.PAGE_IS_PFNZERO | sys.PAGE_IS_HUGE | g
		err := l.scan(0, 0, nil)
		switch {
		case err == nil:
			return g != 0, true, nil
		case errors.Is(err, unix.ENOTTY):
			return false, false, nil
		case errors.Is(err, unix.EINVAL):
			continue
		default:
			return false, false, err
		}
	}
	return false, false, nil
}

// hasCapSysAdmin reports whether this process has CAP_SYS_ADMIN in its
// effective set, which makes pagemap show page frame numbers.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[capSysAdm/32].Effective&(1<<(capSysAdm%32)) != 0
}

// PTEBlockShift is log2 of the address space one page-table page maps
// with pages of pageSize bytes: a table page holds pageSize/8 eight-byte
// entries, each mapping one page (21, 2 MiB, for 4 KiB pages). The upper
// levels map 9 bits more each (1 GiB per PMD page, 512 GiB per PUD page
// with 4 KiB pages).
func PTEBlockShift(pageSize int) uint {
	return uint(2*bits.TrailingZeros(uint(pageSize)) - 3)
}

// Lanes returns the number of lanes the last Measure call walked on at
// once (1: one walk after the other), 0 before the first.
func (p *Pagemap) Lanes() int { return p.used }

// Method returns the method in use, after any fallback.
func (p *Pagemap) Method() Method { return p.method }

// Known returns the classes the method in use can tell apart (see
// PageCounts.Known).
func (p *Pagemap) Known() PageClass { return p.known }

// Close closes the pagemap (and kpageflags) file.
func (p *Pagemap) Close() error {
	var err error
	for _, fd := range []*int{&p.fd, &p.kflags} {
		if *fd >= 0 {
			if e := unix.Close(*fd); e != nil && err == nil {
				err = os.NewSyscallError("close", e)
			}
			*fd = -1
		}
	}
	return err
}

// maxWalkGap is the widest gap between two ranges that Measure walks
// across rather than starting a new walk: one walk costs a system call
// per 512 page runs, a gap costs what it holds.
const maxWalkGap = 1 << 20

// Measure fills out[i] with the page counts of ranges[i]. ranges are
// sorted by Start, page aligned and do not overlap; they may be adjacent
// and may cover mappings the kernel merged. Every page is attributed to
// the range that holds its address, so a huge page straddling two ranges
// counts in both, each for its own part. Ranges, or parts of them, that
// are not mapped count nothing with MethodScan and MethodPagemap; mincore
// fails on them (ENOMEM).
//
// At least minLaneRanges ranges per lane, Measure splits the ranges into
// address-ordered parts walked at once, one lane each (see SetLanes): the
// kernel's walks of one address space run in parallel under its shared
// mmap lock. The figures do not depend on the split.
//
// After the process calls exec, Measure reopens its pagemap and measures
// the new address space.
func (p *Pagemap) Measure(ranges []PageRange, out []PageCounts) error {
	if len(out) < len(ranges) {
		return fmt.Errorf("pagemap: %d results for %d ranges", len(out), len(ranges))
	}
	for i, r := range ranges {
		if r.Start%p.pageSize != 0 || r.End%p.pageSize != 0 || r.End < r.Start {
			return fmt.Errorf("pagemap: range %d %#x-%#x is not page aligned", i, r.Start, r.End)
		}
		if i > 0 && r.Start < ranges[i-1].End {
			return fmt.Errorf("pagemap: range %d %#x-%#x overlaps or precedes %#x-%#x", i, r.Start, r.End, ranges[i-1].Start, ranges[i-1].End)
		}
	}
	err := p.measure(ranges, out)
	if again, rerr := p.reopenAfterExec(err); rerr != nil {
		return rerr
	} else if again {
		err = p.measure(ranges, out)
	}
	return p.gone(err)
}

// measure does Measure's walk of validated ranges, on one lane or several.
func (p *Pagemap) measure(ranges []PageRange, out []PageCounts) error {
	for i := range ranges {
		out[i] = PageCounts{Known: p.known}
	}
	n := max(min(p.maxLanes, len(ranges)/p.laneMin), 1)
	p.used = n
	if n == 1 {
		return p.lanes[0].measure(ranges, out)
	}
	for len(p.lanes) < n {
		p.lanes = append(p.lanes, p.newLane())
	}
	// Lanes 1 to n-1 walk on goroutines of their own, lane 0 on this one.
	for i, l := range p.lanes[:n] {
		lo, hi := i*len(ranges)/n, (i+1)*len(ranges)/n
		l.part, l.partOut = ranges[lo:hi], out[lo:hi]
		if i > 0 {
			p.wg.Add(1)
			go l.run()
		}
	}
	p.lanes[0].measurePart()
	p.wg.Wait()
	// The lowest part's error: the others most likely say the same.
	for _, l := range p.lanes[:n] {
		if l.err != nil {
			return l.err
		}
	}
	// A PTE block counts once, in the lowest range with an entry in it: a
	// block where one lane's part ends and the next one's begins was
	// counted by both.
	var prev *counter
	for i, l := range p.lanes[:n] {
		c := &l.count
		if !c.counted {
			continue
		}
		if prev != nil && c.firstBlock == prev.blockNext-1 {
			out[i*len(ranges)/n+c.firstRange].PTEBlocks--
		}
		prev = c
	}
	return nil
}

// minLaneRanges is the fewest ranges Measure gives a lane of its own:
// below it, starting a goroutine costs more than the walk it takes over.
const minLaneRanges = 512

// defaultLanes is the number of lanes Measure uses at most unless SetLanes
// says otherwise: two per CPU the Go runtime runs code on. Parts walk in
// uneven times, and more, smaller parts keep every CPU busy to the end:
// BenchmarkMeasure10k/scan on 2 CPUs took 16.8 ms on one lane, 12.2 ms on
// two and 10.3 ms on four.
func defaultLanes() int { return 2 * runtime.GOMAXPROCS(0) }

// SetLanes sets the most lanes (goroutines, each with its own system
// calls) one Measure call walks on at once; n < 1 restores the default,
// two per CPU the Go runtime runs code on. One lane walks every range in
// turn.
func (p *Pagemap) SetLanes(n int) {
	if n < 1 {
		n = defaultLanes()
	}
	p.maxLanes = n
}

// A lane walks ranges with buffers of its own, so that lanes can walk at
// once.
type lane struct {
	p       *Pagemap
	arg     sys.PmScanArg    // reused argument of PAGEMAP_SCAN
	regions []sys.PageRegion // PAGEMAP_SCAN output, scanVecLen long
	buf     []byte           // pagemap entries or kpageflags, raw
	ents    []uint64         // pagemap entries of one chunk, decoded
	cls     []PageClass      // classes of one chunk
	vec     []byte           // mincore vector
	count   counter          // measure's sink

	// Measure on several lanes gives each its part of the ranges and
	// results, and takes back its error, without allocating.
	part    []PageRange
	partOut []PageCounts
	err     error
	// run is l.runPart, made once: a go statement on a func value that
	// takes no arguments allocates nothing.
	run func()
}

// newLane returns a lane with the buffers p's method needs.
func (p *Pagemap) newLane() *lane {
	l := &lane{p: p}
	l.count.p = p
	l.run = l.runPart
	switch p.method {
	case MethodScan:
		l.regions = make([]sys.PageRegion, scanVecLen)
	case MethodPagemap:
		l.buf = make([]byte, pagemapChunk*8)
		l.ents = make([]uint64, pagemapChunk)
		l.cls = make([]PageClass, pagemapChunk)
	case MethodMincore:
		l.vec = make([]byte, 0, 64<<10)
	}
	return l
}

// measurePart measures the lane's part of Measure's ranges.
func (l *lane) measurePart() {
	l.err = l.measure(l.part, l.partOut)
	l.part, l.partOut = nil, nil
}

// runPart is measurePart on a goroutine of its own.
func (l *lane) runPart() {
	defer l.p.wg.Done()
	l.measurePart()
}

// measure adds the pieces of ranges (validated by Measure) to out, walking
// ranges a small gap apart in one go.
func (l *lane) measure(ranges []PageRange, out []PageCounts) error {
	c := &l.count
	*c = counter{p: l.p, ranges: ranges, out: out}
	defer func() { c.ranges, c.out = nil, nil }()
	for i := 0; i < len(ranges); {
		// Adjacent ranges are walked in one go, and so are ranges a small
		// gap apart (a guard mapping between two stacks) where the walk
		// may cross unmapped or foreign pages: what lies in a gap is
		// classified but counted nowhere. mincore fails on unmapped gaps.
		j := i + 1
		for j < len(ranges) && (ranges[j].Start == ranges[j-1].End ||
			l.p.method != MethodMincore && ranges[j].Start-ranges[j-1].End <= maxWalkGap) {
			j++
		}
		if err := l.walk(ranges[i].Start, ranges[j-1].End, c); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// Runs calls fn for each maximal run [start, end) of pages inside r that
// share one class set, in address order: ClassResident (with ClassHuge
// for pages of a huge page), ClassZeroPage, ClassSwapped or ClassGuard.
// Pages that are none of these (never touched, or freed) are skipped, and
// so are those of a class missing from Known (guard markers that read as
// swap entries); without ClassZeroPage in Known, zero-page mappings are
// reported as ClassResident. After the process calls exec, Runs reports
// the runs of its new address space.
func (p *Pagemap) Runs(r PageRange, fn func(start, end uint64, class PageClass)) error {
	if r.Start%p.pageSize != 0 || r.End%p.pageSize != 0 || r.End < r.Start {
		return fmt.Errorf("pagemap: range %#x-%#x is not page aligned", r.Start, r.End)
	}
	m := &merger{fn: fn, known: p.known}
	err := p.lanes[0].walk(r.Start, r.End, m)
	// A file left behind by an exec fails the walk's first system call:
	// fn has seen nothing, and the walk is done again on the new address
	// space. An exec in the middle of the walk is an error.
	if !m.sent {
		if again, rerr := p.reopenAfterExec(err); rerr != nil {
			return rerr
		} else if again {
			m.have = false
			err = p.lanes[0].walk(r.Start, r.End, m)
		}
	}
	if err != nil {
		return p.gone(err)
	}
	m.flush()
	return nil
}

// A sink receives the classified pieces of a walk in ascending address
// order. Pieces are not necessarily maximal.
type sink interface {
	piece(start, end uint64, c PageClass)
}

func (l *lane) walk(lo, hi uint64, s sink) error {
	if lo >= hi {
		return nil
	}
	switch l.p.method {
	case MethodScan:
		return l.scan(lo, hi, s)
	case MethodPagemap:
		return l.readPagemap(lo, hi, s)
	default:
		return l.mincore(lo, hi, s)
	}
}

// scan walks [lo, hi) with PAGEMAP_SCAN. With s nil it only checks that
// the call works (an empty walk).
func (l *lane) scan(lo, hi uint64, s sink) error {
	p, a := l.p, &l.arg
	*a = sys.PmScanArg{
		Start:             lo,
		End:               hi,
		Vec:               uint64(uintptr(unsafe.Pointer(&l.regions[0]))),
		VecLen:            uint64(len(l.regions)),
		CategoryAnyofMask: p.anyof,
		ReturnMask:        p.ret,
	}
	defer runtime.KeepAlive(l.regions)
	for {
		n, err := sys.PagemapScan(p.fd, a)
		if err != nil {
			return p.wrap(fmt.Sprintf("scan %#x-%#x", a.Start, hi), err)
		}
		if n > len(l.regions) {
			return fmt.Errorf("pagemap %s: scan returned %d regions for %d slots", p.path, n, len(l.regions))
		}
		for _, r := range l.regions[:n] {
			c := scanClass(r.Categories)
			if c == 0 {
				continue
			}
			s.piece(max(r.Start, lo), min(r.End, hi), c)
		}
		if n < len(l.regions) || a.WalkEnd >= hi {
			return nil
		}
		// The buffer filled: go on from where the walk stopped, never
		// before the end of a region already counted.
		next := max(a.WalkEnd, l.regions[n-1].End)
		if next <= a.Start {
			return fmt.Errorf("pagemap %s: scan made no progress at %#x", p.path, a.Start)
		}
		a.Start, a.WalkEnd = next, 0
	}
}

// scanClass maps PAGE_IS_* categories to a class set.
func scanClass(cat uint64) PageClass {
	switch {
	case cat&sys.PAGE_IS_PRESENT != 0:
		if cat&sys.PAGE_IS_PFNZERO != 0 {
			return ClassZeroPage
		}
		if cat&sys.PAGE_IS_HUGE != 0 {
			return ClassResident | ClassHuge
		}
		return ClassResident
	case cat&sys.PAGE_IS_GUARD != 0:
		// A guard marker is a swap-like page table entry: the kernel
		// reports it as swapped too.
		return ClassGuard
	case cat&sys.PAGE_IS_SWAPPED != 0:
		return ClassSwapped
	}
	return 0
}

// readPagemap reads the pagemap entries of [lo, hi) a chunk at a time.
func (l *lane) readPagemap(lo, hi uint64, s sink) error {
	p := l.p
	ps := p.pageSize
	for a := lo; a < hi; {
		n := min((hi-a)/ps, pagemapChunk)
		buf := l.buf[:n*8]
		got, err := unix.Pread(p.fd, buf, int64(a/ps*8))
		if err != nil {
			return p.wrap(fmt.Sprintf("read %#x-%#x", a, hi), os.NewSyscallError("pread", err))
		}
		if got == 0 {
			return p.wrap(fmt.Sprintf("read %#x-%#x", a, hi), errNoMM)
		}
		got /= 8
		ents, cls := l.ents[:got], l.cls[:got]
		for i := range ents {
			ents[i] = binary.NativeEndian.Uint64(buf[i*8:])
		}
		if err := l.classify(ents, cls); err != nil {
			return err
		}
		for i := 0; i < got; {
			j := i + 1
			for j < got && cls[j] == cls[i] {
				j++
			}
			if cls[i] != 0 {
				s.piece(a+uint64(i)*ps, a+uint64(j)*ps, cls[i])
			}
			i = j
		}
		a += uint64(got) * ps
	}
	return nil
}

// classify sets cls[i] to the class of pagemap entry ents[i], looking
// present pages up in /proc/kpageflags when p.kflags is open, one read per
// run of consecutive frame numbers.
func (l *lane) classify(ents []uint64, cls []PageClass) error {
	p := l.p
	for i, e := range ents {
		switch {
		case e&pmPresent != 0:
			cls[i] = ClassResident
		case e&pmGuard != 0 && p.known&ClassGuard != 0:
			// Guard markers are swap-like entries: bit 62 is set too.
			cls[i] = ClassGuard
		case e&pmSwapped != 0:
			cls[i] = ClassSwapped
		default:
			cls[i] = 0
		}
	}
	if p.kflags < 0 {
		return nil
	}
	for i := 0; i < len(ents); {
		if cls[i] != ClassResident {
			i++
			continue
		}
		pfn := ents[i] & pmPFNMask
		if pfn == 0 {
			return fmt.Errorf("pagemap %s: page frame numbers hidden; the zero page cannot be told apart", p.path)
		}
		j := i + 1
		for j < len(ents) && cls[j] == ClassResident && ents[j]&pmPFNMask == pfn+uint64(j-i) {
			j++
		}
		buf := l.buf[:(j-i)*8] // entries are decoded already: the bytes are free
		got, err := unix.Pread(p.kflags, buf, int64(pfn*8))
		if err != nil {
			return fmt.Errorf("pagemap %s: kpageflags of pfn %#x: %w", p.path, pfn, os.NewSyscallError("pread", err))
		}
		if got != len(buf) {
			return fmt.Errorf("pagemap %s: kpageflags of pfn %#x: short read %d of %d bytes", p.path, pfn, got, len(buf))
		}
		for k := i; k < j; k++ {
			if binary.NativeEndian.Uint64(buf[(k-i)*8:])&kpfZero != 0 {
				cls[k] = ClassZeroPage
			}
		}
		i = j
	}
	return nil
}

// mincore asks mincore(2) about [lo, hi) of this process.
func (l *lane) mincore(lo, hi uint64, s sink) error {
	ps := l.p.pageSize
	for a := lo; a < hi; {
		n := int(min((hi-a)/ps, mincoreChunk))
		if cap(l.vec) < n {
			l.vec = make([]byte, n)
		}
		vec := l.vec[:n]
		if err := sys.Mincore(uintptr(a), int(ps), vec); err != nil {
			return fmt.Errorf("residency of %#x-%#x: %w", a, a+uint64(n)*ps, err)
		}
		const lsb = 0x0101010101010101
		for i := 0; i < n; {
			if i+8 <= n && binary.LittleEndian.Uint64(vec[i:])&lsb == 0 {
				i += 8
				continue
			}
			if vec[i]&1 == 0 {
				i++
				continue
			}
			j := i + 1
			for j < n && vec[j]&1 != 0 {
				j++
			}
			s.piece(a+uint64(i)*ps, a+uint64(j)*ps, ClassResident)
			i = j
		}
		a += uint64(n) * ps
	}
	return nil
}

// open opens p.path.
func (p *Pagemap) open() (int, error) {
	fd, err := unix.Open(p.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, goneErr("pagemap", &fs.PathError{Op: "open", Path: p.path, Err: err})
	}
	return fd, nil
}

// wrap adds the pagemap path and what was done to err.
func (p *Pagemap) wrap(what string, err error) error {
	return fmt.Errorf("pagemap %s: %s: %w", p.path, what, err)
}

// reopenAfterExec reopens the pagemap when err, from a walk, says that
// the open file reaches no address space (PAGEMAP_SCAN's ESRCH, an empty
// read) while the process still runs: it called exec, and the file stays
// bound to the address space exec replaced. It reports whether the file
// was reopened, so that the walk is worth doing again.
func (p *Pagemap) reopenAfterExec(err error) (bool, error) {
	if !p.other() || !errors.Is(err, unix.ESRCH) && !errors.Is(err, errNoMM) || p.exited() {
		return false, nil
	}
	fd, err := p.open()
	if err != nil {
		return false, err
	}
	_ = unix.Close(p.fd)
	p.fd = fd
	return true, nil
}

// gone marks err ErrGone when the process has exited.
func (p *Pagemap) gone(err error) error {
	if err == nil || errors.Is(err, ErrGone) || !p.exited() {
		return err
	}
	return fmt.Errorf("%w: %w", ErrGone, err)
}

// other reports whether p measures another process, not this one.
func (p *Pagemap) other() bool {
	return p.fd >= 0 && p.pid != 0 && p.pid != os.Getpid()
}

// exited reports whether the measured process (not this one) no longer
// exists, is a zombie, has no address space (it is exiting), or is not
// the process the pagemap was opened for (its pid was reused).
func (p *Pagemap) exited() bool {
	if !p.other() {
		return false
	}
	st, err := p.readStat()
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
	}
	return st.state == 'Z' || st.state == 'X' || st.vsize == 0 || st.started != p.started
}

// procStat holds the fields of /proc/PID/stat that exited reads.
type procStat struct {
	state   byte   // field 3: R, S, D, Z, X...
	started uint64 // field 22 (starttime): clock ticks after boot
	vsize   uint64 // field 23: bytes of address space, 0 without one
}

// readStat reads the process's /proc/PID/stat.
func (p *Pagemap) readStat() (procStat, error) {
	st, err := p.proc.Stat()
	if err != nil {
		return procStat{}, fmt.Errorf("stat of %d: %w", p.pid, err)
	}
	return statOf(st), nil
}

// statOf takes the fields procStat holds from procfs's ProcStat.
func statOf(st procfs.ProcStat) procStat {
	var state byte
	if st.State != "" {
		state = st.State[0]
	}
	return procStat{state: state, started: st.Starttime, vsize: uint64(st.VSize)}
}

// counter is Measure's sink: it attributes each piece to the ranges that
// hold its addresses.
type counter struct {
	p      *Pagemap
	ranges []PageRange
	out    []PageCounts
	k      int    // first range that may still receive pieces
	runEnd uint64 // end of the last resident piece, for Runs
	// blockNext is one past the index of the last PTE block counted
	// (address >> PTEBlockShift): pieces come in ascending address order,
	// so a block below it has been counted already.
	blockNext uint64
	// The first PTE block counted, and the range it counted in, for
	// Measure to join lanes: counted says whether there is one.
	counted    bool
	firstBlock uint64
	firstRange int
}

func (c *counter) piece(start, end uint64, cl PageClass) {
	for c.k < len(c.ranges) && c.ranges[c.k].End <= start {
		c.k++
	}
	for k := c.k; k < len(c.ranges); k++ {
		r := c.ranges[k]
		if r.Start >= end {
			break
		}
		s, e := max(start, r.Start), min(end, r.End)
		if s >= e {
			continue
		}
		n := int64(e - s)
		o := &c.out[k]
		if cl != 0 {
			shift := c.p.blockShift
			if first, last := max(s>>shift, c.blockNext), (e-1)>>shift; first <= last {
				if !c.counted {
					c.counted, c.firstBlock, c.firstRange = true, first, k
				}
				o.PTEBlocks += int(last - first + 1)
				c.blockNext = last + 1
			}
		}
		// A class the method cannot tell (a guard marker read as a swap
		// entry) holds an entry but counts in no figure.
		switch cl := cl & c.p.known; {
		case cl&ClassResident != 0:
			o.PresentBytes += n
			o.ResidentBytes += n
			if cl&ClassHuge != 0 {
				o.HugeBytes += n
			}
			if o.Lowest == 0 {
				o.Lowest = s
			}
			if s != c.runEnd || s == r.Start {
				o.Runs++
			}
			c.runEnd = e
		case cl&ClassZeroPage != 0:
			o.PresentBytes += n
			o.ZeroPageBytes += n
		case cl&ClassSwapped != 0:
			o.SwappedBytes += n
		case cl&ClassGuard != 0:
			o.GuardBytes += n
		}
	}
}

// merger is Runs' sink: it joins touching pieces of one class set.
type merger struct {
	fn         func(start, end uint64, class PageClass)
	known      PageClass // the classes reported; pieces of others are left out
	sent       bool      // fn was called
	have       bool
	start, end uint64
	class      PageClass
}

func (m *merger) piece(start, end uint64, c PageClass) {
	if c &= m.known; c == 0 {
		return
	}
	if m.have && start == m.end && c == m.class {
		m.end = end
		return
	}
	m.flush()
	m.have, m.start, m.end, m.class = true, start, end, c
}

func (m *merger) flush() {
	if m.have {
		m.fn(m.start, m.end, m.class)
		m.have, m.sent = false, true
	}
}
