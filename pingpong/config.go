package pingpong

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Transport selects the socket family the clients and peers talk over.
type Transport string

const (
	// TCP is IPv4 loopback (127.0.0.1) on an ephemeral port, with TCP_NODELAY on both ends.
	TCP Transport = "tcp"
	// Unix is an AF_UNIX stream socket whose file lives in a private temporary directory.
	Unix Transport = "unix"
)

// Kind says which side of a connection a task is.
type Kind uint8

const (
	// Client is a task on the clients thread that sends messages and checks their echoes.
	Client Kind = iota
	// Peer is a task on the server thread that echoes one accepted connection.
	Peer
)

// String returns "client" or "peer".
func (k Kind) String() string {
	switch k {
	case Client:
		return "client"
	case Peer:
		return "peer"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// DefaultWatchdog bounds a run when Config.Watchdog is 0.
const DefaultWatchdog = 2 * time.Minute

// Config describes one run.
type Config struct {
	Transport Transport
	// Clients is the number of client tasks C; there are as many peers, so 2C tasks in total.
	Clients int
	// Messages is the number M of one-byte round trips each client makes.
	Messages int
	// Watchdog ends a run that has not finished after this long with an error naming the
	// unfinished tasks. 0 means DefaultWatchdog.
	Watchdog time.Duration

	// OnStep is called on the task's own OS thread, inside the task's coroutine, each time a task
	// handles one message: a client after it has received and checked the echo of message step, a
	// peer after it has echoed message step. task is 0..C-1 for clients (by client index) and
	// C..2C-1 for peers (in accept order); step runs 0..M-1. It must be cheap, must not block and
	// must not call runtime.LockOSThread or UnlockOSThread. nil means no hook.
	OnStep func(task int, kind Kind, step int)
	// OnTaskStart is called inside a task's coroutine before its first syscall. nil means no hook.
	OnTaskStart func(task int, kind Kind)
	// OnTaskEnd is called inside a task's coroutine after its socket is closed, also when the run
	// is stopped early. nil means no hook.
	OnTaskEnd func(task int, kind Kind)

	// Idle, when > 0, makes each thread call OnIdle for a client or peer that has been parked
	// (waiting for its socket) for at least Idle since it last ran, once per such park: the point
	// at which a server would give the idle coroutine's stack pages back. The threads look every
	// Idle/4 (at least every millisecond), so the call comes between Idle and 1.25·Idle after the
	// task parked.
	Idle time.Duration
	// OnIdle is called on the task's own OS thread, outside its coroutine, while the task is
	// parked; the same rules as for OnStep apply. nil means no hook.
	OnIdle func(task int, kind Kind)
	// SocketMemory, when set, is kept up to date by the threads with the kernel memory of their
	// connected sockets, read with getsockopt(SO_MEMINFO) every SocketEvery and just before each
	// socket is closed.
	SocketMemory *SocketMemory
	// SocketEvery is how often the threads read SO_MEMINFO; 0 means 10ms.
	SocketEvery time.Duration

	// Fault injection and tuning for tests (0 means off / default):
	// peerCloseAfter makes every peer close its connection after echoing that many messages;
	// peerStallAfter makes every peer stop reading, without closing, after that many;
	// listenBacklog replaces SOMAXCONN as the listen backlog.
	peerCloseAfter int
	peerStallAfter int
	listenBacklog  int
}

// Validate reports every invalid field, naming it.
func (c Config) Validate() error {
	var errs []error
	switch c.Transport {
	case TCP, Unix:
	default:
		errs = append(errs, fmt.Errorf("transport must be %q or %q, got %q", TCP, Unix, c.Transport))
	}
	if c.Clients < 1 {
		errs = append(errs, fmt.Errorf("clients must be >= 1, got %d", c.Clients))
	}
	if c.Messages < 1 {
		errs = append(errs, fmt.Errorf("messages must be >= 1, got %d", c.Messages))
	}
	if c.Idle < 0 {
		errs = append(errs, fmt.Errorf("idle must be >= 0, got %v", c.Idle))
	}
	if c.SocketEvery < 0 {
		errs = append(errs, fmt.Errorf("socket interval must be >= 0, got %v", c.SocketEvery))
	}
	if c.Watchdog < 0 {
		errs = append(errs, fmt.Errorf("watchdog must be >= 0 (0 means %v), got %v", DefaultWatchdog, c.Watchdog))
	}
	return errors.Join(errs...)
}

// choresEvery is how often the threads look for idle tasks and read socket memory; 0 when
// neither is asked for.
func (c Config) choresEvery() time.Duration {
	var every time.Duration
	if c.SocketMemory != nil {
		every = c.SocketEvery
		if every == 0 {
			every = 10 * time.Millisecond
		}
	}
	if c.Idle > 0 {
		idle := c.Idle / 4
		if every == 0 || idle < every {
			every = idle
		}
	}
	if every > 0 {
		every = max(every, time.Millisecond)
	}
	return every
}

func (c Config) watchdog() time.Duration {
	if c.Watchdog == 0 {
		return DefaultWatchdog
	}
	return c.Watchdog
}

// Result is what a run measured. After an error or a cancellation it holds the counts up to the
// moment the run stopped.
type Result struct {
	Transport         Transport
	Clients           int
	MessagesPerClient int
	// RoundTrips counts echoes that clients received and checked; C*M when the run completes.
	RoundTrips int64
	// Errors counts tasks that failed (a run stops at the first failure, so usually 0 or 1).
	Errors int64
	// Elapsed runs from the start of the two threads until every client has finished and closed
	// its socket (or until the run stopped early).
	Elapsed time.Duration
	// Latency is the distribution of client round trips, send to checked echo.
	Latency Latency
	// Partial is set when the context was cancelled before all clients finished.
	Partial bool
	// ClientThreadCPU and ServerThreadCPU are the CPU time (user + system) of each IO thread over
	// the run, from getrusage(RUSAGE_THREAD).
	ClientThreadCPU, ServerThreadCPU time.Duration
	// IdleCalls counts OnIdle calls.
	IdleCalls int64
}

// Latency summarises round-trip times. Values come from a log-linear histogram: exact below 64 ns,
// above that rounded up to the end of a bucket no wider than 1/32 of its start, so P50 and P99
// overstate the true percentile by at most 3.2% and never understate it. Max is exact.
type Latency struct {
	P50, P99, Max time.Duration
}

// RoundTripsPerSecond is RoundTrips divided by Elapsed, or 0 if nothing was timed.
func (r Result) RoundTripsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.RoundTrips) / r.Elapsed.Seconds()
}

