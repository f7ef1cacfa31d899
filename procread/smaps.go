package procread

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// VMA is one mapping (virtual memory area) from /proc/PID/smaps. All sizes
// are in bytes: the kernel reports kB, i.e. KiB, and they are stored
// multiplied by 1024.
type VMA struct {
	// Start is the first virtual address of the mapping (inclusive).
	Start uint64
	// End is the first virtual address after the mapping (exclusive).
	End uint64
	// Perms are the protection bits and sharing mode, e.g. "rw-p":
	// r/w/x or '-', then 'p' (private, copy-on-write) or 's' (shared).
	Perms string
	// Offset is the offset into the mapped file, in bytes (0 for anonymous
	// memory).
	Offset uint64
	// Dev is the device of the mapped file as "major:minor" in hex,
	// "00:00" for anonymous memory.
	Dev string
	// Inode is the inode of the mapped file on Dev, 0 for anonymous memory.
	Inode uint64
	// Path is the mapped file, a pseudo name such as "[stack]", "[heap]",
	// "[vdso]" or "[anon:name]", or "" for an unnamed anonymous mapping.
	// A file removed after mapping ends in " (deleted)".
	Path string

	// Size is the virtual size of the mapping (End-Start), bytes.
	Size uint64
	// KernelPageSize is the page size the kernel uses to back the mapping,
	// bytes (larger than the base page only for hugetlbfs).
	KernelPageSize uint64
	// MMUPageSize is the page size the MMU uses for the mapping, bytes.
	MMUPageSize uint64
	// Rss is the resident set: mapped memory currently in RAM, bytes.
	Rss uint64
	// Pss is the proportional set size: resident memory with each shared
	// page divided by the number of processes mapping it, bytes.
	Pss uint64
	// SharedClean is resident, unmodified memory also mapped by another
	// process, bytes.
	SharedClean uint64
	// SharedDirty is resident, modified memory also mapped by another
	// process, bytes.
	SharedDirty uint64
	// PrivateClean is resident, unmodified memory mapped only by this
	// process, bytes.
	PrivateClean uint64
	// PrivateDirty is resident, modified memory mapped only by this
	// process, bytes. For an anonymous stack this is what was touched.
	PrivateDirty uint64
	// Referenced is memory currently marked referenced or accessed, bytes.
	Referenced uint64
	// Anonymous is memory not belonging to any file (including private
	// copies of file pages), bytes.
	Anonymous uint64
	// AnonHugePages is anonymous memory backed by PMD-sized transparent
	// huge pages, bytes (a multiple of 2 MiB on x86-64).
	AnonHugePages uint64
	// Swap is would-be-anonymous memory that is currently swapped out,
	// bytes.
	Swap uint64
	// SwapPss is this process's proportional share of Swap, bytes.
	SwapPss uint64
	// Locked is memory locked in RAM with mlock(2), bytes.
	Locked uint64
	// THPEligible reports the kernel's "THPeligible: 1": the mapping may be
	// backed by transparent huge pages.
	THPEligible bool
	// VmFlags are the two-letter VM_* flags of the mapping, e.g. "rd" "wr"
	// (readable, writable), "mr" "mw" (may read/write), "nr" (no swap
	// reservation: MAP_NORESERVE), "hg" "nh" (MADV_HUGEPAGE /
	// MADV_NOHUGEPAGE), "gu" (grows up), "gd" (grows down, the main stack).
	VmFlags []string
}

// Has reports whether flag (a two-letter VmFlags code) is set on v.
func (v VMA) Has(flag string) bool {
	return slices.Contains(v.VmFlags, flag)
}

// Contains reports whether addr lies in [v.Start, v.End).
func (v VMA) Contains(addr uint64) bool {
	return v.Start <= addr && addr < v.End
}

// ParseError is a line of an smaps-format file that could not be parsed.
type ParseError struct {
	// File is the path the text was read from, "" for a plain reader.
	File string
	// Line is the 1-based line number.
	Line int
	// Text is the offending line, without its newline.
	Text string
	// Err says what is wrong with it.
	Err error
}

// Error formats e as `smaps FILE line N: ERR: "TEXT"`.
func (e *ParseError) Error() string {
	text := e.Text
	if len(text) > 160 {
		text = text[:160] + "..."
	}
	if e.File == "" {
		return fmt.Sprintf("smaps line %d: %v: %q", e.Line, e.Err, text)
	}
	return fmt.Sprintf("smaps %s line %d: %v: %q", e.File, e.Line, e.Err, text)
}

