package procread

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestUmask(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(root, "self", "status"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Name:\tx\nUmask:\t0027\nState:\tR\n")
	if m, err := Umask(root); err != nil || m != 0o027 {
		t.Errorf("Umask = %o, %v; want 027", m, err)
	}
	write("Name:\tx\n")
	if _, err := Umask(root); err == nil {
		t.Error("no Umask line: no error")
	}
	write("Umask:\t9\n")
	if _, err := Umask(root); err == nil {
		t.Error("Umask 9 (not octal): no error")
	}
	// This process's own, against umask(2) (set back at once).
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	if m, err := Umask(""); err != nil || m != os.FileMode(old) {
		t.Errorf("live Umask = %o, %v; want %o", m, err, old)
	}
}
