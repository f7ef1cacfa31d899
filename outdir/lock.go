package outdir

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// lockMagic starts every lock file; a file of the lock's name without it is
// a user's, and is never locked, rewritten or removed.
const lockMagic = "stackprobe lock\n"

// LockName is the name of the lock file for result folder base name out, in
// out's parent: "." + out + ".stackprobe-lock", or a hashed name when that
// would pass the 255-byte name limit. It lives beside --out, not in it, so the
// same file is locked before and after the folder is swapped.
func LockName(out string) string {
	n := "." + out + ".stackprobe-lock"
	if len(n) <= 255 {
		return n
	}
	h := sha256.Sum256([]byte(out))
	return ".stackprobe-lock-" + hex.EncodeToString(h[:16])
}

func lockPath(t target) string { return filepath.Join(t.parent, LockName(filepath.Base(t.path))) }

// lock is a held flock on a lock file.
type lock struct {
	f    *os.File
	path string
}

// openLock opens an existing lock file without following a link and checks
// that it is this tool's. It returns (nil, nil) when there is none.
func openLock(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|noFollow, 0o600)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	buf := make([]byte, len(lockMagic))
	n, _ := f.ReadAt(buf, 0)
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || !bytes.Equal(buf[:n], []byte(lockMagic)) {
		f.Close()
		return nil, fmt.Errorf("%s exists and is not a stackprobe lock file; move it away", path)
	}
	return f, nil
}

// holder returns the pid recorded in a lock file, or 0.
func holder(f *os.File) int {
	buf := make([]byte, 64)
	n, _ := f.ReadAt(buf, 0)
	rest := bytes.TrimPrefix(buf[:n], []byte(lockMagic+"pid "))
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		pid, _ := strconv.Atoi(string(rest[:i]))
		return pid
	}
	return 0
}

func busy(t target, f *os.File) error {
	if pid := holder(f); pid > 0 {
		return fmt.Errorf("--out %s is in use by another stackprobe run (pid %d)", t.path, pid)
	}
	return fmt.Errorf("--out %s is in use by another stackprobe run", t.path)
}

// probeLock reports whether t's lock is free, without creating or changing
// anything.
func probeLock(t target) error {
	f, err := openLock(lockPath(t), os.O_RDONLY)
	if err != nil || f == nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return busy(t, f)
		}
		return fmt.Errorf("lock %s: %w", f.Name(), os.NewSyscallError("flock", err))
	}
	return nil // closing f drops the probe's lock
}

// acquire takes t's lock, creating the lock file if needed. A lock file a
// killed run left is reused. The lock file is removed only while locked
// (release), so after taking the flock acquire checks that the file it locked
// is still the one at the path, and retries if a releasing run removed it.
func acquire(t target) (*lock, error) {
	path := lockPath(t)
	content := []byte(fmt.Sprintf("%spid %d\nout %s\n", lockMagic, os.Getpid(), t.path))
	for range 100 {
		f, err := openLock(path, os.O_RDWR)
		if err != nil {
			return nil, err
		}
		if f == nil {
			if f, err = create(path, content); err != nil {
				return nil, err
			}
			if f == nil {
				continue // another run created it first
			}
			return &lock{f: f, path: path}, nil
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, busy(t, f)
			}
			return nil, fmt.Errorf("lock %s: %w", path, os.NewSyscallError("flock", err))
		}
		if !sameFile(f, path) {
			f.Close()
			continue
		}
		if err := rewrite(f, content); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock file %s: %w", path, err)
		}
		return &lock{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("lock file %s keeps changing", path)
}

// create makes the lock file at path, already locked and holding content
// before any other process can see it: an unnamed O_TMPFILE file is filled,
// locked, then linked to path. On file systems without O_TMPFILE it falls
// back to O_EXCL, where a run starting at the same instant may briefly see an
// empty file and refuse (never damage anything). It returns (nil, nil) when
// path exists.
func create(path string, content []byte) (*os.File, error) {
	fd, err := unix.Open(filepath.Dir(path), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("lock file %s: %w", path, os.NewSyscallError("open O_TMPFILE", err))
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("lock file %s: %w", path, err)
		}
		if err := fill(f, content); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("lock file %s: %w", path, err)
		}
		return f, nil
	}
	f := os.NewFile(uintptr(fd), path)
	if err := fill(f, content); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	err = unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		f.Close()
		if errors.Is(err, unix.EEXIST) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock file %s: %w", path, os.NewSyscallError("linkat", err))
	}
	return f, nil
}

func fill(f *os.File, content []byte) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return os.NewSyscallError("flock", err)
	}
	_, err := f.WriteAt(content, 0)
	return err
}

func sameFile(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// rewrite replaces f's content with b in place.
func rewrite(f *os.File, b []byte) error {
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}

// release removes the lock file while still holding the lock, then unlocks.
func (l *lock) release() {
	if l == nil || l.f == nil {
		return
	}
	if sameFile(l.f, l.path) {
		os.Remove(l.path)
	}
	l.f.Close()
	l.f = nil
}
