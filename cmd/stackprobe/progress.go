package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"stackprobe/probe"
)

// progressSource is a running measurement that says how far it has come.
type progressSource interface {
	Progress() (done, total int)
}

// samplerSource is a running measurement whose live sampler says what it
// costs (probe.Run's SamplerCost).
type samplerSource interface {
	SamplerCost() (mean, interval time.Duration, samples int)
}

// The ping-pong's runs and the ping-pong compare report their sampler.
var (
	_ samplerSource = (*probe.Run)(nil)
	_ samplerSource = (*probe.PingPongCompareRun)(nil)
)

// statusEvery is how often a run whose stderr is not a terminal says how
// far it has come, so that a long run in a log is not silent.
const statusEvery = 5 * time.Second

// pollEvery is how often the run is looked at for a warning.
const pollEvery = 100 * time.Millisecond

// minCostSamples is how many samples the sampler's mean cost rests on
// before it is judged: the first walks also fault in the engine's buffers.
const minCostSamples = 5

// showProgress follows src until the returned stop is called: a bar on
// stderr when stderr is a terminal, else a status line every statusEvery;
// neither with quiet. Warnings come with quiet too, once each: with a
// deadline (the ping-pong's watchdog), when the rate so far projects the
// run past it; when src has a live sampler, when a sample costs more than
// half the sampling interval.
func showProgress(stderr io.Writer, quiet bool, what string, src progressSource, deadline time.Duration) (stop func()) {
	tty := false
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	f := &follower{stderr: stderr, quiet: quiet, tty: tty, what: what, src: src, deadline: deadline, start: time.Now()}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				f.finish()
				return
			case now := <-t.C:
				f.poll(now)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// follower is showProgress's state; poll looks at the run once.
type follower struct {
	stderr   io.Writer
	quiet    bool
	tty      bool
	what     string
	src      progressSource
	deadline time.Duration
	start    time.Time

	bar        *progressbar.ProgressBar
	lastStatus time.Time // when the last status line was printed
	lateWarned bool      // the watchdog warning was printed
	costWarned bool      // the sampler cost warning was printed
}

// poll looks at the run at now: warnings first, then the bar or, every
// statusEvery, a status line.
func (f *follower) poll(now time.Time) {
	n, total := f.src.Progress()
	elapsed := now.Sub(f.start)
	if !f.lateWarned && f.deadline > 0 && n > 0 && elapsed > 2*time.Second {
		if projected := elapsed * time.Duration(total) / time.Duration(n); projected > f.deadline {
			f.lateWarned = true
			fmt.Fprintf(f.stderr, "stackprobe: warning: %d of %d steps after %v: at this rate the run needs about %v, past the %v watchdog (--watchdog)\n",
				n, total, elapsed.Round(time.Second), projected.Round(time.Second), f.deadline)
		}
	}
	if s, ok := f.src.(samplerSource); ok && !f.costWarned {
		if msg := samplerWarning(s.SamplerCost()); msg != "" {
			f.costWarned = true
			fmt.Fprintln(f.stderr, msg)
		}
	}
	switch {
	case f.quiet || total == 0:
	case f.tty && f.bar == nil:
		f.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(f.stderr),
			progressbar.OptionSetDescription(f.what),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionShowCount())
		_ = f.bar.Set(n)
	case f.tty:
		_ = f.bar.Set(n)
	case now.Sub(f.lastStatus) >= statusEvery && elapsed >= statusEvery:
		f.lastStatus = now
		fmt.Fprintf(f.stderr, "stackprobe: %s: %d of %d steps after %v\n", f.what, n, total, elapsed.Round(time.Second))
	}
}

func (f *follower) finish() {
	if f.bar != nil {
		_ = f.bar.Finish()
	}
}

// samplerWarning is the warning line for a sampler whose mean cost per
// sample, over at least minCostSamples samples, is more than half its
// interval, or "". Such a sampler takes a core's share from the IO
// threads it watches, and its samples come late.
func samplerWarning(mean, interval time.Duration, samples int) string {
	if interval <= 0 || samples < minCostSamples || 2*mean <= interval {
		return ""
	}
	return fmt.Sprintf("stackprobe: warning: one sample of the stacks takes %v on average (%d samples), %.0f%% of the %v interval: the sampler competes with the IO threads and its samples come late; use a longer --interval or fewer stacks (--tasks)",
		mean.Round(time.Microsecond), samples, 100*float64(mean)/float64(interval), interval)
}
