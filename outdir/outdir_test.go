package outdir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var outputs = []string{"summary.json", "evidence.md", "stacks.csv", "strategies.png"}

// writeAll writes each name into f with content "<run id> <name>\n".
func writeAll(t *testing.T, f *Folder, names []string) {
	t.Helper()
	for _, n := range names {
		if err := os.WriteFile(f.Path(n), []byte(f.RunID()+" "+n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// run does a whole run into dir writing names, and returns its run id.
func run(t *testing.T, dir string, force bool, names []string) string {
	t.Helper()
	f, err := Begin(dir, force, outputs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeAll(t, f, names)
	if err := f.Commit(false, names); err != nil {
		t.Fatal(err)
	}
	return f.RunID()
}

// listing is dir's entries as "name=content" (contents of regular files), sorted.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, e.Name()+"->"+l)
		case e.IsDir():
			out = append(out, e.Name()+"/")
		case e.Name() == ManifestName:
			m, err := ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s=%s %s %v", e.Name(), m.RunID, m.State, m.Files))
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Name()+"="+string(b))
		}
	}
	return out
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckRefuses(t *testing.T) {
	base := t.TempDir()
	t.Setenv("HOME", filepath.Join(base, "home"))
	mk := func(p string) string {
		if err := os.MkdirAll(filepath.Join(base, p), 0o755); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(base, p)
	}
	mk("home")
	mustWrite(t, filepath.Join(base, "file"), "x")
	os.Symlink("nowhere", filepath.Join(base, "dangl"))
	os.Symlink(mk("real"), filepath.Join(base, "link"))
	tmpish := mk("tmpish")
	mustWrite(t, filepath.Join(tmpish, ".notes.backup.tmp"), "precious\n")
	clash := mk("clash")
	mustWrite(t, filepath.Join(clash, "strategies.png"), "mine\n")
	linked := mk("linked")
	os.Symlink("../victim.json", filepath.Join(linked, "summary.json"))
	dirname := mk("dirname")
	mk("dirname/summary.json")
	fakeman := mk("fakeman")
	mustWrite(t, filepath.Join(fakeman, ManifestName), `{"tool":"other"}`)
	for _, c := range []struct {
		dir   string
		force bool
		want  string
	}{
		{"/", true, "is the root folder"},
		{filepath.Join(base, "home"), true, "is your home folder"},
		{filepath.Join(base, "link", "..", "home"), true, "is your home folder"},
		{filepath.Join(base, "file"), true, "exists and is not a folder"},
		{filepath.Join(base, "dangl"), true, "is a symbolic link"},
		{filepath.Join(base, "link"), true, "is a symbolic link"},
		{filepath.Join(base, "missing", "out"), true, "parent folder: stat"},
		{filepath.Join(base, "file", "out"), true, "is not a folder"},
		{tmpish, false, `holds a file (".notes.backup.tmp") that stackprobe did not write; pass --force`},
		{clash, true, "clash/strategies.png is not a file stackprobe wrote; refusing to replace it"},
		{linked, true, "linked/summary.json is not a file stackprobe wrote"},
		{dirname, true, "dirname/summary.json is not a file stackprobe wrote"},
		{fakeman, true, ManifestName + " is not a stackprobe manifest"},
		{"", true, "--out is empty"},
	} {
		err := Check(c.dir, c.force, outputs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%q, force=%v) = %v, want an error containing %q", c.dir, c.force, err, c.want)
		}
		if f, err := Begin(c.dir, c.force, outputs); err == nil {
			f.Close()
			t.Errorf("Begin(%q) accepted what Check refused", c.dir)
		}
	}
	// Nothing was written anywhere: no staging folder, no lock file, the user's files intact.
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s in %s", e.Name(), base)
		}
	}
	if got := listing(t, tmpish); !slices.Equal(got, []string{".notes.backup.tmp=precious\n"}) {
		t.Errorf("tmpish holds %v", got)
	}
	if got := listing(t, clash); !slices.Equal(got, []string{"strategies.png=mine\n"}) {
		t.Errorf("clash holds %v", got)
	}
	// Accepted: a missing folder, an empty one, and with --force a folder with unrelated files.
	for _, c := range []struct {
		dir   string
		force bool
	}{{filepath.Join(base, "new"), false}, {mk("empty"), false}, {tmpish, true}} {
		if err := Check(c.dir, c.force, outputs); err != nil {
			t.Errorf("Check(%q, %v) = %v", c.dir, c.force, err)
		}
	}
}

