package probe

import (
	"context"
	"testing"

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
	m := newMeter(stacks, proc)
	if err := m.learnHugeEligibility(); err != nil {
		b.Fatal(err)
	}
	deepest := func(int) int64 { return 1 * mib }
	shallow := func(int) int64 { return 4096 }
	var s Sample
	b.Run("mincore-window", func(b *testing.B) {
		for b.Loop() {
			if err := m.residencyWithin(&s, deepest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mincore-one-page", func(b *testing.B) {
		for b.Loop() {
			if err := m.residencyWithin(&s, shallow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mincore-whole", func(b *testing.B) {
		for b.Loop() {
			if err := m.residency(&s); err != nil {
				b.Fatal(err)
			}
		}
	})
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
