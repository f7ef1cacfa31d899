package procread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/procfs"
)

// SyscallState says what /proc/PID/task/TID/syscall found the thread doing.
type SyscallState uint8

// The SyscallStates, after the three forms of the kernel's
// proc_pid_syscall (fs/proc/base.c).
const (
	// Running: the thread was on a CPU (or could not be caught off one):
	// the file reads "running" and holds no stack pointer.
	Running SyscallState = iota
	// InSyscall: blocked in system call Nr with Args; the file reads
	// "NR ARG1 .. ARG6 SP PC".
	InSyscall
	// Blocked: off the CPU but not in a system call (e.g. stopped after a
	// fault); the file reads "-1 SP PC" (a negative NR, no arguments).
	Blocked
)

// String names the state: "running", "syscall" or "blocked".
func (s SyscallState) String() string {
	switch s {
	case Running:
		return "running"
	case InSyscall:
		return "syscall"
	case Blocked:
		return "blocked"
	}
	return "SyscallState(" + strconv.Itoa(int(s)) + ")"
}

// Syscall is the content of /proc/PID/task/TID/syscall.
type Syscall struct {
	// State says which form the file had; SP and PC are set unless it is
	// Running.
	State SyscallState
	// Nr is the system call number (as on this architecture's table) when
	// InSyscall, the negative number the kernel printed when Blocked.
	Nr int64
	// Args are the six argument registers when InSyscall.
	Args [6]uint64
	// SP is the thread's user stack pointer, an address.
	SP uint64
	// PC is the thread's user program counter, an address.
	PC uint64
}

// ParseSyscall parses the text of a /proc/PID/task/TID/syscall file:
// "running", "NR SP PC" with a negative NR, or "NR A1 A2 A3 A4 A5 A6 SP PC"
// (numbers after NR in 0x hex). An empty file is ErrGone: the kernel gives
// one when the thread exits while it is read.
func ParseSyscall(b []byte) (Syscall, error) {
	var s Syscall
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return s, fmt.Errorf("syscall: empty: %w", ErrGone)
	}
	if string(b) == "running" {
		return s, nil
	}
	f := bytes.Fields(b)
	nr, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return s, fmt.Errorf("syscall %q: number: %w", b, err)
	}
	s.Nr = nr
	switch {
	case nr < 0 && len(f) == 3:
		s.State = Blocked
	case nr >= 0 && len(f) == 9:
		s.State = InSyscall
		for i := range s.Args {
			if s.Args[i], err = hex0x(f[1+i]); err != nil {
				return s, fmt.Errorf("syscall %q: argument %d: %w", b, i+1, err)
			}
		}
	default:
		return s, fmt.Errorf("syscall %q: %d fields for number %d", b, len(f), nr)
	}
	if s.SP, err = hex0x(f[len(f)-2]); err != nil {
		return s, fmt.Errorf("syscall %q: sp: %w", b, err)
	}
	if s.PC, err = hex0x(f[len(f)-1]); err != nil {
		return s, fmt.Errorf("syscall %q: pc: %w", b, err)
	}
	return s, nil
}

func hex0x(b []byte) (uint64, error) {
	h, ok := bytes.CutPrefix(b, []byte("0x"))
	if !ok {
		return 0, fmt.Errorf("%q has no 0x", b)
	}
	return parseHex(h)
}

// Thread is one thread of a process and where its stack pointer was.
type Thread struct {
	// TID is the thread id (the task's directory name under /proc/PID/task).
	TID int
	// Name is the thread's command name from /proc/PID/task/TID/comm (at
	// most 15 bytes, set by prctl(PR_SET_NAME) or pthread_setname_np).
	Name string
	// Syscall is what /proc/PID/task/TID/syscall said.
	Syscall
}

// ProcDir reads the maps, threads and totals of one process, keeping its
// buffers between calls so a sampler reading them every few milliseconds
// does not allocate per mapping. A ProcDir is not safe for concurrent use.
type ProcDir struct {
	pid  int
	fs   procfs.FS // the proc root, for status and stat
	dir  string    // procRoot/PID
	maps string    // dir/maps
	task string    // dir/task
	buf  []byte    // scratch for maps
	fbuf []byte    // scratch for small files
}

