package pingpong

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Why a run stopped before its tasks all finished; the first reason recorded wins.
const (
	stopNone int32 = iota
	stopFailed
	stopCancelled
	stopWatchdog
)

// retryDelay spaces out connect attempts against a full backlog, which epoll cannot signal.
const retryDelay = time.Millisecond

// wakeSlot marks the eventfd in epoll data; task slots are >= 0.
const wakeSlot = -1

// heldWaitMillis bounds how long a thread waits for epoll while keeping its P (see side.wait).
const heldWaitMillis = 1

// yieldEvery is how long a thread that keeps its P through raw waits may go before it lets the
// scheduler run other goroutines (see side.wait).
const yieldEvery = 2 * time.Millisecond

// errStopped is returned inside a task whose coroutine is being stopped (yield returned false).
var errStopped = errors.New("task stopped")

// run is the state the two threads share. Only state, firstErr's writer, errors and the
// eventfds are touched concurrently; the rest is set before the threads start.
type run struct {
	cfg      Config
	ln       listener
	clients  *side
	server   *side
	start    time.Time
	state    atomic.Int32
	holdP    bool // GOMAXPROCS >= 2 at the start: each thread may keep a P while it waits
	errors   atomic.Int64
	firstErr error // written once by the goroutine that moved state to stopFailed
}

// Run runs the workload until all clients have finished, ctx is cancelled, the watchdog fires, or
// a task fails (a lost, wrong or missing echo, a peer that closes early, a syscall error); the
// error names the task. On cancellation it returns what was measured with Partial set and an
// error wrapping ctx.Err(). All sockets, epoll instances and eventfds are closed and the AF_UNIX
// socket directory is removed on every path. A panic in a hook is re-raised in the caller's
// goroutine after that cleanup.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	res = Result{Transport: cfg.Transport, Clients: cfg.Clients, MessagesPerClient: cfg.Messages}
	if err := ctx.Err(); err != nil {
		res.Partial = true
		return res, fmt.Errorf("cancelled before start: %w", err)
	}
	r, err := newRun(cfg)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := r.close(); err == nil {
			err = cerr
		}
	}()

	done := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		timer := time.NewTimer(cfg.watchdog())
		defer timer.Stop()
		select {
		case <-ctx.Done():
			r.stop(stopCancelled)
		case <-timer.C:
			r.stop(stopWatchdog)
		case <-done:
		}
	})

	r.start = time.Now()
	var threads sync.WaitGroup
	threads.Go(func() { r.clients.thread(r.clients.startClients) })
	threads.Go(func() { r.server.thread(r.server.startAcceptor) })
	threads.Wait()
	close(done)
	watcher.Wait()

	res.RoundTrips = r.clients.roundTrips
	res.Errors = r.errors.Load()
	res.Elapsed = r.clients.elapsed
	res.Latency = r.clients.lat.latency()
	res.ClientThreadCPU, res.ServerThreadCPU = r.clients.cpu, r.server.cpu
	res.IdleCalls = r.clients.idleCalls + r.server.idleCalls
	for _, s := range []*side{r.clients, r.server} {
		if s.panicked != nil {
			panic(s.panicked) // the deferred close still runs
		}
	}
	switch r.state.Load() {
	case stopFailed:
		return res, r.firstErr
	case stopCancelled:
		if res.RoundTrips == int64(cfg.Clients)*int64(cfg.Messages) {
			return res, nil // cancelled while only peers were still reading their EOFs
		}
		res.Partial = true
		return res, fmt.Errorf("cancelled after %d of %d round trips: %w",
			res.RoundTrips, int64(cfg.Clients)*int64(cfg.Messages), ctx.Err())
	case stopWatchdog:
		return res, r.watchdogError()
	}
	return res, nil
}

