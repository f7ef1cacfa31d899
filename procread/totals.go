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

// Totals are whole-process memory figures for one sample. Sizes are in
// bytes; the kernel reports kB, i.e. KiB, and they are stored times 1024.
type Totals struct {
	// VmSize is the total virtual address space mapped, from
	// /proc/PID/status VmSize, bytes. Reserved-but-untouched stacks count
	// here in full.
	VmSize uint64
	// VmRSS is the resident set size (RssAnon + RssFile + RssShmem), from
	// /proc/PID/status VmRSS, bytes.
	VmRSS uint64
	// VmHWM is the peak resident set size ("high water mark") since the
	// process started, from /proc/PID/status VmHWM, bytes.
	VmHWM uint64
	// VmPTE is the memory used by the process's page tables, from
	// /proc/PID/status VmPTE, bytes. It grows with the number of 2 MiB
	// regions that have any page touched.
	VmPTE uint64
	// VmSwap is anonymous memory swapped out, from /proc/PID/status VmSwap,
	// bytes.
	VmSwap uint64
	// RssAnon is the resident anonymous memory (stacks, heap), from
	// /proc/PID/status RssAnon, bytes.
	RssAnon uint64
	// MinorFaults is the number of page faults served without I/O (each
	// first touch of an anonymous page is one), from /proc/PID/stat field
	// 10 (minflt), a count.
	MinorFaults uint64
	// MajorFaults is the number of page faults that needed I/O, from
	// /proc/PID/stat field 12 (majflt), a count.
	MajorFaults uint64
	// VMAs is the number of VMAs the process holds (the kernel's
	// mm->map_count), a count: the lines of /proc/PID/maps less the
	// [vsyscall] gate line x86-64 shows last. The gate area is one page
	// shared by every process, outside the process's VMA tree, so it is
	// not counted against vm.max_map_count. VMAs is what that limit bounds.
	VMAs int
}

// Reader reads the memory figures of one process from a proc root. It
// keeps its buffers between calls, so a sampler that calls Totals every few
// milliseconds does not allocate. A Reader is not safe for concurrent use.
type Reader struct {
	procRoot string // e.g. "/proc"
	pidDir   string // procRoot/PID or procRoot/self
	status   string // pidDir/status
	stat     string // pidDir/stat
	maps     string // pidDir/maps
	smaps    string // pidDir/smaps

	buf  []byte      // contents of the last file read, reused
	tail []byte      // the last bytes of maps, to find the gate line
	sp   smapsParser // buffers for Smaps, reused
}

// NewReader returns a Reader for process pid under procRoot ("" means
// "/proc"); pid 0 means the calling process ("self"). It fails, naming the
// file, if the process's status, stat or maps file does not exist.
func NewReader(procRoot string, pid int) (*Reader, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	if pid < 0 {
		return nil, fmt.Errorf("procread: invalid pid %d", pid)
	}
	name := "self"
	if pid != 0 {
		name = strconv.Itoa(pid)
	}
	dir := filepath.Join(procRoot, name)
	r := &Reader{
		procRoot: procRoot,
		pidDir:   dir,
		status:   filepath.Join(dir, "status"),
		stat:     filepath.Join(dir, "stat"),
		maps:     filepath.Join(dir, "maps"),
		smaps:    filepath.Join(dir, "smaps"),
		buf:      make([]byte, 0, 8<<10),
		tail:     make([]byte, 0, gateTail),
	}
	for _, p := range []string{r.status, r.stat, r.maps} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("procread: process %s: %w", name, err)
		}
	}
	return r, nil
}

// Dir returns the process directory the Reader reads from, e.g.
// "/proc/self".
func (r *Reader) Dir() string { return r.pidDir }

// Totals reads /proc/PID/status, /proc/PID/stat and counts the VMAs in
// /proc/PID/maps. It is meant to be called
// at a high rate: it reuses the Reader's buffer and allocates only to open
// the three files. Its cost is dominated by the kernel generating maps, so
// it grows with the number of VMAs (about 0.2 µs per VMA on a 2-core
// x86-64 VM, against some 15 µs for status and stat).
func (r *Reader) Totals() (Totals, error) {
	var t Totals
	if err := r.readStatus(&t); err != nil {
		return t, err
	}
	if err := r.readStat(&t); err != nil {
		return t, err
	}
	n, err := r.countVMAs(r.maps)
	if err != nil {
		return t, err
	}
	t.VMAs = n
	return t, nil
}

// Smaps parses /proc/PID/smaps, passing each VMA to fn as ParseSmaps does.
func (r *Reader) Smaps(fn func(*VMA) error) error {
	return r.sp.read(r.smaps, fn)
}

// readStatus fills the VmSize, VmRSS, VmHWM, VmPTE, VmSwap and RssAnon of t
// from /proc/PID/status.
func (r *Reader) readStatus(t *Totals) error {
	if err := r.readFile(r.status); err != nil {
		return err
	}
	if err := parseStatus(r.buf, t); err != nil {
		return fmt.Errorf("status %s: %w", r.status, err)
	}
	return nil
}

