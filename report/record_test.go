package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stackprobe/probe"
)

func TestPagesOff(t *testing.T) {
	const p = 4096
	for _, c := range []struct {
		lo, hi, exp int64
		want        string
	}{
		{2 * mib, 2 * mib, p, "511 pages more"},
		{2 * p, 2 * p, p, "1 page more"},
		{p, p, 3 * p, "2 pages fewer"},
		{2 * p, 4 * p, p, "1 to 3 pages more"},
		{p, 2 * p, 4 * p, "2 to 3 pages fewer"},
		{p, 3 * p, p, "up to 2 pages more"},
		{p, 3 * p, 3 * p, "up to 2 pages fewer"},
		{p, 3 * p, 2 * p, "from 1 page fewer to 1 page more"},
		{p, p, p, "less than a page apart"},
	} {
		if got := pagesOff(c.lo, c.hi, c.exp, p); got != c.want {
			t.Errorf("pagesOff(%d, %d, %d) = %q, want %q", c.lo, c.hi, c.exp, got, c.want)
		}
	}
}

// TestCSVRecordsSamples writes two stacks and one sample through the
// recorder and reads back the rows.
func TestCSVRecordsSamples(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Begin([]probe.StackInfo{{Index: 0, Kind: "task", Base: 0x1000, Size: 8192}, {Index: 1, Kind: "task", Base: 0x9000, Size: 8192}}); err != nil {
		t.Fatal(err)
	}
	s := &probe.Sample{Seq: 0, StackRSS: 8192, Expected: 8192,
		Stacks: []probe.StackSample{{Depth: 1, RSS: 4096, SmapsRSS: 4096, AnonHuge: 0}, {Depth: 1, RSS: 4096, SmapsRSS: -1, AnonHuge: -1}}}
	if err := c.Record(s); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	samples, err := os.ReadFile(filepath.Join(dir, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(samples)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[1], ",4096,4096,0") {
		t.Errorf("samples.csv:\n%s", samples)
	}
	stacks, err := os.ReadFile(filepath.Join(dir, "stacks.csv"))
	if err != nil || strings.Count(string(stacks), "\n") != 3 {
		t.Errorf("stacks.csv (%v):\n%s", err, stacks)
	}
}
