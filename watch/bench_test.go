package watch

import (
	"bufio"
	"errors"
	"os/exec"
	"strconv"
	"testing"

	"stackprobe/procread"
	"stackprobe/stackfind"
)

// BenchmarkSample10kStacks compares one sample of a target holding 10,000
// guarded stacks of 100 MiB (64 KiB touched in each) with one read of that
// target's /proc/PID/smaps. The issue asks for a sample <= 0.2x smaps.
// maps and measure time the two kernel reads a sample makes, alone, and
// measure-beside-maps both at once.
func BenchmarkSample10kStacks(b *testing.B) {
	bin := buildFixture(b)
	const n, size = 10000, 100 << 20
	cmd := startBenchFixture(b, bin, "60000", "0", "fibers", strconv.Itoa(n), strconv.Itoa(size), "64")
	pid := cmd.Process.Pid
	b.Run("sample", func(b *testing.B) {
		dir, err := procread.OpenProcDir("", pid)
		if err != nil {
			b.Fatal(err)
		}
		pm, err := procread.OpenPagemap("", pid, procread.MethodScan)
		if err != nil {
			b.Fatal(err)
		}
		defer pm.Close()
		s := newSampler(dir, pm, stackfind.Options{Main: true, Guard: true, Size: size}, nil, DefaultTimelineLen)
		s.mapStacks = DefaultPageMapStacks // as the CLI does
		for b.Loop() {
			if _, err := s.sample(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(s.pending.found)), "stacks")
		b.Logf("method %s", methodName(pm.Method()))
	})
	// The two reads every sample makes, alone: what the kernel costs.
	b.Run("maps", func(b *testing.B) {
		dir, err := procread.OpenProcDir("", pid)
		if err != nil {
			b.Fatal(err)
		}
		var maps []procread.Mapping
		for b.Loop() {
			if maps, err = dir.Maps(maps); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The walk of the stacks one maps read found, alone and (beside-maps)
	// with the next maps read at once: no sample can take less than the
	// latter on this machine.
	dir, err := procread.OpenProcDir("", pid)
	if err != nil {
		b.Fatal(err)
	}
	maps, err := dir.Maps(nil)
	if err != nil {
		b.Fatal(err)
	}
	found := stackfind.Find(maps, nil, stackfind.Options{Main: true, Guard: true, Size: size}, nil)
	ranges := make([]procread.PageRange, len(found))
	for i := range found {
		ranges[i] = found[i].Range()
	}
	counts := make([]procread.PageCounts, len(ranges))
	pm, err := procread.OpenPagemap("", pid, procread.MethodScan)
	if err != nil {
		b.Fatal(err)
	}
	defer pm.Close()
	b.Run("measure", func(b *testing.B) {
		for b.Loop() {
			if err := pm.Measure(ranges, counts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(ranges)), "stacks")
	})
	b.Run("measure-beside-maps", func(b *testing.B) {
		for b.Loop() {
			done := make(chan error, 1)
			go func() {
				var err error
				maps, err = dir.Maps(maps)
				done <- err
			}()
			err := pm.Measure(ranges, counts)
			if err = errors.Join(err, <-done); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("smaps", func(b *testing.B) {
		for b.Loop() {
			if err := procread.ReadSmaps("/proc/"+strconv.Itoa(pid)+"/smaps", func(*procread.VMA) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// startBenchFixture starts the fixture and waits for its "ready".
func startBenchFixture(b *testing.B, bin string, args ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
	}
	if sc.Text() != "ready" {
		b.Fatalf("fixture did not get ready: %v", sc.Err())
	}
	return cmd
}
