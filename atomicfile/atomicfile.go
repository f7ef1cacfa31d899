// Package atomicfile writes files so that a reader, or a later run, sees
// either the previous file or the whole new one: never half of one, also
// when the writer is killed.
//
// A File is a temporary file in the destination's folder; Commit syncs it
// and renames it over the destination, Abort removes it.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a file being written in place of path.
type File struct {
	f    *os.File
	w    *bufio.Writer
	path string
	perm fs.FileMode
}

// Create starts writing path. A path that is a symbolic link is written
// through (the link's target is replaced); an existing file keeps its
// permissions, a new one gets 0644.
func Create(path string) (*File, error) {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	perm := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path, perm: perm}, nil
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

// IsTemp reports whether name is one of this package's temporary files.
func IsTemp(name string) bool {
	matched, err := filepath.Match(".*.*.tmp", name)
	return err == nil && matched
}
