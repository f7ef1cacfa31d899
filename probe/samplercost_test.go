package probe

import (
	"context"
	"testing"
)

// SamplerCost follows the live sampler and ends on the figures the
// result's sampler statistics give; a touch run has none.
func TestSamplerCost(t *testing.T) {
	cfg := pingpongConfig("unix", 2, 200, PatternRamp, 4096, 64<<10)
	r, err := Start(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if mean, interval, n := r.SamplerCost(); mean != 0 || n != 0 || interval != cfg.Interval {
		t.Errorf("before Measure: SamplerCost = %v, %v, %d; want 0, %v, 0", mean, interval, n, cfg.Interval)
	}
	res, err := r.Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := res.PingPong.Sampler
	mean, interval, n := r.SamplerCost()
	if n != s.Samples || mean.Nanoseconds() != s.MeanCostNs || interval.Nanoseconds() != s.IntervalNs {
		t.Errorf("after Measure: SamplerCost = %v, %v, %d; sampler stats mean %d ns, interval %d ns, %d samples",
			mean, interval, n, s.MeanCostNs, s.IntervalNs, s.Samples)
	}
	if n < 1 || mean <= 0 {
		t.Errorf("SamplerCost = %v over %d samples, want at least one sample of positive cost", mean, n)
	}

	touch, err := Start(context.Background(), touchConfig(2, 4096), Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer touch.Close()
	if _, err := touch.Measure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mean, interval, n := touch.SamplerCost(); mean != 0 || interval != 0 || n != 0 {
		t.Errorf("touch run: SamplerCost = %v, %v, %d; want zeros (no sampler)", mean, interval, n)
	}
}
