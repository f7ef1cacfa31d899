package probe

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

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
	for _, depth := range cfg.Depths {
		if err := ctx.Err(); err != nil {
			return sr, context.Cause(ctx)
		}
		levels := int(max((depth+goFrameBytes-1)/goFrameBytes, 1))
		// Give free memory back first, so the new stacks fault their pages
		// in and VmRSS shows them instead of memory the runtime held.
		debug.FreeOSMemory()
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
		sr.Steps = append(sr.Steps, StrategyStep{
			DepthBytes: depth,
			VmRSSBytes: t1.VmRSS,
			Go:         goStep(cfg.Tasks, stackBefore, stackAfter, t0.VmRSS, t1.VmRSS, elapsed),
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

// goStep condenses one depth of n goroutines: the runtime's stack memory
// and VmRSS before and after they recursed, and the time it took. A figure
// that did not grow is left out with a note rather than shown as a size.
func goStep(n int, stackBefore, stackAfter, rssBefore, rssAfter uint64, elapsed time.Duration) *GoStackStep {
	g := &GoStackStep{SpawnNsPerGoroutine: elapsed.Nanoseconds() / int64(max(n, 1))}
	var notes []string
	if stackAfter >= stackBefore {
		v := int64(stackAfter-stackBefore) / int64(max(n, 1))
		g.RuntimeStackBytesPerGoroutine = &v
	} else {
		notes = append(notes, fmt.Sprintf("the runtime's stack memory fell by %d bytes while the goroutines grew (stacks of earlier goroutines freed meanwhile)", stackBefore-stackAfter))
	}
	if v := perStackGrowth(rssAfter, rssBefore, int64(n)); v != nil && rssAfter > rssBefore {
		g.VmRSSGrowthBytesPerGoroutine = v
	} else {
		notes = append(notes, fmt.Sprintf("VmRSS did not grow (%d to %d bytes): the runtime reused memory it already held, so VmRSS growth per goroutine is not measured", rssBefore, rssAfter))
	}
	g.Note = strings.Join(notes, "; ")
	return g
}
