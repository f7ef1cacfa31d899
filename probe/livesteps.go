package probe

import "stackprobe/mmapstack"

// liveSteps summarises, for each distinct depth of the list, what the
// stacks held in the live samples that caught them in a clean step (see
// LiveStep). Its size is fixed at the start: one accumulator per distinct
// depth, one bit per stack and depth, one word per stack.
type liveSteps struct {
	cfg   Config
	page  int
	index map[int64]int // depth -> position in steps
	steps []LiveStep
	// seen[k] has bit i set once stack i was observed at steps[k].
	seen [][]uint64
	// before[i] is stack i's change count read before the sample's walk.
	before []int64
	// counted[k] is set when the current sample observed a stack at
	// steps[k].
	counted []bool
}

func newLiveSteps(cfg Config, page, stacks int) *liveSteps {
	l := &liveSteps{cfg: cfg, page: page, index: map[int64]int{}, before: make([]int64, stacks)}
	for _, d := range cfg.Depths {
		if _, ok := l.index[d]; ok {
			continue
		}
		l.index[d] = len(l.steps)
		l.steps = append(l.steps, LiveStep{DepthBytes: d, ExpectedBytes: expectedAfterRelease(cfg, d, page)})
		l.seen = append(l.seen, make([]uint64, (stacks+63)/64))
	}
	l.counted = make([]bool, len(l.steps))
	return l
}

// begin notes every task's change count before a sample walks the page
// tables.
func (l *liveSteps) begin(states []taskState) {
	for i := range states {
		l.before[i] = states[i].changes.Load()
	}
}

// end adds the stacks of sample s (measured since begin) that were in a
// clean step: stepped at least once, not changing when begin read them
// (even count), no change since (same count), latest depth equal to the
// deepest so far, and with --release=idle used to that depth since the
// last idle release.
func (l *liveSteps) end(states []taskState, s *Sample) {
	clear(l.counted)
	for i := range states {
		st := &states[i]
		c0 := l.before[i]
		if c0 == 0 || c0&1 != 0 {
			continue
		}
		d, hw, since := st.depth.Load(), st.highWater.Load(), st.sinceIdle.Load()
		if st.changes.Load() != c0 || d != hw {
			continue
		}
		if l.cfg.Release == mmapstack.ReleaseIdle && since != d {
			continue
		}
		k, ok := l.index[d]
		if !ok {
			continue
		}
		l.observe(k, i, s.Stacks[i].RSS)
		l.counted[k] = true
	}
	for k, c := range l.counted {
		if c {
			l.steps[k].Samples++
		}
	}
}

// observe adds one observation of stack i at steps[k] holding rss bytes.
func (l *liveSteps) observe(k, i int, rss int64) {
	ls := &l.steps[k]
	if ls.Observations == 0 {
		ls.RSSBytesMin, ls.RSSBytesMax = rss, rss
	}
	ls.RSSBytesMin, ls.RSSBytesMax = min(ls.RSSBytesMin, rss), max(ls.RSSBytesMax, rss)
	ls.RSSBytesTotal += rss
	ls.Observations++
	if rss == ls.ExpectedBytes {
		ls.Matched++
	}
	w, b := i/64, uint64(1)<<(i%64)
	if l.seen[k][w]&b == 0 {
		l.seen[k][w] |= b
		ls.Stacks++
	}
}

// result is the observed steps in list order, and the depths no sample
// caught.
func (l *liveSteps) result() (steps []LiveStep, missing []int64) {
	for _, ls := range l.steps {
		if ls.Observations == 0 {
			missing = append(missing, ls.DepthBytes)
			continue
		}
		steps = append(steps, ls)
	}
	return steps, missing
}
