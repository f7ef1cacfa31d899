package probe

import (
	"sync/atomic"
	"time"
)

// samplerCost is what the ping-pong sampler has cost so far, published by
// the sampler after each sample for other goroutines to read while the run
// goes on.
type samplerCost struct {
	mean    atomic.Int64 // mean wall time per sample so far, nanoseconds
	samples atomic.Int64 // samples taken so far
}

// publish records that samples samples took sum wall time in all.
func (c *samplerCost) publish(sum time.Duration, samples int) {
	c.mean.Store(int64(sum) / int64(samples))
	c.samples.Store(int64(samples))
}

// SamplerCost returns the ping-pong sampler's mean wall time per sample so
// far, the interval it samples at (Config.Interval) and how many samples
// it has taken: the figures that say whether the sampler keeps up. All are
// zero for a touch run, and mean and samples are zero before the first
// sample. Safe to call from any goroutine while Measure runs; mean and
// samples are each current but may be one sample apart.
func (r *Run) SamplerCost() (mean, interval time.Duration, samples int) {
	if r.cfg.Workload != WorkloadPingPong {
		return 0, 0, 0
	}
	return time.Duration(r.live.mean.Load()), r.cfg.Interval, int(r.live.samples.Load())
}
