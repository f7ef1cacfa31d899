// Package watch samples the stacks of another running process: it finds
// them in /proc/PID/maps and the threads' stack pointers (stackfind),
// measures each from the page tables (procread.Pagemap) every interval, and
// keeps per stack its first and last sighting and figures, and per process
// the totals. It never stops, ptrace-attaches or injects into the target:
// it reads its /proc files only.
//
// A watch is a handle shaped like os/exec.Cmd:
//
//	w, err := watch.Start(ctx, watch.Options{Target: watch.Target{Argv: argv}, ...})
//	// on SIGINT: w.Interrupt(2 * time.Second)   (forwards it to a child)
//	err = w.Wait()      // until the target exits, Duration passes or ctx is done
//	w.Close()           // ends (SIGTERM, then SIGKILL) and reaps a child still running
//	res := w.Result()   // records how a child ended
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"stackprobe/procread"
	"stackprobe/stackfind"
)

// ErrStart is matched (errors.Is) by Start's error when Target.Argv could
// not be started; the error keeps the cause (e.g. exec.ErrNotFound,
// fs.ErrNotExist, fs.ErrPermission).
var ErrStart = errors.New("cannot start")

// DefaultInterval is the sampling interval when Options.Interval is 0.
const DefaultInterval = 10 * time.Millisecond

// DefaultTimelineLen is the timeline's bound when Options.TimelineLen is 0.
const DefaultTimelineLen = 4096

// DefaultPageMapStacks is Result.PageMap's number of stacks when
// Options.PageMapStacks is 0.
const DefaultPageMapStacks = 32

// Target is the process to watch: a running one by PID, or a command to
// start as a child.
type Target struct {
	// PID is a running process to attach to (reads only).
	PID int
	// Argv is a command to start instead (Argv[0] is looked up in PATH).
	// Its environment is this process's; stdin, stdout and stderr are
	// Options.Stdin, Stdout and Stderr.
	Argv []string
}

