package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"stackprobe/procread"
	"stackprobe/stackfind"
	"stackprobe/watch"
)

// watchFixture is a watch of three 100 MiB guarded fibers and a main
// stack: fiber 0 used 64 KiB from the top, fiber 1 holds two runs (not the
// claim's pattern), fiber 2 was used 1 MiB deep and gave back all but its
// top 4 KiB, the main stack holds a 2 MiB huge page.
func watchFixture() *WatchSummary {
	const top = 0x7f0000000000
	const size = 100 << 20
	fiber := func(i int, rss, max, deepest int64, contiguous bool) watch.Stack {
		end := uint64(top - i*size)
		return watch.Stack{Index: i, Start: end - size + 4096, End: end, SizeBytes: size - 4096, FoundBy: stackfind.Guard | stackfind.Size,
			Guard: stackfind.GuardProtNoneBelow, SizeMatch: stackfind.SizeWithGuard, RSSBytes: rss, RSSBytesMax: max, DeepestBytes: deepest,
			HugeBytes: i64(0), ZeroPageBytes: i64(0), SwappedBytes: i64(0), GuardMarkerBytes: i64(0), ContiguousFromTop: contiguous, FirstSeenNS: 1e6, LastSeenNS: 2e9, Samples: 200}
	}
	r := watch.Result{
		Workload: "watch",
		Target:   watch.TargetInfo{PID: 42, Argv: []string{"./fibers", "--n", "3"}, Exited: true, ExitCode: new(int)},
		Stacks: []watch.Stack{
			fiber(0, 64<<10, 64<<10, 64<<10, true),
			fiber(1, 12<<10, 12<<10, 3<<20, false),
			fiber(2, 4<<10, 1<<20, 1<<20, true),
			{Index: 3, Start: 0x7ffc00000000, End: 0x7ffc00400000, SizeBytes: 4 << 20, FoundBy: stackfind.Main | stackfind.Thread, TID: 42, LastSeenNS: 2e9,
				RSSBytes: 2 << 20, RSSBytesMax: 2 << 20, DeepestBytes: 2 << 20, HugeBytes: i64(2 << 20), ZeroPageBytes: i64(0),
				SwappedBytes: i64(0), GuardMarkerBytes: i64(0), ContiguousFromTop: true},
		},
		Totals:  &watch.Totals{TimeNS: 2e9, VmRSSBytes: 8 << 20, VmPTEBytes: 64 << 10, VMAs: 40, Threads: 1, Stacks: 4, StacksRSSBytes: 64<<10 + 12<<10 + 4<<10 + 2<<20},
		Sampler: watch.SamplerStats{Samples: 200, IntervalNS: 1e7, MeanCostNS: 5e4, MaxCostNS: 9e4, Method: "scan"},
	}
	env := procread.System{Kernel: "6.18", Arch: "amd64", PageSize: 4096}
	return NewWatchSummary("stackprobe watch -- ./fibers --n 3", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 2.5, env, r, nil)
}

