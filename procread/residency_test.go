//go:build linux

package procread

import (
	"errors"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapStack maps pages+2 pages of private anonymous MAP_NORESERVE memory and
// makes the outer two PROT_NONE, so the inner pages form a VMA of their own
// that cannot merge with a neighbour. It returns the inner pages.
func mapStack(tb testing.TB, pages int, advice int) []byte {
	tb.Helper()
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, (pages+2)*ps, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		tb.Fatalf("mmap: %v", err)
	}
	tb.Cleanup(func() { _ = unix.Munmap(mem) })
	if err := unix.Mprotect(mem[:ps], unix.PROT_NONE); err != nil {
		tb.Fatalf("mprotect: %v", err)
	}
	if err := unix.Mprotect(mem[(pages+1)*ps:], unix.PROT_NONE); err != nil {
		tb.Fatalf("mprotect: %v", err)
	}
	inner := mem[ps : (pages+1)*ps]
	if advice >= 0 {
		if err := unix.Madvise(inner, advice); err != nil {
			tb.Fatalf("madvise: %v", err)
		}
	}
	return inner
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestResidentPagesLive(t *testing.T) {
	ps := os.Getpagesize()
	const pages = 64
	mem := mapStack(t, pages, unix.MADV_NOHUGEPAGE)
	touched := []int{0, 7, 31, 62, 63}
	for _, p := range touched {
		mem[p*ps] = 1
	}
	addr := addrOf(mem)

	n, vec, err := ResidentPages(addr, uintptr(len(mem)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(touched) {
		t.Errorf("ResidentPages = %d, want %d", n, len(touched))
	}
	if len(vec) != pages {
		t.Errorf("len(vec) = %d, want %d", len(vec), pages)
	}

	dst := make([]bool, pages)
	if _, err := ResidentMap(addr, uintptr(len(mem)), vec, dst); err != nil {
		t.Fatal(err)
	}
	for p := range dst {
		want := false
		for _, q := range touched {
			want = want || p == q
		}
		if dst[p] != want {
			t.Errorf("page %d resident = %v, want %v", p, dst[p], want)
		}
	}

	var found *VMA
	err = ReadSmaps("/proc/self/smaps", func(v *VMA) error {
		if v.Contains(uint64(addr)) {
			found = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == nil {
		t.Fatalf("no VMA in /proc/self/smaps contains %#x", addr)
	}
	if found.Start != uint64(addr) || found.End != uint64(addr)+uint64(len(mem)) {
		t.Errorf("VMA %#x-%#x, want %#x-%#x", found.Start, found.End, addr, uint64(addr)+uint64(len(mem)))
	}
	if want := uint64(len(touched) * ps); found.Rss != want {
		t.Errorf("smaps Rss = %d, want %d", found.Rss, want)
	}
	if !found.Has("nh") || !found.Has("nr") || found.Perms != "rw-p" {
		t.Errorf("VMA perms %s flags %q, want rw-p with nh and nr", found.Perms, found.VmFlags)
	}
}

func TestResidentPagesWidensToPages(t *testing.T) {
	ps := os.Getpagesize()
	mem := mapStack(t, 4, unix.MADV_NOHUGEPAGE)
	mem[ps] = 1   // page 1
	mem[3*ps] = 1 // page 3
	addr := addrOf(mem)
	tests := []struct {
		name         string
		addr, length uintptr
		want         int
		wantVec      int
	}{
		{"inside one page", addr + uintptr(ps) + 10, 20, 1, 1},
		{"straddling pages 0 and 1", addr + uintptr(ps) - 1, 2, 1, 2},
		{"pages 1 to 3 from mid page", addr + uintptr(ps) + 100, uintptr(2 * ps), 2, 3},
		{"empty", addr, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, vec, err := ResidentPages(tt.addr, tt.length, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.want || len(vec) != tt.wantVec {
				t.Errorf("got %d pages over %d, want %d over %d", n, len(vec), tt.want, tt.wantVec)
			}
		})
	}
}

func TestResidentPagesUnmapped(t *testing.T) {
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 4*ps, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	addr := addrOf(mem)
	if err := unix.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	_, _, err = ResidentPages(addr, uintptr(4*ps), nil)
	var se *os.SyscallError
	if !errors.Is(err, unix.ENOMEM) || !errors.As(err, &se) || se.Syscall != "mincore" {
		t.Fatalf("err = %v, want an os.SyscallError from mincore wrapping ENOMEM", err)
	}
}

func TestResidentPagesReusesVec(t *testing.T) {
	mem := mapStack(t, 16, -1)
	mem[0] = 1
	addr := addrOf(mem)
	vec := make([]byte, 0, 64)
	n, out, err := ResidentPages(addr, uintptr(len(mem)), vec)
	if err != nil || n != 1 {
		t.Fatalf("ResidentPages = %d, %v", n, err)
	}
	if unsafe.SliceData(out) != unsafe.SliceData(vec) {
		t.Error("vec with room was not reused")
	}
	allocs := testing.AllocsPerRun(100, func() {
		_, out, _ = ResidentPages(addr, uintptr(len(mem)), out)
	})
	if allocs != 0 {
		t.Errorf("ResidentPages with a reused vec allocates %v times", allocs)
	}
	// A short vec is grown.
	_, grown, err := ResidentPages(addr, uintptr(len(mem)), make([]byte, 2))
	if err != nil || len(grown) != 16 {
		t.Fatalf("grown vec len %d, err %v", len(grown), err)
	}
}

func TestResidentMapShortDst(t *testing.T) {
	mem := mapStack(t, 8, -1)
	_, err := ResidentMap(addrOf(mem), uintptr(len(mem)), nil, make([]bool, 7))
	if err == nil {
		t.Fatal("ResidentMap with 7 slots for 8 pages succeeded")
	}
}

func TestCountResident(t *testing.T) {
	tests := []struct {
		name string
		vec  []byte
		want int
	}{
		{"empty", nil, 0},
		{"short", []byte{1, 0, 1}, 2},
		{"only bit 0 counts", []byte{2, 4, 0x81, 0xfe, 0xff, 1, 0, 0, 1}, 4},
		{"all resident", []byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 17},
	}
	for _, tt := range tests {
		if got := countResident(tt.vec); got != tt.want {
			t.Errorf("%s: countResident = %d, want %d", tt.name, got, tt.want)
		}
	}
}