// parseStatus parses the "Key:\tN kB" lines of a /proc/PID/status
// file. It fails if VmRSS is absent (as for a kernel thread or a zombie,
// which have no memory to report).
func parseStatus(b []byte, t *Totals) error {
	var sawRSS, sawHWM, sawPTE bool
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "VmSize":
			dst = &t.VmSize
		case "VmRSS":
			dst, sawRSS = &t.VmRSS, true
		case "VmHWM":
			dst, sawHWM = &t.VmHWM, true
		case "VmPTE":
			dst, sawPTE = &t.VmPTE, true
		case "VmSwap":
			dst = &t.VmSwap
		case "RssAnon":
			dst = &t.RssAnon
		default:
			continue
		}
		v, err := parseKB(val)
		if err != nil {
			return fmt.Errorf("line %d %q: %w", n, line, err)
		}
		*dst = v
	}
	// A missing figure is an error, never a zero (kernel threads, which
	// have no memory of their own, lack them all).
	switch {
	case !sawRSS:
		return errors.New("no VmRSS line")
	case !sawHWM:
		return errors.New("no VmHWM line")
	case !sawPTE:
		return errors.New("no VmPTE line")
	}
	return nil
}

// readStat fills the fault counts of t from /proc/PID/stat.
func (r *Reader) readStat(t *Totals) error {
	if err := r.readFile(r.stat); err != nil {
		return err
	}
	if err := parseStat(r.buf, t); err != nil {
		return fmt.Errorf("stat %s: %w", r.stat, err)
	}
	return nil
}

// parseStat parses the one-line /proc/PID/stat. Its second field, the
// command name in parentheses, may itself hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStat(b []byte, t *Totals) error {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return fmt.Errorf("no ')' closing the command name in %q", b)
	}
	rest := b[i+1:]
	// Fields after the command: 3 state, 4 ppid, 5 pgrp, 6 session,
	// 7 tty_nr, 8 tpgid, 9 flags, 10 minflt, 11 cminflt, 12 majflt.
	for field := 3; field <= 12; field++ {
		var w []byte
		w, rest = nextWord(rest)
		if len(w) == 0 {
			return fmt.Errorf("only %d fields", field-1)
		}
		var dst *uint64
		switch field {
		case 10:
			dst = &t.MinorFaults
		case 12:
			dst = &t.MajorFaults
		default:
			continue
		}
		v, err := parseDec(w)
		if err != nil {
			return fmt.Errorf("field %d: %w", field, err)
		}
		*dst = v
	}
	return nil
}

// readFile reads the whole of path into r.buf, growing it as needed.
// procfs files report size 0, so the file is read until EOF.
func (r *Reader) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r.buf = r.buf[:0]
	for {
		if len(r.buf) == cap(r.buf) {
			r.buf = append(r.buf, 0)[:len(r.buf)]
		}
		n, err := f.Read(r.buf[len(r.buf):cap(r.buf)])
		r.buf = r.buf[:len(r.buf)+n]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// gateTail is how many of the last bytes of a maps file countVMAs keeps:
// enough for the whole gate line (about 90 bytes).
const gateTail = 256

// gateName is the pathname maps shows for the x86-64 vsyscall page, the
// gate VMA: the kernel appends it after the process's own VMAs (see
// get_gate_vma and m_next in fs/proc/task_mmu.c) and never counts it in
// mm->map_count.
const gateName = "[vsyscall]"

// countVMAs counts the newline-terminated lines of the maps file at path
// (and a last line without one), less a last line that is the gate VMA,
// reading it in chunks through r.buf. It allocates nothing once r.buf is
// sized.
func (r *Reader) countVMAs(path string) (int, error) {
	if cap(r.buf) < 64<<10 {
		r.buf = make([]byte, 0, 64<<10)
	}
	return r.countVMAsChunked(path, cap(r.buf))
}

// countVMAsChunked is countVMAs reading at most chunk bytes at a time
// (chunk <= cap(r.buf)).
func (r *Reader) countVMAsChunked(path string, chunk int) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := r.buf[:chunk]
	tail := r.tail[:0]
	lines := 0
	last := byte('\n')
	for {
		n, err := f.Read(buf)
		if n > 0 {
			lines += bytes.Count(buf[:n], []byte{'\n'})
			last = buf[n-1]
			tail = keepTail(tail, buf[:n])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
	}
	r.tail = tail
	if last != '\n' {
		lines++
	}
	if isGateLine(lastLine(tail)) {
		lines--
	}
	return lines, nil
}

// keepTail appends b to tail, keeping only the last cap(tail) bytes.
func keepTail(tail, b []byte) []byte {
	c := cap(tail)
	if len(b) >= c {
		return append(tail[:0], b[len(b)-c:]...)
	}
	if drop := len(tail) + len(b) - c; drop > 0 {
		tail = tail[:copy(tail, tail[drop:])]
	}
	return append(tail, b...)
}

// lastLine returns the last line of b without its newline.
func lastLine(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// isGateLine reports whether a maps line is the gate VMA: its pathname,
// the last field, is [vsyscall].
func isGateLine(line []byte) bool {
	name, ok := bytes.CutSuffix(line, []byte(gateName))
	return ok && len(name) > 0 && (name[len(name)-1] == ' ' || name[len(name)-1] == '\t')
}
