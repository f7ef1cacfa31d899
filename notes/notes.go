// Package notes keeps a run's section in a user's design note (--notes): a
// Markdown file the user wrote, in which each result folder has one section
// between two marker lines:
//
//	<!-- stackprobe:begin /abs/path/of/out -->
//	...
//	<!-- stackprobe:end /abs/path/of/out -->
//
// The note is the user's: it is edited in place (same inode, owner and mode,
// so hard links see the new text), under an flock so that two runs editing it
// at once both keep their sections, with its line endings kept (a CRLF note
// stays CRLF). Every byte outside the run's own section is kept.
//
// Life of a run:
//
//	notes.Check(path, out, outputs)  during flag validation, before anything runs (exit 2)
//	... the run, then outdir's Commit ...
//	notes.Update(path, out, write)   after the result folder is in place
package notes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	beginPrefix = "<!-- stackprobe:begin "
	endPrefix   = "<!-- stackprobe:end "
	markerEnd   = " -->"
)

// LockWait bounds how long Update waits for another process's lock on the note.
const LockWait = 10 * time.Second

// Key is the section key of result folder out: its cleaned absolute path, so
// that --out=runs/a and --out=/home/u/runs/a share one section.
func Key(out string) (string, error) {
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("notes key for %s: %w", out, err)
	}
	if strings.Contains(abs, markerEnd) || strings.ContainsAny(abs, "\r\n") {
		return "", fmt.Errorf("--out %q cannot name a notes section: it holds a line break or %q", out, markerEnd)
	}
	return abs, nil
}

// sameKey reports whether marker key k names the folder whose Key is abs.
// Keys written by earlier versions were the --out as typed: a relative one
// is taken to be relative to the current folder.
func sameKey(k, abs string) bool {
	if filepath.IsAbs(k) {
		return filepath.Clean(k) == abs
	}
	cwd, err := os.Getwd()
	return err == nil && filepath.Join(cwd, k) == abs
}

// Check validates the note at path for a run into out that writes the files
// outputs (base names) there, changing nothing. It refuses a note that does
// not exist, is not a regular file or cannot be opened for writing; one whose
// markers are not paired (every begin followed by its end, no nesting); one
// that is inside out (after following links) or is the same file (device and
// inode: hard links too) as anything in out or any of its outputs. When out
// is "" only the file and its markers are checked.
func Check(path, out string, outputs []string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--notes: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("--notes %s is not a regular file", path)
	}
	if out != "" {
		if err := notOutput(path, fi, out, outputs); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("--notes %s cannot be edited: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("--notes %s: %w", path, err)
	}
	if _, err := parse(b); err != nil {
		return fmt.Errorf("--notes %s: %w", path, err)
	}
	return nil
}

func notOutput(path string, fi os.FileInfo, out string, outputs []string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("--notes %s: %w", path, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return fmt.Errorf("--notes %s: %w", path, err)
	}
	outAbs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	// The folder may not exist yet: resolve its parent, which must.
	if p, err := filepath.EvalSymlinks(filepath.Dir(outAbs)); err == nil {
		outAbs = filepath.Join(p, filepath.Base(outAbs))
	}
	if real == outAbs || strings.HasPrefix(real, outAbs+string(filepath.Separator)) {
		return fmt.Errorf("--notes %s is inside --out %s, whose files each run replaces; keep the note elsewhere", path, out)
	}
	var paths []string
	for _, n := range outputs {
		paths = append(paths, filepath.Join(outAbs, n))
	}
	if ents, err := os.ReadDir(outAbs); err == nil {
		for _, e := range ents {
			paths = append(paths, filepath.Join(outAbs, e.Name()))
		}
	}
	for _, p := range paths {
		if ofi, err := os.Lstat(p); err == nil && os.SameFile(fi, ofi) {
			return fmt.Errorf("--notes %s is the same file as %s (a hard link into --out); keep the note elsewhere", path, p)
		}
	}
	return nil
}

// section is one marker pair's place in the note: lines [begin, end].
type section struct {
	key        string
	begin, end int
}

// parse splits b into lines (each keeping its line ending) and finds the
// marker pairs.
func parse(b []byte) ([]section, error) {
	var secs []section
	open := -1
	var openKey string
	for i, line := range lines(b) {
		l := strings.TrimRight(string(line), "\r\n")
		if k, ok := marker(l, beginPrefix); ok {
			if open >= 0 {
				return nil, fmt.Errorf("line %d: a begin marker for %q inside the section for %q opened on line %d", i+1, k, openKey, open+1)
			}
			open, openKey = i, k
			continue
		}
		if k, ok := marker(l, endPrefix); ok {
			if open < 0 {
				return nil, fmt.Errorf("line %d: an end marker for %q with no begin marker before it", i+1, k)
			}
			if k != openKey {
				return nil, fmt.Errorf("line %d: an end marker for %q closes the section for %q opened on line %d", i+1, k, openKey, open+1)
			}
			secs = append(secs, section{key: k, begin: open, end: i})
			open = -1
		}
	}
	if open >= 0 {
		return nil, fmt.Errorf("line %d: the begin marker for %q has no end marker", open+1, openKey)
	}
	return secs, nil
}

