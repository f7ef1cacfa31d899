package stackfind

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stackprobe/procread"
)

func readMaps(t *testing.T, name string) []procread.Mapping {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ms, _, err := procread.ParseMaps(f, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func sleeping(tid int, sp uint64) procread.Thread {
	return procread.Thread{TID: tid, Syscall: procread.Syscall{State: procread.InSyscall, SP: sp}}
}

// brief renders stacks one per line: "start-end found_by tid=T threads=N guard size_match".
func brief(ss []Stack) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%x-%x %s tid=%d threads=%d %s/%d %s\n", s.Start, s.End, s.FoundBy, s.TID, s.Threads, s.Guard, s.GuardBytes, s.SizeMatch)
	}
	return b.String()
}

func TestFind(t *testing.T) {
	glibcThreads := []procread.Thread{
		sleeping(11955, 0x7ffdaaf0c7b0), sleeping(11957, 0x7f23ac138640), sleeping(11958, 0x7f23ab929de0),
		sleeping(11959, 0x7f23ab0f9890), sleeping(11960, 0x7f23aa838f40),
		{TID: 11961}, // running: no stack pointer this time
	}
	tests := []struct {
		name    string
		maps    string
		threads []procread.Thread
		opts    Options
		want    string
	}{
		{"glibc threads", "glibc-threads.maps", glibcThreads, Options{Main: true, Thread: true, Guard: true}, `
7f23aa13b000-7f23aa93b000 thread+guard tid=11960 threads=1 prot_none_below/4096 
7f23aa93c000-7f23ab13c000 thread+guard tid=11959 threads=1 prot_none_below/4096 
7f23ab13d000-7f23ab93d000 thread+guard tid=11958 threads=1 prot_none_below/4096 
7f23ab93e000-7f23ac13e000 thread+guard tid=11957 threads=1 prot_none_below/4096 
7ffdaaeed000-7ffdaaf0e000 main+thread tid=11955 threads=1 none/0 
`},
		{"glibc threads by size with guard", "glibc-threads.maps", nil, Options{Size: 8<<20 + 4096}, `
7f23aa13b000-7f23aa93b000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f23aa93c000-7f23ab13c000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f23ab13d000-7f23ab93d000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f23ab93e000-7f23ac13e000 size tid=0 threads=0 prot_none_below/4096 with_guard
`},
		{"glibc threads by exact size", "glibc-threads.maps", nil, Options{Size: 8 << 20}, `
7f23aa13b000-7f23aa93b000 size tid=0 threads=0 prot_none_below/4096 exact
7f23aa93c000-7f23ab13c000 size tid=0 threads=0 prot_none_below/4096 exact
7f23ab13d000-7f23ab93d000 size tid=0 threads=0 prot_none_below/4096 exact
7f23ab93e000-7f23ac13e000 size tid=0 threads=0 prot_none_below/4096 exact
`},
		{"seed fibers by size", "seed-fibers.maps", nil, Options{Size: 1 << 20}, `
7f726b700000-7f726b7ff000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f727003e000-7f727013d000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f727013e000-7f727023d000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f727023e000-7f727033d000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f727033e000-7f727043d000 size tid=0 threads=0 prot_none_below/4096 with_guard
7f727043e000-7f727053d000 size tid=0 threads=0 prot_none_below/4096 with_guard
`},
		// The 6 fibers, the acceptor's 256 KiB fiber and the two 8 MiB
		// pthread stacks all sit on a one-page guard; the malloc arena
		// (7f7264000000, PROT_NONE above it, not below) is not a stack.
		{"seed fibers by guard", "seed-fibers.maps", []procread.Thread{sleeping(12534, 0x7ffdd13b45b0)}, Options{Main: true, Thread: true, Guard: true}, `
7f726b700000-7f726b7ff000 guard tid=0 threads=0 prot_none_below/4096 
7f726b800000-7f726c000000 guard tid=0 threads=0 prot_none_below/4096 
7f727003e000-7f727013d000 guard tid=0 threads=0 prot_none_below/4096 
7f727013e000-7f727023d000 guard tid=0 threads=0 prot_none_below/4096 
7f727023e000-7f727033d000 guard tid=0 threads=0 prot_none_below/4096 
7f727033e000-7f727043d000 guard tid=0 threads=0 prot_none_below/4096 
7f727043e000-7f727053d000 guard tid=0 threads=0 prot_none_below/4096 
7f727053e000-7f7270d3e000 guard tid=0 threads=0 prot_none_below/4096 
7f7271287000-7f72712c6000 guard tid=0 threads=0 prot_none_below/4096 
7ffdd1395000-7ffdd13b6000 main+thread tid=12534 threads=1 none/0 
`},
		// Go: threads run on stacks inside the heap arena (3 SPs in one
		// mapping); the runtime's read-write regions above large PROT_NONE
		// reservations are not taken for guarded stacks.
		{"go", "go.maps", []procread.Thread{
			sleeping(12710, 0x7ffd9b37de18), sleeping(12711, 0x3c015d73de68),
			sleeping(12712, 0x3c015d76de38), sleeping(12714, 0x3c015d769cd0),
		}, Options{Main: true, Thread: true, Guard: true}, `
3c015d400000-3c015d800000 thread tid=12711 threads=3 none/0 
7ffd9b360000-7ffd9b381000 main+thread tid=12710 threads=1 none/0 
`},
		{"rust threads", "rust-threads.maps", []procread.Thread{sleeping(1, 0x7ffc00020000), sleeping(2, 0x7f20051ff000), sleeping(3, 0x7f20053f0000)},
			Options{Thread: true, Guard: true}, `
7f2005001000-7f2005201000 thread+guard tid=2 threads=1 prot_none_below/4096 
7f2005202000-7f2005402000 thread+guard tid=3 threads=1 prot_none_below/4096 
7ffc00000000-7ffc00021000 thread tid=1 threads=1 none/0 
`},
		// Merged: four stacks of 100 MiB made one VMA; only the one that
		// kept a VMA of its own is found by size.
		{"merged", "merged.maps", nil, Options{Size: 100 << 20}, `
7f0019000000-7f001f400000 size tid=0 threads=0 none/0 exact
`},
		// Stacks without guards, by size; a named anonymous mapping and a
		// range; a range over [stack] folds main into it.
		{"zig no guard", "zig-noguard.maps", nil, Options{Main: true, Size: 1 << 20, Ranges: []procread.PageRange{
			{Start: 0x7ffe00010000, End: 0x7ffe00021000}, {Start: 0x7f1000300000, End: 0x7f1000301000},
		}}, `
7f1000000000-7f1000100000 size tid=0 threads=0 none/0 exact
7f1000200000-7f1000300000 size tid=0 threads=0 none/0 exact
7f1000300000-7f1000301000 range tid=0 threads=0 none/0 
7ffe00010000-7ffe00021000 main+range tid=0 threads=0 none/0 
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := brief(Find(readMaps(t, tt.maps), tt.threads, tt.opts, nil))
			if want := strings.TrimPrefix(tt.want, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestGuardMarkers(t *testing.T) {
	ms := readMaps(t, "zig-noguard.maps")
	found := Find(ms, nil, Options{Main: true}, nil)
	cands := MarkerCandidates(ms, found, 4096, nil)
	want := []procread.PageRange{{Start: 0x7f1000000000, End: 0x7f1000001000}, {Start: 0x7f1000200000, End: 0x7f1000201000}}
	if fmt.Sprint(cands) != fmt.Sprint(want) {
		t.Fatalf("candidates %x, want %x (anonymous rw mappings larger than a page, not yet stacks)", cands, want)
	}
	counts := []procread.PageCounts{{}, {GuardBytes: 4096}}
	got := brief(AddMarked(found, ms, cands, counts))
	wantS := "7f1000200000-7f1000300000 guard tid=0 threads=0 guard_markers/4096 \n7ffe00000000-7ffe00021000 main tid=0 threads=0 none/0 \n"
	if got != wantS {
		t.Errorf("got\n%s\nwant\n%s", got, wantS)
	}
}

func TestJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		F FoundBy   `json:"found_by"`
		G GuardKind `json:"guard"`
		S SizeMatch `json:"size_match"`
	}{Main | Thread | Range, GuardProtNoneBelow, SizeWithGuard})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"found_by":["main","thread","range"],"guard":"prot_none_below","size_match":"with_guard"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}
