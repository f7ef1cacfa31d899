package report

import (
	"testing"

	"stackprobe/probe"
)

func BenchmarkCSVRecord200(b *testing.B) {
	c, err := NewCSV(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Abort()
	s := &probe.Sample{Stacks: make([]probe.StackSample, 200)}
	for i := range s.Stacks {
		s.Stacks[i] = probe.StackSample{Depth: 1 << 20, RSS: 1 << 20, SmapsRSS: -1, AnonHuge: -1}
	}
	for b.Loop() {
		if err := c.Record(s); err != nil {
			b.Fatal(err)
		}
	}
}
