package pingpong

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Buckets tile the uint64 range without gaps, and each is at most 1/32 of its lower bound wide.
func TestHistBuckets(t *testing.T) {
	var lo uint64
	for i := range histBuckets {
		hi := histUpper(i)
		if hi < lo {
			t.Fatalf("bucket %d: upper %d below lower %d", i, hi, lo)
		}
		if histBucket(lo) != i || histBucket(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: ends map to %d and %d", i, lo, hi, histBucket(lo), histBucket(hi))
		}
		if lo >= 2*histSub && (hi-lo+1)*histSub > lo {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d of %d", i, lo, hi, histSub, lo)
		}
		if hi == math.MaxUint64 {
			if i != histBuckets-1 {
				t.Fatalf("range ends at bucket %d of %d", i, histBuckets)
			}
			return
		}
		lo = hi + 1
	}
	t.Fatalf("buckets end at %d, before MaxUint64", lo-1)
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if l := h.latency(); l != (Latency{}) {
		t.Errorf("empty histogram: %+v", l)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]time.Duration, 10001)
	for i := range vals {
		vals[i] = time.Duration(rng.ExpFloat64() * 20000) // ~20µs mean, like loopback round trips
		h.record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.99, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.quantile(q)
		// Never below the true quantile, at most one bucket (1/32) above it.
		if got < exact || float64(got) > float64(exact)*(1+1.0/histSub)+1 {
			t.Errorf("quantile(%v) = %v, exact %v", q, got, exact)
		}
	}
	if l := h.latency(); l.Max != vals[len(vals)-1] {
		t.Errorf("Max = %v, want %v", l.Max, vals[len(vals)-1])
	}
	if n := testing.AllocsPerRun(100, func() { h.record(12345) }); n != 0 {
		t.Errorf("record allocates %v times", n)
	}
}
