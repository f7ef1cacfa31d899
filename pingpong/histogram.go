package pingpong

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's resolution: each power of two above 2^(histSubBits+1) ns is
// split into 2^histSubBits equal buckets.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	// histBuckets covers every uint64: 2*histSub exact buckets, then histSub per power of two.
	histBuckets = (64 - histSubBits + 1) * histSub
)

// histogram is a fixed-size log-linear histogram of nanosecond durations. Values below
// 2*histSub (64 ns) get a bucket each; a larger value v with bit length L lands in one of histSub
// buckets of width 2^(L-histSubBits-1), that is at most 1/32 of v. record never allocates.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

func histBucket(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return shift*histSub + int(v>>shift)
}

// histUpper is the largest value that lands in bucket i.
func histUpper(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	mant := uint64(i - shift*histSub)
	return (mant+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histBucket(v)]++
	h.n++
	h.max = max(h.max, v)
}

// quantile returns the upper end of the bucket holding the q-quantile (0 < q <= 1), capped at
// the exact maximum. It returns 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++ // ceil: the smallest value with at least q of the samples at or below it
	}
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) latency() Latency {
	return Latency{P50: h.quantile(0.50), P99: h.quantile(0.99), Max: time.Duration(h.max)}
}
