//go:build linux

package frames

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const regionBytes = 100 << 20

var pageSize = os.Getpagesize()

// mapStack reserves a fresh region the way a coroutine stack is reserved and
// returns it with its top address.
func mapStack(tb testing.TB, size int) ([]byte, uintptr) {
	tb.Helper()
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE|unix.MAP_STACK)
	if err != nil {
		tb.Fatalf("mmap %d: %v", size, err)
	}
	tb.Cleanup(func() {
		if err := unix.Munmap(b); err != nil {
			tb.Errorf("munmap: %v", err)
		}
	})
	if err := unix.Madvise(b, unix.MADV_NOHUGEPAGE); err != nil {
		tb.Fatalf("madvise(MADV_NOHUGEPAGE): %v", err)
	}
	return b, uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(len(b))
}

// mincore returns the residency vector of b, one 0/1 entry per page.
// x/sys/unix has no Mincore wrapper on Linux.
func mincore(b []byte) ([]byte, error) {
	vec := make([]byte, (len(b)+pageSize-1)/pageSize)
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return nil, fmt.Errorf("mincore: %w", e)
	}
	for i := range vec {
		vec[i] &= 1
	}
	return vec, nil
}

func resident(tb testing.TB, b []byte) []byte {
	tb.Helper()
	vec, err := mincore(b)
	if err != nil {
		tb.Fatal(err)
	}
	return vec
}

func countResident(vec []byte) int { return bytes.Count(vec, []byte{1}) }

func pagesFor(n int) int { return (n + pageSize - 1) / pageSize }

// checkExact asserts that exactly the pages overlapping [top-used, top) are
// resident.
func checkExact(tb testing.TB, b []byte, used int) {
	tb.Helper()
	vec := resident(tb, b)
	want := pagesFor(used)
	if got := countResident(vec); got != want {
		tb.Fatalf("used %d: %d pages resident, want ceil(used/%d) = %d", used, got, pageSize, want)
	}
	for i := len(vec) - want; i < len(vec); i++ {
		if vec[i] != 1 {
			tb.Fatalf("used %d: page %d of %d (top-%d) not resident", used, i, len(vec), (len(vec)-i)*pageSize)
		}
	}
}

func dontneed(tb testing.TB, b []byte) {
	tb.Helper()
	if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
		tb.Fatalf("madvise(MADV_DONTNEED): %v", err)
	}
}

func requireSupported(t *testing.T) {
	t.Helper()
	if !Supported {
		if _, err := Touch(1<<20, 4096); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Touch on %s: err = %v, want one wrapping errors.ErrUnsupported", runtime.GOARCH, err)
		}
		t.Skipf("no frame routine on %s", runtime.GOARCH)
	}
}

func TestTouchResidency(t *testing.T) {
	requireSupported(t)
	for _, d := range []int{4 << 10, 64 << 10, 1 << 20, 8 << 20} {
		t.Run(fmt.Sprint(d), func(t *testing.T) {
			b, top := mapStack(t, regionBytes)
			if n := countResident(resident(t, b)); n != 0 {
				t.Fatalf("fresh region has %d resident pages", n)
			}
			used, err := Touch(top, d)
			if err != nil {
				t.Fatal(err)
			}
			if used < d || used > d+FrameBytes+EntryBytes {
				t.Fatalf("Touch(%d) used %d, want within [%d, %d]", d, used, d, d+FrameBytes+EntryBytes)
			}
			if span, _ := Span(d); used != span {
				t.Fatalf("Touch(%d) used %d, Span says %d", d, used, span)
			}
			checkExact(t, b, used)
			// The comparison stackprobe prints: frames vs. simulated touch.
			got, sim := countResident(resident(t, b)), pagesFor(d)
			if got < sim-1 || got > sim+1 {
				t.Fatalf("depth %d: %d pages resident, simulated touch gives %d (±1 allowed)", d, got, sim)
			}
			t.Logf("depth %d: used %d bytes, %d pages resident, simulated %d", d, used, got, sim)

			// Again on the same region: same answer, nothing new resident.
			used2, err := Touch(top, d)
			if err != nil || used2 != used {
				t.Fatalf("second Touch = %d, %v; want %d, nil", used2, err, used)
			}
			checkExact(t, b, used)

			// Dropped and touched again: back to the same residency.
			dontneed(t, b)
			if n := countResident(resident(t, b)); n != 0 {
				t.Fatalf("after MADV_DONTNEED: %d pages resident", n)
			}
			if used3, err := Touch(top, d); err != nil || used3 != used {
				t.Fatalf("Touch after MADV_DONTNEED = %d, %v; want %d, nil", used3, err, used)
			}
			checkExact(t, b, used)
		})
	}
}

func TestTouchOddDepths(t *testing.T) {
	requireSupported(t)
	b, top := mapStack(t, 1<<20)
	for _, d := range []int{1, 8, FrameBytes - 1, FrameBytes, FrameBytes + 1, 4095, 4096, 4097, 5000, 12345, 3*4096 + 8} {
		dontneed(t, b)
		used, err := Touch(top, d)
		if err != nil {
			t.Fatalf("Touch(%d): %v", d, err)
		}
		want := EntryBytes + (d+FrameBytes-1)/FrameBytes*FrameBytes
		if used != want {
			t.Fatalf("Touch(%d) used %d, want %d", d, used, want)
		}
		checkExact(t, b, used)
	}
}

