package probe

import (
	"cmp"
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// goFrameBytes is the local array each goFrames level holds; the frame is
// a little larger (return address, spills).
const goFrameBytes = 1024

// goFrames recurses n levels through real frames of about goFrameBytes,
// writing both ends of each, then parks until release is closed: the
// goroutine's stack stays grown to that depth while it is measured.
//
//go:noinline
func goFrames(n int, ready *sync.WaitGroup, release <-chan struct{}) byte {
	var frame [goFrameBytes]byte
	frame[0], frame[goFrameBytes-1] = byte(n), byte(n>>8)
	if n <= 1 {
		ready.Done()
		<-release
		return frame[0]
	}
	return goFrames(n-1, ready, release) ^ frame[goFrameBytes-1] ^ frame[0]
}

// runGoStacks measures Go's own copying goroutine stacks at the schedule's
// depths: per depth, cfg.Tasks fresh goroutines recurse to it and park,
// and the runtime's stack memory (runtime/metrics
// /memory/classes/heap/stacks:bytes) is compared before and after, with
// collections on both sides so that stacks left behind by copying are
// freed and not counted. VmRSS is read beside it.
func runGoStacks(ctx context.Context, cfg Config, st Strategy, env Env) (StrategyResult, error) {
	sr := StrategyResult{Strategy: st, Stacks: cfg.Tasks}
	proc, err := procread.NewReader(cmp.Or(env.ProcRoot, "/proc"), 0)
	if err != nil {
		return sr, err
	}
	page := int64(mmapstack.PageSize())
	for _, depth := range cfg.Depths {
		if err := ctx.Err(); err != nil {
			return sr, context.Cause(ctx)
		}
		levels := int(max((depth+goFrameBytes-1)/goFrameBytes, 1))
		stackBefore := stackInuse()
		t0, err := proc.Totals()
		if err != nil {
			return sr, err
		}
		var ready sync.WaitGroup
		release := make(chan struct{})
		var done sync.WaitGroup
		ready.Add(cfg.Tasks)
		start := time.Now()
		for range cfg.Tasks {
			done.Go(func() { goFrames(levels, &ready, release) })
		}
		ready.Wait()
		elapsed := time.Since(start)
		stackAfter := stackInuse()
		t1, err := proc.Totals()
		close(release)
		done.Wait()
		if err != nil {
			return sr, err
		}
		n := int64(cfg.Tasks)
		per := (int64(stackAfter) - int64(stackBefore)) / n
		touched := float64(n) * float64(max(ExpectedPages(depth, int(page)), 1))
		sr.Steps = append(sr.Steps, StrategyStep{
			DepthBytes:         depth,
			RSSBytesMin:        per,
			RSSBytesMax:        per,
			RSSBytesMean:       per,
			PeakRSSBytesMax:    per,
			VmRSSDeltaPerStack: (int64(t1.VmRSS) - int64(t0.VmRSS)) / n,
			PTEBytesPerStack:   (int64(t1.VmPTE) - int64(t0.VmPTE)) / n,
			MinorFaultsPerPage: float64(t1.MinorFaults-t0.MinorFaults) / touched,
			NsPerPage:          float64(elapsed.Nanoseconds()) / touched,
			VmRSSBytes:         t1.VmRSS,
		})
	}
	return sr, nil
}

// stackInuse collects twice (freeing stack spans that copying left
// behind) and returns the runtime's stack memory in bytes.
func stackInuse() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
