package pingpong

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wait is what a task yields: the readiness it needs before its next attempt.
type wait uint8

const (
	waitNone  wait = iota // not waiting: the attempt finished, with a result or a hard error
	waitAgain             // interrupted by a signal: attempt again at once, without parking
	waitRead              // park until epoll reports the socket readable (or hung up)
	waitWrite             // park until epoll reports the socket writable (or hung up)
	waitRetry             // nothing to poll for: attempt again after retryDelay
)

// Event bits that end each kind of wait. Hang-ups and errors end both, so that the retried
// syscall reports them instead of the task waiting forever.
const (
	readEvents  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	writeEvents = unix.EPOLLOUT | unix.EPOLLHUP | unix.EPOLLERR
)

// satisfiedBy reports whether an epoll event mask ends this wait.
func (w wait) satisfiedBy(events uint32) bool {
	switch w {
	case waitRead:
		return events&readEvents != 0
	case waitWrite:
		return events&writeEvents != 0
	}
	return false
}

// op is one kind of socket syscall a task attempts.
type op uint8

const (
	opRecv op = iota
	opSend
	opAccept
	opConnect
)

// String is the syscall's name, as used in os.SyscallError.
func (o op) String() string {
	switch o {
	case opRecv:
		return "recvfrom"
	case opSend:
		return "sendto"
	case opAccept:
		return "accept4"
	case opConnect:
		return "connect"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ready classifies the error of one non-blocking attempt of o. It is the only place that knows
// the kernel's several ways of saying "not now", so that task code stays straight-line and every
// would-block case parks the task instead of failing it:
//   - EINTR: a signal (Go's preemption uses SIGURG) cut the syscall short; try again at once.
//   - EAGAIN on recv, send or accept: the socket buffer or accept queue is empty or full; wait for
//     the edge epoll reports when that changes.
//   - EINPROGRESS, EALREADY on connect: a TCP handshake is under way; the socket turns writable
//     when it ends, and connecting again then reports the outcome (EISCONN, 0, or its error).
//   - EISCONN on connect: the handshake finished since the previous attempt; success.
//   - EAGAIN on an AF_UNIX connect: the listener's backlog is full. The kernel wakes only
//     blocking connectors when it drains, so epoll would never say; retry after a delay.
//   - ECONNREFUSED on connect: also a full backlog (or a listener not yet listening); retry.
//   - ECONNABORTED on accept: the connection died in the queue; take the next one.
//
// Anything else ends the attempt with the error.
func ready(o op, err error) (wait, error) {
	switch err {
	case nil:
		return waitNone, nil
	case unix.EINTR:
		return waitAgain, nil
	case unix.EAGAIN:
		switch o {
		case opRecv, opAccept:
			return waitRead, nil
		case opSend:
			return waitWrite, nil
		case opConnect:
			return waitRetry, nil
		}
	case unix.EINPROGRESS, unix.EALREADY:
		if o == opConnect {
			return waitWrite, nil
		}
	case unix.EISCONN:
		if o == opConnect {
			return waitNone, nil
		}
	case unix.ECONNREFUSED:
		if o == opConnect {
			return waitRetry, nil
		}
	case unix.ECONNABORTED:
		if o == opAccept {
			return waitAgain, nil
		}
	}
	return waitNone, err
}

// errnoErr boxes e, or returns nil for 0. Errno values below 256 box without allocating.
func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// recv and send run on non-blocking sockets, so the kernel never puts the thread to sleep in
// them. They therefore use RawSyscall6, which skips the scheduler's entersyscall/exitsyscall
// bookkeeping (handing off the P for a syscall that may block); that is measurably cheaper with
// several of these syscalls per round trip. epoll_wait does block: epollWait below is its raw
// form, which side.wait uses only with a short timeout, and otherwise it goes through the usual
// Syscall path (unix.EpollWait).

// recv reads into p; 0 means end of stream.
func recv(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// send writes p with MSG_NOSIGNAL, so that a closed peer yields EPIPE rather than SIGPIPE.
func send(fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// epollWait is epoll_wait as a raw syscall: the thread keeps its P while the kernel waits up to
// msec milliseconds, so msec must stay short (see side.wait).
func epollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, errnoErr(e)
	}
	return int(n), nil
}

// accept takes one connection off listener fd as a non-blocking, close-on-exec socket. It skips
// the peer address, which unix.Accept4 would decode into a fresh allocation.
func accept(fd int) (int, error) {
	nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, errnoErr(e)
	}
	return int(nfd), nil
}

// newSocket returns a non-blocking, close-on-exec stream socket of the transport's family, with
// TCP_NODELAY set for TCP.
func newSocket(t Transport) (fd int, err error) {
	family := unix.AF_INET
	if t == Unix {
		family = unix.AF_UNIX
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := setNoDelay(t, fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// setNoDelay disables Nagle's algorithm on a TCP socket, so each one-byte message leaves at once.
func setNoDelay(t Transport, fd int) error {
	if t != TCP {
		return nil
	}
	return os.NewSyscallError("setsockopt TCP_NODELAY", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1))
}

// listener is the server's listening socket and the address clients connect to.
type listener struct {
	fd   int
	addr unix.Sockaddr
	dir  string // private directory holding the AF_UNIX socket file; "" for TCP
}

// listen opens a non-blocking listener: 127.0.0.1 on an ephemeral port for TCP, or a socket
// file in a fresh os.MkdirTemp directory for Unix. The kernel caps backlog at net.core.somaxconn.
func listen(t Transport, backlog int) (l listener, err error) {
	l.fd = -1
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if t == Unix {
		if l.dir, err = os.MkdirTemp("", "pingpong-"); err != nil {
			return l, err
		}
		path := filepath.Join(l.dir, "sock")
		if len(path) >= len(unix.RawSockaddrUnix{}.Path) {
			return l, fmt.Errorf("unix socket path %q is longer than %d bytes; set TMPDIR to a shorter directory",
				path, len(unix.RawSockaddrUnix{}.Path)-1)
		}
		sa = &unix.SockaddrUnix{Name: path}
	}
	if l.fd, err = newSocket(t); err != nil {
		return l, err
	}
	if err = unix.Bind(l.fd, sa); err != nil {
		return l, os.NewSyscallError("bind", err)
	}
	if err = unix.Listen(l.fd, backlog); err != nil {
		return l, os.NewSyscallError("listen", err)
	}
	if l.addr, err = unix.Getsockname(l.fd); err != nil {
		return l, os.NewSyscallError("getsockname", err)
	}
	return l, nil
}

// close closes the socket and removes the socket directory; it may be called more than once.
func (l *listener) close() error {
	var err error
	if l.fd >= 0 {
		err = os.NewSyscallError("close", unix.Close(l.fd))
		l.fd = -1
	}
	if l.dir != "" {
		if rerr := os.RemoveAll(l.dir); err == nil {
			err = rerr
		}
		l.dir = ""
	}
	return err
}

// socketMemory is the kernel memory one socket holds, bytes: SO_MEMINFO's receive-queue
// allocation, transmit allocation, forward allocation and write-queue size, summed.
// x/sys has the SK_MEMINFO_* indexes but no wrapper for the array-valued option.
func socketMemory(fd int) (int64, error) {
	var mi [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(mi))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, os.NewSyscallError("getsockopt SO_MEMINFO", errno)
	}
	return int64(mi[unix.SK_MEMINFO_RMEM_ALLOC]) + int64(mi[unix.SK_MEMINFO_WMEM_ALLOC]) +
		int64(mi[unix.SK_MEMINFO_FWD_ALLOC]) + int64(mi[unix.SK_MEMINFO_WMEM_QUEUED]), nil
}

// threadCPU is the calling thread's CPU time, user and system; 0 if getrusage fails.
func threadCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
