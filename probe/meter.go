package probe

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// StackInfo describes one reserved stack for the recorder.
type StackInfo struct {
	Index int
	Kind  string // "task", "client" or "peer"
	Base  uintptr
	Size  int
}

// StackSample is one stack at one sample. Every figure covers the
// stack's whole mapping, guard included (a guard page is never resident,
// so the figures equal those of the usable part), and is attributed by
// address: a huge page that straddles two stacks counts in each for the
// pages inside it.
type StackSample struct {
	// Depth is the depth the schedule last gave this stack, bytes.
	Depth int64
	// RSS is the memory the stack holds, bytes: its resident pages, the
	// shared zero page excluded (equal to smaps Rss of its own VMAs).
	RSS int64
	// HugeBytes are resident bytes in transparent huge pages,
	// ZeroPageBytes bytes mapped to the shared zero page (present to
	// mincore, not memory), SwappedBytes bytes swapped out; -1 when the
	// method cannot tell the class apart.
	HugeBytes, ZeroPageBytes, SwappedBytes int64
	// LowHugeBytes are the resident bytes at the stack's low end that
	// belong to a huge page beginning below the stack; -1 when the method
	// cannot see huge pages.
	LowHugeBytes int64
	// SmapsRSS and AnonHuge come from /proc/self/smaps; -1 when smaps was
	// not read for this sample or the stack shares its VMA with others.
	SmapsRSS int64
	AnonHuge int64
}

// Sample is one measurement of every stack plus the process totals.
type Sample struct {
	Seq     int
	Elapsed time.Duration
	Totals  Totals
	Stacks  []StackSample
	// StackRSS sums Stacks[i].RSS.
	StackRSS int64
	// Expected is what the schedule predicts for StackRSS.
	Expected int64
	// Method is the residency method that measured Stacks.
	Method procread.Method
	// Check is set when smaps was read for this sample.
	Check *SmapsCheck
	// Cost is the wall time the measurement took.
	Cost time.Duration
}

// Recorder receives every sample as it is taken, e.g. to stream it to CSV.
type Recorder interface {
	Begin(stacks []StackInfo) error
	Record(s *Sample) error
}

// meter measures a fixed set of stacks. It is used by one goroutine at a time.
type meter struct {
	stacks []*mmapstack.Stack
	byBase []int // stack indexes in address order
	// ranges[k] is stack byBase[k]'s whole mapping, counts[k] its figures.
	ranges []procread.PageRange
	counts []procread.PageCounts
	pm     *procread.Pagemap
	proc   *procread.Reader
	vmas   []vmaRSS
}

type vmaRSS struct{ start, end, rss, anonHuge uint64 }

// newMeter measures stacks with pm; proc reads the process totals and smaps.
func newMeter(stacks []*mmapstack.Stack, proc *procread.Reader, pm *procread.Pagemap) *meter {
	byBase := make([]int, len(stacks))
	for i := range byBase {
		byBase[i] = i
	}
	slices.SortFunc(byBase, func(a, b int) int { return cmp.Compare(stacks[a].Base(), stacks[b].Base()) })
	ranges := make([]procread.PageRange, len(stacks))
	for k, i := range byBase {
		ranges[k] = procread.PageRange{Start: uint64(stacks[i].Base()), End: uint64(stacks[i].Top())}
	}
	return &meter{stacks: stacks, byBase: byBase, ranges: ranges, counts: make([]procread.PageCounts, len(stacks)), proc: proc, pm: pm}
}

// missing names the per-stack page classes pm cannot tell apart, as
// samples.csv and summary.json spell them.
func missingClasses(known procread.PageClass) []string {
	var out []string
	for _, c := range []struct {
		class procread.PageClass
		name  string
	}{{procread.ClassHuge, "huge_bytes"}, {procread.ClassZeroPage, "zero_page_bytes"}, {procread.ClassSwapped, "swapped_bytes"}} {
		if known&c.class == 0 {
			out = append(out, c.name)
		}
	}
	return out
}

