package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws a bar on stderr when stderr is a terminal; otherwise, or
// with --quiet, it does nothing.
type progress struct {
	bar *progressbar.ProgressBar
	w   io.Writer
	msg string
}

func newProgress(stderr io.Writer, quiet bool, msg string) *progress {
	p := &progress{msg: msg}
	if f, ok := stderr.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		p.w = stderr
	}
	return p
}

func (p *progress) update(done, total int) {
	if p.w == nil {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.msg),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionShowCount())
	}
	_ = p.bar.Set(done)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