func TestCheckNotWritable(t *testing.T) {
	base := t.TempDir()
	ro := filepath.Join(base, "ro")
	os.Mkdir(ro, 0o555)
	if os.Geteuid() == 0 {
		// access(2) lets root write anywhere but on a read-only file system.
		if err := unix.Mount("tmpfs", ro, "tmpfs", unix.MS_RDONLY, "size=64k"); err != nil {
			t.Skip("root and no read-only tmpfs to test with: " + err.Error())
		}
		t.Cleanup(func() { unix.Unmount(ro, unix.MNT_DETACH) })
	}
	err := Check(filepath.Join(ro, "out"), false, outputs)
	if err == nil || !strings.Contains(err.Error(), "is not writable") {
		t.Errorf("Check under a read-only folder = %v", err)
	}
}

func TestNewFolderAndReplace(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	id1 := run(t, out, false, []string{"summary.json", "stacks.csv", "strategies.png"})
	want1 := []string{
		ManifestName + "=" + id1 + " complete [stacks.csv strategies.png summary.json]",
		"stacks.csv=" + id1 + " stacks.csv\n", "strategies.png=" + id1 + " strategies.png\n", "summary.json=" + id1 + " summary.json\n",
	}
	if got := listing(t, out); !slices.Equal(got, want1) {
		t.Errorf("after run 1: %q\nwant %q", got, want1)
	}
	fi, _ := os.Stat(out)
	if fi.Mode().Perm() != 0o777&^umask() {
		t.Errorf("new folder mode %v, want 0777 less umask %v", fi.Mode().Perm(), umask())
	}
	os.Chmod(out, 0o750)
	// The second run writes fewer files, without --force: the folder is the tool's own.
	id2 := run(t, out, false, []string{"summary.json", "evidence.md"})
	want2 := []string{
		ManifestName + "=" + id2 + " complete [evidence.md summary.json]",
		"evidence.md=" + id2 + " evidence.md\n", "summary.json=" + id2 + " summary.json\n",
	}
	if got := listing(t, out); !slices.Equal(got, want2) {
		t.Errorf("after run 2: %q\nwant %q", got, want2)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o750 {
		t.Errorf("replaced folder mode %v, want the old 0750", fi.Mode().Perm())
	}
	// Nothing else is left beside it: no staging folder, no old folder, no lock file.
	if ents, _ := os.ReadDir(base); len(ents) != 1 {
		t.Errorf("parent holds %v", ents)
	}
}

// With --force and a user's files in --out, the outputs are moved in beside them; the user's files
// keep their bytes, the previous run's outputs this run did not write go, and the manifest lists
// exactly this run's files.
func TestForceBesideUserFiles(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	id1 := run(t, out, false, []string{"summary.json", "stacks.csv"})
	mustWrite(t, filepath.Join(out, ".todo.txt.tmp"), "mine\n")
	mustWrite(t, filepath.Join(out, "notes.md"), "hand-written\n")
	if err := Check(out, false, outputs); err == nil {
		t.Fatal("Check without --force accepted a folder with a user's files")
	}
	id2 := run(t, out, true, []string{"summary.json", "evidence.md"})
	if id1 == id2 {
		t.Fatal("two runs share a run id")
	}
	want := []string{
		ManifestName + "=" + id2 + " complete [evidence.md summary.json]",
		".todo.txt.tmp=mine\n",
		"evidence.md=" + id2 + " evidence.md\n", "notes.md=hand-written\n", "summary.json=" + id2 + " summary.json\n",
	}
	if got := listing(t, out); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 1 {
		t.Errorf("parent holds %v", ents)
	}
}

func TestLockAndClose(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	id1 := run(t, out, false, []string{"summary.json"})
	f, err := Begin(out, false, outputs)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("--out %s is in use by another stackprobe run (pid %d)", out, os.Getpid())
	if err := Check(out, false, outputs); err == nil || err.Error() != want {
		t.Errorf("Check while locked = %v, want %q", err, want)
	}
	if g, err := Begin(out, false, outputs); err == nil || err.Error() != want {
		g.Close()
		t.Errorf("second Begin = %v, want %q", err, want)
	}
	writeAll(t, f, []string{"summary.json", "evidence.md"})
	f.Close() // no Commit: the run failed
	f.Close()
	if got := listing(t, out); !slices.Equal(got, []string{ManifestName + "=" + id1 + " complete [summary.json]", "summary.json=" + id1 + " summary.json\n"}) {
		t.Errorf("out after an aborted run: %q", got)
	}
	if ents, _ := os.ReadDir(base); len(ents) != 1 {
		t.Errorf("parent holds %v after Close", ents)
	}
	if err := f.Commit(false, nil); err == nil {
		t.Error("Commit after Close succeeded")
	}
}

// A user's file that has the lock file's name is never locked, rewritten or removed.
func TestLockNameTaken(t *testing.T) {
	base := t.TempDir()
	lk := filepath.Join(base, LockName("out"))
	mustWrite(t, lk, "my file\n")
	out := filepath.Join(base, "out")
	for _, err := range []error{Check(out, false, outputs), func() error { _, err := Begin(out, false, outputs); return err }()} {
		if err == nil || !strings.Contains(err.Error(), "is not a stackprobe lock file") {
			t.Errorf("got %v", err)
		}
	}
	if b, _ := os.ReadFile(lk); string(b) != "my file\n" {
		t.Errorf("lock-named file holds %q", b)
	}
}

// What a killed run left (its staging folder with files and temporary files, its lock file) is
// removed by the next run into the same --out; look-alike folders that are not provably that
// run's are left alone.
func TestLeftoversOfKilledRun(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	f, err := Begin(out, false, outputs)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, f, []string{"summary.json"})
	mustWrite(t, f.Path(".stacks.csv.123456.tmp"), "half")
	f.lk.f.Close() // the process died: the kernel dropped its flock, nothing was removed
	other := filepath.Join(base, ".stackprobe-mine")
	os.Mkdir(other, 0o755)
	mustWrite(t, filepath.Join(other, "summary.json"), "mine\n")
	foreignOut := filepath.Join(base, ".stackprobe-other")
	os.Mkdir(foreignOut, 0o700)
	mustWrite(t, filepath.Join(foreignOut, ManifestName), `{"tool":"stackprobe","out":"/elsewhere","files":["a"]}`)
	mustWrite(t, filepath.Join(foreignOut, "a"), "a\n")

	id := run(t, out, false, []string{"evidence.md"})
	var names []string
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{".stackprobe-mine", ".stackprobe-other", "out"}) {
		t.Errorf("parent holds %v", names)
	}
	if got := listing(t, other); !slices.Equal(got, []string{"summary.json=mine\n"}) {
		t.Errorf("look-alike folder holds %q", got)
	}
	if got := listing(t, out); len(got) != 2 || !strings.Contains(got[1], id) {
		t.Errorf("out holds %q", got)
	}
}