func marker(l, prefix string) (string, bool) {
	l = strings.TrimSpace(l)
	if !strings.HasPrefix(l, prefix) || !strings.HasSuffix(l, markerEnd) || len(l) < len(prefix)+len(markerEnd) {
		return "", false
	}
	return l[len(prefix) : len(l)-len(markerEnd)], true
}

// lines splits b after each "\n"; the last line may have no ending.
func lines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(out, b)
		}
		out = append(out, b[:i+1])
		b = b[i+1:]
	}
	return out
}

// eol is the note's line ending: that of its first line, "\n" if it has none.
func eol(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// edit returns the note old with the section for key set to body: the first
// section of that key is replaced, later ones of that key are dropped, and
// with none the section is appended after a blank line. body's headings are
// demoted one level.
func edit(old []byte, abs string, body string) ([]byte, error) {
	secs, err := parse(old)
	if err != nil {
		return nil, err
	}
	nl := eol(old)
	var sec strings.Builder
	sec.WriteString(beginPrefix + abs + markerEnd + nl)
	for _, line := range strings.Split(strings.TrimRight(strings.ReplaceAll(body, "\r\n", "\n"), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			line = "#" + line
		}
		sec.WriteString(line + nl)
	}
	sec.WriteString(endPrefix + abs + markerEnd + nl)

	ls := lines(old)
	var out bytes.Buffer
	placed := false
	next := 0
	for _, s := range secs {
		if !sameKey(s.key, abs) {
			continue
		}
		for _, l := range ls[next:s.begin] {
			out.Write(l)
		}
		if !placed {
			out.WriteString(sec.String())
			placed = true
		}
		next = s.end + 1
	}
	for _, l := range ls[next:] {
		out.Write(l)
	}
	if !placed {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteString(nl)
		}
		if out.Len() > 0 {
			out.WriteString(nl)
		}
		out.WriteString(sec.String())
	}
	return out.Bytes(), nil
}

// Update sets the section for result folder out in the note at path to what
// write produces, in place. It takes an flock on the note (waiting up to
// LockWait for another run's edit), re-reads and re-validates it under the
// lock, computes the whole new text, reserves its size (fallocate: a full
// disk fails here, before any byte changes), then writes it over the old
// bytes, truncates and syncs. The note keeps its inode, owner, mode and line
// endings.
func Update(path, out string, write func(w io.Writer) error) error {
	abs, err := Key(out)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	if err := write(&body); err != nil {
		return fmt.Errorf("notes %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("notes: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("notes %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("notes %s is not a regular file", path)
	}
	if err := lock(f, LockWait); err != nil {
		return fmt.Errorf("notes %s: %w", path, err)
	}
	old, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("notes %s: %w", path, err)
	}
	b, err := edit(old, abs, body.String())
	if err != nil {
		return fmt.Errorf("notes %s: %w", path, err)
	}
	if bytes.Equal(b, old) {
		return nil
	}
	if err := writeInPlace(f, b, int64(len(old))); err != nil {
		return fmt.Errorf("notes %s: %w", path, err)
	}
	return nil
}

// lock takes an exclusive flock on f, polling until wait has passed.
func lock(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return os.NewSyscallError("flock", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("locked by another process for more than %v", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeInPlace(f *os.File, b []byte, oldSize int64) error {
	if int64(len(b)) > oldSize {
		err := unix.Fallocate(int(f.Fd()), 0, 0, int64(len(b)))
		if err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, syscall.ENOSYS) {
			return fmt.Errorf("reserve %d bytes: %w", len(b), os.NewSyscallError("fallocate", err))
		}
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return err
	}
	return f.Sync()
}

// ChartLinks returns the chart paths as seen from the notes file: relative
// to its folder.
func ChartLinks(notesPath, outDir string, charts []string) ([]string, error) {
	np, err := filepath.Abs(notesPath)
	if err != nil {
		return nil, fmt.Errorf("chart links for %s: %w", notesPath, err)
	}
	od, err := filepath.Abs(outDir)
	if err != nil {
		return nil, fmt.Errorf("chart links for %s: %w", notesPath, err)
	}
	rel, err := filepath.Rel(filepath.Dir(np), od)
	if err != nil {
		return nil, fmt.Errorf("chart links for %s: %w", notesPath, err)
	}
	links := make([]string, len(charts))
	for i, c := range charts {
		links[i] = filepath.ToSlash(filepath.Join(rel, c))
	}
	return links, nil
}
