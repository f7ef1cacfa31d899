package pingpong

import (
	"errors"
	"fmt"
	"iter"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"
)

// task is one coroutine: a client, a peer, or the server's acceptor.
type task struct {
	s        *side
	slot     int32 // index in s.tasks and epoll event data
	id       int   // public number: 0..C-1 clients, C..2C-1 peers, -1 acceptor
	kind     Kind
	acceptor bool
	fd       int // socket, -1 once closed; the acceptor's is the listener, which Run closes
	wait     wait
	drained  bool // the last recv returned less than it asked for, and the task has not yielded since
	finished bool // its coroutine has ended
	stopped  bool // it was ended by shutdown rather than by returning on its own
	next     func() (wait, bool)
	stop     func()
	// parkedAt is when the task last yielded to the loop, and idle whether OnIdle was called
	// for that park (both kept only when Config.Idle is set).
	parkedAt time.Time
	idle     bool
	buf      [64]byte
}

func (t *task) name() string {
	if t.acceptor {
		return "acceptor"
	}
	return fmt.Sprintf("%s %d", t.kind, t.id)
}

// errorf prefixes an error with the task's name.
func (t *task) errorf(format string, args ...any) error {
	return fmt.Errorf(t.name()+": "+format, args...)
}

func (t *task) finish() {
	t.finished = true
	t.closeFD()
	t.s.live--
}

func (t *task) closeFD() {
	if t.fd >= 0 && !t.acceptor {
		if m := t.s.r.cfg.SocketMemory; m != nil {
			if b, err := socketMemory(t.fd); err == nil {
				m.closed(t.s.kind, b)
			}
		}
		unix.Close(t.fd) // also drops it from the epoll set
	}
	t.fd = -1
}

// coroutine turns body into a coroutine with iter.Pull. The wrapper runs the hooks, closes the
// socket when the body returns and reports its error. A panic (from a hook, say) is recovered
// here, where debug.Stack still shows where it happened: it stops the run, and Run re-raises it.
func coroutine(t *task, body func(*task, func(wait) bool) error) (func() (wait, bool), func()) {
	cfg := &t.s.r.cfg
	return iter.Pull(func(yield func(wait) bool) {
		defer func() {
			if p := recover(); p != nil {
				t.closeFD()
				if t.s.panicked == nil {
					t.s.panicked = fmt.Sprintf("pingpong %s: panic: %v\n%s", t.name(), p, debug.Stack())
				}
				t.s.r.fail(t.errorf("panic: %v", p))
			}
		}()
		if cfg.OnTaskStart != nil && !t.acceptor {
			cfg.OnTaskStart(t.id, t.kind)
		}
		err := body(t, yield)
		t.closeFD()
		if err != nil && err != errStopped {
			t.s.r.fail(err)
		}
		if cfg.OnTaskEnd != nil && !t.acceptor {
			cfg.OnTaskEnd(t.id, t.kind)
		}
	})
}

// do attempts o until it completes, yielding whenever ready says to wait. It returns errStopped
// if the coroutine is being stopped, and wraps any other error as an os.SyscallError.
func (t *task) do(yield func(wait) bool, o op, p []byte) (int, error) {
	if o == opRecv && t.drained {
		// The previous recv emptied the socket, and no epoll_wait has run since: the loop is
		// suspended while this task runs. Any byte that arrives from now on therefore raises an
		// edge-triggered event that the loop has yet to see, so waiting first loses nothing and
		// saves a recv that, in a ping-pong, would almost always fail with EAGAIN.
		if !t.park(yield, waitRead) {
			return 0, errStopped
		}
	}
	for {
		var n int
		var err error
		switch o {
		case opRecv:
			n, err = recv(t.fd, p)
		case opSend:
			n, err = send(t.fd, p)
		case opAccept:
			n, err = accept(t.fd)
		case opConnect:
			err = unix.Connect(t.fd, t.s.r.ln.addr)
		}
		if o == opRecv {
			t.drained = err == nil && n > 0 && n < len(p)
		}
		w, err := ready(o, err)
		switch w {
		case waitNone:
			if err != nil {
				return n, os.NewSyscallError(o.String(), err)
			}
			return n, nil
		case waitAgain:
			continue
		}
		if !t.park(yield, w) {
			return 0, errStopped
		}
	}
}

