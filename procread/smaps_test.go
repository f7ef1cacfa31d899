package procread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

const kiB = 1024

// The smaps fixtures were captured on Linux 6.18 amd64 by
// testdata/capture (see its doc comment); smaps-truncated and
// smaps-malformed-* are edited copies of smaps-guard-split.

func readFixture(t *testing.T, name string) ([]VMA, error) {
	t.Helper()
	var vmas []VMA
	err := ReadSmaps(filepath.Join("testdata", name), func(v *VMA) error {
		vmas = append(vmas, *v)
		return nil
	})
	return vmas, err
}

func findVMA(t *testing.T, vmas []VMA, start uint64) VMA {
	t.Helper()
	for _, v := range vmas {
		if v.Start == start {
			return v
		}
	}
	t.Fatalf("no VMA starts at %#x", start)
	return VMA{}
}

func TestReadSmaps(t *testing.T) {
	tests := []struct {
		name  string
		wantN int
		check func(t *testing.T, vmas []VMA)
	}{
		{
			name:  "smaps-go-capture",
			wantN: 37,
			check: func(t *testing.T, vmas []VMA) {
				text := vmas[0]
				if text.Start != 0x400000 || text.End != 0x4bd000 || text.Perms != "r-xp" || text.Offset != 0 ||
					text.Dev != "fe:00" || text.Inode != 9979965 ||
					!strings.HasSuffix(text.Path, "/b001/exe/capture") {
					t.Errorf("text segment = %+v", text)
				}
				if text.Size != 756*kiB || text.KernelPageSize != 4*kiB || text.MMUPageSize != 4*kiB {
					t.Errorf("text segment sizes = %d %d %d", text.Size, text.KernelPageSize, text.MMUPageSize)
				}
				if vmas[1].Offset != 0xbd000 {
					t.Errorf("second segment offset = %#x, want 0xbd000", vmas[1].Offset)
				}
				// Three anonymous regions: 16 pages (3 touched), 8 read-only
				// pages (read only: the zero page is not counted), 32 pages
				// with MADV_NOHUGEPAGE (7 touched).
				a := findVMA(t, vmas, 0x7f3995201000)
				if a.End != 0x7f3995211000 || a.Perms != "rw-p" || a.Dev != "00:00" || a.Path != "" ||
					a.Size != 64*kiB || a.Rss != 12*kiB || a.PrivateDirty != 12*kiB || a.Anonymous != 12*kiB ||
					!a.Has("nr") || a.Has("nh") || a.THPEligible {
					t.Errorf("anonymous a = %+v", a)
				}
				b := findVMA(t, vmas, 0x7f3995401000)
				if b.Perms != "r--p" || b.Size != 32*kiB || b.Rss != 0 || b.Has("wr") || !b.Has("rd") {
					t.Errorf("anonymous b = %+v", b)
				}
				c := findVMA(t, vmas, 0x7f3995601000)
				if c.Size != 128*kiB || c.Rss != 28*kiB || !c.Has("nh") {
					t.Errorf("anonymous c = %+v", c)
				}
				stack := vmas[len(vmas)-2]
				if stack.Path != "[stack]" || !stack.Has("gd") {
					t.Errorf("main stack = %+v", stack)
				}
				last := vmas[len(vmas)-1]
				if last.Start != 0xffffffffff600000 || last.Path != "[vsyscall]" || last.Perms != "--xp" {
					t.Errorf("last = %+v", last)
				}
			},
		},
		{
			name:  "smaps-merged-vmas",
			wantN: 1,
			check: func(t *testing.T, vmas []VMA) {
				// Two 64-page stacks, 2 and 4 pages touched, in one VMA.
				v := vmas[0]
				if v.End-v.Start != 128*4*kiB || v.Size != 512*kiB || v.Rss != 24*kiB || v.PrivateDirty != 24*kiB {
					t.Errorf("merged = %+v", v)
				}
				if want := []string{"rd", "wr", "mr", "mw", "me", "nr"}; !slices.Equal(v.VmFlags, want) {
					t.Errorf("VmFlags = %q, want %q", v.VmFlags, want)
				}
			},
		},
		{
			name:  "smaps-guard-split",
			wantN: 2,
			check: func(t *testing.T, vmas []VMA) {
				guard, stack := vmas[0], vmas[1]
				if guard.Perms != "---p" || guard.Size != 4*kiB || guard.Rss != 0 || guard.Has("rd") || guard.End != stack.Start {
					t.Errorf("guard = %+v", guard)
				}
				if stack.Perms != "rw-p" || stack.Size != 252*kiB || stack.Rss != 12*kiB || stack.Pss != 12*kiB {
					t.Errorf("stack = %+v", stack)
				}
			},
		},
		{
			name:  "smaps-thp",
			wantN: 1,
			check: func(t *testing.T, vmas []VMA) {
				v := vmas[0]
				if v.AnonHugePages != 2048*kiB || v.Rss != 2048*kiB || !v.THPEligible || !v.Has("hg") || v.Start%(2<<20) != 0 {
					t.Errorf("thp = %+v", v)
				}
			},
		},
		{
			name:  "smaps-truncated",
			wantN: 2,
			check: func(t *testing.T, vmas []VMA) {
				// Cut inside the second record's Pss line: the fields read so
				// far are kept, the partial "Pss: 1" is not misread as 1 kB.
				v := vmas[1]
				if v.Size != 252*kiB || v.Rss != 12*kiB || v.Pss != 0 || v.VmFlags != nil {
					t.Errorf("truncated = %+v", v)
				}
				if len(vmas[0].VmFlags) != 4 {
					t.Errorf("complete first record VmFlags = %q", vmas[0].VmFlags)
				}
			},
		},
		{name: "smaps-truncated-header", wantN: 0},
		{name: "smaps-empty", wantN: 0},
		{
			name:  "smaps-path-spaces",
			wantN: 2,
			check: func(t *testing.T, vmas []VMA) {
				if want := "/tmp/coro stacks/arena (deleted)"; vmas[0].Path != want {
					t.Errorf("Path = %q, want %q", vmas[0].Path, want)
				}
				if vmas[1].Path != "[stack]" {
					t.Errorf("Path = %q, want [stack]", vmas[1].Path)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmas, err := readFixture(t, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if len(vmas) != tt.wantN {
				t.Fatalf("got %d VMAs, want %d", len(vmas), tt.wantN)
			}
			for _, v := range vmas {
				if v.Size != 0 && v.Size != v.End-v.Start {
					t.Errorf("%#x: Size %d != End-Start %d", v.Start, v.Size, v.End-v.Start)
				}
			}
			if tt.check != nil {
				tt.check(t, vmas)
			}
		})
	}
}

func TestReadSmapsMalformed(t *testing.T) {
	tests := []struct {
		name     string
		line     int
		text     string // in ParseError.Text
		wantErr  string // in the message
		wantVMAs int    // delivered before the error
	}{
		{"smaps-malformed-header", 26, "7f3995c4zz00", "malformed end address", 1},
		{"smaps-malformed-number", 30, "1x kB", "not a decimal number", 1},
		{"smaps-malformed-orphan-field", 1, "Rss:", "before the first mapping header", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmas, err := readFixture(t, tt.name)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			path := filepath.Join("testdata", tt.name)
			if pe.File != path || pe.Line != tt.line || !strings.Contains(pe.Text, tt.text) {
				t.Errorf("ParseError = %+v, want file %s line %d text ~%q", pe, path, tt.line, tt.text)
			}
			msg := err.Error()
			for _, want := range []string{fmt.Sprintf("smaps %s line %d: ", path, tt.line), tt.wantErr, tt.text} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			if len(vmas) != tt.wantVMAs {
				t.Errorf("delivered %d VMAs before the error, want %d", len(vmas), tt.wantVMAs)
			}
		})
	}
}

func TestParseSmapsReader(t *testing.T) {
	data, err := os.ReadFile("testdata/smaps-malformed-header")
	if err != nil {
		t.Fatal(err)
	}
	// One byte per Read exercises the buffering.
	err = ParseSmaps(iotest.OneByteReader(bytes.NewReader(data)), func(*VMA) error { return nil })
	if err == nil || !strings.HasPrefix(err.Error(), "smaps line 26: ") {
		t.Fatalf("err = %v, want one starting %q", err, "smaps line 26: ")
	}
}

func TestParseSmapsLongLine(t *testing.T) {
	long := "/" + strings.Repeat("very-long-directory-name/", 40000) + "stack" // ~1 MiB
	in := "7f0000000000-7f0000001000 rw-p 00000000 00:00 0    " + long + "\nRss:  4 kB\nVmFlags: rd wr\n"
	var got []VMA
	err := ParseSmaps(strings.NewReader(in), func(v *VMA) error { got = append(got, *v); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != long || got[0].Rss != 4*kiB || len(got[0].VmFlags) != 2 {
		t.Fatalf("got %d VMAs, path length %d", len(got), len(got[0].Path))
	}
}

func TestParseSmapsStop(t *testing.T) {
	stop := errors.New("enough")
	calls := 0
	err := ReadSmaps("testdata/smaps-go-capture", func(*VMA) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("err = %v, want the callback's own error", err)
	}
	if calls != 3 {
		t.Fatalf("callback ran %d times after stopping, want 3", calls)
	}
}

func TestParseSmapsReadError(t *testing.T) {
	f, err := os.Open("testdata/smaps-guard-split")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boom := errors.New("device went away")
	err = ParseSmaps(io.MultiReader(io.LimitReader(f, 100), iotest.ErrReader(boom)), func(*VMA) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
}

// TestParseSmapsRetained checks that VMAs handed to the callback stay
// intact while later ones are parsed: they are distinct, and so are the
// backing arrays of their VmFlags.
func TestParseSmapsRetained(t *testing.T) {
	var ptrs []*VMA
	var copies []VMA
	err := ReadSmaps("testdata/smaps-go-capture", func(v *VMA) error {
		ptrs = append(ptrs, v)
		c := *v
		c.VmFlags = slices.Clone(v.VmFlags)
		copies = append(copies, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ptrs {
		if p.Start != copies[i].Start || p.Rss != copies[i].Rss || !slices.Equal(p.VmFlags, copies[i].VmFlags) {
			t.Fatalf("VMA %d changed after the callback: %+v, was %+v", i, *p, copies[i])
		}
	}
	// Appending to one VMA's flags must not clobber the next one's.
	ptrs[0].VmFlags = append(ptrs[0].VmFlags, "xx")
	if !slices.Equal(ptrs[1].VmFlags, copies[1].VmFlags) {
		t.Fatalf("append to VMA 0 flags changed VMA 1: %q", ptrs[1].VmFlags)
	}
}

func TestVMAHas(t *testing.T) {
	v := VMA{VmFlags: []string{"rd", "wr", "nr", "nh"}}
	for flag, want := range map[string]bool{"rd": true, "nh": true, "hg": false, "": false, "r": false} {
		if got := v.Has(flag); got != want {
			t.Errorf("Has(%q) = %v, want %v", flag, got, want)
		}
	}
}

// BenchmarkParseSmapsMemory measures the parser alone, on the captured
// smaps of a Go program held in memory.
func BenchmarkParseSmapsMemory(b *testing.B) {
	data, err := os.ReadFile("testdata/smaps-go-capture")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var p smapsParser
	rd := bytes.NewReader(data)
	for b.Loop() {
		rd.Reset(data)
		if err := p.parse(rd, "", func(*VMA) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
