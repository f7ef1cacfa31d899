package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gonum.org/v1/plot"

	"stackprobe/notes"
	"stackprobe/outdir"
	"stackprobe/plots"
	"stackprobe/report"
)

// checkOutputs checks --out and --notes before anything is reserved or
// written: every refusal is bad input (exit 2).
func checkOutputs(o options) error {
	names := report.OutputNames()
	if err := outdir.Check(o.out, o.force, names); err != nil {
		return usagef("--out: %v", err)
	}
	if o.notes != "" {
		if _, err := notes.Key(o.out); err != nil {
			return usagef("--notes: %v", err)
		}
		if err := notes.Check(o.notes, o.out, names); err != nil {
			return usagef("%v", err)
		}
	}
	return nil
}

// session is one command that writes a result folder, from the moment it
// may measure something to its exit: a signal cancels its context, and its
// outputs go into a private staging folder that Commit puts in place as a
// whole, so that --out always holds one run's complete (or partial) output.
type session struct {
	o      options
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   func() // stops the signal handling
	folder *outdir.Folder
	stderr io.Writer
	// files and charts are the outputs written so far; errs the failures
	// to write one.
	files, charts []string
	errs          []error
}

// beginSession takes --out (locked against a concurrent run) and starts
// handling signals.
func beginSession(ctx context.Context, o options, stderr io.Writer) (*session, error) {
	folder, err := outdir.Begin(o.out, o.force, report.OutputNames())
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	return &session{o: o, ctx: ctx, cancel: cancel, stop: watchSignals(cancel, stderr), folder: folder, stderr: stderr}, nil
}

// Close ends the session: without a Commit the staging folder goes and
// --out is left as it was.
func (s *session) Close() {
	s.stop()
	s.cancel(nil)
	s.folder.Close()
}

// dir is the staging folder the outputs are written into.
func (s *session) dir() string { return s.folder.Path("") }

// wrote records output files written by others (the CSV recorder).
func (s *session) wrote(names ...string) { s.files = append(s.files, names...) }

// fail records a failure to write an output.
func (s *session) fail(err error) {
	if err != nil {
		s.errs = append(s.errs, err)
	}
}

// writeErr is every failure to write so far.
func (s *session) writeErr() error { return errors.Join(s.errs...) }

// chart draws and saves one chart; a failure is recorded, not fatal.
func (s *session) chart(name string, draw func() (*plot.Plot, error)) {
	p, err := draw()
	if err == nil {
		err = plots.Save(p, s.folder.Path(name))
	}
	if err != nil {
		s.fail(fmt.Errorf("chart %s: %w", name, err))
		return
	}
	s.charts = append(s.charts, name)
	s.files = append(s.files, name)
}

// file writes one output file.
func (s *session) file(name string, fill func(io.Writer) error) {
	if err := report.WriteFile(s.folder.Path(name), fill); err != nil {
		s.fail(err)
		return
	}
	s.files = append(s.files, name)
}

// commit puts the folder in place, marked partial when the run was, and
// then writes the run's section into --notes. A failure to write any
// output marks the folder partial.
func (s *session) commit(partial bool, evidence func(w io.Writer, charts []string) error) {
	partial = partial || len(s.errs) > 0
	if err := s.folder.Commit(partial, s.files); err != nil {
		s.fail(fmt.Errorf("put the results in place: %w", err))
		return
	}
	if s.o.notes == "" {
		return
	}
	links, err := notes.ChartLinks(s.o.notes, s.folder.Out(), s.charts)
	if err == nil {
		err = notes.Update(s.o.notes, s.o.out, func(w io.Writer) error { return evidence(w, links) })
	}
	s.fail(err)
}

// linger keeps the process (and its mapped stacks) alive for --linger so
// that a user can inspect it, e.g. with pmap -X PID; a signal ends it early.
func (s *session) linger() {
	if s.o.linger <= 0 || len(s.errs) > 0 {
		return
	}
	fmt.Fprintf(s.stderr, "stackprobe: lingering pid=%d for %v\n", os.Getpid(), s.o.linger)
	t := time.NewTimer(s.o.linger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// conclude prints the summary of a run whose outputs were written (as
// --format says) and returns the error the command exits with: the signal
// that stopped the run, the run's own error, or a failure to write.
func (s *session) conclude(stdout io.Writer, result any, text func(io.Writer) error, runErr error) error {
	var in *interrupted
	interruptedBy := errors.As(context.Cause(s.ctx), &in)
	if err := s.writeErr(); err != nil {
		if interruptedBy {
			return errors.Join(in, runErr, err)
		}
		return errors.Join(runErr, err)
	}
	var printErr error
	if s.o.format == "json" {
		printErr = report.WriteJSON(stdout, result)
	} else {
		printErr = text(stdout)
	}
	if printErr != nil {
		printErr = fmt.Errorf("print summary: %w", printErr)
	}
	out := s.folder.Out()
	switch {
	case runErr != nil && interruptedBy:
		return errors.Join(fmt.Errorf("%w; partial results written to %s", in, out), printErr)
	case runErr != nil:
		return errors.Join(fmt.Errorf("%w; partial results written to %s", runErr, out), printErr)
	case interruptedBy:
		// The run was complete; the signal came while its outputs were
		// written or while it lingered.
		return errors.Join(fmt.Errorf("%w; the results in %s are complete", in, out), printErr)
	}
	return printErr
}

// watchSignals cancels the run on the first SIGINT or SIGTERM; a second one
// exits at once (the staging folder is then left for the next run to
// clear, and --out keeps the previous run's folder).
func watchSignals(cancel context.CancelCauseFunc, stderr io.Writer) (stop func()) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(stderr, "stackprobe: %v: stopping (again to quit at once)\n", sig)
			cancel(&interrupted{sig: sig})
		case <-done:
			return
		}
		select {
		case sig := <-ch:
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
