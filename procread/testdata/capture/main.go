// Command capture regenerates the captured smaps fixtures in procread/testdata.
//
// It lays out each scenario with mmap(2) in its own process image, reads
// /proc/self/smaps and writes the VMAs that intersect the scenario's region:
//
//	go run ./procread/testdata/capture -out procread/testdata
//
// smaps-go-capture is the whole smaps file of this program after it mapped a
// few anonymous regions; the others keep only the VMAs of their scenario.
// smaps-truncated, smaps-malformed-* and smaps-path-spaces are edited copies
// of these. A new capture has new addresses and sizes: the tests pin the
// values of the committed one and must be updated with it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

const huge = 2 << 20

// mapAt maps n bytes of private anonymous read-write memory at addr, which
// must be free.
func mapAt(addr uintptr, n int) []byte {
	p, err := unix.MmapPtr(-1, 0, unsafe.Add(unsafe.Pointer(nil), addr), uintptr(n), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_FIXED_NOREPLACE)
	if err != nil {
		log.Fatalf("mmap %#x+%d: %v", addr, n, err)
	}
	return unsafe.Slice((*byte)(p), n)
}

func base(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// excerpt returns the smaps blocks of VMAs intersecting [lo, hi).
func excerpt(smaps []byte, lo, hi uintptr) []byte {
	var out bytes.Buffer
	keep := false
	for _, line := range strings.SplitAfter(string(smaps), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && !strings.HasSuffix(f[0], ":") && strings.Contains(f[0], "-") {
			s, e, _ := strings.Cut(f[0], "-")
			start, _ := strconv.ParseUint(s, 16, 64)
			end, _ := strconv.ParseUint(e, 16, 64)
			keep = uintptr(start) < hi && uintptr(end) > lo
		}
		if keep {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}

func main() {
	out := flag.String("out", "procread/testdata", "fixture directory")
	flag.Parse()
	page := os.Getpagesize()

	// Find a free, 2 MiB aligned address range, then map every scenario at
	// its own offset in it with unmapped holes between, so that no scenario
	// merges with a neighbour.
	arena, err := unix.Mmap(-1, 0, 32*huge, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		log.Fatal(err)
	}
	next := (base(arena) + huge - 1) / huge * huge
	if err := unix.Munmap(arena); err != nil {
		log.Fatal(err)
	}
	slot := func(n int) []byte {
		b := mapAt(next+uintptr(page), n)
		next = (next + uintptr(page+n+page) + huge - 1) / huge * huge
		return b
	}
	// touch writes one byte into each of the top n pages of b, as a stack
	// grows down.
	touch := func(b []byte, n int) {
		for i := 1; i <= n; i++ {
			b[len(b)-i*page] = 1
		}
	}

	// A few anonymous regions.
	a := slot(16 * page)
	touch(a, 3)
	b := slot(8 * page)
	if err := unix.Mprotect(b, unix.PROT_READ); err != nil {
		log.Fatal(err)
	}
	_ = b[0]
	c := slot(32 * page)
	if err := unix.Madvise(c, unix.MADV_NOHUGEPAGE); err != nil {
		log.Fatal(err)
	}
	touch(c, 7)

	// Two adjacent 64-page stacks mapped separately: the kernel merges them.
	m := slot(64 * page)
	m2 := mapAt(base(m)+uintptr(64*page), 64*page)
	next += huge
	touch(m, 2)
	touch(m2, 4)

	// A 64-page stack whose lowest page is a PROT_NONE guard.
	g := slot(64 * page)
	if err := unix.Mprotect(g[:page], unix.PROT_NONE); err != nil {
		log.Fatal(err)
	}
	touch(g, 3)

	// A 2 MiB aligned region with MADV_HUGEPAGE: one touch faults a huge page.
	h := mapAt(next, huge)
	next += 2 * huge
	if err := unix.Madvise(h, unix.MADV_HUGEPAGE); err != nil {
		log.Fatal(err)
	}
	h[0] = 1
	h[page] = 1 // same huge page

	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		log.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d bytes\n", name, len(data))
	}
	write("smaps-go-capture", smaps)
	write("smaps-merged-vmas", excerpt(smaps, base(m), base(m)+uintptr(128*page)))
	write("smaps-guard-split", excerpt(smaps, base(g), base(g)+uintptr(64*page)))
	write("smaps-thp", excerpt(smaps, base(h), base(h)+huge))
	fmt.Printf("a=%#x b=%#x c=%#x merged=%#x guard=%#x thp=%#x\n", base(a), base(b), base(c), base(m), base(g), base(h))
}
