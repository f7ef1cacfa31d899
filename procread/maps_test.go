package procread

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

func parseMapsFile(t *testing.T, name string) ([]Mapping, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	// One byte per read: lines cross every buffer boundary.
	ms, _, err := ParseMaps(iotest.OneByteReader(bytes.NewReader(b)), nil, make([]byte, 16))
	return ms, err
}

func TestParseMapsGlibcThreads(t *testing.T) {
	ms, err := parseMapsFile(t, "maps-glibc-threads")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 32 {
		t.Fatalf("%d mappings, want 32", len(ms))
	}
	// 7f23ab93e000-7f23ac13e000 rw-p, directly above a ---p guard page.
	i := 13
	m := ms[i]
	if m.Start != 0x7f23ab93e000 || m.End != 0x7f23ac13e000 || m.Perms.String() != "rw-p" || m.Path != "" || !m.Anonymous() {
		t.Errorf("mapping %d = %+v", i, m)
	}
	if m.Size() != 8<<20 {
		t.Errorf("size %d, want 8 MiB", m.Size())
	}
	if !GuardBelow(ms, i) || !ms[i-1].ProtNone() {
		t.Errorf("mapping %d: no PROT_NONE guard below", i)
	}
	if GuardBelow(ms, i+1) { // 7f23ac13e000 sits on the rw stack, not a guard
		t.Errorf("mapping %d: guard below reported", i+1)
	}
	libc := ms[15]
	if libc.Path != "/usr/lib/x86_64-linux-gnu/libc.so.6" || libc.Major != 0xfe || libc.Minor != 0 || libc.Inode != 326269 ||
		libc.Perms != PermRead || libc.Anonymous() {
		t.Errorf("libc mapping = %+v", libc)
	}
	if exe := ms[16]; exe.Offset != 0x26000 || exe.Perms != PermRead|PermExec || exe.Path != libc.Path {
		t.Errorf("libc text = %+v", exe)
	}
	if st := ms[30]; st.Path != "[stack]" || st.Anonymous() || st.Start != 0x7ffdaaeed000 || st.End != 0x7ffdaaf0e000 {
		t.Errorf("[stack] = %+v", st)
	}
	if vs := ms[31]; vs.Start != 0xffffffffff600000 || vs.Perms != PermExec || vs.Path != "[vsyscall]" {
		t.Errorf("[vsyscall] = %+v", vs)
	}
}

func TestParseMapsTruncatedAndOddPaths(t *testing.T) {
	ms, err := parseMapsFile(t, "maps-truncated")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 {
		t.Fatalf("%d mappings, want the 3 complete lines", len(ms))
	}
	if ms[0].Path != "/tmp/a b (deleted)" || ms[0].Inode != 42 {
		t.Errorf("path with spaces: %+v", ms[0])
	}
	if ms[1].Perms != PermRead|PermWrite|PermShared || ms[1].Perms.String() != "rw-s" || ms[1].Minor != 5 {
		t.Errorf("shared mapping: %+v", ms[1])
	}
}

func TestParseMapsMalformed(t *testing.T) {
	_, err := parseMapsFile(t, "maps-malformed")
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("maps line 2")) {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}

// TestMapsLiveMatchesProcfs reads this process's maps with ProcDir and with
// procfs's ProcMaps and compares every field.
func TestMapsLiveMatchesProcfs(t *testing.T) {
	d, err := OpenProcDir("", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ms, err := d.Maps(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.ProcMaps()
	if err != nil {
		t.Fatal(err)
	}
	// The runtime may map between the two reads: compare the common prefix
	// of mappings below the first difference, and require most to match.
	n := min(len(ms), len(want))
	matched := 0
	for i := 0; i < n; i++ {
		m, w := ms[i], want[i]
		if m.Start != uint64(w.StartAddr) || m.End != uint64(w.EndAddr) {
			break
		}
		perms := []byte("---p")
		for i, on := range []bool{w.Perms.Read, w.Perms.Write, w.Perms.Execute, w.Perms.Shared} {
			if on {
				perms[i] = "rwxs"[i]
			}
		}
		if m.Perms.String() != string(perms) || m.Offset != uint64(w.Offset) || m.Inode != w.Inode || m.Path != w.Pathname ||
			unix.Mkdev(m.Major, m.Minor) != w.Dev {
			t.Errorf("mapping %d: %+v, procfs %+v", i, m, *w)
		}
		matched++
	}
	if matched < n/2 {
		t.Errorf("only %d of %d mappings agree in address", matched, n)
	}
}

func TestProcDirGone(t *testing.T) {
	_, err := OpenProcDir("testdata/no-such-root", 4242)
	if !errors.Is(err, ErrGone) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenProcDir of a missing pid: %v, want ErrGone wrapping ENOENT", err)
	}
}
