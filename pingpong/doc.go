// Package pingpong runs the seed's two-thread ping-pong: C clients each send M one-byte messages
// over loopback TCP or AF_UNIX stream sockets and check every echo, while a server echoes them back.
//
// # Threads
//
// There are exactly two OS threads, as in the C++ anchor: the clients thread runs the C client
// tasks, the server thread runs the listening socket (an acceptor task) and one peer task per
// accepted connection. Each is a goroutine pinned with runtime.LockOSThread that owns an epoll
// instance (edge-triggered) and raw non-blocking sockets created with SOCK_NONBLOCK|SOCK_CLOEXEC
// through golang.org/x/sys/unix. Neither the net package nor the Go netpoller is involved, so all
// socket work of a side happens on that side's thread and nowhere else.
//
// # Tasks
//
// A task is a coroutine written as straight-line code with no callbacks. A client reads:
// connect; M times { send 1 byte; receive 1 byte; check it }; close. A peer echoes until EOF.
// Each task is an iter.Seq[wait] turned into a coroutine with iter.Pull. Whenever a syscall
// reports that it would block, the task yields a wait value naming the readiness it needs
// (readable, writable, or "retry later"); the thread's loop parks it and calls its next function
// again when epoll reports that readiness. iter.Pull is a direct runtime coroutine switch (about
// 80 ns for a resume plus a yield): it does not go through the scheduler, and the coroutine runs on
// the OS thread of the goroutine that created it, so a task never leaves its side's thread. Unlike
// C++20 stackless coroutines, a task may yield from any depth of calls, because each coroutine
// has its own (goroutine) stack; that is what makes the I/O helpers ordinary functions.
//
// # Steps
//
// A step is one message handled by one task: for a client, one round trip whose echo has been
// received and checked; for a peer, one byte echoed. Config.OnStep runs at every step, on the
// task's thread and inside the task's coroutine, so work it does lands on that task's stack.
//
// # Cost
//
// In steady state a round trip allocates nothing: buffers live in the task, wait values are
// small integers, errnos are boxed without allocation, and latency goes into a fixed histogram.
// A round trip costs four socket syscalls (a send and a recv on each side) plus a share of an
// epoll_wait per side: a recv that follows one which emptied the socket waits for epoll first
// instead of failing with EAGAIN (see task.do for why no wakeup is lost). A thread that runs out
// of work first waits for epoll with a raw syscall that keeps its P for up to a millisecond, and
// only then through the scheduler, so that the runtime does not hand its P around at every wait
// (see side.wait).
package pingpong
