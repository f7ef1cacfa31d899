package watch

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"stackprobe/procread"
	"stackprobe/stackfind"
)

// sampler holds the state of one watch: the readers of the target, the
// buffers reused every sample, the stacks seen so far and the sample
// waiting to be confirmed.
//
// A sample's figures are recorded only once the next read of the maps
// shows each stack still mapped (same End, and same Start unless it is the
// main stack, which grows down): a stack unmapped between the maps read and
// the residency read would otherwise be recorded as empty. So figures lag
// one sample, and the last sample before the target exits is dropped. A
// stack still mapped but not found in a sample (found by thread, its
// thread running then) gets no figures from it and stays the same stack;
// it is gone once its mapping is.
type sampler struct {
	dir      *procread.ProcDir
	pm       *procread.Pagemap
	find     stackfind.Options
	start    time.Time
	pageSize uint64
	known    procread.PageClass // the classes the residency method tells apart
	rec      Recorder

	maps    []procread.Mapping
	threads []procread.Thread
	found   []stackfind.Stack
	ranges  []procread.PageRange
	counts  []procread.PageCounts
	cands   []procread.PageRange

	// Guard markers (markers): the lowest pages to look at this sample and
	// their mappings; the marked mappings not found otherwise, with their
	// counts, for stackfind.AddMarked; the mappings looked at and how
	// often, and those that held markers, by Start (with the buffers of
	// the next sample's).
	looks, lookMaps      []procread.PageRange
	add                  []procread.PageRange
	addCounts            []procread.PageCounts
	checked, nextChecked []markerLook
	marked, nextMarked   []procread.PageRange

	mapStacks int     // stacks to map each sample (Options.PageMapStacks)
	pageMap   PageMap // of the last recorded sample
	nextMap   PageMap // the next one, built by confirm

	pending  *pending
	spare    *pending
	stacks   []Stack
	live     []liveStack // the stacks not gone as of the last recorded sample, by End
	nextLive []liveStack // the next sample's, built by confirm
	last     *Totals
	timeline timeline
	out      Sample
	samples  int // recorded
	measured int // completed
	costSum  time.Duration
	costMax  time.Duration
}

// liveStack ties a stack not gone, by its End, to its index in
// sampler.stacks.
type liveStack struct {
	end uint64
	idx int
}

// markerLook is a mapping looked at for guard markers, and how often.
type markerLook struct {
	r     procread.PageRange
	looks int
}

// pending is a measured sample waiting for the next maps read.
type pending struct {
	timeNS int64
	cost   time.Duration
	found  []stackfind.Stack
	counts []procread.PageCounts
	totals procread.ProcTotals
	vmas   int
	mapAt  []int       // indexes in found of the stacks mapped, ascending
	rows   [][]PageRun // their runs of present pages, top first
}

// markerLooks is how many samples look at the lowest page of a read-write
// mapping for guard markers: markers are installed right after the mapping
// is made, so two looks catch one installed between the maps read and the
// first look.
const markerLooks = 2

func newSampler(dir *procread.ProcDir, pm *procread.Pagemap, find stackfind.Options, rec Recorder, timelineLen int) *sampler {
	return &sampler{
		dir:      dir,
		pm:       pm,
		find:     find,
		start:    time.Now(),
		pageSize: uint64(os.Getpagesize()),
		known:    pm.Known(),
		rec:      rec,
		timeline: timeline{max: timelineLen},
	}
}

// classFigures names the Stack figure (its JSON and CSV name) of each page
// class other than ClassResident, in the order of Result.Missing.
var classFigures = [...]struct {
	class procread.PageClass
	name  string
}{
	{procread.ClassHuge, "huge_bytes"},
	{procread.ClassZeroPage, "zero_page_bytes"},
	{procread.ClassSwapped, "swapped_bytes"},
	{procread.ClassGuard, "guard_marker_bytes"},
}