// SocketMemory is the kernel memory of a run's connected sockets: for each socket, SO_MEMINFO's
// receive-queue allocation (rmem_alloc), transmit allocation (wmem_alloc), forward allocation
// (fwd_alloc) and write-queue size (wmem_queued), in bytes, summed. The IO threads update it when
// Config.SocketMemory points at it; its methods are safe to call from any goroutine meanwhile.
// The listener is not counted.
type SocketMemory struct {
	now     [2]struct{ bytes, sockets atomic.Int64 } // the latest look of each thread
	closing [2]struct{ bytes, sockets atomic.Int64 } // summed over sockets just before their close
	peak    atomic.Int64                             // the most the latest looks summed to
}

// Now is the bytes the connected sockets held at the threads' latest looks, and how many
// sockets that was.
func (m *SocketMemory) Now() (bytes, sockets int64) {
	for i := range m.now {
		bytes += m.now[i].bytes.Load()
		sockets += m.now[i].sockets.Load()
	}
	return bytes, sockets
}

// AtClose is the bytes each socket held just before it was closed, summed, and how many sockets
// were closed that way.
func (m *SocketMemory) AtClose() (bytes, sockets int64) {
	for i := range m.closing {
		bytes += m.closing[i].bytes.Load()
		sockets += m.closing[i].sockets.Load()
	}
	return bytes, sockets
}

// Peak is the most the sockets held together at any look, bytes.
func (m *SocketMemory) Peak() int64 { return m.peak.Load() }

func (m *SocketMemory) publish(side Kind, bytes, sockets int64) {
	m.now[side].bytes.Store(bytes)
	m.now[side].sockets.Store(sockets)
	total, _ := m.Now()
	for {
		p := m.peak.Load()
		if total <= p || m.peak.CompareAndSwap(p, total) {
			return
		}
	}
}

func (m *SocketMemory) closed(side Kind, bytes int64) {
	m.closing[side].bytes.Add(bytes)
	m.closing[side].sockets.Add(1)
}
