// Package atomicfile writes files so that a reader, or a later run, sees
// either the previous file or the whole new one: never half of one, also
// when the writer is killed.
//
// A File is a temporary file in the destination's folder; Commit syncs it
// and renames it over the destination, Abort removes it. A destination that
// is a symbolic link, a folder or any other non-regular file is refused: the
// package never writes through a link, and rename(2) replaces a name, never
// what a link points to.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is a file being written in place of path.
type File struct {
	f    *os.File
	w    *bufio.Writer
	path string
	perm fs.FileMode
}

// Create starts writing path. A path that is a symbolic link (dangling or
// not), a folder or another non-regular file is refused; an existing regular
// file keeps its permission bits, a new one gets 0644.
func Create(path string) (*File, error) {
	perm := fs.FileMode(0o644)
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("create %s: it is a symbolic link; not writing through it", path)
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("create %s: it exists and is not a regular file (%v)", path, fi.Mode().Type())
	case err == nil:
		perm = fi.Mode().Perm()
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(filepath.Base(path))+"*"+tempSuffix)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path, perm: perm}, nil
}

const tempSuffix = ".tmp"

func tempPrefix(base string) string { return "." + base + "." }

// IsTempFor reports whether name has the form of a temporary file that
// Create makes for the destination base name target (".target.RANDOM.tmp").
// A name alone proves nothing about who made a file: callers may use this
// only inside a folder they can show to be their own (a private staging
// folder), never to delete files from a folder a user may share.
func IsTempFor(name, target string) bool {
	p := tempPrefix(target)
	return len(name) > len(p)+len(tempSuffix) && strings.HasPrefix(name, p) && strings.HasSuffix(name, tempSuffix) &&
		!strings.ContainsAny(name[len(p):len(name)-len(tempSuffix)], "./")
}

// Write buffers p for the file.
func (f *File) Write(p []byte) (int, error) { return f.w.Write(p) }

// Commit flushes, syncs and closes the file and renames it into place.
// On error the temporary file is removed.
func (f *File) Commit() error {
	if f.f == nil {
		return fmt.Errorf("commit %s: already committed or aborted", f.path)
	}
	err := f.w.Flush()
	if err == nil {
		err = f.f.Chmod(f.perm)
	}
	if err == nil {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// rename(2) replaces the name f.path itself: a symbolic link put there
		// since Create is replaced, never followed.
		err = os.Rename(f.f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.f.Name())
		f.f = nil
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	f.f = nil
	return nil
}

// Abort removes the temporary file; after Commit it does nothing.
func (f *File) Abort() {
	if f == nil || f.f == nil {
		return
	}
	f.f.Close()
	os.Remove(f.f.Name())
	f.f = nil
}

// Write writes path atomically with what fill writes.
func Write(path string, fill func(w io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}
