package procread

import (
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// mapVMAs adds n VMAs to this process: one mapping of n pages whose pages
// alternate between read-write and read-only, so that no two neighbours
// merge. Every fourth page is touched. It returns the number of VMAs the
// process then has.
func mapVMAs(tb testing.TB, n int) int {
	tb.Helper()
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, n*ps, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		tb.Fatalf("mmap: %v", err)
	}
	tb.Cleanup(func() { _ = unix.Munmap(mem) })
	for p := 0; p < n; p += 4 {
		mem[p*ps] = 1
	}
	for p := 1; p < n; p += 2 {
		if err := unix.Mprotect(mem[p*ps:(p+1)*ps], unix.PROT_READ); err != nil {
			tb.Fatalf("mprotect: %v", err)
		}
	}
	vmas := 0
	if err := ReadSmaps("/proc/self/smaps", func(*VMA) error { vmas++; return nil }); err != nil {
		tb.Fatal(err)
	}
	return vmas
}

// BenchmarkParseSmaps parses this process's smaps with about 1000 extra
// VMAs; compare with BenchmarkReadRaw, which only copies the same file, to
// see what the parsing itself costs on top of the kernel generating it.
func BenchmarkParseSmaps(b *testing.B) {
	vmas := mapVMAs(b, 1000)
	b.ReportAllocs()
	var sp smapsParser
	b.Run("ReadSmaps", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := ReadSmaps("/proc/self/smaps", func(*VMA) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(vmas), "VMAs")
	})
	b.Run("reused-parser", func(b *testing.B) {
		for b.Loop() {
			if err := sp.read("/proc/self/smaps", func(*VMA) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(vmas), "VMAs")
	})
}

// BenchmarkReadRaw copies the same live /proc/self/smaps as
// BenchmarkParseSmaps to io.Discard.
func BenchmarkReadRaw(b *testing.B) {
	vmas := mapVMAs(b, 1000)
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		f, err := os.Open("/proc/self/smaps")
		if err != nil {
			b.Fatal(err)
		}
		size, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(vmas), "VMAs")
	b.ReportMetric(float64(size), "bytes")
}
