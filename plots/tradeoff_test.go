package plots

import (
	"strings"
	"testing"

	"stackprobe/probe"
)

func tradeoffComparison() *probe.PingPongComparison {
	figures := func(rate, lo, hi float64, end int64) *probe.PingPongFigures {
		return &probe.PingPongFigures{RoundsMeasured: 3, RoundTripsPerSecond: rate, RoundTripsPerSecondMin: lo, RoundTripsPerSecondMax: hi, EndRSSBytesPerStack: end}
	}
	return &probe.PingPongComparison{
		Header: probe.Header{Config: probe.Config{Workload: probe.WorkloadPingPong, Tasks: 10, Messages: 100, Transport: "unix",
			Pattern: probe.PatternRamp, Depths: []int64{128 << 10}}},
		Rounds: 3,
		Strategies: []probe.PingPongStrategy{
			{Name: "lazy-4k", PingPongFigures: figures(1000, 900, 1100, 128<<10)},
			{Name: "dontneed", PingPongFigures: figures(500, 450, 520, 4096)},
			{Name: "eager", Skipped: "too big"},
			{Name: "free", Error: "watchdog"},
			{Name: "no-touch", PingPongFigures: figures(1200, 1150, 1300, 0)},
		},
	}
}

func TestTradeoffData(t *testing.T) {
	points, missing := tradeoffData(tradeoffComparison())
	want := []tradeoffPoint{
		// Two stacks per connection.
		{name: "lazy-4k", bytes: 256 << 10, rate: 1000, lo: 900, hi: 1100},
		{name: "dontneed", bytes: 8192, rate: 500, lo: 450, hi: 520},
		{name: "no-touch", bytes: 0, rate: 1200, lo: 1150, hi: 1300},
	}
	if len(points) != len(want) {
		t.Fatalf("points %+v, want %+v", points, want)
	}
	for i := range want {
		if points[i] != want[i] {
			t.Errorf("point %d: %+v, want %+v", i, points[i], want[i])
		}
	}
	if strings.Join(missing, ",") != "eager skipped,free failed" {
		t.Errorf("missing %v", missing)
	}
}

func TestTradeoff(t *testing.T) {
	c := tradeoffComparison()
	p, err := Tradeoff(c)
	if err != nil {
		t.Fatal(err)
	}
	// Throughput from 0 to above the fastest round; bytes on a byte axis
	// covering 0 (no-touch) to 256 KiB.
	if p.Y.Min != 0 || p.Y.Max < 1300 {
		t.Errorf("y range %v..%v, want 0 to at least 1300", p.Y.Min, p.Y.Max)
	}
	if lo, hi, _ := byteRange(p.X); lo > 0 || hi < 256<<10 {
		t.Errorf("x range %v..%v bytes, want 0..256 KiB at least", lo, hi)
	}
	if !strings.Contains(p.X.Label.Text, "not drawn: eager skipped, free failed") {
		t.Errorf("x caption %q does not name what is not drawn", p.X.Label.Text)
	}
	checkIEC(t, "x", labels(p.X))
	savePNG(t, p)
	c.Strategies = c.Strategies[2:4]
	if _, err := Tradeoff(c); err == nil {
		t.Error("no strategy measured: want an error")
	}
}
