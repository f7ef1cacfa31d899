package procread

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestReadVMASlab(t *testing.T) {
	got, err := ReadVMASlab("testdata/slabinfo-full", 4096)
	if err != nil {
		t.Fatal(err)
	}
	// vm_area_struct 1543 2289 192 21 1: 4096 bytes over 21 objects.
	want := VMASlab{ObjectBytes: 192, SlabBytesPerObject: 195, ActiveObjects: 1543}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestReadVMASlabErrors(t *testing.T) {
	if _, err := ReadVMASlab("testdata/slabinfo-no-vma", 4096); !errors.Is(err, ErrNoVMASlab) {
		t.Errorf("merged cache: err %v, want ErrNoVMASlab", err)
	}
	if _, err := ReadVMASlab("testdata/slabinfo-malformed", 4096); err == nil {
		t.Error("malformed objsize: no error")
	}
	if _, err := ReadVMASlab("testdata/no-such-root", 4096); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err %v, want fs.ErrNotExist", err)
	}
}

// TestReadVMASlabLive reads this machine's slabinfo, which only root may.
func TestReadVMASlabLive(t *testing.T) {
	s, err := ReadVMASlab("", os.Getpagesize())
	switch {
	case errors.Is(err, fs.ErrPermission):
		t.Skip("/proc/slabinfo is root only: " + err.Error())
	case errors.Is(err, ErrNoVMASlab):
		t.Skip("vm_area_struct merged into another cache: " + err.Error())
	case err != nil:
		t.Fatal(err)
	}
	// A vm_area_struct is well over 100 bytes on every 64-bit kernel, and
	// this test's own mappings are live VMAs.
	if s.ObjectBytes < 100 || s.SlabBytesPerObject < s.ObjectBytes || s.ActiveObjects < 1 {
		t.Errorf("implausible vm_area_struct cache: %+v", s)
	}
}