// OpenProcDir returns a ProcDir for process pid under procRoot ("" means
// "/proc"). A pid with no directory is ErrGone.
func OpenProcDir(procRoot string, pid int) (*ProcDir, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	if pid <= 0 {
		return nil, fmt.Errorf("procread: invalid pid %d", pid)
	}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	if _, err := os.Stat(dir); err != nil {
		return nil, goneErr("process "+strconv.Itoa(pid), err)
	}
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("procread: proc root %s: %w", procRoot, err)
	}
	return &ProcDir{
		pid:  pid,
		fs:   pfs,
		dir:  dir,
		maps: filepath.Join(dir, "maps"),
		task: filepath.Join(dir, "task"),
		fbuf: make([]byte, 0, 512),
	}, nil
}

// PID returns the process id.
func (d *ProcDir) PID() int { return d.pid }

// Dir returns the process's directory, e.g. "/proc/1234".
func (d *ProcDir) Dir() string { return d.dir }

// Maps reads /proc/PID/maps into dst[:0] and returns it, sorted by address
// as the kernel lists it. A process that has exited (including a zombie,
// whose maps file is empty) is ErrGone; a permission failure keeps its
// errno (errors.Is(err, fs.ErrPermission)).
func (d *ProcDir) Maps(dst []Mapping) ([]Mapping, error) {
	dst, buf, err := readMaps(d.maps, dst, d.buf)
	d.buf = buf
	if err != nil {
		return dst, err
	}
	if len(dst) == 0 {
		return dst, fmt.Errorf("maps %s: empty: %w", d.maps, ErrGone)
	}
	return dst, nil
}

// Threads lists the process's threads with their names and stack pointers
// into dst[:0]. A thread that exits while it is read is left out; a process
// gone is ErrGone. Reading another process's syscall files needs the
// ptrace access mode (same user and kernel.yama.ptrace_scope, or
// CAP_SYS_PTRACE): without it the error keeps the errno (EACCES).
func (d *ProcDir) Threads(dst []Thread) ([]Thread, error) {
	dst = dst[:0]
	ents, err := os.ReadDir(d.task)
	if err != nil {
		return dst, goneErr("threads", err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		t, err := d.thread(tid)
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			return dst, err
		}
		dst = append(dst, t)
	}
	if len(dst) == 0 {
		return dst, fmt.Errorf("threads %s: none left: %w", d.task, ErrGone)
	}
	return dst, nil
}

// thread reads one thread's syscall and comm files.
func (d *ProcDir) thread(tid int) (Thread, error) {
	t := Thread{TID: tid}
	base := filepath.Join(d.task, strconv.Itoa(tid))
	b, err := d.readSmall(filepath.Join(base, "syscall"))
	if err != nil {
		return t, err
	}
	if t.Syscall, err = ParseSyscall(b); err != nil {
		return t, fmt.Errorf("thread %d: %w", tid, err)
	}
	if b, err = d.readSmall(filepath.Join(base, "comm")); err != nil {
		return t, err
	}
	t.Name = string(bytes.TrimSuffix(b, []byte{'\n'}))
	return t, nil
}

// readSmall reads a small proc file into d.fbuf.
func (d *ProcDir) readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, goneErr(path, err)
	}
	defer f.Close()
	d.fbuf = d.fbuf[:0]
	for {
		if len(d.fbuf) == cap(d.fbuf) {
			d.fbuf = append(d.fbuf, 0)[:len(d.fbuf)]
		}
		n, err := f.Read(d.fbuf[len(d.fbuf):cap(d.fbuf)])
		d.fbuf = d.fbuf[:len(d.fbuf)+n]
		if n == 0 || err != nil {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, goneErr(path, err)
			}
			return d.fbuf, nil
		}
	}
}