// missing names the Stack figures the residency method cannot measure
// (Result.Missing), nil when it measures them all.
func (s *sampler) missing() []string {
	var m []string
	for _, f := range classFigures {
		if s.known&f.class == 0 {
			m = append(m, f.name)
		}
	}
	return m
}

// sample takes one sample. It returns alive false, and no error, when the
// target turned out to be gone.
func (s *sampler) sample() (alive bool, err error) {
	t0 := time.Now()
	timeNS := int64(t0.Sub(s.start))
	if err := s.scan(); err != nil {
		return gone(err)
	}
	if s.find.Guard && s.known&procread.ClassGuard != 0 {
		if err := s.markers(); err != nil {
			return gone(err)
		}
	}
	if err := s.confirm(); err != nil {
		return true, err
	}
	s.ranges = s.ranges[:0]
	for i := range s.found {
		s.ranges = append(s.ranges, s.found[i].Range())
	}
	s.counts = slices.Grow(s.counts[:0], len(s.ranges))[:len(s.ranges)]
	if err := s.pm.Measure(s.ranges, s.counts); err != nil {
		return gone(fmt.Errorf("measure %d stacks: %w", len(s.ranges), err))
	}
	tot, err := s.dir.Totals()
	if err != nil {
		return gone(err)
	}
	p := s.spare
	if p == nil {
		p = new(pending)
	}
	s.spare = nil
	if err := s.readPageMap(p); err != nil {
		return gone(err)
	}
	p.timeNS, p.totals, p.vmas = timeNS, tot, len(s.maps)
	// The pending sample takes this sample's buffers; the next scan fills
	// the ones it held.
	p.found, s.found = s.found, p.found[:0]
	p.counts, s.counts = s.counts, p.counts[:0]
	p.cost = time.Since(t0)
	s.pending = p
	s.measured++
	s.costSum += p.cost
	s.costMax = max(s.costMax, p.cost)
	return true, nil
}

// readPageMap reads into p the runs of present pages of up to s.mapStacks
// stacks of s.found, evenly spread over them.
func (s *sampler) readPageMap(p *pending) error {
	n := min(s.mapStacks, len(s.found))
	p.mapAt = p.mapAt[:0]
	p.rows = slices.Grow(p.rows[:0], n)[:n]
	for k := range n {
		i := k * len(s.found) / n
		f := &s.found[i]
		row := p.rows[k][:0]
		err := s.pm.Runs(f.Range(), func(start, end uint64, c procread.PageClass) {
			if c&(procread.ClassResident|procread.ClassZeroPage) != 0 {
				row = append(row, PageRun{From: int64(f.End - end), To: int64(f.End - start), Class: c})
			}
		})
		if err != nil {
			return fmt.Errorf("page map of stack %#x-%#x: %w", f.Start, f.End, err)
		}
		// Runs come in address order; rows read from the top down.
		slices.Reverse(row)
		p.rows[k] = row
		p.mapAt = append(p.mapAt, i)
	}
	return nil
}

// gone turns an ErrGone into the end of the watch.
func gone(err error) (bool, error) {
	if errors.Is(err, procread.ErrGone) {
		return false, nil
	}
	return true, err
}

// scan reads the maps and threads and classifies the mappings into s.found.
func (s *sampler) scan() error {
	var err error
	if s.maps, err = s.dir.Maps(s.maps); err != nil {
		return err
	}
	s.threads = s.threads[:0]
	if s.find.Thread {
		if s.threads, err = s.dir.Threads(s.threads); err != nil {
			return err
		}
	}
	s.found = stackfind.Find(s.maps, s.threads, s.find, s.found)
	return nil
}