// Unwrap returns e.Err.
func (e *ParseError) Unwrap() error { return e.Err }

// ParseSmaps parses smaps-format text (/proc/PID/smaps, or smaps_rollup,
// whose single record is the whole address space) from r and passes each VMA
// to fn as soon as its record is complete. fn may keep the *VMA: every call
// gets a distinct one. A non-nil error from fn stops the parse and is
// returned as it is.
//
// A record is a header line "start-end perms offset dev inode [path]"
// followed by field lines "Key:   N kB" and "VmFlags: rd wr ...". Unknown
// keys are ignored; there is no limit on the file or line length. A
// malformed header or value is a *ParseError naming the line. A file cut
// short (as when a process exits while it is being read) still yields the
// records it has, the last one with the fields it got; an unterminated last
// line that does not parse is dropped rather than misread, so a file that
// ends inside its first header yields no VMA and no error.
func ParseSmaps(r io.Reader, fn func(*VMA) error) error {
	var p smapsParser
	return p.parse(r, "", fn)
}

// ReadSmaps opens path (e.g. "/proc/self/smaps") and parses it as ParseSmaps
// does. Errors name path.
func ReadSmaps(path string, fn func(*VMA) error) error {
	var p smapsParser
	return p.read(path, fn)
}

// smapsParser holds the buffers of ParseSmaps so that a Reader can reuse
// them across reads. Its zero value is ready to use.
type smapsParser struct {
	br   *bufio.Reader
	long []byte // assembles lines longer than br's buffer

	vmas  []VMA    // slab the VMAs handed to fn are cut from
	flags []string // slab for VmFlags

	lastPath []byte // previous non-empty path, to share its string
	lastStr  string
}

const (
	smapsBufSize  = 64 << 10
	vmaSlabSize   = 32
	flagsSlabSize = 512
)

func (p *smapsParser) read(path string, fn func(*VMA) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("smaps: %w", err)
	}
	defer f.Close()
	return p.parse(f, path, fn)
}