// residency measures every stack's whole mapping with one Measure call and
// fills s.Stacks, s.StackRSS and s.Method.
func (m *meter) residency(s *Sample) error {
	if len(s.Stacks) != len(m.stacks) {
		s.Stacks = make([]StackSample, len(m.stacks))
	}
	if err := m.pm.Measure(m.ranges, m.counts); err != nil {
		return fmt.Errorf("residency of %d stacks: %w", len(m.stacks), err)
	}
	known := m.pm.Known()
	class := func(c procread.PageClass, v int64) int64 {
		if known&c == 0 {
			return -1
		}
		return v
	}
	s.StackRSS = 0
	s.Method = m.pm.Method()
	for k, i := range m.byBase {
		c := &m.counts[k]
		st := &s.Stacks[i]
		st.RSS = c.ResidentBytes
		st.HugeBytes = class(procread.ClassHuge, c.HugeBytes)
		st.ZeroPageBytes = class(procread.ClassZeroPage, c.ZeroPageBytes)
		st.SwappedBytes = class(procread.ClassSwapped, c.SwappedBytes)
		st.LowHugeBytes = -1
		if known&procread.ClassHuge != 0 {
			low, err := m.lowHuge(m.ranges[k], c)
			if err != nil {
				return fmt.Errorf("residency of stack %d: %w", i, err)
			}
			st.LowHugeBytes = low
		}
		st.SmapsRSS, st.AnonHuge = -1, -1
		s.StackRSS += st.RSS
	}
	return nil
}

// lowHuge is the resident bytes at r's low end that belong to a huge page
// beginning below r. A PMD-mapped huge page covers a 2 MiB-aligned block,
// so one that holds r.Start when r.Start is not 2 MiB aligned began below
// it; only then is the low end looked at, over less than 2 MiB.
func (m *meter) lowHuge(r procread.PageRange, c *procread.PageCounts) (int64, error) {
	const block = mmapstack.HugeBlock
	if c.HugeBytes == 0 || c.Lowest != r.Start || r.Start%block == 0 {
		return 0, nil
	}
	low := procread.PageRange{Start: r.Start, End: min(r.End, (r.Start+block)&^(block-1))}
	var n int64
	err := m.pm.Runs(low, func(start, end uint64, class procread.PageClass) {
		if start == r.Start && class&procread.ClassHuge != 0 {
			n = int64(end - start)
		}
	})
	return n, err
}

// crossCheckLimit bounds the address space the cross-check walks with
// mincore, whose cost follows the bytes reserved (about a third of a
// second per TiB on the team's machines): beyond it an evenly spread
// subset of the stacks, every k-th in address order, is compared.
const crossCheckLimit = 1 << 40

// crossCheck compares, page for page, the present pages (resident or zero
// page) the method in use sees in the stacks with what a second method
// sees: mincore, or the scan when mincore is the method in use. It returns
// nil when no second method can run here.
func (m *meter) crossCheck(procRoot string) (*CrossCheck, error) {
	other := procread.MethodMincore
	if m.pm.Method() == procread.MethodMincore {
		other = procread.MethodScan
	}
	pm2, err := procread.OpenPagemap(procRoot, 0, other)
	if err != nil {
		// No second method here (no pagemap to scan): nothing to compare.
		return nil, nil
	}
	defer pm2.Close()
	if pm2.Method() != other {
		return nil, nil // the scan fell back to pagemap reads, which the method in use already is
	}
	cc := &CrossCheck{Method: other.String(), StacksOf: len(m.stacks), Agree: true}
	var total uint64
	for _, r := range m.ranges {
		total += r.End - r.Start
	}
	stride := 1
	if total > crossCheckLimit {
		stride = int((total + crossCheckLimit - 1) / crossCheckLimit)
	}
	var a, b []procread.PageRange
	for k := 0; k < len(m.ranges); k += stride {
		r := m.ranges[k]
		if a, err = presentRuns(m.pm, r, a[:0]); err != nil {
			return nil, fmt.Errorf("cross-check of stack %d: %w", m.byBase[k], err)
		}
		if b, err = presentRuns(pm2, r, b[:0]); err != nil {
			return nil, fmt.Errorf("cross-check of stack %d with %s: %w", m.byBase[k], other, err)
		}
		for _, x := range a {
			cc.PresentBytes += int64(x.End - x.Start)
		}
		if d := differingBytes(a, b); d > 0 {
			cc.DifferingBytes += d
			cc.DifferingStacks++
			cc.Agree = false
		}
		cc.Stacks++
	}
	return cc, nil
}

// presentRuns appends to out the maximal runs of present pages (resident,
// huge or zero page) that pm sees in r, in address order.
func presentRuns(pm *procread.Pagemap, r procread.PageRange, out []procread.PageRange) ([]procread.PageRange, error) {
	err := pm.Runs(r, func(start, end uint64, class procread.PageClass) {
		if class&(procread.ClassResident|procread.ClassZeroPage) == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].End == start {
			out[n-1].End = end
			return
		}
		out = append(out, procread.PageRange{Start: start, End: end})
	})
	return out, err
}

