package procread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Perms are the protection bits and sharing mode of a mapping, the
// "rwxp" column of /proc/PID/maps, as a bit set.
type Perms uint8

// The Perms bits.
const (
	PermRead   Perms = 1 << iota // r: PROT_READ
	PermWrite                    // w: PROT_WRITE
	PermExec                     // x: PROT_EXEC
	PermShared                   // s: MAP_SHARED (p, private copy-on-write, when clear)
)

// String returns the perms as the kernel prints them, e.g. "rw-p".
func (p Perms) String() string {
	b := [4]byte{'-', '-', '-', 'p'}
	if p&PermRead != 0 {
		b[0] = 'r'
	}
	if p&PermWrite != 0 {
		b[1] = 'w'
	}
	if p&PermExec != 0 {
		b[2] = 'x'
	}
	if p&PermShared != 0 {
		b[3] = 's'
	}
	return string(b[:])
}

// Mapping is one line of /proc/PID/maps: one VMA of the process.
type Mapping struct {
	// Start is the first address of the mapping (inclusive).
	Start uint64
	// End is the first address after the mapping (exclusive).
	End uint64
	// Perms are its protection and sharing mode.
	Perms Perms
	// Offset is the offset into the mapped file, bytes (0 for anonymous
	// memory; for some special mappings the page offset, as the kernel
	// prints it).
	Offset uint64
	// Major and Minor are the device of the mapped file, 0:0 when anonymous.
	Major, Minor uint32
	// Inode is the inode of the mapped file on that device, 0 when
	// anonymous.
	Inode uint64
	// Path is the mapped file or a pseudo name ("[stack]", "[heap]",
	// "[vdso]", "[anon:NAME]" for a named anonymous mapping), "" for an
	// unnamed anonymous mapping. A file removed after mapping ends in
	// " (deleted)".
	Path string
}

// Size returns End-Start, bytes.
func (m *Mapping) Size() uint64 { return m.End - m.Start }

// Contains reports whether addr lies in [Start, End).
func (m *Mapping) Contains(addr uint64) bool { return m.Start <= addr && addr < m.End }

// Anonymous reports whether m maps no file: no inode and no path other than
// a name given with PR_SET_VMA_ANON_NAME ("[anon:NAME]"). The main stack,
// heap and vDSO pseudo mappings are not anonymous in this sense.
func (m *Mapping) Anonymous() bool {
	return m.Inode == 0 && (m.Path == "" || strings.HasPrefix(m.Path, "[anon:"))
}

// ProtNone reports whether m is an inaccessible private mapping ("---p"),
// the kind mprotect(PROT_NONE) makes for a guard page.
func (m *Mapping) ProtNone() bool { return m.Perms == 0 }

// GuardBelow reports whether the mapping directly below ms[i] (ending
// exactly at its Start) is PROT_NONE. ms must be sorted by address, as the
// kernel lists them.
func GuardBelow(ms []Mapping, i int) bool {
	return i > 0 && ms[i-1].End == ms[i].Start && ms[i-1].ProtNone()
}

// ParseMaps parses /proc/PID/maps text from r, appending one Mapping per
// line to dst[:0] and returning it, so a caller that reads maps every
// sample reuses one slice. Lines are not allocated one by one: anonymous
// mappings cost no allocation, and a path equal to the previous line's
// path shares its string. buf is a scratch buffer (grown if needed, and
// returned) that holds one read of the file.
//
// A file cut short (the process exited while it was read) yields the
// complete lines it has. A malformed line is an error naming its number.
func ParseMaps(r io.Reader, dst []Mapping, buf []byte) ([]Mapping, []byte, error) {
	dst = dst[:0]
	if cap(buf) < 64<<10 {
		buf = make([]byte, 64<<10)
	}
	buf = buf[:cap(buf)]
	var (
		fill, line int
		lastPath   string
	)
	for {
		n, err := r.Read(buf[fill:])
		fill += n
		data := buf[:fill]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			line++
			m, perr := parseMapsLine(data[:i], lastPath)
			if perr != nil {
				return dst, buf, fmt.Errorf("maps line %d %q: %w", line, data[:i], perr)
			}
			lastPath = m.Path
			dst = append(dst, m)
			data = data[i+1:]
		}
		// Keep the unfinished line at the front of buf.
		fill = copy(buf, data)
		if fill == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
			buf = buf[:cap(buf)]
		}
		if errors.Is(err, io.EOF) {
			return dst, buf, nil
		}
		if err != nil {
			return dst, buf, err
		}
	}
}

// parseMapsLine parses "start-end perms offset major:minor inode   path".
// lastPath is returned as the Path when the line's path equals it.
func parseMapsLine(b []byte, lastPath string) (Mapping, error) {
	var m Mapping
	w, b := nextWord(b)
	lo, hi, ok := bytes.Cut(w, []byte{'-'})
	if !ok {
		return m, errors.New("no start-end range")
	}
	var err error
	if m.Start, err = parseHex(lo); err != nil {
		return m, fmt.Errorf("start: %w", err)
	}
	if m.End, err = parseHex(hi); err != nil {
		return m, fmt.Errorf("end: %w", err)
	}
	if m.End < m.Start {
		return m, errors.New("end below start")
	}
	w, b = nextWord(b)
	if len(w) != 4 {
		return m, errors.New("perms not 4 characters")
	}
	for i, c := range w {
		switch {
		case c == "rwxs"[i]:
			m.Perms |= 1 << i
		case c == '-' && i < 3, c == 'p' && i == 3:
		default:
			return m, fmt.Errorf("bad perms %q", w)
		}
	}
	w, b = nextWord(b)
	if m.Offset, err = parseHex(w); err != nil {
		return m, fmt.Errorf("offset: %w", err)
	}
	w, b = nextWord(b)
	maj, mnr, ok := bytes.Cut(w, []byte{':'})
	if !ok {
		return m, errors.New("no major:minor device")
	}
	ma, err1 := parseHex(maj)
	mi, err2 := parseHex(mnr)
	if err1 != nil || err2 != nil || ma > 1<<32-1 || mi > 1<<32-1 {
		return m, fmt.Errorf("bad device %q", w)
	}
	m.Major, m.Minor = uint32(ma), uint32(mi)
	w, b = nextWord(b)
	if m.Inode, err = parseDec(w); err != nil {
		return m, fmt.Errorf("inode: %w", err)
	}
	// The path is the rest after the padding; it may hold spaces.
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	switch {
	case len(b) == 0:
	case string(b) == lastPath:
		m.Path = lastPath
	default:
		m.Path = string(b)
	}
	return m, nil
}

// goneErr wraps err, from reading a file of a process or thread, with
// ErrGone when it says the process or thread no longer exists (ENOENT when
// its directory went away, ESRCH when it exited while the file was open).
func goneErr(what string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%s: %w: %w", what, ErrGone, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readMaps opens path and parses it with ParseMaps.
func readMaps(path string, dst []Mapping, buf []byte) ([]Mapping, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return dst[:0], buf, goneErr("maps", err)
	}
	defer f.Close()
	dst, buf, err = ParseMaps(f, dst, buf)
	if err != nil {
		return dst, buf, goneErr(path, err)
	}
	return dst, buf, nil
}