// markers looks for guard markers at the low end of read-write mappings
// not yet found, and adds those that have them to s.found. A mapping found
// so stays a stack for as long as it is mapped with the same range,
// without a new look. The mappings looked at and those marked are kept by
// range, sorted by Start, and pruned to s.maps every sample in one merge
// pass: a mapping replaced by another at the same Start (a different End)
// is looked at afresh.
func (s *sampler) markers() error {
	s.cands = stackfind.MarkerCandidates(s.maps, s.found, s.pageSize, s.cands)
	s.looks, s.lookMaps = s.looks[:0], s.lookMaps[:0]
	s.add, s.addCounts = s.add[:0], s.addCounts[:0]
	checked, marked := s.nextChecked[:0], s.nextMarked[:0]
	c, ck, mk := 0, 0, 0 // in s.cands, s.checked and s.marked
	for i := range s.maps {
		mp := &s.maps[i]
		r := procread.PageRange{Start: mp.Start, End: mp.End}
		cand := c < len(s.cands) && s.cands[c].Start == mp.Start
		if cand {
			c++
		}
		for ck < len(s.checked) && s.checked[ck].r.Start < mp.Start {
			ck++
		}
		looks := 0
		if ck < len(s.checked) && s.checked[ck].r == r {
			looks = s.checked[ck].looks
			ck++
		}
		for mk < len(s.marked) && s.marked[mk].Start < mp.Start {
			mk++
		}
		if mk < len(s.marked) && s.marked[mk] == r {
			mk++
			marked = append(marked, r)
			if cand {
				// Not found otherwise: a stack by its markers, with the
				// markers' bytes of its first look (the measurement of the
				// whole stack updates them).
				s.add = append(s.add, s.cands[c-1])
				s.addCounts = append(s.addCounts, procread.PageCounts{GuardBytes: int64(s.pageSize)})
			}
			continue
		}
		if !cand {
			continue
		}
		if looks < markerLooks {
			looks++
			s.looks = append(s.looks, s.cands[c-1])
			s.lookMaps = append(s.lookMaps, r)
		}
		checked = append(checked, markerLook{r: r, looks: looks})
	}
	if n := len(s.looks); n > 0 {
		s.counts = slices.Grow(s.counts[:0], n)[:n]
		if err := s.pm.Measure(s.looks, s.counts); err != nil {
			return fmt.Errorf("look for guard markers in %d mappings: %w", n, err)
		}
		added := false
		for i := range s.looks {
			if s.counts[i].GuardBytes > 0 {
				marked = append(marked, s.lookMaps[i])
				s.add = append(s.add, s.looks[i])
				s.addCounts = append(s.addCounts, s.counts[i])
				added = true
			}
		}
		if added {
			slices.SortFunc(marked, func(a, b procread.PageRange) int { return cmpUint(a.Start, b.Start) })
		}
	}
	s.checked, s.nextChecked = checked, s.checked
	s.marked, s.nextMarked = marked, s.marked
	s.found = stackfind.AddMarked(s.found, s.maps, s.add, s.addCounts)
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// confirm records the pending sample, keeping the stacks that s.maps (just
// read) shows still mapped. A stack of an earlier sample that the pending
// one did not find (a thread running at its maps read, or on another
// stack) stays live without new figures while its mapping is there; it is
// gone once its mapping is. p.found, s.live and s.maps are all sorted by
// End (none overlap), so one merge pass over them ties each stack to its
// index and finds the stacks that are gone.
func (s *sampler) confirm() error {
	p := s.pending
	if p == nil {
		return nil
	}
	s.pending, s.spare = nil, p
	out := &s.out
	out.Index, out.CostNS, out.Known = s.samples, int64(p.cost), s.known
	out.Stacks = out.Stacks[:0]
	next := s.nextLive[:0]
	nm := &s.nextMap
	nm.Stacks, nm.Rows = nm.Stacks[:0], nm.Rows[:0]
	var rssSum int64
	// In s.maps (for p.found and for s.live), s.live and p.mapAt.
	j, jl, k, m := 0, 0, 0, 0
	for i := range p.found {
		f := &p.found[i]
		mapped := m < len(p.mapAt) && p.mapAt[m] == i
		if mapped {
			m++
		}
		if !s.mappedAs(&j, f.Start, f.End, f.FoundBy) {
			continue // unmapped (or replaced) since it was measured
		}
		for k < len(s.live) && s.live[k].end < f.End {
			next = s.carry(next, &jl, s.live[k])
			k++
		}
		idx := -1
		if k < len(s.live) && s.live[k].end == f.End {
			idx = s.live[k].idx
			k++
			if s.stacks[idx].Start != f.Start && f.FoundBy&stackfind.Main == 0 {
				s.stacks[idx].Gone = true // a new mapping ends where it ended
				idx = -1
			}
		}
		if idx < 0 {
			idx = len(s.stacks)
			s.stacks = append(s.stacks, Stack{Index: idx, FirstSeenNS: p.timeNS})
		}
		next = append(next, liveStack{end: f.End, idx: idx})
		if mapped {
			nm.add(idx, p.rows[m-1])
		}
		c := &p.counts[i]
		s.update(&s.stacks[idx], f, c, p.timeNS)
		rssSum += c.ResidentBytes
		out.Stacks = append(out.Stacks, StackSample{
			Index: idx, RSSBytes: c.ResidentBytes, DeepestBytes: deepest(f.End, c),
			HugeBytes: c.HugeBytes, ZeroPageBytes: c.ZeroPageBytes, SwappedBytes: c.SwappedBytes, Runs: c.Runs,
		})
	}
	for _, l := range s.live[k:] {
		next = s.carry(next, &jl, l)
	}
	s.live, s.nextLive = next, s.live
	nm.TimeNS, nm.Found = p.timeNS, len(out.Stacks)
	s.pageMap, s.nextMap = s.nextMap, s.pageMap
	out.Totals = Totals{
		TimeNS: p.timeNS, VmRSSBytes: p.totals.VmRSS, VmPTEBytes: p.totals.VmPTE,
		MinorFaults: p.totals.MinorFaults, VMAs: p.vmas, Threads: p.totals.Threads,
		Stacks: len(out.Stacks), StacksRSSBytes: rssSum,
	}
	t := out.Totals
	s.last = &t
	s.samples++
	s.timeline.add(Point{TimeNS: t.TimeNS, StacksRSSBytes: rssSum, VmRSSBytes: t.VmRSSBytes, VmPTEBytes: t.VmPTEBytes, Stacks: t.Stacks})
	if s.rec != nil {
		if err := s.rec.RecordSample(out); err != nil {
			return fmt.Errorf("record sample %d: %w", out.Index, err)
		}
	}
	return nil
}

// mappedAs reports whether s.maps holds the mapping [start, end) of a
// stack found by by: one ending at end, and starting at start unless it is
// the main stack (which grows down). A range is taken as given, mapped or
// not. *j is the index in s.maps to look from; it moves past the mappings
// ending below end, so successive calls must come in ascending end.
func (s *sampler) mappedAs(j *int, start, end uint64, by stackfind.FoundBy) bool {
	if by&stackfind.Range != 0 {
		return true
	}
	for *j < len(s.maps) && s.maps[*j].End < end {
		*j++
	}
	if *j == len(s.maps) {
		return false
	}
	mp := &s.maps[*j]
	return mp.End == end && (mp.Start == start || by&stackfind.Main != 0)
}

// carry appends to next live stack l, not found in the sample being
// confirmed, when its mapping is still in s.maps, and otherwise marks it
// gone. *jl is as for mappedAs.
func (s *sampler) carry(next []liveStack, jl *int, l liveStack) []liveStack {
	st := &s.stacks[l.idx]
	if s.mappedAs(jl, st.Start, st.End, st.FoundBy) {
		return append(next, l)
	}
	st.Gone = true
	return next
}

// add appends a row for stack idx holding a copy of runs, reusing the
// buffers of earlier rows.
func (pm *PageMap) add(idx int, runs []PageRun) {
	pm.Stacks = append(pm.Stacks, idx)
	if r := len(pm.Rows); r < cap(pm.Rows) {
		pm.Rows = pm.Rows[:r+1]
		pm.Rows[r] = append(pm.Rows[r][:0], runs...)
		return
	}
	pm.Rows = append(pm.Rows, append([]PageRun(nil), runs...))
}

// clone returns a deep copy of pm.
func (pm *PageMap) clone() *PageMap {
	c := *pm
	c.Stacks = append([]int{}, pm.Stacks...)
	c.Rows = make([][]PageRun, len(pm.Rows))
	for i, r := range pm.Rows {
		c.Rows[i] = append([]PageRun{}, r...)
	}
	return &c
}

func deepest(end uint64, c *procread.PageCounts) int64 {
	if c.Lowest == 0 {
		return 0
	}
	return int64(end - c.Lowest)
}

// update records one sample's figures for st.
func (s *sampler) update(st *Stack, f *stackfind.Stack, c *procread.PageCounts, timeNS int64) {
	st.Start, st.End, st.SizeBytes = f.Start, f.End, f.End-f.Start
	st.FoundBy |= f.FoundBy
	if st.TID == 0 {
		st.TID = f.TID
	}
	st.Threads = max(st.Threads, f.Threads)
	if f.SizeMatch != stackfind.SizeNoMatch {
		st.SizeMatch = f.SizeMatch
	}
	switch {
	case f.Guard != stackfind.GuardNone:
		st.Guard = f.Guard
	case c.GuardBytes > 0:
		st.Guard = stackfind.GuardMarkers
	}
	st.LastSeenNS = timeNS
	st.Samples++
	st.RSSBytes = c.ResidentBytes
	st.RSSBytesMax = max(st.RSSBytesMax, c.ResidentBytes)
	st.DeepestBytes = max(st.DeepestBytes, deepest(f.End, c))
	s.setKnown(&st.HugeBytes, procread.ClassHuge, c.HugeBytes)
	s.setKnown(&st.ZeroPageBytes, procread.ClassZeroPage, c.ZeroPageBytes)
	s.setKnown(&st.SwappedBytes, procread.ClassSwapped, c.SwappedBytes)
	s.setKnown(&st.GuardMarkerBytes, procread.ClassGuard, c.GuardBytes)
	st.ContiguousFromTop = c.Runs == 0 || (c.Runs == 1 && c.Lowest+uint64(c.ResidentBytes) == f.End)
}

// setKnown sets *p to v when the method tells class apart, allocating *p
// the first time; otherwise *p stays nil (not measured).
func (s *sampler) setKnown(p **int64, class procread.PageClass, v int64) {
	if s.known&class == 0 {
		return
	}
	if *p == nil {
		*p = new(int64)
	}
	**p = v
}

// finish confirms the pending sample with one more maps read, for a watch
// that ends while the target still runs.
func (s *sampler) finish() error {
	if s.pending == nil {
		return nil
	}
	if err := s.scan(); err != nil {
		if errors.Is(err, procread.ErrGone) {
			s.pending = nil
			return nil
		}
		return err
	}
	if s.find.Guard && s.known&procread.ClassGuard != 0 {
		if err := s.markers(); err != nil {
			if errors.Is(err, procread.ErrGone) {
				s.pending = nil
				return nil
			}
			return err
		}
	}
	return s.confirm()
}

// timeline keeps at most max points spread over the whole watch: when it
// is full, every second point is dropped and from then on only every
// second sample is kept, and so on.
type timeline struct {
	max    int
	stride int
	n      int
	points []Point
}

func (t *timeline) add(p Point) {
	if t.stride == 0 {
		t.stride = 1
	}
	t.n++
	if (t.n-1)%t.stride != 0 {
		return
	}
	if len(t.points) == t.max {
		k := 0
		for i := 0; i < len(t.points); i += 2 {
			t.points[k] = t.points[i]
			k++
		}
		t.points = t.points[:k]
		t.stride *= 2
		if (t.n-1)%t.stride != 0 {
			return
		}
	}
	t.points = append(t.points, p)
}
