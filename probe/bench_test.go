package probe

import (
	"context"
	"testing"
	"time"

	"stackprobe/procread"
)

// BenchmarkSample measures one live sample of 200 stacks of 100 MB used to
// 1 MiB, part by part: the ping-pong sampler's cost per tick.
func BenchmarkSample(b *testing.B) {
	cfg := touchConfig(200, 1*mib)
	cfg.StackBytes = 100_003_840
	stacks, err := reserveAll(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer closeAll(stacks)
	for _, s := range stacks {
		if err := s.Touch(1 * mib); err != nil {
			b.Fatal(err)
		}
	}
	proc, err := procread.NewReader("/proc", 0)
	if err != nil {
		b.Fatal(err)
	}
	var s Sample
	for _, method := range []procread.Method{procread.MethodScan, procread.MethodPagemap, procread.MethodMincore} {
		pm, err := procread.OpenPagemap("/proc", 0, method)
		if err != nil {
			b.Fatal(err)
		}
		m := newMeter(stacks, proc, pm)
		b.Run(method.String()+"-whole", func(b *testing.B) {
			for b.Loop() {
				if err := m.residency(&s); err != nil {
					b.Fatal(err)
				}
			}
		})
		pm.Close()
	}
	m := newMeter(stacks, proc, nil)
	b.Run("totals", func(b *testing.B) {
		for b.Loop() {
			if err := m.totals(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("smaps", func(b *testing.B) {
		for b.Loop() {
			if err := m.smaps(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSamplerShare runs the default ping-pong (100 clients, so 200
// stacks, 1000 messages, ramp 4 KiB..1 MiB, 10 ms interval) and reports
// the sampler's share of the run's CPU time.
func BenchmarkSamplerShare(b *testing.B) {
	for _, depths := range [][]int64{{0}, {4096, 64 << 10, 1 * mib}} {
		name := "depth=0"
		if len(depths) > 1 {
			name = "depth=4KiB..1MiB"
		}
		b.Run(name, func(b *testing.B) {
			cfg := pingpongConfig("tcp", 100, 1000, PatternRamp, depths...)
			cfg.StackBytes = 100_003_840
			cfg.Interval = 10 * time.Millisecond
			var share, cost, rate float64
			for b.Loop() {
				res, err := runOnce(context.Background(), cfg, Env{})
				if err != nil {
					b.Fatal(err)
				}
				share += res.PingPong.Sampler.CPUFraction
				cost += float64(res.PingPong.Sampler.MeanCostNs)
				rate += *res.PingPong.RoundTripsPerSecond // set: the run completed its round trips
			}
			n := float64(b.N)
			b.ReportMetric(100*share/n, "sampler-%cpu")
			b.ReportMetric(cost/n, "ns/sample")
			b.ReportMetric(rate/n, "round_trips/s")
		})
	}
}

// BenchmarkResidency1000Stacks compares the ways to get per-stack
// residency of 1000 stacks of 100 MiB, each used to 16 KiB: mincore over
// every whole mapping, one PAGEMAP_SCAN walk of them all, and one read of
// /proc/self/smaps attributed to the stacks by address (what the
// cross-check costs).
func BenchmarkResidency1000Stacks(b *testing.B) {
	cfg := touchConfig(1000, 16<<10)
	stacks, err := reserveAll(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer closeAll(stacks)
	for _, s := range stacks {
		if err := s.Touch(16 << 10); err != nil {
			b.Fatal(err)
		}
	}
	proc, err := procread.NewReader("/proc", 0)
	if err != nil {
		b.Fatal(err)
	}
	var s Sample
	var m *meter
	for _, method := range []procread.Method{procread.MethodMincore, procread.MethodScan} {
		pm, err := procread.OpenPagemap("/proc", 0, method)
		if err != nil {
			b.Fatal(err)
		}
		defer pm.Close()
		m = newMeter(stacks, proc, pm)
		if err := m.residency(&s); err != nil {
			b.Fatal(err)
		}
		b.Run(method.String(), func(b *testing.B) {
			for b.Loop() {
				if err := m.residency(&s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("smaps", func(b *testing.B) {
		for b.Loop() {
			if err := m.smaps(&s); err != nil {
				b.Fatal(err)
			}
		}
		if !s.Check.Agree || s.Check.OwnVMAStacks != 1000 {
			b.Fatalf("smaps check %+v", s.Check)
		}
	})
}
