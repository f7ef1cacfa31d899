//go:build linux

package procread

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"stackprobe/internal/sys"
)

// childEnv makes the test binary act as childMain: a process with stacks
// of known residency for TestMeasureChild.
const childEnv = "PROCREAD_PAGEMAP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := childMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "pagemap child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childDepths are the bytes the child touches from the top of each of its
// stacks.
var childDepths = []uint64{4 << 10, 64 << 10, 1 << 20}

// childMain maps one 16 MiB stack per childDepths entry (each its own
// mapping with a PROT_NONE lowest page), touches it to that depth, prints
// "start end depth" per stack and waits for stdin to close.
func childMain(in io.Reader, out io.Writer) error {
	const size = 16 << 20
	ps := uint64(os.Getpagesize())
	for _, d := range childDepths {
		mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil {
			return fmt.Errorf("madvise: %w", err)
		}
		if err := unix.Mprotect(mem[:ps], unix.PROT_NONE); err != nil {
			return fmt.Errorf("mprotect: %w", err)
		}
		for off := uint64(size) - d; off < size; off += ps {
			mem[off] = 1
		}
		start := uint64(addrOf(mem))
		fmt.Fprintln(out, start, start+size, d)
	}
	_, err := io.Copy(io.Discard, in)
	return err
}

// TestMeasureChild measures another process by pid, then checks that a
// process that has exited is reported as ErrGone.
func TestMeasureChild(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	var ranges []PageRange
	var depths []uint64
	for range childDepths {
		if !sc.Scan() {
			t.Fatalf("child stopped early: %v", sc.Err())
		}
		var r PageRange
		var d uint64
		if _, err := fmt.Sscan(sc.Text(), &r.Start, &r.End, &d); err != nil {
			t.Fatalf("child line %q: %v", sc.Text(), err)
		}
		// Measure wants ranges in address order; mmap places them top down.
		i, _ := slices.BinarySearchFunc(ranges, r.Start, func(a PageRange, s uint64) int { return cmp.Compare(a.Start, s) })
		ranges, depths = slices.Insert(ranges, i, r), slices.Insert(depths, i, d)
	}
	pid := cmd.Process.Pid
	if _, err := OpenPagemap("", pid, MethodMincore); err == nil {
		t.Error("mincore of another process succeeded")
	}
	var pms []*Pagemap
	for _, m := range []Method{MethodScan, MethodPagemap} {
		p, err := OpenPagemap("", pid, m)
		if err != nil {
			t.Fatalf("OpenPagemap(pid %d, %v): %v", pid, m, err)
		}
		defer p.Close()
		pms = append(pms, p)
		got := make([]PageCounts, len(ranges))
		if err := p.Measure(ranges, got); err != nil {
			t.Fatalf("%v: %v", p.Method(), err)
		}
		for i, r := range ranges {
			d := depths[i]
			w := PageCounts{PresentBytes: int64(d), ResidentBytes: int64(d), Lowest: r.End - d, Runs: 1, Known: p.Known(),
				PTEBlocks: wantPTEBlocks([][]PageRange{{{r.End - d, r.End}}})[0]}
			if got[i] != w {
				t.Errorf("%v: child stack %d:\n got %+v\nwant %+v", p.Method(), i, got[i], w)
			}
		}
	}

	if err := stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	for _, p := range pms {
		err := p.Measure(ranges, make([]PageCounts, len(ranges)))
		if !errors.Is(err, ErrGone) {
			t.Errorf("%v: Measure after the child exited: %v, want ErrGone", p.Method(), err)
		}
	}
	if _, err := OpenPagemap("", pid, MethodScan); !errors.Is(err, ErrGone) {
		t.Errorf("OpenPagemap of an exited child: %v, want ErrGone", err)
	}
}

// TestZeroPage maps the shared zero page with userfaultfd UFFDIO_ZEROPAGE
// (a plain read would not: this kernel may boot with pvm_no_zero_page) and
// checks that mincore and PresentBytes count it while ResidentBytes and
// smaps Rss do not.
func TestZeroPage(t *testing.T) {
	ps := uint64(os.Getpagesize())
	uffd, err := sys.Userfaultfd(unix.O_CLOEXEC | sys.UFFD_USER_MODE_ONLY)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			t.Skip("userfaultfd unavailable (vm.unprivileged_userfaultfd, seccomp or kernel config): " + err.Error())
		}
		t.Fatal(err)
	}
	defer unix.Close(uffd)
	api := sys.UffdioAPI{API: sys.UFFD_API}
	if err := sys.UffdIoctl(uffd, sys.UFFDIO_API, &api); err != nil {
		t.Fatal(err)
	}
	mem := mapStack(t, 16, unix.MADV_NOHUGEPAGE)
	base := uint64(addrOf(mem))
	reg := sys.UffdioRegister{Range: sys.UffdioRange{Start: base, Len: uint64(len(mem))}, Mode: sys.UFFDIO_REGISTER_MODE_MISSING}
	if err := sys.UffdIoctl(uffd, sys.UFFDIO_REGISTER, &reg); err != nil {
		t.Skip("UFFDIO_REGISTER: " + err.Error())
	}
	if reg.Ioctls&(1<<0x04) == 0 {
		t.Skipf("UFFDIO_ZEROPAGE not offered on anonymous memory (ioctls %#x)", reg.Ioctls)
	}
	// Pages 4-7 get the zero page; writing page 4 then copies it into a
	// page of its own (a write fault, which userfaultfd in missing mode
	// does not intercept). No other page may be touched: a missing-page
	// fault would wait for a handler that does not exist.
	zp := sys.UffdioZeropage{Range: sys.UffdioRange{Start: base + 4*ps, Len: 4 * ps}}
	if err := sys.UffdIoctl(uffd, sys.UFFDIO_ZEROPAGE, &zp); err != nil {
		t.Fatal(err)
	}
	if zp.Zeropage != int64(4*ps) {
		t.Fatalf("UFFDIO_ZEROPAGE mapped %d bytes, want %d", zp.Zeropage, 4*ps)
	}
	mem[4*ps] = 1
	r := PageRange{base, base + uint64(len(mem))}
	if n := mincorePages(t, r); n != 4 {
		t.Fatalf("mincore counts %d pages, want 4 (1 written, 3 zero page)", n)
	}
	if rss := smapsRss(t, r.Start, r.End); rss != int64(ps) {
		t.Skipf("UFFDIO_ZEROPAGE mapped real pages here: smaps Rss %d, want %d", rss, ps)
	}
	for _, m := range methods {
		p := openMethod(t, m)
		got := make([]PageCounts, 1)
		if err := p.Measure([]PageRange{r}, got); err != nil {
			t.Fatal(err)
		}
		w := PageCounts{PresentBytes: int64(4 * ps), ResidentBytes: int64(ps), ZeroPageBytes: int64(3 * ps),
			Lowest: base + 4*ps, Runs: 1, Known: p.Known(), PTEBlocks: wantPTEBlocks([][]PageRange{{{base + 4*ps, base + 8*ps}}})[0]}
		if p.Known()&ClassZeroPage == 0 {
			w.ResidentBytes, w.ZeroPageBytes = w.PresentBytes, 0
		}
		if got[0] != w {
			t.Errorf("%v:\n got %+v\nwant %+v", m, got[0], w)
		}
	}
}
