package report

import (
	"os"
	"path/filepath"
	"testing"

	"stackprobe/probe"
	"stackprobe/procread"
)

// The page classes go into samples.csv per stack, an unknown class as an
// empty cell (never 0), and every row names the method that measured it.
func TestCSVPageClasses(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Begin([]probe.StackInfo{{Index: 0, Kind: "client", Base: 0x200000, Size: 4 << 20}, {Index: 1, Kind: "peer", Base: 0x600000, Size: 4 << 20}}); err != nil {
		t.Fatal(err)
	}
	scan := &probe.Sample{Seq: 3, Elapsed: 1500, Method: procread.MethodScan, Stacks: []probe.StackSample{
		{Depth: 4096, RSS: 2 << 20, HugeBytes: 2 << 20, ZeroPageBytes: 0, SwappedBytes: 0, LowHugeBytes: 0, SmapsRSS: 2 << 20, AnonHuge: 2 << 20},
		{Depth: 4096, RSS: 8192, HugeBytes: 4096, ZeroPageBytes: 4096, SwappedBytes: 12288, LowHugeBytes: 4096, SmapsRSS: -1, AnonHuge: -1},
	}}
	mincore := &probe.Sample{Seq: 4, Elapsed: 2500, Method: procread.MethodMincore, Stacks: []probe.StackSample{
		{Depth: 8192, RSS: 8192, HugeBytes: -1, ZeroPageBytes: -1, SwappedBytes: -1, LowHugeBytes: -1, SmapsRSS: -1, AnonHuge: -1},
		{Depth: 8192, RSS: 8192, HugeBytes: -1, ZeroPageBytes: -1, SwappedBytes: -1, LowHugeBytes: -1, SmapsRSS: -1, AnonHuge: -1},
	}}
	for _, s := range []*probe.Sample{scan, mincore} {
		if err := c.Record(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := "sample,elapsed_ns,stack,kind,depth_bytes,rss_bytes,smaps_rss_bytes,anon_huge_bytes,huge_bytes,zero_page_bytes,swapped_bytes,low_huge_bytes,method\n" +
		"3,1500,0,client,4096,2097152,2097152,2097152,2097152,0,0,0,scan\n" +
		"3,1500,1,peer,4096,8192,,,4096,4096,12288,4096,scan\n" +
		"4,2500,0,client,8192,8192,,,,,,,mincore\n" +
		"4,2500,1,peer,8192,8192,,,,,,,mincore\n"
	if string(got) != want {
		t.Errorf("samples.csv:\n%s\nwant:\n%s", got, want)
	}
}