// Options configure a watch.
type Options struct {
	// Target is the process to watch; exactly one of PID and Argv is set.
	Target Target
	// Find chooses how stacks are found.
	Find stackfind.Options
	// Interval is the time between the starts of two samples; 0 means
	// DefaultInterval. A sample that takes longer delays the next.
	Interval time.Duration
	// Duration ends the watch after this long; 0 means no limit.
	Duration time.Duration
	// Method is the residency method asked of procread.OpenPagemap.
	Method procread.Method
	// ProcRoot is the proc mount, "" for /proc.
	ProcRoot string
	// Recorder, if set, gets every recorded sample.
	Recorder Recorder
	// TimelineLen bounds Result.Timeline; 0 means DefaultTimelineLen.
	TimelineLen int
	// PageMapStacks is how many stacks Result.PageMap maps, evenly spread
	// over those found; 0 means DefaultPageMapStacks, negative none. Each
	// costs one more page-table walk of its range every sample.
	PageMapStacks int
	// Stdin, Stdout and Stderr are a started command's; nil means this
	// process's own.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Watch is a running watch.
type Watch struct {
	opts   Options
	s      *sampler
	cmd    *exec.Cmd
	stop   chan struct{} // closed by Stop
	done   chan struct{} // closed when sampling has ended
	exited chan struct{} // closed when a child has been reaped; nil when attached
	err    error         // sampling error, set before done is closed

	stopOnce sync.Once
	mu       sync.Mutex
	target   TargetInfo // guarded by mu
}

// Start starts the command (for Target.Argv) or checks the process (for
// Target.PID), opens its /proc files, takes a first sample, and samples on
// in a goroutine until the target exits, Duration passes, ctx is done or
// Stop is called.
//
// A PID that does not exist is an error satisfying errors.Is(err,
// procread.ErrGone). Without permission to read its maps or pagemap
// (another user's process) or its threads' syscall files (also refused by
// kernel.yama.ptrace_scope), the error keeps the errno and the file
// refused: errors.Is(err, fs.ErrPermission), errors.As(err, *fs.PathError).
//
// A started command that exits before its /proc files can be read is no
// error: the watch ends at once with no sample and its exit status. On any
// error a started command is killed and reaped.
func Start(ctx context.Context, opts Options) (*Watch, error) {
	if (opts.Target.PID > 0) == (len(opts.Target.Argv) > 0) {
		return nil, errors.New("watch: give exactly one of a pid and a command")
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Interval < 0 || opts.Duration < 0 {
		return nil, fmt.Errorf("watch: negative interval %v or duration %v", opts.Interval, opts.Duration)
	}
	if opts.TimelineLen <= 0 {
		opts.TimelineLen = DefaultTimelineLen
	}
	switch {
	case opts.PageMapStacks == 0:
		opts.PageMapStacks = DefaultPageMapStacks
	case opts.PageMapStacks < 0:
		opts.PageMapStacks = 0
	}
	w := &Watch{opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	pid := opts.Target.PID
	if len(opts.Target.Argv) > 0 {
		var err error
		if pid, err = w.startCommand(); err != nil {
			return nil, err
		}
	}
	w.target.PID = pid
	alive, err := w.open(pid)
	if err != nil && w.cmd != nil && errors.Is(err, procread.ErrGone) && w.reaped(goneWait) {
		close(w.done) // nothing sampled; the reaper recorded the exit
		return w, nil
	}
	if err != nil {
		if w.cmd != nil {
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
		return nil, err
	}
	go w.run(ctx, alive)
	return w, nil
}

// goneWait is how long Start waits for a started command whose /proc files
// are gone to be reaped: it has exited, so that follows at once.
const goneWait = time.Second

// open opens the target's /proc files and takes the first sample. A
// process attached by pid that is gone by then is ErrGone.
func (w *Watch) open(pid int) (alive bool, err error) {
	dir, err := procread.OpenProcDir(w.opts.ProcRoot, pid)
	if err != nil {
		return false, fmt.Errorf("watch: %w", err)
	}
	pm, err := procread.OpenPagemap(w.opts.ProcRoot, pid, w.opts.Method)
	if err != nil {
		return false, fmt.Errorf("watch: %w", err)
	}
	s := newSampler(dir, pm, w.opts.Find, w.opts.Recorder, w.opts.TimelineLen)
	s.mapStacks = w.opts.PageMapStacks
	alive, err = s.sample()
	switch {
	case err != nil:
		err = fmt.Errorf("watch pid %d: %w", pid, err)
	case !alive && w.cmd == nil:
		err = fmt.Errorf("watch pid %d: %w", pid, procread.ErrGone)
	}
	if err != nil {
		pm.Close()
		return false, err
	}
	w.s = s
	return alive, nil
}

// reaped reports whether a started command is reaped within d.
func (w *Watch) reaped(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.exited:
		return true
	case <-t.C:
		return false
	}
}

// startCommand starts Target.Argv and a goroutine that reaps it.
func (w *Watch) startCommand() (int, error) {
	argv := w.opts.Target.Argv
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = w.opts.Stdin, w.opts.Stdout, w.opts.Stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("watch: %w %q: %w", ErrStart, argv[0], err)
	}
	w.cmd = cmd
	w.target.Argv = append([]string(nil), argv...)
	w.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait() // the status is read from ProcessState
		w.mu.Lock()
		w.target.Exited = true
		if ps := cmd.ProcessState; ps != nil {
			if st, ok := ps.Sys().(syscall.WaitStatus); ok && st.Signaled() {
				w.target.Signal = st.Signal().String()
			} else {
				code := ps.ExitCode()
				w.target.ExitCode = &code
			}
		}
		w.mu.Unlock()
		close(w.exited)
	}()
	return cmd.Process.Pid, nil
}

// run samples until the end and records why sampling ended.
func (w *Watch) run(ctx context.Context, alive bool) {
	defer close(w.done)
	defer w.s.pm.Close()
	var deadline <-chan time.Time
	if w.opts.Duration > 0 {
		t := time.NewTimer(w.opts.Duration - time.Since(w.s.start))
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	for alive {
		select {
		case <-ctx.Done():
			w.err = w.s.finish()
			return
		case <-w.stop:
			w.err = w.s.finish()
			return
		case <-deadline:
			w.err = w.s.finish()
			return
		case <-w.exited: // nil when attached: never ready
			return
		case <-tick.C:
		}
		var err error
		if alive, err = w.s.sample(); err != nil {
			w.err = err
			return
		}
	}
	// The target is gone.
	w.markExited(ctx, deadline)
}

// markExited records that the target ended. A child is marked by its
// reaper, so this waits for that, which follows its exit at once; but its
// /proc files can look gone while it runs on (its main thread exited,
// others did not), so the wait ends with the watch too: on Stop, ctx or
// the deadline, leaving the child recorded as running.
func (w *Watch) markExited(ctx context.Context, deadline <-chan time.Time) {
	if w.exited != nil {
		select {
		case <-w.exited:
		case <-w.stop:
		case <-ctx.Done():
		case <-deadline:
		}
		return
	}
	w.mu.Lock()
	w.target.Exited = true
	w.mu.Unlock()
}

// PID returns the target's process id.
func (w *Watch) PID() int { return w.target.PID }

// Wait waits until sampling has ended and returns the error that ended it,
// nil when it ended normally: the target exited (at any moment, between
// any two reads), Duration passed, ctx was done or Stop was called.
func (w *Watch) Wait() error {
	<-w.done
	return w.err
}

// Stop ends sampling now (confirming the last sample if the target still
// runs) and returns as Wait does.
func (w *Watch) Stop() error {
	w.stopOnce.Do(func() { close(w.stop) })
	return w.Wait()
}

// Interrupt is for a SIGINT the caller received: a started command gets
// SIGINT too and up to grace to exit (its exit status is recorded), then
// sampling stops as with Stop. A process attached by pid is not signalled.
func (w *Watch) Interrupt(grace time.Duration) error {
	if w.cmd != nil {
		if err := w.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("watch: interrupt pid %d: %w", w.target.PID, err)
		}
		t := time.NewTimer(grace)
		select {
		case <-w.exited:
		case <-t.C:
		}
		t.Stop()
	}
	return w.Stop()
}

// TermGrace is how long Close gives a started command to exit after
// SIGTERM before it sends SIGKILL.
const TermGrace = time.Second

// Close stops sampling and, for a started command still running, ends it:
// SIGTERM, then SIGKILL if it has not exited within TermGrace, and reaps
// it. A Result taken after Close records that end (target.signal
// "terminated" or "killed", or the status the command exited with on
// SIGTERM); one taken before it leaves the command recorded as running.
func (w *Watch) Close() error {
	err := w.Stop()
	if w.cmd != nil {
		w.terminate(TermGrace)
	}
	return err
}

// terminate ends a started command still running: SIGTERM, then SIGKILL
// after grace; it returns once the command is reaped.
func (w *Watch) terminate(grace time.Duration) {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	if w.reaped(grace) {
		return
	}
	_ = w.cmd.Process.Kill()
	<-w.exited
}

// Result returns what the watch measured. Call it after Wait, Stop or
// Interrupt has returned; before that it returns an empty Result.
func (w *Watch) Result() Result {
	select {
	case <-w.done:
	default:
		return Result{Workload: "watch"}
	}
	w.mu.Lock()
	target := w.target
	w.mu.Unlock()
	if target.ExitCode != nil {
		code := *target.ExitCode
		target.ExitCode = &code
	}
	s := w.s
	if s == nil { // a started command gone before its /proc files were opened
		return Result{
			Workload: "watch",
			Target:   target,
			Stacks:   []Stack{},
			Sampler:  SamplerStats{IntervalNS: int64(w.opts.Interval)},
		}
	}
	r := Result{
		Workload: "watch",
		Target:   target,
		Stacks:   append([]Stack(nil), s.stacks...),
		Sampler: SamplerStats{
			Samples:    s.samples,
			IntervalNS: int64(w.opts.Interval),
			MaxCostNS:  int64(s.costMax),
			Method:     methodName(s.pm.Method()),
		},
		Timeline: append([]Point(nil), s.timeline.points...),
	}
	if r.Stacks == nil {
		r.Stacks = []Stack{}
	}
	if s.measured > 0 {
		r.Sampler.MeanCostNS = int64(s.costSum) / int64(s.measured)
	}
	if s.last != nil {
		t := *s.last
		r.Totals = &t
	}
	if s.samples > 0 && s.mapStacks > 0 {
		r.PageMap = s.pageMap.clone()
		r.PageMap.PageSize, r.PageMap.Method = int(s.pageSize), r.Sampler.Method
	}
	r.Missing = s.missing()
	return r
}

// methodName names a residency method as the CLI spells it.
func methodName(m procread.Method) string {
	switch m {
	case procread.MethodScan:
		return "scan"
	case procread.MethodPagemap:
		return "pagemap"
	case procread.MethodMincore:
		return "mincore"
	}
	return fmt.Sprintf("method(%d)", int(m))
}
