package probe

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"stackprobe/mmapstack"
	"stackprobe/pingpong"
	"stackprobe/procread"
)

// maxTimeline bounds the points kept in memory for the over-time chart.
// When full, every other point is dropped and only every second sample is
// kept from then on (stride doubles), so a run of any length keeps between
// maxTimeline/2 and maxTimeline evenly spread points. samples.csv keeps all.
const maxTimeline = 2048

// taskState is what a task publishes for the sampler. Each field is written
// only by the task's own IO thread and read atomically by the sampler, so
// the sampler never holds a lock the IO threads wait on.
type taskState struct {
	depth     atomic.Int64 // depth of the latest step
	highWater atomic.Int64 // deepest depth so far
	steps     atomic.Int64
	// sinceIdle is the deepest depth since the stack was last released
	// for being idle, and idled counts those releases (--release=idle).
	sinceIdle atomic.Int64
	idled     atomic.Int64
	// changes is odd while the task's stack is being changed (a step or
	// an idle release) and counts up by two per change: the sampler
	// reads it around its walk to tell a clean step (a seqlock).
	changes atomic.Int64
}

// expected is what the stack of a task in state s should hold now, bytes:
// the schedule's prediction under the run's release mode.
func (c Config) expected(s *taskState, page int) int64 {
	hw := s.highWater.Load()
	if c.Release != mmapstack.ReleaseIdle || s.idled.Load() == 0 {
		return expectedAfterRelease(c, hw, page)
	}
	// Released when idle: the kept top the stack ever touched, and
	// whatever it touched since.
	keep := min(ExpectedPages(hw, page), max(ExpectedPages(c.KeepTopBytes, page), 1)) * int64(page)
	return max(keep, ExpectedPages(s.sinceIdle.Load(), page)*int64(page))
}

