package outdir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stackprobe/procread"

	"stackprobe/atomicfile"
)

// stagingPrefix starts the name of every staging folder, in --out's parent.
const stagingPrefix = ".stackprobe-"

// Folder is a run's result folder between Begin and Commit.
type Folder struct {
	out       string // cleaned absolute --out, parent resolved
	parent    string
	staging   string // private folder the run writes into
	force     bool
	names     []string // every name the run may write
	man       Manifest
	lk        *lock
	committed bool
}

// Begin locks dir for this run, removes what killed runs into dir left
// behind, and makes the staging folder. It fails, changing nothing, for
// everything Check refuses; when another run holds the lock the error reads
// "--out DIR is in use by another stackprobe run (pid N)". names are every
// file the run may write; Commit accepts no others.
//
// The caller must call Close when done (defer f.Close() right after Begin).
func Begin(dir string, force bool, names []string) (_ *Folder, err error) {
	t, err := resolve(dir, names)
	if err != nil {
		return nil, err
	}
	lk, err := acquire(t)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lk.release()
		}
	}()
	// Inspected under the lock: no other run is changing --out now.
	if t, err = inspect(dir, force, names); err != nil {
		return nil, err
	}
	removeLeftovers(t.parent, t.path)
	staging, err := os.MkdirTemp(t.parent, stagingPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("--out %s: staging folder: %w", dir, err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	f := &Folder{
		out: t.path, parent: t.parent, staging: staging, force: force, lk: lk,
		names: slices.Clone(names),
		man: Manifest{
			Tool: ToolName, RunID: hex.EncodeToString(id), Out: t.path, PID: os.Getpid(),
			Started: time.Now().UTC(), State: StateStaging, Files: slices.Clone(names),
		},
	}
	if err := writeManifest(staging, f.man); err != nil {
		os.Remove(staging)
		return nil, fmt.Errorf("--out %s: staging folder: %w", dir, err)
	}
	return f, nil
}

// Out is the result folder's cleaned absolute path (its parent resolved
// through links): use it wherever the folder is named, e.g. the notes key.
func (f *Folder) Out() string { return f.out }

// RunID is this run's id, as recorded in the manifest (32 hex digits).
func (f *Folder) RunID() string { return f.man.RunID }

// Path is where the run writes output name: inside the staging folder.
func (f *Folder) Path(name string) string { return filepath.Join(f.staging, name) }

// FinalPath is where output name will be once committed (for links in
// evidence and notes).
func (f *Folder) FinalPath(name string) string { return filepath.Join(f.out, name) }

// Commit puts the staged files in place at --out (see the package doc) with a
// manifest listing files in state StatePartial if partial, else
// StateComplete. files must be names given to Begin and exist in the staging
// folder as regular files. On error --out is left as it was (old folder
// whole) unless the error says otherwise, and Close removes the staging
// folder.
func (f *Folder) Commit(partial bool, files []string) error {
	if f.committed || f.lk == nil {
		return fmt.Errorf("commit %s: already committed or closed", f.out)
	}
	files = slices.Compact(slices.Sorted(slices.Values(files)))
	for _, n := range files {
		if !slices.Contains(f.names, n) {
			return fmt.Errorf("commit %s: %q is not one of the outputs given to Begin", f.out, n)
		}
		fi, err := os.Lstat(f.Path(n))
		if err != nil {
			return fmt.Errorf("commit %s: %w", f.out, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("commit %s: staged %s is not a regular file", f.out, n)
		}
	}
	f.man.Files, f.man.Finished, f.man.State = files, time.Now().UTC(), StateComplete
	if partial {
		f.man.State = StatePartial
	}
	if err := writeManifest(f.staging, f.man); err != nil {
		return fmt.Errorf("commit %s: %w", f.out, err)
	}
	if err := syncDir(f.staging); err != nil {
		return fmt.Errorf("commit %s: %w", f.out, err)
	}
	// --out may have changed since Begin: the user may have made it, or put files in it.
	t, err := inspect(f.out, f.force, f.names)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	switch t.kind {
	case absent:
		if err := os.Chmod(f.staging, folderMode()); err != nil {
			return fmt.Errorf("commit %s: %w", f.out, err)
		}
		if err := unix.Renameat2(unix.AT_FDCWD, f.staging, unix.AT_FDCWD, f.out, unix.RENAME_NOREPLACE); err != nil {
			return fmt.Errorf("commit %s: %w", f.out, os.NewSyscallError("renameat2", err))
		}
		f.done()
		return syncDir(f.parent)
	case owned:
		if err := os.Chmod(f.staging, t.mode); err != nil {
			return fmt.Errorf("commit %s: %w", f.out, err)
		}
		err := unix.Renameat2(unix.AT_FDCWD, f.staging, unix.AT_FDCWD, f.out, unix.RENAME_EXCHANGE)
		if err == nil {
			// The staging name now holds the old folder, which is provably ours: empty it.
			f.done()
			removeOwned(f.staging)
			return syncDir(f.parent)
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("commit %s: %w", f.out, os.NewSyscallError("renameat2 RENAME_EXCHANGE", err))
		}
		// The file system cannot swap: move the files in one by one.
	}
	if err := f.merge(t); err != nil {
		return err
	}
	f.done()
	removeOwned(f.staging)
	return nil
}

// merge moves the staged files into the existing folder t one by one; see
// the package doc.
func (f *Folder) merge(t target) error {
	union := slices.Clone(f.man.Files)
	if t.hasOld {
		for _, n := range t.old.Files {
			if fi, err := os.Lstat(filepath.Join(t.path, n)); err == nil && fi.Mode().IsRegular() {
				union = append(union, n)
			}
		}
	}
	union = slices.Compact(slices.Sorted(slices.Values(union)))
	merging := f.man
	merging.State, merging.Files = StateMerging, union
	if err := f.moveManifest(merging); err != nil {
		return fmt.Errorf("commit %s: nothing changed: %w", f.out, err)
	}
	for _, n := range f.man.Files {
		if err := os.Rename(f.Path(n), filepath.Join(t.path, n)); err != nil {
			return fmt.Errorf("commit %s: left in state %q: %w", f.out, StateMerging, err)
		}
	}
	if t.hasOld {
		for _, n := range t.old.Files {
			if slices.Contains(f.man.Files, n) {
				continue
			}
			p := filepath.Join(t.path, n)
			if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
				os.Remove(p)
			}
		}
	}
	if err := f.moveManifest(f.man); err != nil {
		return fmt.Errorf("commit %s: left in state %q: %w", f.out, StateMerging, err)
	}
	return syncDir(t.path)
}

// moveManifest writes m in the staging folder and renames it into --out.
func (f *Folder) moveManifest(m Manifest) error {
	if err := writeManifest(f.staging, m); err != nil {
		return err
	}
	return os.Rename(filepath.Join(f.staging, ManifestName), filepath.Join(f.out, ManifestName))
}

func (f *Folder) done() { f.committed = true }

// Close removes the staging folder if Commit did not succeed (only the files
// the run may write, their temporary files and the manifest: nothing else is
// ever in it) and releases the lock. It may be called more than once.
func (f *Folder) Close() {
	if f == nil || f.lk == nil {
		return
	}
	if !f.committed {
		removeStaging(f.staging, f.names)
	}
	f.lk.release()
	f.lk = nil
}

func writeManifest(dir string, m Manifest) error {
	return atomicfile.Write(filepath.Join(dir, ManifestName), func(w io.Writer) error { return encodeManifest(w, m) })
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// removeStaging removes, from a folder this tool made, the files names, their
// atomicfile temporary files and last the manifest, then the folder if empty.
func removeStaging(dir string, names []string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	all := append(slices.Clone(names), ManifestName)
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || n == ManifestName {
			continue
		}
		if slices.Contains(all, n) || slices.ContainsFunc(all, func(t string) bool { return atomicfile.IsTempFor(n, t) }) {
			os.Remove(filepath.Join(dir, n))
		}
	}
	os.Remove(filepath.Join(dir, ManifestName))
	os.Remove(dir) // fails, leaving it, if anything else is in it
}

// removeOwned removes a folder provably this tool's: what its manifest lists.
func removeOwned(dir string) {
	m, err := ReadManifest(dir)
	if err != nil {
		if isNotExist(err) {
			os.Remove(dir) // an empty folder swapped out
		}
		return
	}
	removeStaging(dir, m.Files)
}

// removeLeftovers removes, from parent, the staging and swapped-out folders
// that killed runs into out left: folders named stagingPrefix+..., owned by
// this user, not links, whose manifest names out. The caller holds out's
// lock, so no live run is using them.
func removeLeftovers(parent, out string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() || !ownedByUs(fi) {
			continue
		}
		m, err := ReadManifest(dir)
		if err != nil || m.Out != out {
			continue
		}
		removeStaging(dir, m.Files)
	}
}

func ownedByUs(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return int(st.Uid) == os.Geteuid()
}

// folderMode is the mode a new result folder gets: 0777 less the umask, as
// mkdir(2) would give it.
func folderMode() fs.FileMode { return 0o777 &^ umask() }

var umask = sync.OnceValue(func() fs.FileMode {
	if m, err := procread.Umask(""); err == nil {
		return m
	}
	return 0o022
})
