package procread

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata/totals-proc/4242 holds status, stat, maps, smaps and
// smaps_rollup of a sleep(1) process captured on Linux 6.18;
// testdata/totals-nosmaps is the same without smaps and smaps_rollup.

func TestReaderTotals(t *testing.T) {
	r, err := NewReader("testdata/totals-proc", 4242)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir() != filepath.Join("testdata", "totals-proc", "4242") {
		t.Errorf("Dir = %q", r.Dir())
	}
	got, err := r.Totals()
	if err != nil {
		t.Fatal(err)
	}
	want := Totals{
		VmSize:      2920 * kiB,
		VmRSS:       1740 * kiB,
		VmHWM:       1740 * kiB,
		VmPTE:       48 * kiB,
		RssAnon:     108 * kiB,
		MinorFaults: 142,
		VMAs:        36, // 37 lines of maps, the last the [vsyscall] gate
	}
	if got != want {
		t.Errorf("Totals =\n %+v\nwant\n %+v", got, want)
	}

	n := 0
	if err := r.Smaps(func(*VMA) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != want.VMAs+1 { // smaps lists the gate too
		t.Errorf("smaps has %d records, want %d VMAs and the gate", n, want.VMAs)
	}
}

func TestNewReaderMissingFiles(t *testing.T) {
	tests := []struct {
		name     string
		root     string
		pid      int
		wantFile string
	}{
		{"no such process", "testdata/totals-proc", 999, "totals-proc/999/status"},
		{"no such root", "testdata/does-not-exist", 4242, "does-not-exist/4242/status"},
		{"negative pid", "testdata/totals-proc", -1, "invalid pid -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(tt.root, tt.pid)
			if err == nil || !strings.Contains(err.Error(), tt.wantFile) {
				t.Fatalf("err = %v, want it to name %s", err, tt.wantFile)
			}
		})
	}
}

func TestReaderWithoutSmaps(t *testing.T) {
	r, err := NewReader("testdata/totals-nosmaps", 4242)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Totals(); err != nil {
		t.Fatalf("Totals needs no smaps: %v", err)
	}
	err = r.Smaps(func(*VMA) error { return nil })
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join("totals-nosmaps", "4242", "smaps")) {
		t.Errorf("Smaps err = %v, want not-exist naming the smaps file", err)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    Totals
		wantErr string
	}{
		{name: "sleep", file: "totals-proc/4242/status",
			want: Totals{VmSize: 2920 * kiB, VmRSS: 1740 * kiB, VmHWM: 1740 * kiB, VmPTE: 48 * kiB, RssAnon: 108 * kiB}},
		{name: "kernel thread", file: "status-kthread", wantErr: "no VmRSS line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got Totals
			err = parseStatus(b, &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	var got Totals
	if err := parseStatus([]byte("VmRSS:\t  12x kB\n"), &got); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("malformed VmRSS: err = %v, want one naming line 1", err)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		wantMinor uint64
		wantErr   string
	}{
		{name: "sleep", file: "totals-proc/4242/stat", wantMinor: 142},
		{name: "command with parentheses and spaces", file: "stat-comm-parens", wantMinor: 142},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got Totals
			if err := parseStat(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.MinorFaults != tt.wantMinor || got.MajorFaults != 0 {
				t.Errorf("faults %d/%d, want %d/0", got.MinorFaults, got.MajorFaults, tt.wantMinor)
			}
		})
	}
	for _, bad := range []string{"", "1 (x S 1 2", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 -7 0 0 0"} {
		var got Totals
		if err := parseStat([]byte(bad), &got); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

// TestCountVMAs counts the VMAs of maps files with and without the gate
// line, read in chunks small and large enough to split the gate line.
func TestCountVMAs(t *testing.T) {
	const gate = "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
	const heap = "c000000000-c000400000 rw-p 00000000 00:00 0 \n"
	const file = "00400000-00595000 r-xp 00000000 fd:01 1234   /tmp/[vsyscall]x\n"
	tests := []struct {
		name, maps string
		want       int
	}{
		{"gate last", heap + heap + gate, 2},
		{"no gate (arm64)", heap + heap + heap, 3},
		{"no final newline", heap + strings.TrimSuffix(gate, "\n"), 1},
		{"gate not last", gate + heap, 2},
		{"file named like the gate", file + "c0-c1 rw-p 0 00:00 0 /x/ [vsyscall]y\n", 2},
		{"only the gate", gate, 0},
		{"empty", "", 0},
		{"many lines", strings.Repeat(heap, 5000) + gate, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "maps")
			if err := os.WriteFile(path, []byte(tt.maps), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{7, 64 << 10} { // 7: the gate line spans many reads
				r := &Reader{buf: make([]byte, 0, size), tail: make([]byte, 0, gateTail)}
				got, err := r.countVMAsChunked(path, size)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("read in %d-byte chunks: %d VMAs, want %d", size, got, tt.want)
				}
			}
		})
	}
}

func TestKeepTail(t *testing.T) {
	tail := make([]byte, 0, 4)
	for _, b := range []string{"ab", "c", "defg", "hijklm", "n"} {
		tail = keepTail(tail, []byte(b))
	}
	if string(tail) != "klmn" {
		t.Errorf("tail %q, want %q", tail, "klmn")
	}
}