func (p *smapsParser) parse(r io.Reader, file string, fn func(*VMA) error) error {
	if p.br == nil {
		p.br = bufio.NewReaderSize(r, smapsBufSize)
	} else {
		p.br.Reset(r)
	}
	defer p.br.Reset(nil) // do not keep r reachable

	var (
		cur    *VMA
		flagLo int // start of cur's flags in p.flags
		n      int
	)
	for {
		line, complete, err := p.readLine()
		if err != nil {
			if file == "" {
				return fmt.Errorf("smaps: read after line %d: %w", n, err)
			}
			return fmt.Errorf("smaps %s: read after line %d: %w", file, n, err)
		}
		if line == nil {
			break
		}
		n++
		if len(line) == 0 {
			continue
		}
		key, rest, isField := splitKey(line)
		if !isField {
			v, err := p.newVMA(line)
			if err != nil && !complete {
				break // truncated inside the last header
			}
			// The previous record is complete either way.
			if cur != nil {
				if err := fn(cur); err != nil {
					return err
				}
			}
			if err != nil {
				return &ParseError{File: file, Line: n, Text: string(line), Err: err}
			}
			cur, flagLo = v, -1
			continue
		}
		if cur == nil {
			if !complete {
				break
			}
			return &ParseError{File: file, Line: n, Text: string(line), Err: errors.New("field line before the first mapping header")}
		}
		if string(key) == "VmFlags" {
			if flagLo < 0 {
				flagLo = p.reserveFlags()
			}
			cur.VmFlags = p.appendFlags(flagLo, rest)
			continue
		}
		if err := setField(cur, key, rest); err != nil {
			if !complete {
				break // truncated inside the last value
			}
			return &ParseError{File: file, Line: n, Text: string(line), Err: err}
		}
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// readLine returns the next line without its newline, whether it had one,
// and nil at the end of the input. The line is valid until the next call.
func (p *smapsParser) readLine() (line []byte, complete bool, err error) {
	line, err = p.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		p.long = append(p.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = p.br.ReadSlice('\n')
			p.long = append(p.long, line...)
		}
		line = p.long
	}
	switch {
	case err == nil:
		return line[:len(line)-1], true, nil
	case errors.Is(err, io.EOF):
		if len(line) == 0 {
			return nil, false, nil
		}
		return line, false, nil
	default:
		return nil, false, err
	}
}

// splitKey splits a field line "Key: value" into key and value. A line
// whose first word does not end in ':' (a mapping header, where the first
// ':' is in the device field) reports isField false.
func splitKey(line []byte) (key, rest []byte, isField bool) {
	// Keys are short: a plain loop beats IndexByte here.
	for i, c := range line {
		switch c {
		case ':':
			if i == 0 || (i+1 < len(line) && line[i+1] != ' ' && line[i+1] != '\t') {
				return nil, nil, false
			}
			return line[:i], line[i+1:], true
		case ' ', '\t':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// newVMA parses a header line into a fresh VMA cut from the slab.
func (p *smapsParser) newVMA(line []byte) (*VMA, error) {
	addrs, rest := nextWord(line)
	perms, rest := nextWord(rest)
	offset, rest := nextWord(rest)
	dev, rest := nextWord(rest)
	inode, rest := nextWord(rest)
	if len(inode) == 0 {
		return nil, errors.New("malformed mapping header: want \"start-end perms offset dev inode [path]\"")
	}
	lo, hi, ok := bytes.Cut(addrs, []byte{'-'})
	if !ok {
		return nil, fmt.Errorf("malformed address range %q", addrs)
	}
	start, err := parseHex(lo)
	if err != nil {
		return nil, fmt.Errorf("malformed start address %q: %w", lo, err)
	}
	end, err := parseHex(hi)
	if err != nil {
		return nil, fmt.Errorf("malformed end address %q: %w", hi, err)
	}
	if end < start {
		return nil, fmt.Errorf("end address %#x below start %#x", end, start)
	}
	if len(perms) != 4 {
		return nil, fmt.Errorf("malformed permissions %q", perms)
	}
	off, err := parseHex(offset)
	if err != nil {
		return nil, fmt.Errorf("malformed offset %q: %w", offset, err)
	}
	if bytes.IndexByte(dev, ':') < 0 {
		return nil, fmt.Errorf("malformed device %q", dev)
	}
	ino, err := parseDec(inode)
	if err != nil {
		return nil, fmt.Errorf("malformed inode %q: %w", inode, err)
	}

	if len(p.vmas) == 0 {
		p.vmas = make([]VMA, vmaSlabSize)
	}
	v := &p.vmas[0]
	p.vmas = p.vmas[1:]
	v.Start, v.End, v.Offset, v.Inode = start, end, off, ino
	v.Perms = internOr(perms)
	v.Dev = internOr(dev)
	v.Path = p.path(bytes.TrimLeft(rest, " \t"))
	return v, nil
}

// path returns b as a string, sharing the previous string when consecutive
// mappings name the same file (as the segments of one library do).
func (p *smapsParser) path(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s := intern(b); s != "" {
		return s
	}
	if !bytes.Equal(b, p.lastPath) {
		p.lastPath = append(p.lastPath[:0], b...)
		p.lastStr = string(b)
	}
	return p.lastStr
}

// reserveFlags makes room for one mapping's flags and returns where they
// start in p.flags.
func (p *smapsParser) reserveFlags() int {
	if cap(p.flags)-len(p.flags) < 32 {
		p.flags = make([]string, 0, flagsSlabSize)
	}
	return len(p.flags)
}

// appendFlags parses the words of a VmFlags line into p.flags from lo and
// returns them as a slice that later appends cannot overwrite.
func (p *smapsParser) appendFlags(lo int, rest []byte) []string {
	p.flags = p.flags[:lo]
	for {
		var w []byte
		w, rest = nextWord(rest)
		if len(w) == 0 {
			break
		}
		p.flags = append(p.flags, internOr(w))
	}
	hi := len(p.flags)
	return p.flags[lo:hi:hi]
}

// setField stores one "Key: N kB" line into v. Unknown keys are ignored.
func setField(v *VMA, key, rest []byte) error {
	var dst *uint64
	switch string(key) {
	case "Size":
		dst = &v.Size
	case "KernelPageSize":
		dst = &v.KernelPageSize
	case "MMUPageSize":
		dst = &v.MMUPageSize
	case "Rss":
		dst = &v.Rss
	case "Pss":
		dst = &v.Pss
	case "Shared_Clean":
		dst = &v.SharedClean
	case "Shared_Dirty":
		dst = &v.SharedDirty
	case "Private_Clean":
		dst = &v.PrivateClean
	case "Private_Dirty":
		dst = &v.PrivateDirty
	case "Referenced":
		dst = &v.Referenced
	case "Anonymous":
		dst = &v.Anonymous
	case "AnonHugePages":
		dst = &v.AnonHugePages
	case "Swap":
		dst = &v.Swap
	case "SwapPss":
		dst = &v.SwapPss
	case "Locked":
		dst = &v.Locked
	case "THPeligible":
		w, tail := nextWord(rest)
		if len(bytes.TrimSpace(tail)) != 0 {
			return errors.New("want a single number")
		}
		n, err := parseDec(w)
		if err != nil {
			return err
		}
		v.THPEligible = n != 0
		return nil
	default:
		return nil
	}
	n, err := parseKB(rest)
	if err != nil {
		return err
	}
	*dst = n
	return nil
}

// parseKB parses "   N kB" and returns N*1024.
func parseKB(b []byte) (uint64, error) {
	// Fast path for the well-formed value; anything else is diagnosed by
	// parseKBSlow.
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	var n uint64
	j := i
	for ; j < len(b) && j-i < 16 && '0' <= b[j] && b[j] <= '9'; j++ {
		n = n*10 + uint64(b[j]-'0')
	}
	if j > i && len(b)-j == 3 && b[j] == ' ' && b[j+1] == 'k' && b[j+2] == 'B' {
		return n * 1024, nil // at most 16 digits: no overflow
	}
	return parseKBSlow(b)
}

func parseKBSlow(b []byte) (uint64, error) {
	w, rest := nextWord(b)
	unit, rest := nextWord(rest)
	if string(unit) != "kB" || len(bytes.TrimSpace(rest)) != 0 {
		return 0, errors.New(`want "N kB"`)
	}
	n, err := parseDec(w)
	if err != nil {
		return 0, err
	}
	if n > math.MaxUint64/1024 {
		return 0, fmt.Errorf("%d kB overflows uint64 bytes", n)
	}
	return n * 1024, nil
}

// nextWord skips leading blanks in b and returns the word that follows and
// what is after it.
func nextWord(b []byte) (word, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

func parseHex(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 16 {
		return 0, fmt.Errorf("%q is not a 64-bit hex number", b)
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, fmt.Errorf("%q is not a hex number", b)
		}
		n = n<<4 | uint64(c)
	}
	return n, nil
}

func parseDec(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errors.New("missing number")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a decimal number: %q", b)
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("number %s overflows uint64", b)
		}
		n = n*10 + d
	}
	return n, nil
}

// internOr returns intern(b), or a new string if b is not a known one.
func internOr(b []byte) string {
	if s := intern(b); s != "" {
		return s
	}
	return string(b)
}

// intern returns a constant string for the permission strings, devices,
// pseudo paths and VmFlags that recur on every read, and "" for anything
// else. The switch on string(b) does not allocate.
func intern(b []byte) string {
	switch string(b) {
	case "rw-p":
		return "rw-p"
	case "r--p":
		return "r--p"
	case "r-xp":
		return "r-xp"
	case "---p":
		return "---p"
	case "rwxp":
		return "rwxp"
	case "--xp":
		return "--xp"
	case "rw-s":
		return "rw-s"
	case "r--s":
		return "r--s"
	case "00:00":
		return "00:00"
	case "[stack]":
		return "[stack]"
	case "[heap]":
		return "[heap]"
	case "[vdso]":
		return "[vdso]"
	case "[vvar]":
		return "[vvar]"
	case "[vvar_vclock]":
		return "[vvar_vclock]"
	case "[vsyscall]":
		return "[vsyscall]"
	case "[rollup]":
		return "[rollup]"
	case "rd":
		return "rd"
	case "wr":
		return "wr"
	case "ex":
		return "ex"
	case "sh":
		return "sh"
	case "mr":
		return "mr"
	case "mw":
		return "mw"
	case "me":
		return "me"
	case "ms":
		return "ms"
	case "gd":
		return "gd"
	case "gu":
		return "gu"
	case "pf":
		return "pf"
	case "io":
		return "io"
	case "sr":
		return "sr"
	case "rr":
		return "rr"
	case "dc":
		return "dc"
	case "de":
		return "de"
	case "ac":
		return "ac"
	case "nr":
		return "nr"
	case "ht":
		return "ht"
	case "sf":
		return "sf"
	case "ar":
		return "ar"
	case "wf":
		return "wf"
	case "dd":
		return "dd"
	case "sd":
		return "sd"
	case "mm":
		return "mm"
	case "hg":
		return "hg"
	case "nh":
		return "nh"
	case "mg":
		return "mg"
	case "bt":
		return "bt"
	case "mt":
		return "mt"
	case "um":
		return "um"
	case "uw":
		return "uw"
	case "ss":
		return "ss"
	case "sl":
		return "sl"
	case "lf":
		return "lf"
	}
	return ""
}