// newRun opens the listener and both sides' epoll instances and eventfds. On error everything it
// opened is closed again; the returned run is then nil.
func newRun(cfg Config) (_ *run, err error) {
	// r is not the named result: the error returns below set that to nil, and the deferred
	// cleanup must still see what was opened.
	r := &run{cfg: cfg, ln: listener{fd: -1}, holdP: runtime.GOMAXPROCS(0) >= 2}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	backlog := unix.SOMAXCONN
	if cfg.listenBacklog > 0 {
		backlog = cfg.listenBacklog
	}
	if r.ln, err = listen(cfg.Transport, backlog); err != nil {
		return nil, fmt.Errorf("%s listener: %w", cfg.Transport, err)
	}
	if r.clients, err = newSide(r, Client, cfg.Clients); err != nil {
		return nil, fmt.Errorf("clients thread: %w", err)
	}
	if r.server, err = newSide(r, Peer, cfg.Clients+1); err != nil {
		return nil, fmt.Errorf("server thread: %w", err)
	}
	return r, nil
}

// close releases everything newRun opened; it may be called more than once.
func (r *run) close() error {
	errs := []error{r.ln.close()}
	for _, s := range []*side{r.clients, r.server} {
		if s != nil {
			errs = append(errs, s.close())
		}
	}
	return errors.Join(errs...)
}

// stop records why the run ends, if no reason was recorded yet, and wakes both threads.
func (r *run) stop(reason int32) {
	if r.state.CompareAndSwap(stopNone, reason) {
		r.clients.wake()
		r.server.wake()
	}
}

// fail stops the run with err unless it is already stopping. Failures that follow a first one are
// counted; errors from tasks torn down by a cancellation or the watchdog are not.
func (r *run) fail(err error) {
	if r.state.CompareAndSwap(stopNone, stopFailed) {
		r.firstErr = err
		r.errors.Add(1)
		r.clients.wake()
		r.server.wake()
		return
	}
	if r.state.Load() == stopFailed {
		r.errors.Add(1)
	}
}

func (r *run) stopping() bool { return r.state.Load() != stopNone }

// watchdogError names the tasks still unfinished; call it after both threads ended.
func (r *run) watchdogError() error {
	var names []string
	for _, s := range []*side{r.clients, r.server} {
		for i := range s.tasks {
			if t := &s.tasks[i]; t.stopped && !t.acceptor {
				names = append(names, t.name())
			}
		}
	}
	unaccepted := r.cfg.Clients - (len(r.server.tasks) - 1)
	n := len(names) + unaccepted
	const show = 16
	list := names
	if len(list) > show {
		list = list[:show]
	}
	msg := strings.Join(list, ", ")
	if len(names) > show {
		msg += fmt.Sprintf(", and %d more", len(names)-show)
	}
	if unaccepted > 0 {
		if msg != "" {
			msg += "; "
		}
		msg += fmt.Sprintf("%d peers never accepted", unaccepted)
	}
	return fmt.Errorf("watchdog: %d tasks unfinished after %v: %s", n, r.cfg.watchdog(), msg)
}

// side is one thread's state: its epoll instance, its tasks and its counters. Apart from wakefd,
// only that thread touches it while it runs.
type side struct {
	r      *run
	kind   Kind // Client for the clients thread, Peer for the server thread
	epfd   int
	wakefd int // eventfd in the epoll set, written to stop the loop
	// tasks never grows past its initial capacity, so slots and task pointers stay valid.
	tasks   []task
	live    int     // tasks started and not finished
	runq    []int32 // slots to resume before the next epoll_wait
	retry   []int32 // slots waiting for retryAt
	retryAt time.Time
	events  [128]unix.EpollEvent
	// lastYield is when the thread last passed through the scheduler.
	lastYield time.Time
	// chores is how often the thread looks for idle tasks and reads its sockets' memory (0:
	// never), and lastChores when it last did.
	chores     time.Duration
	lastChores time.Time

	// Results, read by Run after the thread ended.
	roundTrips int64
	elapsed    time.Duration
	cpu        time.Duration
	idleCalls  int64
	lat        histogram
	panicked   any
}

func newSide(r *run, kind Kind, capacity int) (s *side, err error) {
	s = &side{
		r: r, kind: kind, epfd: -1, wakefd: -1,
		tasks:  make([]task, 0, capacity),
		runq:   make([]int32, 0, capacity),
		retry:  make([]int32, 0, capacity),
		chores: r.cfg.choresEvery(),
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if s.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: wakeSlot}
	if err = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, s.wakefd, &ev); err != nil {
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return s, nil
}

