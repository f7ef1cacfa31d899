package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressSource is a running measurement that says how far it has come.
type progressSource interface {
	Progress() (done, total int)
}

// statusEvery is how often a run whose stderr is not a terminal says how
// far it has come, so that a long run in a log is not silent.
const statusEvery = 5 * time.Second

// showProgress follows src until the returned stop is called: a bar on
// stderr when stderr is a terminal, else a status line every statusEvery;
// nothing with quiet. With a deadline (the ping-pong's watchdog), it warns
// once when the rate so far projects the run past it.
func showProgress(stderr io.Writer, quiet bool, what string, src progressSource, deadline time.Duration) (stop func()) {
	if quiet {
		return func() {}
	}
	tty := false
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	every := statusEvery
	if tty {
		every = 100 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var bar *progressbar.ProgressBar
		start := time.Now()
		warned := false
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					_ = bar.Finish()
				}
				return
			case <-t.C:
			}
			n, total := src.Progress()
			if elapsed := time.Since(start); !warned && deadline > 0 && n > 0 && elapsed > 2*time.Second {
				if projected := elapsed * time.Duration(total) / time.Duration(n); projected > deadline {
					warned = true
					fmt.Fprintf(stderr, "stackprobe: warning: %d of %d steps after %v: at this rate the run needs about %v, past the %v watchdog (--watchdog)\n",
						n, total, elapsed.Round(time.Second), projected.Round(time.Second), deadline)
				}
			}
			switch {
			case total == 0:
			case tty && bar == nil:
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription(what),
					progressbar.OptionClearOnFinish(),
					progressbar.OptionShowCount())
				_ = bar.Set(n)
			case tty:
				_ = bar.Set(n)
			default:
				fmt.Fprintf(stderr, "stackprobe: %s: %d of %d steps after %v\n", what, n, total, time.Since(start).Round(time.Second))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
