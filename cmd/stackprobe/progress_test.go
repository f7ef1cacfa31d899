package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeRun is a measurement whose progress and sampler cost the test sets.
type fakeRun struct {
	done, total    int
	mean, interval time.Duration
	samples        int
}

func (f *fakeRun) Progress() (done, total int) { return f.done, f.total }

func (f *fakeRun) SamplerCost() (mean, interval time.Duration, samples int) {
	return f.mean, f.interval, f.samples
}

func TestSamplerWarning(t *testing.T) {
	const ms = time.Millisecond
	cases := []struct {
		mean, interval time.Duration
		samples        int
		want           string // "" for no warning
	}{
		{0, 0, 0, ""},                 // no sampler (touch run)
		{9 * ms, 10 * ms, 4, ""},      // too few samples to judge
		{5 * ms, 10 * ms, 100, ""},    // exactly half: still keeps up
		{5*ms + 1, 10 * ms, 5, "50%"}, // just past half
		{1500 * time.Microsecond, 2 * ms, 20, "one sample of the stacks takes 1.5ms on average (20 samples), 75% of the 2ms interval"},
		{30 * ms, 10 * ms, 7, "300% of the 10ms interval"},
	}
	for _, c := range cases {
		got := samplerWarning(c.mean, c.interval, c.samples)
		switch {
		case c.want == "" && got != "":
			t.Errorf("samplerWarning(%v, %v, %d) = %q, want none", c.mean, c.interval, c.samples, got)
		case c.want != "" && (!strings.Contains(got, c.want) || !strings.HasPrefix(got, "stackprobe: warning: ") ||
			!strings.Contains(got, "longer --interval or fewer stacks (--tasks)")):
			t.Errorf("samplerWarning(%v, %v, %d) = %q, want it to contain %q and the advice", c.mean, c.interval, c.samples, got, c.want)
		}
	}
}

// The follower prints the sampler warning once, as soon as the mean cost
// passes half the interval, also under --quiet, and no progress then.
func TestFollowerWarnsOnceAboutSamplerCost(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		var stderr bytes.Buffer
		src := &fakeRun{total: 100, interval: 10 * time.Millisecond}
		start := time.Unix(1000, 0)
		f := &follower{stderr: &stderr, quiet: quiet, what: "measuring", src: src, start: start}
		now := start
		step := func(done int, mean time.Duration, samples int) {
			src.done, src.mean, src.samples = done, mean, samples
			now = now.Add(pollEvery)
			f.poll(now)
		}
		step(1, 2*time.Millisecond, 10)
		step(2, 4*time.Millisecond, 20)
		if stderr.Len() != 0 {
			t.Fatalf("quiet=%v: printed %q while the sampler kept up", quiet, stderr.String())
		}
		step(3, 6*time.Millisecond, 30)
		step(4, 8*time.Millisecond, 40)
		want := "stackprobe: warning: one sample of the stacks takes 6ms on average (30 samples), 60% of the 10ms interval: the sampler competes with the IO threads and its samples come late; use a longer --interval or fewer stacks (--tasks)\n"
		if stderr.String() != want {
			t.Errorf("quiet=%v: stderr %q, want exactly %q", quiet, stderr.String(), want)
		}
		// A status line only after statusEvery, and never under --quiet.
		stderr.Reset()
		now = start.Add(statusEvery - pollEvery)
		step(50, 8*time.Millisecond, 50)
		wantStatus := "stackprobe: measuring: 50 of 100 steps after 5s\n"
		if quiet {
			wantStatus = ""
		}
		if stderr.String() != wantStatus {
			t.Errorf("quiet=%v: stderr %q after %v, want %q", quiet, stderr.String(), statusEvery, wantStatus)
		}
	}
}
