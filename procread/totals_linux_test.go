package procread

import (
	"testing"

	"github.com/prometheus/procfs"
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
	if before.VmRSS == 0 || before.VmSize < before.VmRSS || before.VMAs == 0 || before.MinorFaults == 0 {
		t.Errorf("implausible totals %+v", before)
	}
	buf := make([]byte, 8<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	after, err := r.TotalsWithRollup()
	if err != nil {
		t.Fatal(err)
	}
	if after.MinorFaults <= before.MinorFaults {
		t.Errorf("minor faults %d -> %d after touching 8 MiB", before.MinorFaults, after.MinorFaults)
	}
	if after.RollupRss == 0 {
		t.Errorf("RollupRss = 0")
	}
	if _, err := r.CommittedAS(); err != nil {
		t.Error(err)
	}
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
// (counting maps lines grows with them) and the smaps_rollup read.
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
			n, err := r.countLines(r.maps)
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
	b.Run("Rollup", func(b *testing.B) {
		r, err := NewReader("", 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := r.Rollup(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