// A user who adds a file to --out during the run (no --force): Commit refuses and --out is unchanged.
func TestCommitRechecks(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	id1 := run(t, out, false, []string{"summary.json"})
	f, err := Begin(out, false, outputs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeAll(t, f, []string{"summary.json"})
	mustWrite(t, filepath.Join(out, "late.txt"), "mine\n")
	if err := f.Commit(false, []string{"summary.json"}); err == nil || !strings.Contains(err.Error(), `"late.txt"`) {
		t.Errorf("Commit = %v", err)
	}
	want := []string{ManifestName + "=" + id1 + " complete [summary.json]", "late.txt=mine\n", "summary.json=" + id1 + " summary.json\n"}
	if got := listing(t, out); !slices.Equal(got, want) {
		t.Errorf("out %q, want %q", got, want)
	}
	if err := f.Commit(false, []string{"other.txt"}); err == nil {
		t.Error("Commit accepted a name not given to Begin")
	}
}

// snapshot reads folder out through one folder descriptor: the manifest, the names in it and every
// file. ok is false when the folder was retired (a file vanished) while being read.
func snapshot(out string) (m Manifest, names []string, contents map[string]string, ok bool, err error) {
	d, err := os.Open(out)
	if err != nil {
		return m, nil, nil, false, err
	}
	defer d.Close()
	read := func(name string) (string, bool, error) {
		fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			return "", false, nil
		} else if err != nil {
			return "", false, err
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		b, err := io.ReadAll(f)
		return string(b), err == nil, err
	}
	mb, ok, err := read(ManifestName)
	if !ok || err != nil {
		return m, nil, nil, false, err
	}
	if m, err = parseManifest(ManifestName, strings.NewReader(mb)); err != nil {
		return m, nil, nil, false, err
	}
	if names, err = d.Readdirnames(-1); errors.Is(err, unix.ENOENT) {
		return m, nil, nil, false, nil // the folder was removed while being read
	} else if err != nil {
		return m, nil, nil, false, err
	}
	contents = map[string]string{}
	for _, n := range m.Files {
		c, ok, err := read(n)
		if !ok || err != nil {
			return m, nil, nil, false, err
		}
		contents[n] = c
	}
	// A folder is only emptied after it was swapped away from --out, and never comes back: one
	// still at --out now was whole for the entire read.
	dfi, err := d.Stat()
	if err != nil {
		return m, nil, nil, false, err
	}
	if ofi, err := os.Lstat(out); err != nil || !os.SameFile(ofi, dfi) {
		return m, nil, nil, false, err
	}
	return m, names, contents, true, nil
}

// Several writers commit into one --out over and over while a reader polls it: every complete read
// shows one run's files only, with exactly the names its manifest lists, and --out never vanishes.
func TestConcurrentCommitsNeverMix(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	run(t, out, false, []string{"summary.json"})
	sets := [][]string{{"summary.json", "evidence.md"}, {"summary.json", "stacks.csv", "strategies.png"}, {"evidence.md"}}
	const writers, runsEach = 3, 15
	var wg sync.WaitGroup
	var commits, busy sync.Map
	stop := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < runsEach; {
				f, err := Begin(out, false, outputs)
				if err != nil {
					if strings.Contains(err.Error(), "is in use by another stackprobe run") {
						busy.Store(fmt.Sprint(w, i), true)
						time.Sleep(time.Millisecond)
						continue
					}
					t.Error(err)
					return
				}
				names := sets[(w+i)%len(sets)]
				for _, n := range names {
					if err := os.WriteFile(f.Path(n), []byte(f.RunID()+" "+n+"\n"), 0o644); err != nil {
						t.Error(err)
					}
				}
				if err := f.Commit(i%2 == 1, names); err != nil {
					t.Error(err)
				}
				commits.Store(f.RunID(), true)
				f.Close()
				i++
			}
		})
	}
	var reads, retired int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, names, contents, ok, err := snapshot(out)
			if err != nil {
				t.Errorf("reading %s: %v", out, err)
				return
			}
			if !ok {
				retired++
				continue
			}
			reads++
			if m.State != StateComplete && m.State != StatePartial {
				t.Errorf("manifest state %q", m.State)
			}
			want := append(slices.Clone(m.Files), ManifestName)
			slices.Sort(want)
			slices.Sort(names)
			if !slices.Equal(names, want) {
				t.Errorf("folder of run %s holds %v, manifest lists %v", m.RunID, names, m.Files)
			}
			for n, c := range contents {
				if c != m.RunID+" "+n+"\n" {
					t.Errorf("%s holds %q in the folder of run %s", n, c, m.RunID)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-done
	n := 0
	commits.Range(func(any, any) bool { n++; return true })
	if n != writers*runsEach {
		t.Errorf("%d commits, want %d", n, writers*runsEach)
	}
	if reads == 0 {
		t.Error("the reader never read a whole folder")
	}
	t.Logf("%d whole reads, %d reads of a folder retired mid-read", reads, retired)
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("parent holds %v", ents)
	}
}