// park yields w to the loop; false means the coroutine is being stopped. Once the loop has run,
// it may have consumed edges of this socket, so the socket no longer counts as drained.
func (t *task) park(yield func(wait) bool, w wait) bool {
	t.drained = false
	return yield(w)
}

// client connects, then M times sends one byte, waits for its echo and checks it.
func (t *task) client(yield func(wait) bool) error {
	s, cfg := t.s, &t.s.r.cfg
	fd, err := newSocket(cfg.Transport)
	if err != nil {
		return t.errorf("%w", err)
	}
	t.fd = fd
	if err := s.register(t); err != nil {
		return t.errorf("%w", err)
	}
	if _, err := t.do(yield, opConnect, nil); err != nil {
		return t.stopOr(err, "%w", err)
	}
	m := cfg.Messages
	for i := range m {
		sent := byte(t.id + i)
		t.buf[0] = sent
		start := time.Now()
		if _, err := t.do(yield, opSend, t.buf[:1]); err != nil {
			if peerGone(err) {
				return t.errorf("peer closed after %d of %d messages: %w", i, m, err)
			}
			return t.stopOr(err, "send message %d: %w", i, err)
		}
		// Ask for more than the one byte due, so that extra bytes show up as an error, and a
		// short read tells do the socket is drained.
		n, err := t.do(yield, opRecv, t.buf[:])
		switch {
		case err != nil && peerGone(err):
			return t.errorf("peer closed after %d of %d messages: %w", i, m, err)
		case err != nil:
			return t.stopOr(err, "receive message %d: %w", i, err)
		case n == 0:
			return t.errorf("peer closed after %d of %d messages", i, m)
		case n > 1:
			return t.errorf("echo of message %d: got %d bytes, want 1", i, n)
		case t.buf[0] != sent:
			return t.errorf("echo mismatch at message %d: sent 0x%02x got 0x%02x", i, sent, t.buf[0])
		}
		s.lat.record(time.Since(start))
		s.roundTrips++
		if cfg.OnStep != nil {
			cfg.OnStep(t.id, Client, i)
		}
	}
	return nil
}

// peer echoes everything it receives until EOF.
func (t *task) peer(yield func(wait) bool) error {
	cfg := &t.s.r.cfg
	for step := 0; ; {
		n, err := t.do(yield, opRecv, t.buf[:])
		if err != nil {
			return t.stopOr(err, "receive after %d messages: %w", step, err)
		}
		if n == 0 {
			return nil // the client closed: done
		}
		for off := 0; off < n; {
			w, err := t.do(yield, opSend, t.buf[off:n])
			if err != nil {
				return t.stopOr(err, "echo message %d: %w", step, err)
			}
			off += w
		}
		for range n {
			if cfg.OnStep != nil {
				cfg.OnStep(t.id, Peer, step)
			}
			step++
			if step == cfg.peerCloseAfter {
				return nil
			}
			if step == cfg.peerStallAfter {
				for t.park(yield, waitRead) { // keep the socket open, but never read again
				}
				return errStopped
			}
		}
	}
}

// accept accepts C connections and spawns a peer for each, numbered in accept order.
func (t *task) accept(yield func(wait) bool) error {
	s, cfg := t.s, &t.s.r.cfg
	if err := s.register(t); err != nil {
		return t.errorf("%w", err)
	}
	for i := range cfg.Clients {
		fd, err := t.do(yield, opAccept, nil)
		if err != nil {
			return t.stopOr(err, "connection %d: %w", i, err)
		}
		if err := setNoDelay(cfg.Transport, fd); err != nil {
			unix.Close(fd)
			return t.errorf("connection %d: %w", i, err)
		}
		p := s.spawn(cfg.Clients+i, Peer, fd, (*task).peer)
		if err := s.register(p); err != nil {
			return p.errorf("%w", err)
		}
	}
	return nil
}

// peerGone reports whether err says the other end closed the connection.
func peerGone(err error) bool {
	return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
}

// stopOr passes errStopped through, or formats a task error.
func (t *task) stopOr(err error, format string, args ...any) error {
	if err == errStopped {
		return err
	}
	return t.errorf(format, args...)
}
