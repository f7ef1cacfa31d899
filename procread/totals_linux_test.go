package procread

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

func TestReaderLive(t *testing.T) {
	r, err := NewReader("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir() != "/proc/self" {
		t.Errorf("Dir = %q", r.Dir())
	}
	before, err := r.Totals()
	if err != nil {
		t.Fatal(err)
	}
	// A fresh mapping of base pages: memory the Go heap may already have
	// faulted in (an earlier test, -count) would fault less.
	buf, err := unix.Mmap(-1, 0, 8<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	if err := unix.Madvise(buf, unix.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after, err := r.Totals()
	if err != nil {
		t.Fatal(err)
	}
	if after.MinorFaults < before.MinorFaults+uint64(len(buf)/4096)/2 {
		t.Errorf("minor faults %d -> %d after touching %d pages", before.MinorFaults, after.MinorFaults, len(buf)/4096)
	}
}

// TestTotalsMatchProcfs holds the sampler's hand-parsed totals against
// prometheus/procfs's reading of the same files of this process: status
// (Proc.NewStatus), stat (Proc.Stat) and maps (Proc.ProcMaps, less the
// [vsyscall] gate). The process changes between reads (faults, runtime
// mappings), so the procfs read is sandwiched between two Totals that
// must agree; a few tries find a quiet moment.
func TestTotalsMatchProcfs(t *testing.T) {
	r, err := NewReader("", 0)
	if err != nil {
		t.Fatal(err)
	}
	pfs, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var got, want Totals
	for try := 0; try < 500; try++ {
		if try > 0 {
			time.Sleep(time.Millisecond)
		}
		t1, err := r.Totals()
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.NewStatus()
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Stat()
		if err != nil {
			t.Fatal(err)
		}
		maps, err := p.ProcMaps()
		if err != nil {
			t.Fatal(err)
		}
		vmas := 0
		for _, m := range maps {
			if m.Pathname != "[vsyscall]" {
				vmas++
			}
		}
		t2, err := r.Totals()
		if err != nil {
			t.Fatal(err)
		}
		// procfs's figures were read between t1 and t2, so each must lie
		// between them (reading allocates: under the race detector the
		// process grows while it reads).
		want = Totals{VmSize: st.VmSize, VmRSS: st.VmRSS, VmHWM: st.VmHWM, VmPTE: st.VmPTE, VmSwap: st.VmSwap,
			RssAnon: st.RssAnon, MinorFaults: uint64(s.MinFlt), MajorFaults: uint64(s.MajFlt), VMAs: vmas}
		got = t1
		if bracketed(t1, want, t2) {
			if s.MinFlt == 0 {
				t.Error("procfs reads 0 minor faults")
			}
			return
		}
	}
	t.Errorf("in 500 tries procfs never read figures between two of Totals'; last: Totals =\n %+v\nprocfs reads\n %+v", got, want)
}

// bracketed reports whether every field of m lies between a's and b's.
func bracketed(a, m, b Totals) bool {
	in := func(x, y, z uint64) bool { return min(x, z) <= y && y <= max(x, z) }
	return in(a.VmSize, m.VmSize, b.VmSize) && in(a.VmRSS, m.VmRSS, b.VmRSS) && in(a.VmHWM, m.VmHWM, b.VmHWM) &&
		in(a.VmPTE, m.VmPTE, b.VmPTE) && in(a.VmSwap, m.VmSwap, b.VmSwap) && in(a.RssAnon, m.RssAnon, b.RssAnon) &&
		in(a.MinorFaults, m.MinorFaults, b.MinorFaults) && in(a.MajorFaults, m.MajorFaults, b.MajorFaults) &&
		in(uint64(a.VMAs), uint64(m.VMAs), uint64(b.VMAs))
}

// TestTotalsAllocs keeps the sampler path cheap: reading totals reuses the
// Reader's buffer, so only the opened files allocate.
func TestTotalsAllocs(t *testing.T) {
	r, err := NewReader("", 0)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := r.Totals(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 12 {
		t.Errorf("Totals allocates %v times per call, want at most 12", allocs)
	}
}

// BenchmarkTotals compares the hand parser used by Reader.Totals with the
// same figures read through prometheus/procfs (Proc.NewStatus, Proc.Stat and
// a maps line count), on this process; then Totals with 1000 more VMAs
// (counting maps lines grows with them).
func BenchmarkTotals(b *testing.B) {
	b.Run("Reader", func(b *testing.B) {
		r, err := NewReader("", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Totals(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("procfs", func(b *testing.B) {
		pfs, err := procfs.NewDefaultFS()
		if err != nil {
			b.Fatal(err)
		}
		p, err := pfs.Self()
		if err != nil {
			b.Fatal(err)
		}
		r, err := NewReader("", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			st, err := p.NewStatus()
			if err != nil {
				b.Fatal(err)
			}
			s, err := p.Stat()
			if err != nil {
				b.Fatal(err)
			}
			n, err := r.countVMAs(r.maps)
			if err != nil {
				b.Fatal(err)
			}
			_ = Totals{VmRSS: st.VmRSS, VmHWM: st.VmHWM, VmPTE: st.VmPTE, RssAnon: st.RssAnon,
				MinorFaults: uint64(s.MinFlt), VMAs: n}
		}
	})
	b.Run("Reader-1000-extra-VMAs", func(b *testing.B) {
		vmas := mapVMAs(b, 1000)
		r, err := NewReader("", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Totals(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(vmas), "VMAs")
	})
}