func (r *Run) runPingPong(ctx context.Context) error {
	cfg, env, m, res := r.cfg, r.env, r.m, r.res
	page := res.PageSize
	clients := cfg.Tasks
	kind := func(i int) string {
		if i < clients {
			return "client"
		}
		return "peer"
	}
	if err := env.Recorder.Begin(stackInfos(m.stacks, kind)); err != nil {
		return err
	}
	sched := schedule{depths: cfg.Depths, messages: cfg.Messages, pattern: cfg.Pattern, seed: uint64(cfg.Seed)}
	states := make([]taskState, len(m.stacks))
	// A failing touch or sampler stops the IO: a run must not go on
	// unmeasured or misusing its stacks.
	ioCtx, stopIO := context.WithCancelCause(ctx)
	defer stopIO(nil)
	var touchErr atomic.Pointer[error]
	used := make([]atomic.Bool, len(cfg.Depths))
	onStep := func(task int, _ pingpong.Kind, step int) {
		s := &states[task]
		s.changes.Add(1)
		defer s.changes.Add(1)
		i := sched.index(task, step)
		if !used[i].Load() {
			used[i].Store(true)
		}
		d := cfg.Depths[i]
		// Published before the touch, so that the sampler's prediction
		// already counts the pages the task is about to make resident.
		s.depth.Store(d)
		if d > s.highWater.Load() {
			s.highWater.Store(d)
		}
		if d > s.sinceIdle.Load() {
			s.sinceIdle.Store(d)
		}
		st := m.stacks[task]
		_, err := use(st, cfg.TouchMode, d)
		if err == nil && cfg.Release != mmapstack.ReleaseIdle {
			err = st.Release()
		}
		if err != nil {
			e := fmt.Errorf("task %d step %d: %w", task, step, err)
			if touchErr.CompareAndSwap(nil, &e) {
				stopIO(e)
			}
		}
		s.steps.Add(1)
	}
	// onIdle gives an idle task's pages back (--release=idle), on the
	// task's own thread while it is parked: nothing else uses its stack.
	// Each idle release is checked at once: the stack must hold exactly
	// the kept top it ever touched. mincore over the one stack is safe
	// beside the sampler's walk; each IO thread has its own scratch vector.
	var vecs [2][]byte
	var idleChecked, idleKeptTop atomic.Int64
	onIdle := func(task int, kind pingpong.Kind) {
		s := &states[task]
		st := m.stacks[task]
		s.changes.Add(1)
		err := st.Release()
		if err == nil {
			s.sinceIdle.Store(0)
			s.idled.Add(1)
		}
		s.changes.Add(1)
		if err != nil {
			e := fmt.Errorf("task %d idle release: %w", task, err)
			if touchErr.CompareAndSwap(nil, &e) {
				stopIO(e)
			}
			return
		}
		if cfg.THP != mmapstack.THPNoHuge {
			return // a huge page keeps its whole block: no page-exact figure to hold
		}
		pages, vec, err := procread.ResidentPages(st.Base(), uintptr(st.Size()), vecs[kind&1])
		vecs[kind&1] = vec
		if err != nil {
			return
		}
		idleChecked.Add(1)
		if int64(pages)*int64(page) == cfg.expected(s, page) {
			idleKeptTop.Add(1)
		}
	}
	var idle time.Duration
	if cfg.Release == mmapstack.ReleaseIdle {
		idle = cfg.Idle
	}
	var sockets pingpong.SocketMemory

	sctx, stopSampler := context.WithCancel(ctx)
	smp := &sampler{cfg: cfg, env: env, m: m, states: states, sched: sched, page: page, start: r.start, progress: r.set, sockets: &sockets, clients: clients,
		cost: &r.live, live: newLiveSteps(cfg, page, len(m.stacks))}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := smp.run(sctx); err != nil {
			stopIO(err)
		}
	})

	cpu0 := processCPU()
	pr, runErr := pingpong.Run(ioCtx, pingpong.Config{
		Transport:    pingpong.Transport(cfg.Transport),
		Clients:      clients,
		Messages:     cfg.Messages,
		Watchdog:     cfg.Watchdog,
		OnStep:       onStep,
		Idle:         idle,
		OnIdle:       onIdle,
		SocketMemory: &sockets,
		SocketEvery:  cfg.Interval,
	})
	stopSampler()
	wg.Wait()
	cpu := processCPU() - cpu0
	if e := touchErr.Load(); e != nil {
		runErr = *e
	}

	p := &PingPongResult{
		Transport:         string(pr.Transport),
		Clients:           pr.Clients,
		MessagesPerClient: pr.MessagesPerClient,
		RoundTrips:        pr.RoundTrips,
		Errors:            pr.Errors,
		Seconds:           pr.Elapsed.Seconds(),
		Sampler:           smp.stats(cpu),
	}
	if pr.RoundTrips > 0 {
		rate := pr.RoundTripsPerSecond()
		p.RoundTripsPerSecond = &rate
		p.LatencyNanos = &Latency{P50: pr.Latency.P50.Nanoseconds(), P99: pr.Latency.P99.Nanoseconds(), Max: pr.Latency.Max.Nanoseconds()}
	}
	p.PredictionExactSamples, p.PredictionMaxGapBytes = smp.exact, smp.maxGap
	p.ThreadCPUNs.Clients, p.ThreadCPUNs.Server = pr.ClientThreadCPU.Nanoseconds(), pr.ServerThreadCPU.Nanoseconds()
	p.IdleReleases = pr.IdleCalls
	p.IdleReleasesChecked, p.IdleReleasesKeptTop = idleChecked.Load(), idleKeptTop.Load()
	var madvises int64
	for i, st := range m.stacks {
		madvises += int64(st.Madvises())
		if states[i].idled.Load() > 0 {
			p.IdleStacks++
		}
	}
	if pr.RoundTrips > 0 {
		calls := float64(madvises) / float64(pr.RoundTrips)
		p.MadviseCallsPerRoundTrip = &calls
	}
	p.PeakStackRSSBytes = smp.peak
	p.LiveSteps, p.LiveStepsMissing = smp.live.result()
	conns := int64(clients)
	if smp.socketLooks > 0 {
		mean := smp.socketEnd / conns
		p.SocketBytesPerConnection.MeanEnd = &mean
	}
	p.SocketBytesPerConnection.Looks = smp.socketLooks
	if peak := sockets.Peak(); peak > 0 || smp.socketSeen {
		most := peak / conns
		p.SocketBytesPerConnection.Max = &most
	}
	p.SocketBytesPerConnection.AtClose, p.SocketBytesPerConnection.AtCloseSockets = atClose(sockets.AtClose())
	for i := range used {
		if !used[i].Load() {
			p.UnusedDepths = append(p.UnusedDepths, cfg.Depths[i])
		}
	}
	res.PingPong = p
	res.Series.Timeline = smp.timeline
	if smp.err != nil {
		runErr = fmt.Errorf("sampler: %w (the IO was stopped)", smp.err)
	}

	// The final measurement, with smaps, after the IO has stopped.
	final := smp.sample
	final.Seq = smp.seq
	if err := smp.measure(&final, true); err != nil {
		return errors.Join(runErr, err)
	}
	if err := env.Recorder.Record(&final); err != nil {
		return errors.Join(runErr, err)
	}
	res.HighWaterGroups, res.Series.PerStackRSS = byHighWater(cfg, &final, states, page, m)
	if pr.RoundTrips > 0 {
		faults := float64(final.Totals.MinorFaults-res.Reserved.MinorFaults) / float64(pr.RoundTrips)
		p.MinorFaultsPerRoundTrip = &faults
	}
	p.PeakStackRSSBytes = max(p.PeakStackRSSBytes, final.StackRSS)
	for i := range states {
		if s := &states[i]; s.idled.Load() > 0 && s.sinceIdle.Load() == 0 {
			p.IdleAtEnd++
			if final.Stacks[i].RSS == cfg.expected(s, page) {
				p.IdleAtEndKeptTop++
			}
		}
	}
	r.finalStackRSS = final.StackRSS
	return runErr
}

