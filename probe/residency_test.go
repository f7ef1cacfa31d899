package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stackprobe/internal/sys"
	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// mincoreRecorder checks every sample it is given against mincore(2) over
// each stack's whole mapping, read right then: the touch workload records
// a sample before it touches again, so nothing moved in between. smaps,
// where a stack is its own VMA, must equal the figure too.
type mincoreRecorder struct {
	t       *testing.T
	infos   []StackInfo
	vec     []byte
	samples int
}

func (m *mincoreRecorder) Begin(s []StackInfo) error { m.infos = s; return nil }

func (m *mincoreRecorder) Record(s *Sample) error {
	m.samples++
	checkAgainstMincore(m.t, fmt.Sprintf("sample %d", s.Seq), m.infos, s, &m.vec)
	return nil
}

// checkAgainstMincore fails unless each stack's present bytes in s (RSS plus
// zero-page bytes) equal mincore's count over its whole mapping, and RSS
// equals smaps Rss where smaps gave one.
func checkAgainstMincore(t *testing.T, what string, infos []StackInfo, s *Sample, vec *[]byte) {
	t.Helper()
	page := int64(mmapstack.PageSize())
	var sum int64
	for i, st := range s.Stacks {
		n, v, err := procread.ResidentPages(infos[i].Base, uintptr(infos[i].Size), *vec)
		*vec = v
		if err != nil {
			t.Fatalf("%s: mincore of stack %d: %v", what, i, err)
		}
		present := st.RSS + max(st.ZeroPageBytes, 0)
		if present != int64(n)*page {
			t.Errorf("%s, stack %d: %d bytes present (rss %d, zero page %d), mincore %d pages", what, i, present, st.RSS, st.ZeroPageBytes, n)
		}
		if st.SmapsRSS >= 0 && st.SmapsRSS != st.RSS {
			t.Errorf("%s, stack %d: rss %d, smaps Rss %d", what, i, st.RSS, st.SmapsRSS)
		}
		sum += st.RSS
	}
	if sum != s.StackRSS {
		t.Errorf("%s: StackRSS %d, the stacks sum to %d", what, s.StackRSS, sum)
	}
}

