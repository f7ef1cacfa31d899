package pingpong

import (
	"context"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A stall on the clients thread leaves every peer parked on its socket:
// each must be reported idle once for that park, on the server thread,
// and no task while Idle is 0.
func TestIdleHook(t *testing.T) {
	const clients, idle = 4, 5 * time.Millisecond
	var mu sync.Mutex
	calls := map[int]int{}
	cfg := Config{
		Transport: Unix, Clients: clients, Messages: 50, Idle: idle,
		OnStep: func(task int, kind Kind, step int) {
			if kind == Client && task == 0 && step == 10 {
				time.Sleep(10 * idle) // holds the clients thread: every peer waits
			}
		},
		OnIdle: func(task int, kind Kind) {
			mu.Lock()
			calls[task]++
			mu.Unlock()
		},
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for p := clients; p < 2*clients; p++ {
		if calls[p] < 1 {
			t.Errorf("peer %d never reported idle during a %v stall (calls %v)", p, 10*idle, calls)
		}
	}
	var total int64
	for _, n := range calls {
		total += int64(n)
	}
	if res.IdleCalls != total {
		t.Errorf("IdleCalls %d, hook saw %d", res.IdleCalls, total)
	}
	if res.ClientThreadCPU <= 0 || res.ServerThreadCPU <= 0 {
		t.Errorf("thread CPU %v / %v, want both measured", res.ClientThreadCPU, res.ServerThreadCPU)
	}

	cfg.Idle = 0
	calls = map[int]int{}
	if res, err = Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 || res.IdleCalls != 0 {
		t.Errorf("Idle 0: %d idle calls %v", res.IdleCalls, calls)
	}
}

// socketMemory follows what the kernel charges: bytes queued on an
// AF_UNIX stream count against the sender (wmem_alloc) until read.
func TestSocketMemoryFollowsQueuedBytes(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	before, err := socketMemory(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 10000)
	if _, err := unix.Write(fds[0], msg); err != nil {
		t.Fatal(err)
	}
	queued, err := socketMemory(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	if queued-before < int64(len(msg)) {
		t.Errorf("sender holds %d bytes with %d queued, %d before: want at least the queued bytes more", queued, len(msg), before)
	}
	buf := make([]byte, len(msg))
	for got := 0; got < len(msg); {
		n, err := unix.Read(fds[1], buf)
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	after, err := socketMemory(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("sender holds %d bytes after the peer read everything, %d before", after, before)
	}
}

// Every connected socket is measured once at its close, and the live
// looks see them while the run goes on.
func TestRunSocketMemory(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			const clients = 8
			var m SocketMemory
			cfg := Config{Transport: tr, Clients: clients, Messages: 300, SocketMemory: &m, SocketEvery: time.Millisecond,
				OnStep: func(task int, kind Kind, step int) {
					if kind == Client && task == 0 && step == 100 {
						time.Sleep(5 * time.Millisecond) // let a look happen mid-run
					}
				}}
			if _, err := Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
			bytes, sockets := m.AtClose()
			if sockets != 2*clients {
				t.Errorf("%d sockets measured at close, want %d", sockets, 2*clients)
			}
			// Queues are empty when a finished connection closes: the
			// kernel reclaims the forward allocation as the last byte is read.
			if bytes < 0 {
				t.Errorf("%d bytes at close", bytes)
			}
			// Mid-run, echoes in flight hold socket buffers.
			if m.Peak() <= 0 {
				t.Errorf("peak %d bytes, want > 0", m.Peak())
			}
			t.Logf("%s: %d bytes over %d sockets at close, peak %d", tr, bytes, sockets, m.Peak())
		})
	}
}