func TestPTEPages(t *testing.T) {
	s := watchFixture()
	pt, per := ptePages(s.Stacks, 4096, 2e9)
	// Fiber 0's 64 KiB and fiber 2's 4 KiB each sit in the 2 MiB block
	// below their 2 MiB-aligned top: one PTE page each. Fiber 1 is not one
	// run and the main stack holds a huge page: not counted.
	if want := []int{1, -1, 1, -1}; !equalInts(per, want) {
		t.Errorf("per stack %v, want %v", per, want)
	}
	if pt == nil || pt.Blocks != 2 || pt.Bytes != 8192 || pt.Stacks != 2 || pt.Unknown != 2 {
		t.Errorf("page tables %+v", pt)
	}
	// A run crossing a 2 MiB boundary needs two; stacks sharing a block
	// count it once.
	stacks := []watch.Stack{
		{End: 0x40100000, RSSBytes: 2 << 20, ContiguousFromTop: true, HugeBytes: i64(0)},
		{End: 0x40000000 - 0x1000, RSSBytes: 8192, ContiguousFromTop: true, HugeBytes: i64(0)},
	}
	if pt, per := ptePages(stacks, 4096, 0); pt.Blocks != 2 || !equalInts(per, []int{2, 1}) {
		t.Errorf("crossing and shared: %+v %v", pt, per)
	}
	// A stack unmapped before the end keeps its own figure but adds no
	// page-table page to the process's last sample.
	stacks = append(stacks, watch.Stack{End: 0x80000000, RSSBytes: 4096, ContiguousFromTop: true, HugeBytes: i64(0), Gone: true})
	if pt, per := ptePages(stacks, 4096, 0); pt.Blocks != 2 || pt.Stacks != 2 || !equalInts(per, []int{2, 1, 1}) {
		t.Errorf("with a gone stack: %+v %v", pt, per)
	}
	// Nor does a stack still mapped that the last sample did not find (it
	// was last measured before).
	stacks = append(stacks, watch.Stack{End: 0xc0000000, RSSBytes: 4096, ContiguousFromTop: true, HugeBytes: i64(0), LastSeenNS: -1})
	if pt, per := ptePages(stacks, 4096, 0); pt.Blocks != 2 || pt.Stacks != 2 || pt.Unknown != 0 || !equalInts(per, []int{2, 1, 1, 1}) {
		t.Errorf("with a stack not found in the last sample: %+v %v", pt, per)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWatchVerdicts(t *testing.T) {
	v := WatchVerdicts(watchFixture())
	want := []string{
		"grows in 4 KiB steps from the top: 2 of 4 stacks holding pages hold exactly the contiguous run from their top down to their deepest page; " +
			"1 hold pages that are not one run from the top (stacks 1); 1 hold one run from the top that is shallower than their deepest page seen (pages given back; stacks 2)",
		"huge pages in stacks: 2 MiB in 1 of 4 stacks (stacks 3)",
		"the 4 stacks measured in the last sample hold 2.1 MiB of the process's 8 MiB VmRSS (25.977%); their resident pages need 2 PTE pages (8 KiB) of the process's 64 KiB VmPTE (2 stacks not counted: pages not one run from the top, or huge pages)",
	}
	// The percentage is printed to one decimal.
	want[2] = strings.Replace(want[2], "25.977%", "26.0%", 1)
	if len(v) != len(want) {
		t.Fatalf("verdicts:\n%s", strings.Join(v, "\n"))
	}
	for i := range want {
		if v[i] != want[i] {
			t.Errorf("verdict %d\n got %s\nwant %s", i, v[i], want[i])
		}
	}
	s := watchFixture()
	// Fiber 0 still mapped, but not found in the last sample.
	s.Stacks[0].LastSeenNS = 1e9
	s.Totals.Stacks, s.Totals.StacksRSSBytes = 3, 12<<10+4<<10+2<<20
	s = NewWatchSummary(s.Command, s.Started, s.Seconds, s.Environment, s.Result, nil)
	if v := WatchVerdicts(s); v[2] != "the 3 stacks measured in the last sample hold 2.0 MiB of the process's 8 MiB VmRSS (25.2%); "+
		"their resident pages need 1 PTE pages (4 KiB) of the process's 64 KiB VmPTE (2 stacks not counted: pages not one run from the top, or huge pages); "+
		"1 more stacks were still mapped but not found in the last sample (e.g. their thread was running), so not measured in it" {
		t.Errorf("a stack not found in the last sample: %q", v[2])
	}
	s = watchFixture()
	s.Missing = []string{"huge_bytes", "zero_page_bytes"}
	s.Sampler.Method = "pagemap"
	if v := WatchVerdicts(s); v[1] != "huge pages in stacks: not measured (the pagemap method cannot see them)" {
		t.Errorf("unmeasured huge pages: %q", v[1])
	}
	s.Stacks = nil
	if v := WatchVerdicts(s); len(v) != 1 || !strings.Contains(v[0], "no stack was found") {
		t.Errorf("no stacks: %q", v)
	}
}

func TestWatchEvidence(t *testing.T) {
	s := watchFixture()
	var b bytes.Buffer
	if err := WriteWatchEvidence(&b, s, []string{ChartStackDepths}); err != nil {
		t.Fatal(err)
	}
	ev := b.String()
	contains(t, "evidence.md", ev,
		"    stackprobe watch -- ./fibers --n 3\n",
		"pid 42 (`./fibers --n 3`), exited with status 0",
		"| 0 | guard+size | — | 0x7efff9c01000 | 100.0 MiB | prot_none_below | 64 KiB | 64 KiB | 64 KiB | 0.063% | yes | 0 B | 2 | 1 | 0.001 | 2.000 |\n",
		"| 3 | main+thread | 42 | 0x7ffc00000000 | 4 MiB | none | 2 MiB | 2 MiB | 2 MiB | 50.000% | yes | 2 MiB | 1 | — |",
		"| 8 MiB | 64 KiB | 0 | 40 | 1 | 4 | 2.1 MiB |",
		"![stack-depths](stack-depths.png)",
		"| kernel | 6.18 |",
	)
	var text bytes.Buffer
	if err := WriteWatchText(&text, s, "out"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "stacks: 4 found (main 1, thread 1, guard 3, size 3)") {
		t.Errorf("text:\n%s", text.String())
	}
	// summary.json: the Result's fields at the top level, page tables beside.
	var js bytes.Buffer
	if err := WriteJSON(&js, s); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["workload"] != "watch" || m["command"] == nil || m["page_tables"].(map[string]any)["pte_pages"] != 2.0 || len(m["stacks"].([]any)) != 4 {
		t.Errorf("summary.json: %s", js.String())
	}
	if neg := NegativeSizes(m); len(neg) > 0 {
		t.Errorf("negative sizes: %v", neg)
	}
	s.Partial, s.Error = true, errors.New("read maps: EIO").Error()
	b.Reset()
	_ = WriteWatchEvidence(&b, s, nil)
	if !strings.Contains(b.String(), "**PARTIAL RUN** — read maps: EIO") {
		t.Errorf("partial evidence:\n%s", b.String())
	}
}

func TestWatchCSV(t *testing.T) {
	dir := t.TempDir()
	c, err := NewWatchCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	samples := []watch.Sample{
		{Index: 0, CostNS: 5000, Known: allClasses, Totals: watch.Totals{TimeNS: 100, VmRSSBytes: 8192, VmPTEBytes: 4096, MinorFaults: 7, VMAs: 3, Threads: 2, Stacks: 1, StacksRSSBytes: 4096},
			Stacks: []watch.StackSample{{Index: 0, RSSBytes: 4096, DeepestBytes: 4096, HugeBytes: 0, Runs: 1}}},
		{Index: 1, CostNS: 6000, Known: procread.ClassResident | procread.ClassSwapped, Totals: watch.Totals{TimeNS: 200, VmRSSBytes: 12288, VmPTEBytes: 4096, MinorFaults: 9, VMAs: 3, Threads: 2, Stacks: 1, StacksRSSBytes: 8192},
			Stacks: []watch.StackSample{{Index: 0, RSSBytes: 8192, DeepestBytes: 8192, SwappedBytes: 4096, Runs: 1}}},
	}
	for i := range samples {
		if err := c.RecordSample(&samples[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(watchFixture().Stacks[:1]); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read("samples.csv"), watchSamplesHeader+"0,100,0,4096,4096,0,0,0,1\n1,200,0,8192,8192,,,4096,1\n"; got != want {
		t.Errorf("samples.csv\n got %q\nwant %q", got, want)
	}
	if got, want := read("totals.csv"), watchTotalsHeader+"0,100,1,4096,8192,4096,7,3,2,5000\n1,200,1,8192,12288,4096,9,3,2,6000\n"; got != want {
		t.Errorf("totals.csv\n got %q\nwant %q", got, want)
	}
	if got, want := read("stacks.csv"), watchStacksHeader+
		"0,guard+size,,0x7efff9c01000,0x7f0000000000,104853504,prot_none_below,with_guard,1000000,2000000000,200,false,65536,65536,65536,0,0,0,0,true\n"; got != want {
		t.Errorf("stacks.csv\n got %q\nwant %q", got, want)
	}
}

// allClasses is every page class: the scan method on Linux >= 6.14.
const allClasses = procread.ClassResident | procread.ClassHuge | procread.ClassZeroPage | procread.ClassSwapped | procread.ClassGuard

// TestWatchPagemapMissing checks a watch with --residency=pagemap without
// CAP_SYS_ADMIN on a kernel without pagemap bit 58: huge, zero-page and
// guard-marker figures are absent from summary.json, empty in the CSVs and
// named missing, and the resident bytes are worded as present pages,
// zero-page mappings included.
func TestWatchPagemapMissing(t *testing.T) {
	s := watchFixture()
	s.Sampler.Method = "pagemap"
	s.Missing = []string{"huge_bytes", "zero_page_bytes", "guard_marker_bytes"}
	for i := range s.Stacks {
		s.Stacks[i].HugeBytes, s.Stacks[i].ZeroPageBytes, s.Stacks[i].GuardMarkerBytes = nil, nil, nil
	}
	s.Stacks[0].SwappedBytes = i64(8192)
	var b bytes.Buffer
	if err := WriteWatchEvidence(&b, s, nil); err != nil {
		t.Fatal(err)
	}
	ev := b.String()
	contains(t, "evidence.md", ev,
		"Resident bytes are the stack's present pages, mappings of the shared zero page included (the pagemap method cannot tell them apart here), from the page tables",
		"- the 4 stacks measured in the last sample have 2.1 MiB of pages present, zero-page mappings included (the pagemap method cannot tell them apart), against the process's 8 MiB VmRSS (26.0%)",
		"| 0 | guard+size | — | 0x7efff9c01000 | 100.0 MiB | prot_none_below | 64 KiB | 64 KiB | 64 KiB | 0.063% | yes |  | 2 | — | 0.001 | 2.000 |\n",
		"Not measured in this run: huge_bytes, zero_page_bytes, guard_marker_bytes.",
	)
	if strings.Contains(ev, "zero page excluded") || strings.Contains(ev, " hold 2.1 MiB of") {
		t.Errorf("evidence.md says the zero page is excluded:\n%s", ev)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, s); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Stacks  []map[string]any `json:"stacks"`
		Missing []string         `json:"missing"`
	}
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"huge_bytes", "zero_page_bytes", "guard_marker_bytes"} {
		if v, ok := m.Stacks[0][key]; ok {
			t.Errorf("summary.json stack 0 has %s = %v, want it absent", key, v)
		}
	}
	if m.Stacks[0]["swapped_bytes"] != 8192.0 || m.Stacks[1]["swapped_bytes"] != 0.0 || !slices.Equal(m.Missing, s.Missing) {
		t.Errorf("summary.json: swapped %v and %v, missing %q", m.Stacks[0]["swapped_bytes"], m.Stacks[1]["swapped_bytes"], m.Missing)
	}

	dir := t.TempDir()
	c, err := NewWatchCSV(dir)
	if err != nil {
		t.Fatal(err)
	}
	sample := watch.Sample{Index: 0, CostNS: 5000, Known: procread.ClassResident | procread.ClassSwapped,
		Totals: watch.Totals{TimeNS: 100, VmRSSBytes: 8192, VmPTEBytes: 4096, MinorFaults: 7, VMAs: 3, Threads: 2, Stacks: 1, StacksRSSBytes: 4096},
		Stacks: []watch.StackSample{{Index: 0, RSSBytes: 4096, DeepestBytes: 4096, SwappedBytes: 8192, Runs: 1}}}
	if err := c.RecordSample(&sample); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(s.Stacks[:1]); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read("samples.csv"), watchSamplesHeader+"0,100,0,4096,4096,,,8192,1\n"; got != want {
		t.Errorf("samples.csv\n got %q\nwant %q", got, want)
	}
	if got, want := read("stacks.csv"), watchStacksHeader+
		"0,guard+size,,0x7efff9c01000,0x7f0000000000,104853504,prot_none_below,with_guard,1000000,2000000000,200,false,65536,65536,65536,,,8192,,true\n"; got != want {
		t.Errorf("stacks.csv\n got %q\nwant %q", got, want)
	}
}

// TestWatchNoSample checks the report of a watch that recorded no sample
// (`watch -- true`: the target exited within about one interval): the
// verdict says why instead of claiming no stack was found, and the cost
// printed is that of the measurements taken, labelled so.
func TestWatchNoSample(t *testing.T) {
	r := watch.Result{
		Workload: "watch",
		Target:   watch.TargetInfo{PID: 42, Argv: []string{"true"}, Exited: true, ExitCode: new(int)},
		Stacks:   []watch.Stack{},
		Sampler:  watch.SamplerStats{Samples: 0, IntervalNS: 1e7, MeanCostNS: 743e3, MaxCostNS: 743e3, Method: "scan"},
	}
	env := procread.System{Kernel: "6.18", Arch: "amd64", PageSize: 4096}
	s := NewWatchSummary("stackprobe watch -- true", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), 0.01, env, r, nil)
	want := "no sample was recorded of pid 42 (`true`), exited with status 0: the target exited before a sample could be confirmed " +
		"(a sample's figures are recorded only once the next read of the maps shows its stacks still mapped), so nothing is known of its stacks"
	if v := WatchVerdicts(s); len(v) != 1 || v[0] != want {
		t.Errorf("verdicts %q\nwant [%q]", v, want)
	}
	var b bytes.Buffer
	if err := WriteWatchEvidence(&b, s, nil); err != nil {
		t.Fatal(err)
	}
	ev := b.String()
	if !strings.Contains(ev, "Sampling: 0 samples, interval 10ms, residency method scan; the measurements taken, none confirmed so none recorded, took 743µs on average (max 743µs).\n") ||
		!strings.Contains(ev, "- "+want+".\n") || strings.Contains(ev, "one sample took") || strings.Contains(ev, "no stack was found") {
		t.Errorf("evidence.md:\n%s", ev)
	}
	var text bytes.Buffer
	if err := WriteWatchText(&text, s, "out"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "sampler: 0 samples over 0.01 s (interval 10ms, method scan), the measurements taken, none confirmed so none recorded, took 743µs on average (max 743µs)\n") {
		t.Errorf("text:\n%s", text.String())
	}
	// Attached by pid, still running as far as the watch saw, and no
	// measurement completed.
	s.Target = watch.TargetInfo{PID: 42}
	s.Sampler.MeanCostNS, s.Sampler.MaxCostNS = 0, 0
	want = "no sample was recorded of pid 42, still running when the watch ended: the watch ended before a sample could be confirmed " +
		"(a sample's figures are recorded only once the next read of the maps shows its stacks still mapped), so nothing is known of its stacks"
	if v := WatchVerdicts(s); len(v) != 1 || v[0] != want {
		t.Errorf("verdicts %q\nwant [%q]", v, want)
	}
	b.Reset()
	_ = WriteWatchEvidence(&b, s, nil)
	if !strings.Contains(b.String(), "Sampling: 0 samples, interval 10ms, residency method scan; no measurement completed.\n") {
		t.Errorf("evidence.md:\n%s", b.String())
	}
	// A started command gone before its page tables were opened: no
	// method was used, and none is named.
	s.Sampler.Method = ""
	b.Reset()
	_ = WriteWatchEvidence(&b, s, nil)
	if !strings.Contains(b.String(), "Sampling: 0 samples, interval 10ms; no measurement completed.\n") {
		t.Errorf("evidence.md without a method:\n%s", b.String())
	}
	text.Reset()
	_ = WriteWatchText(&text, s, "/tmp/x")
	if !strings.Contains(text.String(), "sampler: 0 samples over 0.01 s (interval 10ms), no measurement completed\n") {
		t.Errorf("stdout without a method:\n%s", text.String())
	}
}