// skipUnlessGuardMadvise skips where MADV_GUARD_INSTALL is missing (Linux < 6.13).
func skipUnlessGuardMadvise(t *testing.T) {
	t.Helper()
	s, err := mmapstack.Reserve(mmapstack.Options{Size: 1 << 20, Guard: mmapstack.GuardMadvise})
	if errors.Is(err, unix.EINVAL) {
		t.Skip("MADV_GUARD_INSTALL unsupported: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
}

// Every stack's figure equals mincore's (and smaps' where the stack is its
// own VMA) at every step, in every configuration of guard, huge pages,
// release and touch mode, with the scan, with the pagemap fallback forced
// and with mincore as the method; the final measurement's cross-check
// agrees page for page over every stack.
func TestResidencyExactEverywhere(t *testing.T) {
	thp := thpAvailable()
	type mode struct {
		name    string
		thp     mmapstack.THP
		release mmapstack.Release
		touch   TouchMode
	}
	modes := []mode{
		{"4k", mmapstack.THPNoHuge, mmapstack.ReleaseNone, TouchPages},
		{"thp", mmapstack.THPHuge, mmapstack.ReleaseNone, TouchPages},
		{"dontneed", mmapstack.THPNoHuge, mmapstack.ReleaseDontneed, TouchPages},
		{"free", mmapstack.THPNoHuge, mmapstack.ReleaseFree, TouchPages},
	}
	if runtime.GOARCH == "amd64" {
		modes = append(modes, mode{"frames", mmapstack.THPNoHuge, mmapstack.ReleaseNone, TouchFrames})
	}
	page := int64(mmapstack.PageSize())
	// Below Linux 6.7 a request for the scan gets pagemap entries: the
	// scan is not what would be tested, and mincore has no second method
	// to be cross-checked by (the pagemap fallback is not compared).
	scan := scanMethod(t) == procread.MethodScan
	for _, method := range []procread.Method{procread.MethodScan, procread.MethodPagemap, procread.MethodMincore} {
		for _, guard := range []mmapstack.Guard{mmapstack.GuardMprotect, mmapstack.GuardMadvise, mmapstack.GuardNone} {
			for _, md := range modes {
				if method == procread.MethodMincore && md.release != mmapstack.ReleaseNone {
					continue // the releases are covered by the two page-table methods
				}
				t.Run(fmt.Sprintf("%s/%s/%s", method, guard, md.name), func(t *testing.T) {
					if method == procread.MethodScan && !scan {
						t.Skip("PAGEMAP_SCAN unavailable (Linux < 6.7): --residency=scan falls back to pagemap entries, which the pagemap subtests cover")
					}
					if guard == mmapstack.GuardMadvise {
						skipUnlessGuardMadvise(t)
					}
					if md.thp == mmapstack.THPHuge && !thp {
						t.Skip("transparent huge pages unavailable or disabled (enabled=never)")
					}
					// 8 MiB and 3 pages: tops not 2 MiB aligned, so with
					// huge pages and no guard a huge page straddles stacks.
					cfg := touchConfig(6, 300<<10, 3*mib, 64<<10)
					cfg.StackBytes = 8*mib + 3*page
					cfg.Guard, cfg.THP, cfg.MapStack, cfg.Release, cfg.TouchMode, cfg.Residency = guard, md.thp, md.thp != mmapstack.THPHuge, md.release, md.touch, method
					if guard == mmapstack.GuardNone {
						cfg.GuardBytes = 0
					}
					rec := &mincoreRecorder{t: t}
					res, err := runOnce(context.Background(), cfg, Env{Recorder: rec})
					if err != nil {
						t.Fatal(err)
					}
					if rec.samples != len(cfg.Depths) {
						t.Fatalf("%d samples checked, want %d", rec.samples, len(cfg.Depths))
					}
					ri := res.Residency
					if ri.Requested != method.String() || ri.Method != method.String() {
						t.Errorf("residency %+v, want method %s", ri, method)
					}
					cc := ri.CrossCheck
					if method == procread.MethodMincore && !scan {
						if cc != nil {
							t.Errorf("cross-check %+v without PAGEMAP_SCAN, want none", cc)
						}
					} else if cc == nil || !cc.Agree || cc.DifferingBytes != 0 || cc.Stacks != 6 || cc.StacksOf != 6 || cc.PresentBytes <= 0 {
						t.Errorf("cross-check %+v, want agreement over all 6 stacks", cc)
					}
					last := res.Rows()[len(res.Rows())-1]
					if cc != nil && cc.PresentBytes != last.RSSBytesTotal+ptrOr(last.ZeroPageBytesTotal) {
						t.Errorf("cross-check found %d present bytes, the last step %d", cc.PresentBytes, last.RSSBytesTotal)
					}
					for _, d := range res.Rows() {
						if !d.Smaps.Agree || d.Smaps.OwnVMAStacks+d.Smaps.Groups == 0 {
							t.Errorf("depth %d: smaps check %+v", d.DepthBytes, d.Smaps)
						}
						if guard == mmapstack.GuardMprotect && d.Smaps.OwnVMAStacks != 6 {
							t.Errorf("depth %d: %d own-VMA stacks, want 6", d.DepthBytes, d.Smaps.OwnVMAStacks)
						}
						if md.thp == mmapstack.THPNoHuge && d.HugeBytesTotal != nil && *d.HugeBytesTotal != 0 {
							t.Errorf("depth %d: %d huge bytes with thp nohuge", d.DepthBytes, *d.HugeBytesTotal)
						}
						// The scan sees huge pages: its figure equals smaps AnonHugePages.
						if method == procread.MethodScan && d.AnonHugeBytesTotal >= 0 && (d.HugeBytesTotal == nil || *d.HugeBytesTotal != d.AnonHugeBytesTotal) {
							t.Errorf("depth %d: huge %v, smaps AnonHugePages %d", d.DepthBytes, d.HugeBytesTotal, d.AnonHugeBytesTotal)
						}
					}
					// The figures named missing are those the method cannot
					// tell on this kernel, and exactly those are absent.
					pm, err := procread.OpenPagemap("", 0, method)
					if err != nil {
						t.Fatal(err)
					}
					want := missingClasses(pm.Known())
					_ = pm.Close()
					if !slices.Equal(ri.Missing, want) {
						t.Errorf("%v: missing %q, want %q", method, ri.Missing, want)
					}
					for _, f := range []struct {
						name string
						v    *int64
					}{{"huge_bytes", last.HugeBytesTotal}, {"zero_page_bytes", last.ZeroPageBytesTotal}, {"swapped_bytes", last.SwappedBytesTotal}} {
						if (f.v == nil) != slices.Contains(want, f.name) {
							t.Errorf("%v: %s is %v with missing %q", method, f.name, f.v, want)
						}
					}
					if method == procread.MethodMincore {
						if !slices.Equal(want, []string{"huge_bytes", "zero_page_bytes", "swapped_bytes"}) || last.LowHugeStacks != nil {
							t.Errorf("mincore: missing %q, low huge %v", want, last.LowHugeStacks)
						}
						if cc != nil && cc.Method != "scan" {
							t.Errorf("mincore is cross-checked by %q, want scan", cc.Method)
						}
					}
				})
			}
		}
	}
}

// scanMethod is the method a request for PAGEMAP_SCAN gets here: the
// scan, or pagemap entries where the kernel lacks it.
func scanMethod(t *testing.T) procread.Method {
	t.Helper()
	pm, err := procread.OpenPagemap("", 0, procread.MethodScan)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	return pm.Method()
}

func ptrOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func thpAvailable() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && !strings.Contains(string(b), "[never]") && mmapstack.PageSize() == 4096
}

// finalRecorder keeps the StackRSS of every sample, live and final, in
// order (the sampler records from its own goroutine, one at a time).
type finalRecorder struct {
	infos []StackInfo
	rss   []int64
}

func (f *finalRecorder) Begin(s []StackInfo) error { f.infos = s; return nil }
func (f *finalRecorder) Record(s *Sample) error    { f.rss = append(f.rss, s.StackRSS); return nil }

// Issue 10's repro, smaller: stacks side by side (no guard) with huge pages
// and unaligned tops, so each stack's top huge page reaches into the stack
// above. The last live sample, taken after the IO stopped, must equal the
// final measurement exactly, and so must the timeline's last point; the
// final figures equal mincore's page for page.
func TestPingPongLiveSamplesEqualFinal(t *testing.T) {
	if !thpAvailable() {
		t.Skip("transparent huge pages unavailable or disabled (enabled=never), or pages are not 4 KiB")
	}
	cfg := pingpongConfig("unix", 10, 200, PatternRandom, 4096, 64<<10, 1*mib)
	cfg.Seed = 7
	cfg.StackBytes = 100_003_840 // --stack=100MB, rounded up to pages
	cfg.Guard, cfg.GuardBytes, cfg.THP, cfg.MapStack = mmapstack.GuardNone, 0, mmapstack.THPHuge, false
	rec := &finalRecorder{}
	r, err := Start(context.Background(), cfg, Env{Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.rss) < 2 {
		t.Fatalf("%d samples recorded, want live ones and the final one", len(rec.rss))
	}
	final, live := rec.rss[len(rec.rss)-1], rec.rss[len(rec.rss)-2]
	if live != final {
		t.Errorf("last live sample %d bytes, final measurement %d: %d bytes apart", live, final, final-live)
	}
	tl := res.Series.Timeline
	if len(tl) == 0 || tl[len(tl)-1].StackRSS != final {
		t.Errorf("the timeline ends at %v, want the final %d bytes", tl[len(tl)-1:], final)
	}
	var total int64
	for _, d := range res.Rows() {
		total += d.RSSBytesTotal
	}
	if total != final || res.PingPong.PeakStackRSSBytes < final {
		t.Errorf("groups sum to %d, peak %d, final %d", total, res.PingPong.PeakStackRSSBytes, final)
	}
	if cc := res.Residency.CrossCheck; cc == nil || !cc.Agree || cc.Stacks != 20 || cc.PresentBytes != final {
		t.Errorf("cross-check %+v, want mincore to agree on all 20 stacks and %d bytes", cc, final)
	}
	// Huge pages that straddle are attributed by address: the stacks that
	// hold the upper part of one are counted, and every stack's huge bytes
	// sum to the page tables' total.
	if slices.Contains(res.Residency.Missing, "huge_bytes") {
		t.Skipf("the %s method cannot see huge pages here (no PAGEMAP_SCAN, Linux < 6.7, and no CAP_SYS_ADMIN for /proc/kpageflags): their attribution is not checked", res.Residency.Method)
	}
	var low int
	for _, d := range res.Rows() {
		if d.LowHugeStacks == nil || d.HugeBytesTotal == nil {
			t.Fatalf("depth %d: huge pages not seen by the scan", d.DepthBytes)
		}
		low += *d.LowHugeStacks
	}
	t.Logf("final %d bytes, %d stacks hold the upper part of a huge page from the stack below", final, low)
}

// rss_bytes is memory held: a stack whose top pages map the shared zero
// page (made with userfaultfd UFFDIO_ZEROPAGE; a plain read would allocate
// a page on a kernel booted with pvm_no_zero_page) counts them as present
// to mincore, as zero-page bytes, and not in RSS, which equals smaps Rss.
func TestZeroPageIsNotRSS(t *testing.T) {
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
	cfg := touchConfig(1, 4096)
	stacks, err := reserveAll(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(stacks)
	st := stacks[0]
	ps := uint64(mmapstack.PageSize())
	top := uint64(st.Top())
	reg := sys.UffdioRegister{Range: sys.UffdioRange{Start: top - 16*ps, Len: 16 * ps}, Mode: sys.UFFDIO_REGISTER_MODE_MISSING}
	if err := sys.UffdIoctl(uffd, sys.UFFDIO_REGISTER, &reg); err != nil {
		t.Skip("UFFDIO_REGISTER: " + err.Error())
	}
	if reg.Ioctls&(1<<0x04) == 0 {
		t.Skipf("UFFDIO_ZEROPAGE not offered on anonymous memory (ioctls %#x)", reg.Ioctls)
	}
	// The top 3 pages get the zero page; writing the top one copies it
	// into a page of its own (a write fault, not a missing-page fault,
	// which would wait for a handler that does not exist).
	zp := sys.UffdioZeropage{Range: sys.UffdioRange{Start: top - 3*ps, Len: 3 * ps}}
	if err := sys.UffdIoctl(uffd, sys.UFFDIO_ZEROPAGE, &zp); err != nil {
		t.Fatal(err)
	}
	if err := st.Touch(1); err != nil {
		t.Fatal(err)
	}
	proc, err := procread.NewReader("/proc", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []procread.Method{procread.MethodScan, procread.MethodPagemap, procread.MethodMincore} {
		pm, err := procread.OpenPagemap("/proc", 0, method)
		if err != nil {
			t.Fatal(err)
		}
		m := newMeter(stacks, proc, pm)
		var s Sample
		if err := m.residency(&s); err != nil {
			t.Fatal(err)
		}
		if err := m.smaps(&s); err != nil {
			t.Fatal(err)
		}
		pm.Close()
		got := s.Stacks[0]
		n, _, err := procread.ResidentPages(st.Base(), uintptr(st.Size()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Fatalf("mincore counts %d pages, want 3 (1 written, 2 zero page)", n)
		}
		if got.SmapsRSS != int64(ps) {
			t.Skipf("UFFDIO_ZEROPAGE mapped real pages here: smaps Rss %d, want %d", got.SmapsRSS, ps)
		}
		want := StackSample{RSS: int64(ps), HugeBytes: 0, ZeroPageBytes: 2 * int64(ps), SwappedBytes: 0, LowHugeBytes: 0, SmapsRSS: int64(ps), AnonHuge: 0}
		switch {
		case method == procread.MethodMincore:
			// mincore cannot tell the zero page: present is all it sees.
			want = StackSample{RSS: 3 * int64(ps), HugeBytes: -1, ZeroPageBytes: -1, SwappedBytes: -1, LowHugeBytes: -1, SmapsRSS: int64(ps), AnonHuge: 0}
		case pm.Known()&procread.ClassZeroPage == 0:
			want.RSS, want.ZeroPageBytes = 3*int64(ps), -1
		}
		if method != procread.MethodMincore && pm.Known()&procread.ClassHuge == 0 {
			want.HugeBytes, want.LowHugeBytes = -1, -1
		}
		if method != procread.MethodMincore && pm.Known()&procread.ClassSwapped == 0 {
			want.SwappedBytes = -1
		}
		if got != want {
			t.Errorf("%v: %+v, want %+v", method, got, want)
		}
		if method != procread.MethodMincore && pm.Known()&procread.ClassZeroPage != 0 && (s.Check == nil || !s.Check.Agree) {
			t.Errorf("%v: smaps check %+v, want agreement", method, s.Check)
		}
	}
}
