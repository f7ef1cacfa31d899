package procread

// This file stands in for the PAGEMAP_SCAN residency engine, which is being
// written separately; it carries exactly that engine's contract, with a plain
// /proc/PID/pagemap reader behind it. Whatever Method is asked for, it reads
// 8-byte pagemap entries: bit 63 present, bit 62 swapped, bit 58 a
// MADV_GUARD_INSTALL marker (the kernel also sets bit 62 on those). It cannot
// see huge pages or the zero page, so HugeBytes and ZeroPageBytes stay 0.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// PageRange is the half-open address range [Start, End).
type PageRange struct{ Start, End uint64 }

// PageCounts is what the page tables say about one PageRange, in bytes.
type PageCounts struct {
	PresentBytes, ResidentBytes, HugeBytes, ZeroPageBytes, SwappedBytes, GuardBytes int64
	Lowest                                                                          uint64 // lowest address of a resident page, 0 when none
	Runs                                                                            int    // maximal contiguous runs of resident pages inside the range
}

// Method is how residency is read.
type Method int

// The residency methods.
const (
	MethodScan Method = iota
	MethodPagemap
	MethodMincore
)

// ErrGone is returned when the measured process has exited.
var ErrGone = errors.New("process is gone")

// Pagemap measures residency of address ranges in one process.
type Pagemap struct {
	f   *os.File
	buf []byte
}

// OpenPagemap opens /proc/PID/pagemap under procRoot (pid 0: self).
func OpenPagemap(procRoot string, pid int, m Method) (*Pagemap, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	name := "self"
	if pid != 0 {
		name = strconv.Itoa(pid)
	}
	f, err := os.Open(filepath.Join(procRoot, name, "pagemap"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("pagemap of %s: %w: %w", name, ErrGone, err)
		}
		return nil, fmt.Errorf("pagemap of %s: %w", name, err)
	}
	return &Pagemap{f: f, buf: make([]byte, 8*512)}, nil
}

// Method returns the method used.
func (p *Pagemap) Method() Method { return MethodPagemap }

// Measure fills out[i] for ranges[i].
func (p *Pagemap) Measure(ranges []PageRange, out []PageCounts) error {
	ps := uint64(os.Getpagesize())
	for i, r := range ranges {
		c := PageCounts{}
		prev := false
		for a := r.Start; a < r.End; {
			n := min((r.End-a)/ps, uint64(len(p.buf)/8))
			b := p.buf[:n*8]
			got, err := p.f.ReadAt(b, int64(a/ps*8))
			if got == 0 && (err == nil || errors.Is(err, io.EOF) || errors.Is(err, unix.ESRCH)) {
				return fmt.Errorf("pagemap read at %#x: %w", a, ErrGone)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("pagemap read at %#x: %w", a, err)
			}
			for j := 0; j+8 <= got; j, a = j+8, a+ps {
				e := binary.LittleEndian.Uint64(b[j:])
				present := e&(1<<63) != 0
				switch {
				case present:
					c.PresentBytes += int64(ps)
					c.ResidentBytes += int64(ps)
					if c.Lowest == 0 {
						c.Lowest = a
					}
					if !prev {
						c.Runs++
					}
				case e&(1<<58) != 0:
					c.GuardBytes += int64(ps)
				case e&(1<<62) != 0:
					c.SwappedBytes += int64(ps)
				}
				prev = present
			}
		}
		out[i] = c
	}
	return nil
}

// Close closes the pagemap file.
func (p *Pagemap) Close() error { return p.f.Close() }