func (s *side) close() error {
	var errs []error
	for _, fd := range []*int{&s.wakefd, &s.epfd} {
		if *fd >= 0 {
			errs = append(errs, os.NewSyscallError("close", unix.Close(*fd)))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// wake makes the thread's epoll_wait return; safe from any goroutine.
func (s *side) wake() {
	one := [8]byte{1}
	for {
		_, err := unix.Write(s.wakefd, one[:])
		if err != unix.EINTR {
			return // EAGAIN means the counter is already non-zero, which is just as good
		}
	}
}

// thread runs the side on a locked OS thread: start spawns the first tasks, then the loop runs
// until every task finished or the run stops. The coroutines are created on this thread and must
// all end here before the thread is unlocked.
func (s *side) thread(start func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer s.shutdown()
	cpu0 := threadCPU()
	defer func() { s.cpu = threadCPU() - cpu0 }()
	start()
	s.loop()
	if s.kind == Client {
		s.elapsed = time.Since(s.r.start)
	}
}

func (s *side) name() string {
	if s.kind == Client {
		return "clients thread"
	}
	return "server thread"
}

func (s *side) startClients() {
	for i := range s.r.cfg.Clients {
		s.spawn(i, Client, -1, (*task).client)
	}
}

func (s *side) startAcceptor() {
	t := s.spawn(-1, Peer, s.r.ln.fd, (*task).accept)
	t.acceptor = true
}

// loop resumes runnable tasks, then waits for epoll and resumes each task whose wait an event
// ends, until the side has no live task or the run is stopping.
func (s *side) loop() {
	for {
		for i := 0; i < len(s.runq); i++ { // resumed tasks may append
			if t := &s.tasks[s.runq[i]]; !t.finished {
				s.resume(t)
			}
		}
		s.runq = s.runq[:0]
		if s.live == 0 || s.r.stopping() {
			return
		}
		timeout := -1
		if len(s.retry) > 0 {
			timeout = max(0, int(time.Until(s.retryAt)/time.Millisecond)+1)
		}
		if s.chores > 0 {
			now := time.Now()
			if now.Sub(s.lastChores) >= s.chores {
				s.doChores(now)
			}
			if c := int(s.chores / time.Millisecond); timeout < 0 || c < timeout {
				timeout = c
			}
		}
		n, err := s.wait(timeout)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			s.r.fail(fmt.Errorf("%s: %w", s.name(), os.NewSyscallError("epoll_wait", err)))
			return
		}
		for i := range s.events[:n] {
			ev := &s.events[i]
			if ev.Fd == wakeSlot {
				s.drainWake()
				continue
			}
			// A finished task's fd is closed, but an event for it may still be in this batch.
			if t := &s.tasks[ev.Fd]; !t.finished && t.wait.satisfiedBy(ev.Events) {
				s.resume(t)
			}
		}
		if len(s.retry) > 0 && !time.Now().Before(s.retryAt) {
			s.runq = append(s.runq, s.retry...)
			s.retry = s.retry[:0]
		}
	}
}

// wait is epoll_wait on the side's epoll instance with a timeout in milliseconds (-1: none).
//
// A blocking syscall made through the scheduler (unix.EpollWait) marks the thread's P as in a
// syscall. When the wait lasts more than a sysmon tick (20 µs) while the other thread holds the
// other P, which is the normal case here, sysmon retakes the P and starts a spinning M to look
// for work; the thread must then win a P back on its way out, and sysmon, having retaken
// something, keeps polling every 20 µs. On two vCPUs that churn (futex wakeups, context switches,
// CPU stolen from the two busy threads) costs more than the syscalls of the round trips.
//
// So the thread first waits with a raw syscall, keeping its P, for at most heldWaitMillis. In
// steady state the other thread produces events well within that, and the scheduler never sees
// the wait. Only when nothing arrives in time, or the raw wait fails (EINTR included), does it wait
// again through the scheduler, which releases the P for as long as the side is idle. Holding a P
// this way is no worse for the rest of the program than the thread running for that long; the
// runtime's preemption signal interrupts the raw wait with EINTR, which falls through to the
// scheduled wait and so lets a stop-the-world proceed. It needs a P per thread: with GOMAXPROCS=1
// the thread would keep the P that the other side needs in order to produce the awaited event,
// so holdP is off and every wait goes through the scheduler.
func (s *side) wait(timeout int) (int, error) {
	if s.r.holdP {
		held := heldWaitMillis
		if timeout >= 0 && timeout < held {
			held = timeout
		}
		n, err := epollWait(s.epfd, s.events[:], held)
		if err == nil && (n > 0 || held == timeout) {
			s.maybeYield()
			return n, nil
		}
		if err == nil && timeout > 0 {
			timeout -= held
		}
	}
	return unix.EpollWait(s.epfd, s.events[:], timeout)
}

// maybeYield lets the scheduler run other goroutines once every yieldEvery. Under steady
// traffic both threads keep their Ps through raw waits that always find events, so with
// GOMAXPROCS=2 nothing else (the sampler, timers, signal delivery, the watchdog) would run until
// sysmon preempted a thread, 10 to 20 ms later.
func (s *side) maybeYield() {
	if now := time.Now(); now.Sub(s.lastYield) >= yieldEvery {
		runtime.Gosched()
		s.lastYield = time.Now()
	}
}

func (s *side) drainWake() {
	var buf [8]byte
	for {
		if _, err := unix.Read(s.wakefd, buf[:]); err != unix.EINTR {
			return
		}
	}
}

// resume runs t until it yields its next wait or ends. Once the run is stopping it leaves t
// parked: the other thread may already be closing sockets, and a task woken by that would report
// a failure that is only a consequence of the stop.
func (s *side) resume(t *task) {
	if s.r.stopping() {
		return
	}
	w, ok := t.next()
	if !ok {
		t.finish()
		return
	}
	t.wait = w
	if s.r.cfg.Idle > 0 {
		t.parkedAt, t.idle = time.Now(), false
	}
	if w == waitRetry {
		if len(s.retry) == 0 {
			s.retryAt = time.Now().Add(retryDelay)
		}
		s.retry = append(s.retry, t.slot)
	}
}

// doChores calls OnIdle for each task parked for at least Idle that has not been reported since
// it last ran, and publishes the memory of the side's connected sockets.
func (s *side) doChores(now time.Time) {
	s.lastChores = now
	cfg := &s.r.cfg
	var bytes, sockets int64
	for i := range s.tasks {
		t := &s.tasks[i]
		if t.finished || t.acceptor {
			continue
		}
		if cfg.Idle > 0 && !t.idle && !t.parkedAt.IsZero() && now.Sub(t.parkedAt) >= cfg.Idle {
			t.idle = true
			s.idleCalls++
			if cfg.OnIdle != nil {
				cfg.OnIdle(t.id, t.kind)
			}
		}
		if cfg.SocketMemory != nil && t.fd >= 0 {
			if b, err := socketMemory(t.fd); err == nil {
				bytes += b
				sockets++
			}
		}
	}
	if cfg.SocketMemory != nil {
		cfg.SocketMemory.publish(s.kind, bytes, sockets)
	}
}

// shutdown stops every unfinished coroutine, which unwinds it through its deferred socket close,
// and closes sockets of tasks that never started. It runs on the thread, before the unlock.
func (s *side) shutdown() {
	if p := recover(); p != nil { // from the loop itself; task panics are caught in the task
		s.panicked = fmt.Sprintf("pingpong %s: %v\n%s", s.name(), p, debug.Stack())
		s.r.fail(errors.New("panic"))
	}
	for i := range s.tasks {
		t := &s.tasks[i]
		if !t.finished {
			t.stopped = true
			t.stop()
			t.finish()
		}
	}
}

// spawn adds a task and queues its first resume. fd is the socket it starts with, or -1.
func (s *side) spawn(id int, kind Kind, fd int, body func(*task, func(wait) bool) error) *task {
	s.tasks = append(s.tasks, task{s: s, slot: int32(len(s.tasks)), id: id, kind: kind, fd: fd})
	t := &s.tasks[len(s.tasks)-1]
	t.next, t.stop = coroutine(t, body)
	s.live++
	s.runq = append(s.runq, t.slot)
	return t
}

// register adds t's socket to the epoll set, edge-triggered for both directions, with the task's
// slot as the event data.
func (s *side) register(t *task) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: t.slot}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, t.fd, &ev))
}