// atClose is a connection's socket memory at close from the bytes summed
// over the sockets whose memory was read just before their close: twice
// the mean per socket (a connection has two), nil when none was read.
func atClose(bytes, sockets int64) (*int64, int64) {
	if sockets == 0 {
		return nil, 0
	}
	perConn := 2 * bytes / sockets
	return &perConn, sockets
}

// byHighWater groups the stacks by the deepest depth they used and
// summarises each group: the claim says a stack holds ceil(deepest/page)
// pages. MatchedAfterRelease holds each stack to what its own task's state
// predicts (Config.expected): with --release=idle that is the kept top
// after an idle release, or what the task used since, not the group's
// high-water mark. perStack holds each group's per-stack resident bytes.
func byHighWater(cfg Config, s *Sample, states []taskState, page int, m *meter) (groups []DepthResult, perStack [][]int64) {
	byDepth := map[int64][]int{}
	for i := range states {
		hw := states[i].highWater.Load()
		byDepth[hw] = append(byDepth[hw], i)
	}
	keys := make([]int64, 0, len(byDepth))
	for k := range byDepth {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	groups = make([]DepthResult, 0, len(keys))
	for _, hw := range keys {
		sub := Sample{Totals: s.Totals, Check: s.Check}
		for _, i := range byDepth[hw] {
			sub.Stacks = append(sub.Stacks, s.Stacks[i])
		}
		d := summarize(&sub, hw, hw, expectedAfterRelease(cfg, hw, page), page, m)
		d.MatchedAfterRelease = 0
		for _, i := range byDepth[hw] {
			if s.Stacks[i].RSS == cfg.expected(&states[i], page) {
				d.MatchedAfterRelease++
			}
		}
		groups = append(groups, d)
		perStack = append(perStack, perStackRSS(&sub))
	}
	return groups, perStack
}

// sampler measures the stacks every interval while the IO runs.
type sampler struct {
	cfg    Config
	env    Env
	m      *meter
	states []taskState
	sched  schedule
	page   int
	start  time.Time
	// progress reports client 0's steps of its messages.
	progress func(done, total int)
	// sockets is kept up to date by the IO threads; clients is the number
	// of connections.
	sockets *pingpong.SocketMemory
	clients int
	// cost publishes the cost so far to Run.SamplerCost.
	cost *samplerCost
	// live summarises each depth's clean steps over the live samples.
	live *liveSteps

	peak        int64 // the most StackRSS any sample found
	socketEnd   int64 // socket bytes at the last look with every connection open
	socketLooks int   // samples that saw every connection open
	socketSeen  bool  // some sample saw a look with a socket in it

	sample   Sample
	seq      int
	costSum  time.Duration // wall time of all samples
	costMax  time.Duration
	timeline []TimelinePoint
	stride   int
	cpu      time.Duration // the sampler thread's own CPU time
	exact    int           // samples whose residency equalled the prediction
	maxGap   int64         // largest |residency - prediction|, bytes
	err      error
}

// run samples every interval until ctx ends or a sample fails, and once
// more when ctx ends (the IO has stopped by then): the timeline ends with
// what the stacks hold after the IO, which the final measurement must
// equal. It also reports progress (client 0's steps), so that nothing but
// the tasks' own work runs on the IO threads.
func (s *sampler) run(ctx context.Context) error {
	// Pinned so that RUSAGE_THREAD measures the sampler alone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	defer func() { s.cpu = threadCPU() - cpu0 }()
	s.stride = 1
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.take(); err != nil {
			s.err = err
			return err
		}
		s.progress(int(s.states[0].steps.Load()), s.cfg.Messages)
		select {
		case <-ctx.Done():
			if err := s.take(); err != nil {
				s.err = err
				return err
			}
			return nil
		case <-t.C:
		}
	}
}

