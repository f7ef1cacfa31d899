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
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
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

// TestMeasureAcrossExec measures a shell before and after it calls exec
// with one Pagemap per method: the file opened before the exec is bound to
// the address space exec replaced, and Measure must reach the new one
// rather than report the running process gone.
func TestMeasureAcrossExec(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh: " + err.Error())
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep: " + err.Error())
	}
	cmd := exec.Command(sh, "-c", `read x; exec "$0" 60`, sleep)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	d, err := OpenProcDir("", pid)
	if err != nil {
		t.Fatal(err)
	}
	// The shell's mappings, below the [vsyscall] page that pagemap does
	// not reach.
	mappings := func() []PageRange {
		t.Helper()
		ms, err := d.Maps(nil)
		if err != nil {
			t.Fatal(err)
		}
		var rs []PageRange
		for _, m := range ms {
			if m.Path != "[vsyscall]" {
				rs = append(rs, PageRange{m.Start, m.End})
			}
		}
		return rs
	}
	comm := func() string {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	waitComm := func(name string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); comm() != name; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("comm %q after 5 s, want %q", comm(), name)
			}
		}
	}
	waitComm(filepath.Base(sh))
	before := mappings()
	// One Pagemap per method for Measure, one for Runs.
	var pms, runPMs []*Pagemap
	for _, m := range []Method{MethodScan, MethodPagemap} {
		for _, list := range []*[]*Pagemap{&pms, &runPMs} {
			p, err := OpenPagemap("", pid, m)
			if err != nil {
				t.Fatalf("OpenPagemap(pid %d, %v): %v", pid, m, err)
			}
			defer p.Close()
			if err := p.Measure(before, make([]PageCounts, len(before))); err != nil {
				t.Fatalf("%v before exec: %v", p.Method(), err)
			}
			*list = append(*list, p)
		}
	}

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	waitComm(filepath.Base(sleep))
	// Once sleep sleeps in nanosleep, its mappings and page tables stay
	// as they are.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ts, err := d.Threads(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) == 1 && ts[0].State == InSyscall && (ts[0].Nr == unix.SYS_CLOCK_NANOSLEEP || ts[0].Nr == unix.SYS_NANOSLEEP) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep not asleep after 5 s: %+v", ts)
		}
	}
	after := mappings()
	var rss []int64
	err = ReadSmaps(fmt.Sprintf("/proc/%d/smaps", pid), func(v *VMA) error {
		if v.Path != "[vsyscall]" {
			rss = append(rss, int64(v.Rss))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss) != len(after) {
		t.Fatalf("%d smaps VMAs, %d maps entries", len(rss), len(after))
	}
	for _, p := range pms {
		got := make([]PageCounts, len(after))
		if err := p.Measure(after, got); err != nil {
			t.Fatalf("%v after exec: %v", p.Method(), err)
		}
		fresh, err := OpenPagemap("", pid, p.Method())
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		want := make([]PageCounts, len(after))
		if err := fresh.Measure(after, want); err != nil {
			t.Fatal(err)
		}
		var total int64
		for i := range after {
			if got[i] != want[i] {
				t.Errorf("%v: mapping %#x-%#x after exec:\n got %+v\nwant %+v (a pagemap opened after the exec)", p.Method(), after[i].Start, after[i].End, got[i], want[i])
			}
			if got[i].Known&ClassZeroPage != 0 && got[i].ResidentBytes != rss[i] {
				t.Errorf("%v: mapping %#x-%#x after exec: %d resident bytes, smaps Rss %d", p.Method(), after[i].Start, after[i].End, got[i].ResidentBytes, rss[i])
			}
			total += got[i].ResidentBytes
		}
		if total == 0 {
			t.Errorf("%v: nothing resident in sleep", p.Method())
		}
	}
	runs := func(p *Pagemap) string {
		var b strings.Builder
		for _, r := range after {
			if err := p.Runs(r, func(s, e uint64, c PageClass) { fmt.Fprintf(&b, "%#x-%#x %v\n", s, e, c) }); err != nil {
				t.Fatalf("%v: Runs after exec: %v", p.Method(), err)
			}
		}
		return b.String()
	}
	for i, p := range runPMs {
		got, want := runs(p), runs(pms[i])
		if got != want || got == "" {
			t.Errorf("%v: Runs after exec:\n%s\nwant (a pagemap reopened by Measure):\n%s", p.Method(), got, want)
		}
	}
}

// TestReadStat reads the stat fields exited uses from fixture /proc
// trees: a command with parentheses and spaces, a zombie, and malformed
// files, which are errors.
func TestReadStat(t *testing.T) {
	pfs, err := procfs.NewFS("testdata/stat-proc")
	if err != nil {
		t.Fatal(err)
	}
	read := func(pid int) (procStat, error) {
		proc, err := pfs.Proc(pid)
		if err != nil {
			t.Fatal(err)
		}
		p := &Pagemap{pid: pid, proc: proc}
		return p.readStat()
	}
	for pid, want := range map[int]procStat{
		9969: {state: 'S', started: 51779, vsize: 2990080}, // "9969 (co (ro) ) S ..."
		77:   {state: 'Z', started: 123, vsize: 0},
	} {
		if got, err := read(pid); err != nil || got != want {
			t.Errorf("stat of %d = %+v, %v, want %+v", pid, got, err, want)
		}
	}
	// Empty; no closing parenthesis; too few fields; a number that is not.
	for _, pid := range []int{1, 2, 3, 4} {
		if got, err := read(pid); err == nil {
			t.Errorf("stat of %d = %+v, want an error (malformed)", pid, got)
		}
	}
}