// differingBytes is the size of the symmetric difference of two sorted,
// non-overlapping run lists: the bytes present in one and not the other.
func differingBytes(a, b []procread.PageRange) int64 {
	var both int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].Start, b[j].Start), min(a[i].End, b[j].End)
		if lo < hi {
			both += int64(hi - lo)
		}
		if a[i].End < b[j].End {
			i++
		} else {
			j++
		}
	}
	var sum int64
	for _, r := range a {
		sum += int64(r.End - r.Start)
	}
	for _, r := range b {
		sum += int64(r.End - r.Start)
	}
	return sum - 2*both
}

// totals reads the process totals into s.
func (m *meter) totals(s *Sample) error {
	t, err := m.proc.Totals()
	if err != nil {
		return err
	}
	s.Totals = totalsFrom(t)
	return nil
}

// smaps reads /proc/self/smaps, attributes VMAs to stacks by address, and
// cross-checks them against the page-table figures already in s.
//
// Stacks and the VMAs overlapping them form runs of overlapping intervals.
// A run with one stack is that stack's own VMAs (one, or two with an
// mprotect guard): smaps gives its Rss directly. A run of several stacks is
// adjacent mappings the kernel merged: only their sum is comparable. A run
// whose VMAs reach past its stacks is shared with other memory and is not
// compared.
func (m *meter) smaps(s *Sample) error {
	if len(m.stacks) == 0 {
		return nil
	}
	lo := m.stacks[m.byBase[0]].Base()
	hi := uintptr(0)
	for _, st := range m.stacks {
		hi = max(hi, st.Top())
	}
	m.vmas = m.vmas[:0]
	err := m.proc.Smaps(func(v *procread.VMA) error {
		if v.End <= uint64(lo) || v.Start >= uint64(hi) || !m.overlapsStack(v.Start, v.End) {
			return nil
		}
		m.vmas = append(m.vmas, vmaRSS{v.Start, v.End, v.Rss, v.AnonHugePages})
		return nil
	})
	if err != nil {
		return err
	}
	c := &SmapsCheck{VMAs: len(m.vmas), Agree: true}
	vi, si := 0, 0
	for si < len(m.byBase) {
		// Grow one run of overlapping stacks and VMAs.
		first := m.stacks[m.byBase[si]]
		runLo, runHi := uint64(first.Base()), uint64(0)
		vmaLo, vmaHi := ^uint64(0), uint64(0)
		var run []int
		var vmaSum, hugeSum, measuredSum uint64
		for end, grew := uint64(first.Top()), true; grew; {
			grew = false
			for si < len(m.byBase) && (len(run) == 0 || uint64(m.stacks[m.byBase[si]].Base()) < end) {
				idx := m.byBase[si]
				run = append(run, idx)
				measuredSum += uint64(s.Stacks[idx].RSS)
				runHi = max(runHi, uint64(m.stacks[idx].Top()))
				end = max(end, runHi)
				si, grew = si+1, true
			}
			for vi < len(m.vmas) && m.vmas[vi].start < end {
				v := m.vmas[vi]
				vmaLo, vmaHi = min(vmaLo, v.start), max(vmaHi, v.end)
				vmaSum += v.rss
				hugeSum += v.anonHuge
				end = max(end, v.end)
				vi, grew = vi+1, true
			}
		}
		if vmaLo < runLo || vmaHi > runHi {
			continue // shares a VMA with memory that is not a stack
		}
		c.RSSBytesTotal += int64(vmaSum)
		if len(run) == 1 {
			c.OwnVMAStacks++
			s.Stacks[run[0]].SmapsRSS = int64(vmaSum)
			s.Stacks[run[0]].AnonHuge = int64(hugeSum)
		} else {
			c.Groups++
		}
		if vmaSum != measuredSum {
			c.Agree = false
			c.Disagreements++
		}
	}
	s.Check = c
	return nil
}

// overlapsStack reports whether [start, end) overlaps any stack.
func (m *meter) overlapsStack(start, end uint64) bool {
	k := m.firstAbove(start)
	return k < len(m.byBase) && uint64(m.stacks[m.byBase[k]].Base()) < end
}

// firstAbove is the position in byBase of the first stack whose top is
// above addr.
func (m *meter) firstAbove(addr uint64) int {
	k, _ := slices.BinarySearchFunc(m.byBase, addr, func(idx int, addr uint64) int {
		if uint64(m.stacks[idx].Top()) <= addr {
			return -1
		}
		return 1
	})
	return k
}

// anonHugeTotal sums AnonHugePages of every VMA overlapping a stack.
func (m *meter) anonHugeTotal() int64 {
	var n uint64
	for _, v := range m.vmas {
		n += v.anonHuge
	}
	return int64(n)
}
