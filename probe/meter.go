package probe

import (
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

// StackSample is one stack at one sample.
type StackSample struct {
	// Depth is the depth the schedule last gave this stack, bytes.
	Depth int64
	// RSS is the stack's resident bytes from mincore(2) over the whole
	// mapping, guard included.
	RSS int64
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
	proc   *procread.Reader
	vec    []byte
	vmas   []vmaRSS
	// noHuge[i] is set once smaps showed every VMA of stack i with
	// VmFlags nh (MADV_NOHUGEPAGE, or MAP_STACK on Linux >= 6.7).
	noHuge []bool
}

type vmaRSS struct{ start, end, rss, anonHuge uint64 }

func newMeter(stacks []*mmapstack.Stack, proc *procread.Reader) *meter {
	byBase := make([]int, len(stacks))
	for i := range byBase {
		byBase[i] = i
	}
	slices.SortFunc(byBase, func(a, b int) int { return int(stacks[a].Base()) - int(stacks[b].Base()) })
	return &meter{stacks: stacks, byBase: byBase, proc: proc, noHuge: make([]bool, len(stacks))}
}

// learnHugeEligibility reads smaps once and records which stacks can never
// be backed by transparent huge pages.
func (m *meter) learnHugeEligibility() error {
	for i := range m.noHuge {
		m.noHuge[i] = true
	}
	return m.proc.Smaps(func(v *procread.VMA) error {
		if v.Has("nh") {
			return nil
		}
		for k := m.firstAbove(v.Start); k < len(m.byBase) && uint64(m.stacks[m.byBase[k]].Base()) < v.End; k++ {
			m.noHuge[m.byBase[k]] = false
		}
		return nil
	})
}

// residency fills s.Stacks[i].RSS from mincore over each whole mapping, and
// s.StackRSS.
func (m *meter) residency(s *Sample) error { return m.residencyWithin(s, nil) }

// residencyWithin is residency limited, for stack i, to the pages
// [Top-deepest(i), Top), widened down to a 2 MiB boundary unless smaps
// showed the stack cannot get transparent huge pages (VmFlags nh).
// Anonymous private memory becomes resident only by a write fault,
// MAP_POPULATE or khugepaged collapsing a 2 MiB block around resident pages,
// so nothing below that window can be resident; mincore over a 1 MiB window
// costs a fraction of one over 100 MiB. deepest nil means whole mappings.
func (m *meter) residencyWithin(s *Sample, deepest func(i int) int64) error {
	page := int64(mmapstack.PageSize())
	if len(s.Stacks) != len(m.stacks) {
		s.Stacks = make([]StackSample, len(m.stacks))
	}
	s.StackRSS = 0
	for i, st := range m.stacks {
		lo, top := st.Base(), st.Top()
		if deepest != nil {
			lo = max(lo, top-uintptr(mmapstack.RoundUp(int(deepest(i)))))
			if !m.noHuge[i] {
				lo = max(st.Base(), lo&^(mmapstack.HugeBlock-1))
			}
		}
		n, vec, err := procread.ResidentPages(lo, top-lo, m.vec)
		m.vec = vec
		if err != nil {
			return fmt.Errorf("residency of stack %d: %w", i, err)
		}
		s.Stacks[i].RSS = int64(n) * page
		s.Stacks[i].SmapsRSS, s.Stacks[i].AnonHuge = -1, -1
		s.StackRSS += s.Stacks[i].RSS
	}
	return nil
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
// cross-checks them against the mincore figures already in s.
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
		var vmaSum, hugeSum, mincoreSum uint64
		for end, grew := uint64(first.Top()), true; grew; {
			grew = false
			for si < len(m.byBase) && (len(run) == 0 || uint64(m.stacks[m.byBase[si]].Base()) < end) {
				idx := m.byBase[si]
				run = append(run, idx)
				mincoreSum += uint64(s.Stacks[idx].RSS)
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
		if vmaSum != mincoreSum {
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
