package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	fail := errors.New("disk on fire")
	err := Write(p, func(w io.Writer) error {
		io.WriteString(w, "half")
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("a failed write changed the file to %q", b)
	}
	if err := Write(p, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("content %q mode %v, want new and the old 0600", b, fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

// A destination that is a link (to a file outside the folder, or dangling), a folder or a FIFO is
// refused, and the link's target keeps its bytes.
func TestRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.json")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, p := range []string{out, filepath.Join(out, "summary.json")} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../victim.json", filepath.Join(out, "evidence.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../missing", filepath.Join(out, "stacks.csv")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"evidence.md", "stacks.csv", "summary.json", "fifo"} {
		err := Write(filepath.Join(out, name), func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err })
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Write(%s) = %v, want an error naming it", name, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("link target holds %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(out, "evidence.md")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 4 {
		t.Errorf("folder holds %d entries, want the 4 made by the test", len(ents))
	}
}

func TestAbortAndIsTempFor(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Base(f.f.Name())
	if !IsTempFor(tmp, "samples.csv") || IsTempFor(tmp, "stacks.csv") || IsTempFor("samples.csv", "samples.csv") ||
		IsTempFor(".samples.csv..tmp", "samples.csv") || IsTempFor(".samples.csv.a.b.tmp", "samples.csv") {
		t.Errorf("IsTempFor wrong for %q", tmp)
	}
	f.Abort()
	f.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("Abort left %v", ents)
	}
}
