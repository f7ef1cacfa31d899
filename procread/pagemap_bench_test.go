//go:build linux

package procread

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkMeasure10k measures 10,000 stacks of 100 MiB, each with a
// PROT_NONE guard page (two VMAs per stack) and its top 64 KiB written:
// one op is one measurement of all stacks. The smaps case reads
// /proc/self/smaps once with a no-op callback, for scale. The issue asks
// for scan <= 0.10x mincore and <= 0.2x smaps. Each method runs on
// Measure's default lanes and, suffixed -1lane, on one (the scan also on
// two, -2lane, against its default of two per CPU); cpu-ns/op is the
// CPU time the process spent per op, all threads together.
func BenchmarkMeasure10k(b *testing.B) {
	const (
		stacks = 10000
		size   = 100 << 20
		depth  = 64 << 10
	)
	mem, ranges := reserve(b, stacks, size, guardMprotect)
	base := ranges[0].Start
	for _, r := range ranges {
		touch(mem, base, r.End-depth, r.End)
	}
	out := make([]PageCounts, stacks)
	check := func(b *testing.B) {
		for i := range out {
			if out[i].ResidentBytes != depth {
				b.Fatalf("stack %d: %d resident bytes, want %d", i, out[i].ResidentBytes, depth)
			}
		}
	}
	for _, m := range methods {
		for _, lanes := range []int{0, 1, 2} {
			name := m.String()
			if lanes > 0 {
				if m == MethodPagemap || lanes == 2 && m != MethodScan {
					continue // seconds an op: the default lanes are enough
				}
				name += fmt.Sprintf("-%dlane", lanes)
			}
			b.Run(name, func(b *testing.B) {
				p := openMethod(b, m)
				p.SetLanes(lanes)
				cpu := cpuTime(b)
				for b.Loop() {
					if err := p.Measure(ranges, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
				check(b)
			})
		}
	}
	// The landed probe's path: one mincore call per stack.
	b.Run("mincore-per-stack", func(b *testing.B) {
		var vec []byte
		for b.Loop() {
			for i, r := range ranges {
				n, v, err := ResidentPages(uintptr(r.Start), uintptr(r.End-r.Start), vec)
				if err != nil {
					b.Fatal(err)
				}
				vec, out[i].ResidentBytes = v, int64(n)*int64(os.Getpagesize())
			}
		}
		check(b)
	})
	b.Run("smaps", func(b *testing.B) {
		cpu := cpuTime(b)
		for b.Loop() {
			if err := ReadSmaps("/proc/self/smaps", func(*VMA) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	})
}

// cpuTime is the CPU time (user and system, all threads) this process has
// used, in nanoseconds: with several lanes it exceeds the wall time.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