func TestTouchDepthZero(t *testing.T) {
	requireSupported(t)
	b, top := mapStack(t, 1<<20)
	used, err := Touch(top, 0)
	if err != nil || used != 0 {
		t.Fatalf("Touch(top, 0) = %d, %v; want 0, nil", used, err)
	}
	if n := countResident(resident(t, b)); n != 0 {
		t.Fatalf("depth 0 made %d pages resident", n)
	}
}

func TestTouchValidation(t *testing.T) {
	requireSupported(t)
	for _, c := range []struct {
		name  string
		top   uintptr
		depth int
	}{
		{"negative depth", 1 << 30, -1},
		{"zero top", 0, 4096},
		{"unaligned top", 1<<30 + 8, 4096},
		{"below address zero", 4096, 8192},
		{"huge depth", 1 << 40, int(^uint(0) >> 1)},
	} {
		if used, err := Touch(c.top, c.depth); err == nil {
			t.Errorf("%s: Touch(%#x, %d) = %d, nil; want an error", c.name, c.top, c.depth, used)
		}
	}
	if _, err := Span(-1); err == nil {
		t.Error("Span(-1): no error")
	}
}

// Each call switches the SP of the thread it happens to run on, so calls on
// separate regions from many goroutines are independent.
func TestTouchConcurrent(t *testing.T) {
	requireSupported(t)
	const workers, rounds = 8, 20
	depths := []int{4 << 10, 64 << 10, 1 << 20, 3<<20 + 100}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		b, top := mapStack(t, regionBytes)
		wg.Go(func() {
			for r := range rounds {
				d := depths[(w+r)%len(depths)]
				if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
					errs <- err
					return
				}
				used, err := Touch(top, d)
				if err != nil {
					errs <- err
					return
				}
				if span, _ := Span(d); used != span {
					errs <- fmt.Errorf("worker %d: Touch(%d) used %d, want %d", w, d, used, span)
					return
				}
				vec, err := mincore(b)
				if err != nil {
					errs <- err
					return
				}
				if n := countResident(vec); n != pagesFor(used) {
					errs <- fmt.Errorf("worker %d round %d: depth %d: %d pages resident, want %d", w, r, d, n, pagesFor(used))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// While SP is on the reserved region the goroutine receives preemption
// (SIGURG) and profiling (SIGPROF) signals. Both handlers run on the signal
// stack; preemption declines to stop assembly, and the profiler's traceback
// stops at the SP-writing routine. Stress both.
func TestTouchUnderSignals(t *testing.T) {
	requireSupported(t)
	if testing.Short() {
		t.Skip("short")
	}
	var prof bytes.Buffer
	profiling := pprof.StartCPUProfile(&prof) == nil

	b, top := mapStack(t, regionBytes)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // forces stop-the-world and preemption requests
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	})
	deadline := time.Now().Add(time.Second)
	calls := 0
	for time.Now().Before(deadline) {
		dontneed(t, b)
		used, err := Touch(top, 8<<20)
		if err != nil {
			t.Fatal(err)
		}
		checkExact(t, b, used)
		calls++
	}
	close(stop)
	wg.Wait()
	if profiling {
		pprof.StopCPUProfile()
	}
	t.Logf("%d touches of 8 MiB under GC (profiling: %v, %d profile bytes)", calls, profiling, prof.Len())
}

// BenchmarkTouchFrames compares the frame routine with a Go loop storing one
// byte per page over the same depth, on resident pages (the cost of the
// frames themselves) and after MADV_DONTNEED (including first-touch faults).
func BenchmarkTouchFrames(b *testing.B) {
	if !Supported {
		b.Skipf("no frame routine on %s", runtime.GOARCH)
	}
	goLoop := func(mem []byte, depth int) {
		for off := len(mem) - 1; off >= len(mem)-depth; off -= pageSize {
			mem[off] = 1
		}
	}
	for _, depth := range []int{64 << 10, 1 << 20, 8 << 20} {
		for _, fault := range []bool{false, true} {
			for _, how := range []string{"frames", "goloop"} {
				mode := "resident"
				if fault {
					mode = "fault"
				}
				b.Run(fmt.Sprintf("%s/%s/depth=%dKiB", how, mode, depth>>10), func(b *testing.B) {
					mem, top := mapStack(b, regionBytes)
					touch := func() {
						if how == "goloop" {
							goLoop(mem, depth)
						} else if _, err := Touch(top, depth); err != nil {
							b.Fatal(err)
						}
					}
					touch()
					iters := 0
					for b.Loop() {
						if fault {
							b.StopTimer()
							dontneed(b, mem)
							b.StartTimer()
						}
						touch()
						iters++
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(iters*pagesFor(depth)), "ns/page")
				})
			}
		}
	}
}
