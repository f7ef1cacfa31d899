package outdir

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const noFollow = unix.O_NOFOLLOW

// kind is what Commit must do with the folder at --out.
type kind int

const (
	absent  kind = iota // nothing at --out: rename the staging folder there
	owned               // the tool's own folder (or an empty one): swap
	foreign             // holds files the tool did not write (force): merge file by file
)

// target is the result of inspecting --out.
type target struct {
	path   string   // cleaned absolute path; parent resolved through links
	parent string   // its folder
	kind   kind     //
	old    Manifest // manifest in the folder, when it has a valid one
	hasOld bool     //
	mode   fs.FileMode
}

// Check reports whether a run may write the outputs names into dir, writing
// nothing. It refuses:
//   - "/", the user's home folder (also when reached through a link);
//   - a dir that is a symbolic link (dangling or not), a file, or a mount point;
//   - a missing dir whose parent does not exist, is not a folder or is not
//     writable; an existing dir or parent that is not writable;
//   - a dir holding any entry its manifest does not list, unless force;
//   - even with force, an output name (or the manifest name) that is taken by
//     anything the tool did not write: a user's file, a link, a folder;
//   - a dir whose lock is held by another run, or whose lock file name is
//     taken by something that is not this tool's lock file.
//
// names are every file the run may write (base names). Errors name the file.
func Check(dir string, force bool, names []string) error {
	t, err := resolve(dir, names)
	if err != nil {
		return err
	}
	if err := probeLock(t); err != nil {
		return err
	}
	_, err = inspect(dir, force, names)
	return err
}

// resolve checks dir's name and parent and fills t.path and t.parent.
func resolve(dir string, names []string) (target, error) {
	var t target
	if dir == "" {
		return t, fmt.Errorf("--out is empty")
	}
	for _, n := range names {
		if !validName(n) || n == ManifestName {
			return t, fmt.Errorf("output name %q is not a plain file name", n)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return t, fmt.Errorf("--out %s: %w", dir, err)
	}
	if abs == "/" {
		return t, fmt.Errorf("--out %s is the root folder; choose a folder of its own for the results", dir)
	}
	parent := filepath.Dir(abs)
	pfi, err := os.Stat(parent)
	if err != nil {
		return t, fmt.Errorf("--out %s: parent folder: %w", dir, err)
	}
	if !pfi.IsDir() {
		return t, fmt.Errorf("--out %s: parent %s is not a folder", dir, parent)
	}
	if parent, err = filepath.EvalSymlinks(parent); err != nil {
		return t, fmt.Errorf("--out %s: parent folder: %w", dir, err)
	}
	t.path, t.parent = filepath.Join(parent, filepath.Base(abs)), parent
	if err := writable(parent); err != nil {
		return t, fmt.Errorf("--out %s: the result folder is made beside it: %w", dir, err)
	}
	return t, nil
}

// inspect finds what is at --out and what Commit must do with it. The folder's
// entries and its manifest are read through one descriptor of the folder, so
// they come from the same folder even while another process swaps it.
func inspect(dir string, force bool, names []string) (target, error) {
	t, err := resolve(dir, names)
	if err != nil {
		return t, err
	}
	pfi, err := os.Stat(t.parent)
	if err != nil {
		return t, fmt.Errorf("--out %s: parent folder: %w", dir, err)
	}
	fi, err := os.Lstat(t.path)
	switch {
	case isNotExist(err):
		t.kind = absent
		return t, nil
	case err != nil:
		return t, fmt.Errorf("--out %s: %w", dir, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return t, fmt.Errorf("--out %s is a symbolic link; give the folder itself", dir)
	case !fi.IsDir():
		return t, fmt.Errorf("--out %s exists and is not a folder", dir)
	}
	if home, err := os.UserHomeDir(); err == nil {
		if hfi, err := os.Stat(home); err == nil && os.SameFile(hfi, fi) {
			return t, fmt.Errorf("--out %s is your home folder; choose a folder of its own for the results", dir)
		}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if pst, ok := pfi.Sys().(*syscall.Stat_t); ok && st.Dev != pst.Dev {
			return t, fmt.Errorf("--out %s is a mount point; give a folder inside it", dir)
		}
	}
	t.mode = fi.Mode().Perm()
	if err := writable(t.path); err != nil {
		return t, fmt.Errorf("--out %s: %w", dir, err)
	}
	d, err := os.OpenFile(t.path, os.O_RDONLY|noFollow|unix.O_DIRECTORY, 0)
	if err != nil {
		return t, fmt.Errorf("--out %s: %w", dir, err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return t, fmt.Errorf("--out %s: %w", dir, err)
	}
	m, merr := readManifestAt(d)
	hasManifest := slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == ManifestName })
	if merr == nil {
		t.old, t.hasOld = m, true
	} else if hasManifest {
		// A user's file that has the manifest's name: never replaced.
		return t, fmt.Errorf("--out %s: %s is not a stackprobe manifest (%v); refusing to replace it", dir, ManifestName, merr)
	}
	var others []string // entries the tool did not write
	for _, e := range ents {
		n := e.Name()
		if n == ManifestName {
			continue
		}
		if !t.hasOld || !t.old.lists(n) || !e.Type().IsRegular() {
			others = append(others, n)
		}
	}
	if len(others) == 0 {
		t.kind = owned
		return t, nil
	}
	if !force {
		return t, fmt.Errorf("--out %s holds %s that stackprobe did not write; pass --force to write beside them "+
			"(they are never touched), or choose another folder", dir, listNames(others))
	}
	for _, n := range names {
		if slices.Contains(others, n) {
			return t, fmt.Errorf("--out %s: %s is not a file stackprobe wrote; refusing to replace it "+
				"(move it away or choose another folder)", dir, filepath.Join(dir, n))
		}
	}
	t.kind = foreign
	return t, nil
}

func listNames(names []string) string {
	const show = 5
	q := make([]string, 0, show)
	for _, n := range names[:min(len(names), show)] {
		q = append(q, fmt.Sprintf("%q", n))
	}
	s := strings.Join(q, ", ")
	if len(names) > show {
		s += fmt.Sprintf(" and %d more", len(names)-show)
	}
	if len(names) == 1 {
		return "a file (" + s + ")"
	}
	return fmt.Sprintf("%d files (%s)", len(names), s)
}

// writable checks write and search permission on dir with access(2).
func writable(dir string) error {
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, os.NewSyscallError("access", err))
	}
	return nil
}