func (s *sampler) take() error {
	s.sample.Seq = s.seq
	s.live.begin(s.states)
	if err := s.measure(&s.sample, false); err != nil {
		return err
	}
	s.live.end(s.states, &s.sample)
	s.costSum += s.sample.Cost
	s.costMax = max(s.costMax, s.sample.Cost)
	s.cost.publish(s.costSum, s.seq+1)
	s.peak = max(s.peak, s.sample.StackRSS)
	bytes, n := s.sockets.Now()
	s.socketSeen = s.socketSeen || n > 0
	if n == 2*int64(s.clients) {
		s.socketEnd = bytes
		s.socketLooks++
	}
	if gap := s.sample.StackRSS - s.sample.Expected; gap == 0 {
		s.exact++
	} else {
		s.maxGap = max(s.maxGap, gap, -gap)
	}
	if err := s.env.Recorder.Record(&s.sample); err != nil {
		return err
	}
	s.keep(TimelinePoint{
		Elapsed:  s.sample.Elapsed,
		StackRSS: s.sample.StackRSS,
		Expected: s.sample.Expected,
		VmRSS:    s.sample.Totals.VmRSS,
		VmPTE:    s.sample.Totals.VmPTE,
		Depth:    s.sched.rampDepth(int(s.states[0].steps.Load()) - 1),
	})
	s.seq++
	return nil
}

// keep adds sample s.seq's point to the timeline if the stride takes it.
func (s *sampler) keep(p TimelinePoint) {
	if s.seq%s.stride != 0 {
		return
	}
	s.timeline = append(s.timeline, p)
	if len(s.timeline) >= maxTimeline {
		s.timeline = halve(s.timeline)
		s.stride *= 2
	}
}

// halve keeps every other point.
func halve(tl []TimelinePoint) []TimelinePoint {
	n := 0
	for i := 0; i < len(tl); i += 2 {
		tl[n] = tl[i]
		n++
	}
	return tl[:n]
}

// measure takes one sample: every stack's residency over its whole
// mapping (one page-table walk of all stacks, the same for a live sample as
// for the final one: a huge page reaching into a neighbouring stack is seen
// whenever it is there), process totals, the schedule's prediction, and (at
// the end only) the smaps cross-check.
func (s *sampler) measure(out *Sample, withSmaps bool) error {
	begin := time.Now()
	out.Elapsed = begin.Sub(s.start)
	if err := s.m.residency(out); err != nil {
		return err
	}
	if err := s.m.totals(out); err != nil {
		return err
	}
	out.Check = nil
	if withSmaps {
		if err := s.m.smaps(out); err != nil {
			return err
		}
	}
	out.Expected = 0
	for i := range s.states {
		out.Stacks[i].Depth = s.states[i].depth.Load()
		out.Expected += s.cfg.expected(&s.states[i], s.page)
	}
	out.Cost = time.Since(begin)
	return nil
}

func (s *sampler) stats(processCPU time.Duration) SamplerStats {
	st := SamplerStats{
		Samples:        s.seq,
		IntervalNs:     s.cfg.Interval.Nanoseconds(),
		TimelinePoints: len(s.timeline),
		MaxCostNs:      s.costMax.Nanoseconds(),
		CPUNs:          s.cpu.Nanoseconds(),
	}
	if s.seq > 0 {
		st.MeanCostNs = s.costSum.Nanoseconds() / int64(s.seq)
	}
	if processCPU > 0 {
		st.CPUFraction = float64(s.cpu) / float64(processCPU)
	}
	return st
}

func rusage(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func threadCPU() time.Duration  { return rusage(unix.RUSAGE_THREAD) }
func processCPU() time.Duration { return rusage(unix.RUSAGE_SELF) }