// ENOSPC while committing leaves the old folder whole. Needs root to mount a tiny tmpfs.
func TestCommitENOSPC(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=200k"); err != nil {
		t.Skip("cannot mount a 200 KiB tmpfs to run out of space: " + err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	out := filepath.Join(mnt, "out")
	id1 := run(t, out, false, []string{"summary.json", "stacks.csv"})
	before := listing(t, out)
	f, err := Begin(out, false, outputs)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, f, []string{"summary.json"})
	// Fill the file system: a user's file takes all the space left.
	fill, _ := os.Create(filepath.Join(mnt, "filler"))
	chunk := make([]byte, 4096)
	for {
		if _, err := fill.Write(chunk); err != nil {
			break
		}
	}
	fill.Close()
	err = f.Commit(false, []string{"summary.json"})
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("Commit on a full file system = %v, want ENOSPC", err)
	}
	f.Close()
	if got := listing(t, out); !slices.Equal(got, before) || !strings.Contains(got[0], id1) {
		t.Errorf("after ENOSPC out holds %q, want %q", got, before)
	}
	ents, _ := os.ReadDir(mnt)
	if len(ents) != 2 {
		t.Errorf("tmpfs holds %v, want out and filler", ents)
	}
}

// A mount point as --out cannot be swapped: refused with a clear message.
func TestCheckMountPoint(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "m")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k"); err != nil {
		t.Skip("cannot mount a tmpfs: " + err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if err := Check(mnt, true, outputs); err == nil || !strings.Contains(err.Error(), "is a mount point") {
		t.Errorf("Check(mount point) = %v", err)
	}
}
