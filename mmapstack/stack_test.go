package mmapstack

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"stackprobe/procread"
)

const mib = 1 << 20

// resident counts resident pages of [s.Base(), s.Top()) with mincore(2).
func resident(t *testing.T, s *Stack) int {
	t.Helper()
	page := PageSize()
	vec := make([]byte, s.Size()/page)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, s.Base(), uintptr(s.Size()), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

func mustReserve(t *testing.T, o Options) *Stack {
	t.Helper()
	s, err := Reserve(o)
	if err != nil {
		t.Fatalf("Reserve(%+v): %v", o, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestTouchExactPages(t *testing.T) {
	cases := []struct {
		depth, pages int
	}{
		{0, 0}, {1, 1}, {4096, 1}, {4097, 2}, {64 << 10, 16}, {1 * mib, 256}, {8 * mib, 2048},
	}
	for _, mapStack := range []bool{false, true} {
		for _, c := range cases {
			s := mustReserve(t, Options{Size: 100 * mib, THP: THPNoHuge, MapStack: mapStack})
			if err := s.Touch(c.depth); err != nil {
				t.Fatal(err)
			}
			if got := resident(t, s); got != c.pages {
				t.Errorf("map_stack=%v depth %d: %d pages resident, want %d", mapStack, c.depth, got, c.pages)
			}
		}
	}
}

func TestLayout(t *testing.T) {
	page := PageSize()
	s := mustReserve(t, Options{Size: 10*page + 1})
	if s.Size() != 11*page || s.GuardBytes() != page || s.Usable() != 10*page {
		t.Fatalf("size %d guard %d usable %d, want %d %d %d", s.Size(), s.GuardBytes(), s.Usable(), 11*page, page, 10*page)
	}
	if s.Top()-s.Base() != uintptr(s.Size()) || s.Lo()-s.Base() != uintptr(page) {
		t.Fatalf("base %#x lo %#x top %#x inconsistent", s.Base(), s.Lo(), s.Top())
	}
	n := mustReserve(t, Options{Size: 10 * page, Guard: GuardNone})
	if n.Usable() != 10*page || n.Lo() != n.Base() {
		t.Fatalf("guard none: usable %d, lo-base %d", n.Usable(), n.Lo()-n.Base())
	}
}

func TestTouchBounds(t *testing.T) {
	s := mustReserve(t, Options{Size: 16 * PageSize()})
	if err := s.Touch(s.Usable()); err != nil {
		t.Fatalf("touching all usable bytes: %v", err)
	}
	if err := s.Touch(s.Usable() + 1); err == nil {
		t.Fatal("touch past the usable bytes was accepted")
	}
	if err := s.Touch(-1); err == nil {
		t.Fatal("negative depth was accepted")
	}
	if _, err := Reserve(Options{Size: 0}); err == nil {
		t.Fatal("Reserve(0) succeeded")
	}
	if _, err := Reserve(Options{Size: 1}); err == nil {
		t.Fatal("Reserve(1) with a guard page succeeded")
	}
}

func TestRelease(t *testing.T) {
	for _, c := range []struct {
		release Release
		keep    int
		want    int // pages after 1 MiB touch + Release
	}{
		{ReleaseNone, 0, 256},
		{ReleaseDontneed, 0, 1},
		{ReleaseDontneed, 64 << 10, 16},
	} {
		s := mustReserve(t, Options{Size: 100 * mib, THP: THPNoHuge, Release: c.release, KeepTop: c.keep})
		if err := s.Touch(mib); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
		if got := resident(t, s); got != c.want {
			t.Errorf("release %v keep %d: %d pages resident, want %d", c.release, c.keep, got, c.want)
		}
	}
}

// MADV_FREE pages stay mapped until the kernel needs the memory, so right
// after Release they still count as resident.
func TestReleaseFreeStaysResident(t *testing.T) {
	s := mustReserve(t, Options{Size: 100 * mib, THP: THPNoHuge, Release: ReleaseFree})
	if err := s.Touch(mib); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	if got := resident(t, s); got != 256 {
		t.Errorf("MADV_FREE: %d pages resident right after release, want 256 (no memory pressure)", got)
	}
}

func TestGuardFaultIsCaught(t *testing.T) {
	for _, g := range []Guard{GuardMprotect, GuardMadvise} {
		t.Run(g.String(), func(t *testing.T) {
			s, err := Reserve(Options{Size: 64 * PageSize(), Guard: g})
			if g == GuardMadvise && errors.Is(err, unix.EINVAL) {
				t.Skipf("MADV_GUARD_INSTALL unsupported on this kernel: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			f := s.WriteBelow()
			if f == nil {
				t.Fatal("write into the guard page did not fault")
			}
			if f.Addr != s.Lo()-1 {
				t.Errorf("fault at %#x, want %#x", f.Addr, s.Lo()-1)
			}
		})
	}
}

// A 1-byte touch of a MADV_HUGEPAGE stack whose size is a multiple of 2 MiB
// makes a whole 2 MiB block resident, with MAP_STACK too: the advice clears
// the VM_NOHUGEPAGE that MAP_STACK sets.
func TestHugePageStep(t *testing.T) {
	enabled, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		t.Skipf("no THP on this kernel: %v", err)
	}
	if strings.Contains(string(enabled), "[never]") {
		t.Skip("THP disabled system-wide (enabled=never)")
	}
	for _, mapStack := range []bool{false, true} {
		t.Run(fmt.Sprintf("map_stack=%v", mapStack), func(t *testing.T) {
			s := mustReserve(t, Options{Size: 100 * mib, THP: THPHuge, MapStack: mapStack})
			if s.Top()%HugeBlock != 0 {
				t.Skipf("mapping top %#x not 2 MiB aligned", s.Top())
			}
			if err := s.Touch(1); err != nil {
				t.Fatal(err)
			}
			if got := resident(t, s); got != HugeBlock/PageSize() {
				t.Errorf("1-byte touch with MADV_HUGEPAGE: %d pages resident, want %d", got, HugeBlock/PageSize())
			}
			if v := smapsOf(t, s.Top()-1); v.AnonHugePages != HugeBlock {
				t.Errorf("AnonHugePages %d, want %d", v.AnonHugePages, HugeBlock)
			}
		})
	}
}

// smapsOf reads the /proc/self/smaps entry of the mapping holding addr.
func smapsOf(t *testing.T, addr uintptr) procread.VMA {
	t.Helper()
	var found *procread.VMA
	err := procread.ReadSmaps("/proc/self/smaps", func(v *procread.VMA) error {
		if v.Contains(uint64(addr)) {
			c := *v
			c.VmFlags = slices.Clone(v.VmFlags)
			found = &c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == nil {
		t.Fatalf("no mapping in /proc/self/smaps holds %#x", addr)
	}
	return *found
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(os.NewSyscallError("uname", err))
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		t.Fatalf("kernel release %q: %v", unix.ByteSliceToString(u.Release[:]), err)
	}
	return maj > major || maj == major && min >= minor
}

// Each --thp value and MAP_STACK leave the smaps VmFlags the help text
// promises: nohuge sets "nh", huge sets "hg" and clears the "nh" MAP_STACK
// implies (Linux >= 6.7), system leaves MAP_STACK's "nh" or nothing.
func TestTHPVmFlags(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err != nil {
		t.Skipf("no THP on this kernel (MADV_HUGEPAGE fails): %v", err)
	}
	stackNH := kernelAtLeast(t, 6, 7)
	cases := []struct {
		thp      THP
		mapStack bool
		nh, hg   bool
	}{
		{THPSystem, false, false, false},
		{THPNoHuge, false, true, false},
		{THPHuge, false, false, true},
		{THPSystem, true, stackNH, false},
		{THPNoHuge, true, true, false},
		{THPHuge, true, false, true},
	}
	for _, c := range cases {
		s := mustReserve(t, Options{Size: 4 * mib, THP: c.thp, MapStack: c.mapStack})
		v := smapsOf(t, s.Top()-1)
		if v.Has("nh") != c.nh || v.Has("hg") != c.hg {
			t.Errorf("thp=%v map_stack=%v: VmFlags %q, want nh=%v hg=%v", c.thp, c.mapStack, v.VmFlags, c.nh, c.hg)
		}
	}
}

func TestParseModes(t *testing.T) {
	for _, name := range guardNames() {
		g, err := ParseGuard(name)
		if err != nil || g.String() != name {
			t.Errorf("ParseGuard(%q) = %v, %v", name, g, err)
		}
	}
	for name, want := range map[string]THP{"system": THPSystem, "nohuge": THPNoHuge, "huge": THPHuge, "never": THPNoHuge, "always": THPHuge} {
		if got, err := ParseTHP(name); err != nil || got != want {
			t.Errorf("ParseTHP(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	for thp, want := range map[THP]string{THPSystem: "system", THPNoHuge: "nohuge", THPHuge: "huge"} {
		if b, err := thp.MarshalText(); err != nil || string(b) != want {
			t.Errorf("%d.MarshalText() = %q, %v; want %q", int(thp), b, err, want)
		}
	}
	if _, err := ParseTHP("sometimes"); err == nil {
		t.Error("ParseTHP accepted an unknown mode")
	}
	if r, err := ParseRelease("free"); err != nil || r != ReleaseFree {
		t.Errorf("ParseRelease(free) = %v, %v", r, err)
	}
}

func BenchmarkTouch(b *testing.B) {
	const depth = 8 * mib
	s, err := Reserve(Options{Size: 16 * mib, THP: THPNoHuge, Release: ReleaseDontneed})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pages := depth / PageSize()
	b.Run("Touch", func(b *testing.B) {
		for b.Loop() {
			s.touch(depth)
			if err := s.Release(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pages), "ns/page")
	})
	b.Run("BareLoop", func(b *testing.B) {
		mem := s.mem
		for b.Loop() {
			for off := 1; off <= depth; off += PageSize() {
				mem[len(mem)-off] = 1
			}
			if err := unix.Madvise(mem[len(mem)-depth:len(mem)-PageSize()], unix.MADV_DONTNEED); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*pages), "ns/page")
	})
}

// Without a guard, a write one byte below the stack lands silently in
// whatever is mapped there: here, the top byte of the stack below.
func TestNoGuardOverflowLandsBelow(t *testing.T) {
	upper, lower, err := ReservePair(Options{Size: 16 * PageSize(), Guard: GuardNone})
	if err != nil {
		t.Fatal(err)
	}
	defer upper.Close()
	defer lower.Close()
	if upper.Base() != lower.Top() {
		t.Fatalf("upper stack at %#x, want %#x", upper.Base(), lower.Top())
	}
	if f := upper.WriteBelow(); f != nil {
		t.Fatalf("write below an unguarded stack faulted: %v", f.Err)
	}
	if got := lower.TopByte(); got != 0x5a {
		t.Fatalf("lower stack's top byte is %#x, want the 0x5a written past the upper stack", got)
	}
}

// Close unmaps: the address range is gone from the process afterwards.
func TestCloseUnmaps(t *testing.T) {
	s, err := Reserve(Options{Size: 16 * PageSize()})
	if err != nil {
		t.Fatal(err)
	}
	base := s.Base()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	vec := make([]byte, 1)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, base, uintptr(PageSize()), uintptr(unsafe.Pointer(&vec[0])))
	if errno != unix.ENOMEM {
		t.Fatalf("mincore of the unmapped stack: %v, want ENOMEM (nothing mapped there)", errno)
	}
}

// With huge pages, a release gives back the whole 2 MiB blocks the touch
// reached, measured from real address boundaries even when the top is not
// 2 MiB aligned.
func TestReleaseHugePagesUnalignedTop(t *testing.T) {
	enabled, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(enabled), "[never]") {
		t.Skip("transparent huge pages unavailable or disabled")
	}
	for _, extra := range []int{0, 3 * PageSize(), 300 * PageSize()} {
		s := mustReserve(t, Options{Size: 16*mib + extra, THP: THPHuge, Release: ReleaseDontneed})
		for _, d := range []int{1 * mib, 3 * mib} {
			if err := s.Touch(d); err != nil {
				t.Fatal(err)
			}
			if err := s.Release(); err != nil {
				t.Fatal(err)
			}
			if got := resident(t, s); got != 1 {
				t.Errorf("size 16 MiB + %d, top %#x, depth %d: %d pages resident after MADV_DONTNEED, want the 1 kept",
					extra, s.Top(), d, got)
			}
		}
	}
}

// CloseAll unmaps every stack, side by side or not, and leaves nothing of
// them in the process's maps; closing again is harmless.
func TestCloseAll(t *testing.T) {
	const size = 1 << 20
	var stacks []*Stack
	for range 6 {
		s, err := Reserve(Options{Size: size, Guard: GuardMprotect})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Touch(4096); err != nil {
			t.Fatal(err)
		}
		stacks = append(stacks, s)
	}
	// One stack apart from the others: a hole in the run.
	far, err := Reserve(Options{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	stacks = append(stacks, far)
	bases := make([]uintptr, len(stacks))
	for i, s := range stacks {
		bases[i] = s.Base()
	}
	if err := CloseAll(stacks); err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("cannot read maps: %v", err)
	}
	for _, b := range bases {
		if strings.Contains("\n"+string(maps), fmt.Sprintf("\n%x-", b)) {
			t.Errorf("stack at %#x still mapped", b)
		}
	}
	if err := CloseAll(stacks); err != nil {
		t.Errorf("second CloseAll: %v", err)
	}
	for _, s := range stacks {
		if err := s.Close(); err != nil {
			t.Errorf("Close after CloseAll: %v", err)
		}
	}
}
