package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"stackprobe/report"
)

// invoke runs the command as main would and returns its exit status.
func invoke(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = exitCode(run(context.Background(), args, &out, &errb), &errb)
	return code, out.String(), errb.String()
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--stack=abc"}, "--stack"},
		{[]string{"--stack=0"}, "--stack"},
		{[]string{"--stack=-1MB"}, "--stack"},
		{[]string{"--stack=4KiB"}, "--stack"},
		{[]string{"--stack=200TiB"}, "--stack"},
		{[]string{"--stack=100MB", "--depth=200MB"}, "--depth"},
		{[]string{"--depth=1MB..4KB/4"}, "--depth"},
		{[]string{"--depth=4KB..4KB/2"}, "--depth"},
		{[]string{"--depth="}, "--depth"},
		{[]string{"--depth=1MB,,2MB"}, "--depth"},
		{[]string{"--tasks=0"}, "--tasks"},
		{[]string{"--tasks=-3"}, "--tasks"},
		{[]string{"--guard=wall"}, "--guard"},
		{[]string{"--thp=sometimes"}, "--thp"},
		{[]string{"--release=later"}, "--release"},
		{[]string{"--keep-top=0"}, "--keep-top"},
		{[]string{"--workload=sleep"}, "--workload"},
		{[]string{"--transport=udp"}, "--transport"},
		{[]string{"--messages=0"}, "--messages"},
		{[]string{"--pattern=zigzag"}, "--pattern"},
		{[]string{"--interval=0s"}, "--interval"},
		{[]string{"--interval=-1ms"}, "--interval"},
		{[]string{"--watchdog=0s"}, "--watchdog"},
		{[]string{"--format=yaml"}, "--format"},
		{[]string{"--linger=-1s"}, "--linger"},
		{[]string{"--out=" + file}, "--out"},
		{[]string{"--out=" + full}, "--out"},
		{[]string{"--out=" + filepath.Join(file, "sub")}, "--out"},
		{[]string{"--nosuch=1"}, "-nosuch"},
		{[]string{"--tasks=many"}, "--tasks"},
		{[]string{"extra"}, "extra"},
		{[]string{"--tasks=0", "--tasks=2"}, "--tasks"},
		{[]string{"--tasks=010"}, "--tasks"},
		{[]string{"--tasks=0x10"}, "--tasks"},
		{[]string{"--tasks=1_000"}, "--tasks"},
		{[]string{"--seed=08"}, "--seed"},
		{[]string{"--interval=10"}, "unit"},
		{[]string{"--messages=5.5"}, "--messages"},
		{[]string{"--force", "--force"}, "--force"},
		{[]string{"--depth=0.5B"}, "--depth"},
		{[]string{"--depth=4096.9"}, "--depth"},
		{[]string{"--release=idle", "--workload=touch"}, "--release"},
		{[]string{"--idle=0s"}, "--idle"},
	} {
		out := filepath.Join(dir, "out")
		args := append([]string{"--out=" + out}, c.args...)
		code, stdout, stderr := invoke(t, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", c.args, code, stderr)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.flag) {
			t.Errorf("%v: stderr %q, want one line naming %s", c.args, stderr, c.flag)
		}
		if stdout != "" {
			t.Errorf("%v: wrote to stdout: %q", c.args, stdout)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%v: output folder exists after bad input", c.args)
		}
	}
}

type summary struct {
	Partial     bool `json:"partial"`
	Environment struct {
		Kernel           string `json:"kernel"`
		PageSize         int    `json:"page_size"`
		THPEnabled       string `json:"thp_enabled"`
		OvercommitMemory *int64 `json:"overcommit_memory"`
		MaxMapCount      *int64 `json:"max_map_count"`
	} `json:"environment"`
	Config struct {
		StackBytes int64  `json:"stack_bytes"`
		GuardBytes int64  `json:"guard_bytes"`
		Guard      string `json:"guard"`
		THP        string `json:"thp"`
		MapStack   bool   `json:"map_stack"`
		Release    string `json:"release"`
		Tasks      int    `json:"tasks"`
		Workload   string `json:"workload"`
	} `json:"config"`
	TopsAligned2M int        `json:"tops_aligned_2m"`
	Steps         []depthRow `json:"steps"`
	// HighWaterGroups are the ping-pong's rows.
	HighWaterGroups []depthRow `json:"high_water_groups"`
	PingPong        *struct {
		Transport  string                        `json:"transport"`
		RoundTrips int64                         `json:"round_trips"`
		Errors     int64                         `json:"errors"`
		LatencyNs  struct{ P50, P99, Max int64 } `json:"latency_ns"`
		Sampler    struct{ Samples int }         `json:"sampler"`
	} `json:"pingpong"`
}

type depthRow struct {
	DepthBytes         int64 `json:"depth_bytes"`
	ExpectedRSSBytes   int64 `json:"expected_rss_bytes"`
	RSSBytesMin        int64 `json:"rss_bytes_min"`
	RSSBytesMax        int64 `json:"rss_bytes_max"`
	RSSBytesTotal      int64 `json:"rss_bytes_total"`
	AnonHugeBytesTotal int64 `json:"anon_huge_bytes_total"`
	VmPTEBytes         int64 `json:"vmpte_bytes"`
	VMACount           int   `json:"vma_count"`
	Matched            int   `json:"matched"`
}

func readSummary(t *testing.T, dir string) summary {
	t.Helper()
	s, _ := decodeSummary[summary](t, dir)
	return s
}

// decodeSummary reads dir's summary.json into a T, after checking that it
// holds no negative size, and returns its bytes too.
func decodeSummary[T any](t *testing.T, dir string) (T, []byte) {
	t.Helper()
	var s T
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkNoNegativeSizes(t, b)
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	return s, b
}

// checkNoNegativeSizes fails t when a summary.json holds a negative value
// under a size key: a size is never negative.
func checkNoNegativeSizes(t *testing.T, summaryJSON []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(summaryJSON, &v); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if neg := report.NegativeSizes(v); len(neg) > 0 {
		t.Errorf("negative sizes in summary.json: %v", neg)
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dx() > 4000 || b.Dy() < 300 || b.Dy() > 4000 {
		t.Errorf("%s: implausible size %v", path, b)
	}
}

func TestTouchEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := invoke(t, "--workload=touch", "--stack=100MiB", "--depth=1B,4KiB,4097B,64KiB,1MiB,8MiB",
		"--tasks=16", "--thp=never", "--out="+out) // the older name of nohuge
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, ", thp nohuge, ") {
		t.Errorf("stdout does not name --thp=never by its new name nohuge:\n%s", stdout)
	}
	s := readSummary(t, out)
	if s.Partial || s.Config.StackBytes != 100<<20 || s.Config.GuardBytes != 4096 || s.Config.Tasks != 16 ||
		s.Config.Guard != "mprotect" || s.Config.THP != "nohuge" || !s.Config.MapStack || s.Config.Release != "none" || s.Config.Workload != "touch" {
		t.Errorf("config %+v partial %v", s.Config, s.Partial)
	}
	if s.Environment.Kernel == "" || s.Environment.PageSize != 4096 || s.Environment.MaxMapCount == nil || s.Environment.OvercommitMemory == nil {
		t.Errorf("environment %+v", s.Environment)
	}
	wantPages := []int64{1, 1, 2, 16, 256, 2048}
	if len(s.Steps) != len(wantPages) {
		t.Fatalf("%d depths", len(s.Steps))
	}
	for i, d := range s.Steps {
		want := wantPages[i] * 4096
		if d.ExpectedRSSBytes != want || d.RSSBytesMin != want || d.RSSBytesMax != want || d.RSSBytesTotal != 16*want || d.Matched != 16 {
			t.Errorf("depth %d: %+v, want %d bytes on all 16 stacks", d.DepthBytes, d, want)
		}
		if d.VMACount == 0 || d.VmPTEBytes == 0 {
			t.Errorf("depth %d: process totals missing: %+v", d.DepthBytes, d)
		}
	}
	checkPNG(t, filepath.Join(out, "rss-vs-depth.png"))
	ev, err := os.ReadFile(filepath.Join(out, "evidence.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"all 16 stacks matched ceil(depth/4 KiB) pages at all 6 depths", "](rss-vs-depth.png)",
		"--depth=1B,4KiB,4097B,64KiB,1MiB,8MiB", "| 4097 | 8 KiB |"} {
		if !strings.Contains(string(ev), want) {
			t.Errorf("evidence.md lacks %q", want)
		}
	}
	rows := readCSV(t, filepath.Join(out, "samples.csv"))
	if len(rows) != 1+16*6 || rows[0][0] != "sample" || rows[1][5] != "4096" {
		t.Errorf("samples.csv: %d rows, first %v %v", len(rows), rows[0], rows[1])
	}
	if len(readCSV(t, filepath.Join(out, "totals.csv"))) != 1+6 {
		t.Error("totals.csv: want one row per depth")
	}
	if !strings.Contains(stdout, "verdict: all 16 stacks matched") {
		t.Errorf("stdout lacks the verdict:\n%s", stdout)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, ".*tmp"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestHugePagesExplained(t *testing.T) {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(b), "[never]") {
		t.Skip("transparent huge pages unavailable or disabled")
	}
	out := filepath.Join(t.TempDir(), "thp")
	code, _, stderr := invoke(t, "--workload=touch", "--stack=100MiB", "--depth=1B", "--tasks=4", "--thp=huge", "--map-stack=false", "--out="+out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s := readSummary(t, out)
	if s.Config.THP != "huge" {
		t.Errorf("summary.json config.thp = %q, want huge", s.Config.THP)
	}
	if os.Getpagesize() != 4096 {
		t.Skipf("the page is %d bytes, not 4096", os.Getpagesize())
	}
	if s.TopsAligned2M < 4 {
		t.Skipf("only %d of 4 stack tops are 2 MiB aligned: no huge page can back a 1-byte touch of the others", s.TopsAligned2M)
	}
	d := s.Steps[0]
	if d.RSSBytesMin != 2<<20 || d.AnonHugeBytesTotal != 4*(2<<20) || d.Matched != 0 {
		t.Errorf("1-byte touch with THP: %+v, want 2 MiB per stack in huge pages", d)
	}
	ev, _ := os.ReadFile(filepath.Join(out, "evidence.md"))
	if !strings.Contains(string(ev), "transparent huge pages (AnonHugePages), 2 MiB per stack") {
		t.Errorf("evidence.md does not explain the 2 MiB step:\n%s", ev)
	}
}

func TestPingPongEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pp")
	code, _, stderr := invoke(t, "--stack=100MB", "--depth=4KB,64KB,1MB", "--tasks=5", "--messages=200",
		"--transport=unix", "--interval=2ms", "--thp=nohuge", "--out="+out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s := readSummary(t, out)
	p := s.PingPong
	if p == nil || p.RoundTrips != 5*200 || p.Errors != 0 || p.Transport != "unix" || p.LatencyNs.P50 <= 0 || p.Sampler.Samples < 1 {
		t.Fatalf("pingpong %+v", p)
	}
	if len(s.HighWaterGroups) != 1 || s.HighWaterGroups[0].DepthBytes != 1_000_000 || s.HighWaterGroups[0].Matched != 10 {
		t.Errorf("high-water groups %+v, want all 10 stacks at the ramp's last depth", s.HighWaterGroups)
	}
	checkPNG(t, filepath.Join(out, "rss-over-time.png"))
	checkPNG(t, filepath.Join(out, "rss-vs-depth.png"))
}

func TestHelpAndVersion(t *testing.T) {
	code, stdout, _ := invoke(t, "--help")
	if code != 0 || !strings.Contains(stdout, "MAP_NORESERVE") || !strings.Contains(stdout, "-depth") || !strings.Contains(stdout, "Examples:") {
		t.Errorf("--help: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = invoke(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "stackprobe ") {
		t.Errorf("version: exit %d %q", code, stdout)
	}
	if code, stdout, stderr := invoke(t, "version", "--json"); code != 2 || stdout != "" || !strings.Contains(stderr, "version") {
		t.Errorf("version --json: exit %d, stdout %q, stderr %q; want 2 naming version", code, stdout, stderr)
	}
}

// Every command's --help lists exactly the flags it accepts: each listed
// flag parses (help again, exit 0), and a flag of another command that is
// not listed is refused as unknown.
func TestHelpListsExactlyTheFlags(t *testing.T) {
	flagRE := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	listed := map[string][]string{}
	for _, cmd := range []string{"", "compare", "limits", "watch"} {
		args := []string{"--help"}
		if cmd != "" {
			args = []string{cmd, "--help"}
		}
		code, stdout, _ := invoke(t, args...)
		if code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		if strings.Contains(stdout, "panic") {
			t.Errorf("%q --help reports a panic:\n%s", cmd, stdout)
		}
		for _, m := range flagRE.FindAllStringSubmatch(stdout, -1) {
			listed[cmd] = append(listed[cmd], m[1])
		}
		if len(listed[cmd]) == 0 {
			t.Fatalf("%q --help lists no flags:\n%s", cmd, stdout)
		}
	}
	for _, cmd := range []string{"compare", "limits", "watch"} {
		for _, name := range listed[""] {
			if slices.Contains(listed[cmd], name) {
				continue
			}
			code, _, stderr := invoke(t, cmd, "--"+name+"=1")
			if code != 2 || !strings.Contains(stderr, "unknown flag -"+name) {
				t.Errorf("%s --%s (not in its help): exit %d, stderr %q; want refused as unknown", cmd, name, code, stderr)
			}
		}
	}
	for _, name := range []string{"thp", "release", "map-stack", "keep-top"} {
		if slices.Contains(listed["compare"], name) {
			t.Errorf("compare --help lists --%s, which its strategies set themselves", name)
		}
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

func TestLimitsCommand(t *testing.T) {
	code, stdout, stderr := invoke(t, "limits", "--stack=100MiB", "--guard=mprotect", "--verify=100")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"vm.max_map_count", "2 VMAs per stack", "Predicted:", "all 100 requested stacks reserved"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("limits output lacks %q:\n%s", want, stdout)
		}
	}
	// Two VMAs per stack, give or take a mapping the runtime made meanwhile.
	m := regexp.MustCompile(`\((\d+\.\d+) per stack\)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no measured VMAs per stack in:\n%s", stdout)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v < 2 || v > 2.05 {
		t.Errorf("measured %s VMAs per stack, want 2 (guard mprotect)", m[1])
	}
	if code, _, stderr := invoke(t, "limits", "--stack=0"); code != 2 || !strings.Contains(stderr, "--stack") {
		t.Errorf("limits --stack=0: exit %d, %q", code, stderr)
	}
}

func TestTasksBeyondMapCountRefused(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Skipf("vm.max_map_count unreadable: %v", err)
	}
	maxMaps, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || maxMaps > 1<<20 {
		t.Skipf("vm.max_map_count %q: too large to reach in a test", b)
	}
	// Two VMAs per stack with guard mprotect: this many cannot fit.
	tasks := strconv.Itoa(maxMaps/2 + 1)
	out := filepath.Join(t.TempDir(), "x")
	code, _, stderr := invoke(t, "--workload=touch", "--tasks="+tasks, "--guard=mprotect", "--out="+out)
	if code != 2 || !strings.Contains(stderr, "--tasks "+tasks+": at most") || !strings.Contains(stderr, "vm.max_map_count") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("output folder created")
	}
}

func TestCompareEndToEnd(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "design.md")
	if err := os.WriteFile(notes, []byte("# Coroutine stacks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cmp")
	for range 2 { // twice: the note keeps one section
		code, stdout, stderr := invoke(t, "compare", "--stack=16MiB", "--depth=1B,1MiB,4KiB", "--tasks=4", "--out="+out, "--force", "--notes="+notes)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "lazy-dontneed") || !strings.Contains(stdout, "goroutine") {
			t.Errorf("stdout lacks strategies:\n%s", stdout)
		}
	}
	checkPNG(t, filepath.Join(out, "strategies.png"))
	checkPNG(t, filepath.Join(out, "residency.png"))
	c, _ := decodeSummary[struct {
		Strategies []struct {
			Strategy struct{ Name string } `json:"strategy"`
			Steps    []struct {
				RSSBytesMax int64 `json:"rss_bytes_max"`
			} `json:"steps"`
		} `json:"strategies"`
	}](t, out)
	if len(c.Strategies) != 6 {
		t.Fatalf("summary: %d strategies", len(c.Strategies))
	}
	if s := c.Strategies[0]; s.Strategy.Name != "lazy-4k" || s.Steps[2].RSSBytesMax != 1<<20 {
		t.Errorf("lazy-4k after going back to 4 KiB: %+v, want the 1 MiB high-water mark", s)
	}
	n, _ := os.ReadFile(notes)
	if strings.Count(string(n), "<!-- stackprobe:begin") != 1 || !strings.Contains(string(n), "](cmp/strategies.png)") ||
		!strings.HasPrefix(string(n), "# Coroutine stacks\n") || !strings.Contains(string(n), "## stackprobe evidence") {
		t.Errorf("design note after two runs:\n%s", n)
	}
}

func TestFramesMatchPages(t *testing.T) {
	dir := t.TempDir()
	depths := "--depth=4KiB,4097B,64KiB,1MiB,8MiB"
	var got [2][]int64
	for i, mode := range []string{"pages", "frames"} {
		out := filepath.Join(dir, mode)
		code, _, stderr := invoke(t, "--workload=touch", "--stack=16MiB", depths, "--tasks=4", "--thp=nohuge", "--touch="+mode, "--out="+out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", mode, code, stderr)
		}
		for _, d := range readSummary(t, out).Steps {
			if d.Matched != 4 || d.RSSBytesMin != d.RSSBytesMax {
				t.Errorf("%s depth %d: %+v", mode, d.DepthBytes, d)
			}
			got[i] = append(got[i], d.RSSBytesMax)
		}
	}
	if !slices.Equal(got[0], got[1]) {
		t.Errorf("per-stack residency: pages %v, frames %v", got[0], got[1])
	}
	code, _, stderr := invoke(t, "--workload=touch", "--stack=1MiB", "--depth=1MiB", "--touch=frames", "--out="+filepath.Join(dir, "x"))
	if code != 2 || !strings.Contains(stderr, "--depth") {
		t.Errorf("frames into the guard: exit %d, %q", code, stderr)
	}
}

func TestCommandLineQuoting(t *testing.T) {
	got := commandLine([]string{"--depth=4KiB,1MiB", "--out=a b", "--notes=it's;x", "--x=$(id)", ""})
	want := `stackprobe --depth=4KiB,1MiB '--out=a b' '--notes=it'\''s;x' '--x=$(id)' ''`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestComparePingPongEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cmp")
	const clients, messages = 3, 30
	code, stdout, stderr := invoke(t, "compare", "--workload=pingpong", "--stack=1MiB", "--depth=128KiB", "--pattern=ramp",
		"--tasks=3", "--messages=30", "--rounds=2", "--transport=unix", "--idle=2ms", "--out="+out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "idle-dontneed") || !strings.Contains(stdout, "verdict: releasing after every message (MADV_DONTNEED)") {
		t.Errorf("stdout:\n%s", stdout)
	}
	checkPNG(t, filepath.Join(out, "tradeoff.png"))
	c, _ := decodeSummary[struct {
		Rounds     int `json:"rounds"`
		Strategies []struct {
			Name                string  `json:"name"`
			RoundTrips          int64   `json:"round_trips"`
			Errors              int64   `json:"errors"`
			RoundTripsPerSecond float64 `json:"round_trips_per_second"`
			EndRSSBytesPerStack *int64  `json:"end_rss_bytes_per_stack"`
			Rounds              []struct {
				RoundTrips int64 `json:"round_trips"`
			} `json:"rounds"`
		} `json:"strategies"`
	}](t, out)
	if len(c.Strategies) != 7 || c.Rounds != 2 {
		t.Fatalf("summary: %d strategies, %d rounds", len(c.Strategies), c.Rounds)
	}
	wantEnd := map[string]int64{"lazy-4k": 128 << 10, "dontneed": 4096, "no-touch": 0}
	for _, s := range c.Strategies {
		if s.RoundTrips != clients*messages || s.Errors != 0 || len(s.Rounds) != 2 || s.RoundTripsPerSecond <= 0 {
			t.Errorf("%s: %d round trips, %d errors, %d rounds, %.0f/s; want %d, 0, 2", s.Name, s.RoundTrips, s.Errors, len(s.Rounds), s.RoundTripsPerSecond, clients*messages)
		}
		if want, ok := wantEnd[s.Name]; ok && (s.EndRSSBytesPerStack == nil || *s.EndRSSBytesPerStack != want) {
			t.Errorf("%s: end %v bytes per stack, want %d", s.Name, s.EndRSSBytesPerStack, want)
		}
	}
	ev, err := os.ReadFile(filepath.Join(out, "evidence.md"))
	if err != nil || !strings.Contains(string(ev), "| lazy-4k | 2 | 90 | 0 |") || !strings.Contains(string(ev), "![tradeoff](tradeoff.png)") {
		t.Errorf("evidence.md (%v):\n%s", err, ev)
	}
	// Ping-pong flags are refused with the touch compare.
	if code, _, stderr := invoke(t, "compare", "--rounds=2", "--out="+filepath.Join(t.TempDir(), "x")); code != 2 || !strings.Contains(stderr, "--rounds") {
		t.Errorf("touch compare with --rounds: exit %d, %q", code, stderr)
	}
}

// compare over two stack sizes: each mmap strategy once per size, the
// per-coroutine cost of each from the page tables, and a depth the small
// stack cannot hold shown as an overflow, not as a figure.
func TestCompareStackSizes(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sizes")
	code, stdout, stderr := invoke(t, "compare", "--stack=64KiB,100MiB", "--depth=16KiB,80KiB", "--tasks=200", "--quiet", "--format=json", "--out="+out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var c struct {
		Strategies []struct {
			Strategy struct {
				Name string `json:"name"`
			} `json:"strategy"`
			StackBytes int64 `json:"stack_bytes"`
			Skipped    string
			Steps      []struct {
				DepthBytes   int64 `json:"depth_bytes"`
				Overflow     bool  `json:"overflow"`
				RSSBytesMean int64 `json:"rss_bytes_mean"`
			} `json:"steps"`
			Cost *struct {
				PageTables struct {
					PerStackBytes int64 `json:"per_stack_bytes"`
				} `json:"page_tables"`
				TotalBytes int64 `json:"total_bytes"`
			} `json:"cost"`
		} `json:"strategies"`
	}
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatal(err)
	}
	checkNoNegativeSizes(t, []byte(stdout))
	seen := 0
	for _, s := range c.Strategies {
		if s.Strategy.Name != "lazy-4k" {
			continue
		}
		seen++
		if len(s.Steps) != 2 || s.Cost == nil {
			t.Fatalf("lazy-4k %d B: %d steps, cost %v", s.StackBytes, len(s.Steps), s.Cost)
		}
		pt := s.Cost.PageTables.PerStackBytes
		switch s.StackBytes {
		case 64 << 10:
			if !s.Steps[1].Overflow || s.Steps[1].RSSBytesMean != 0 || s.Steps[1].DepthBytes != 80<<10 {
				t.Errorf("64 KiB stacks at 80 KiB: %+v, want an overflow without figures", s.Steps[1])
			}
			if s.Steps[0].RSSBytesMean != 16<<10 {
				t.Errorf("64 KiB stacks at 16 KiB: %d B resident", s.Steps[0].RSSBytesMean)
			}
			// Packed small stacks share PTE pages: up to 32 stacks per
			// 2 MiB block, 128 B each, plus the PMD share. With 200
			// stacks, and mappings of the runtime's among them, the
			// shares are coarser (≈150 B here, ≈290 B under the race
			// detector); at 1000 stacks they stay under 256 B. Either way
			// far below the 4 KiB page a large stack needs.
			if pt > 512 {
				t.Errorf("64 KiB stacks: %d B of page tables per stack, want at most 512", pt)
			}
		case 100 << 20:
			if s.Steps[1].Overflow || s.Steps[1].RSSBytesMean != 80<<10 {
				t.Errorf("100 MiB stacks at 80 KiB: %+v", s.Steps[1])
			}
			// One PTE page per stack top plus a share of the PMD pages
			// (one per GiB, about 400 B per 100 MiB stack).
			if pt < 4096 || pt > 4096+600 {
				t.Errorf("100 MiB stacks: %d B of page tables per stack, want 4 KiB + the PMD share", pt)
			}
		default:
			t.Errorf("lazy-4k with %d-byte stacks", s.StackBytes)
		}
	}
	if seen != 2 {
		t.Errorf("lazy-4k ran %d times, want once per size", seen)
	}
	ev, err := os.ReadFile(filepath.Join(out, "evidence.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"64 KiB stacks cannot hold depth 80 KiB", "overflow: does not fit above the guard", "per coroutine after the last step, lazy 4 KiB pages: 64 KiB stacks"} {
		if !strings.Contains(string(ev), want) {
			t.Errorf("evidence.md lacks %q", want)
		}
	}
}

// limits --depth calibrates what one coroutine costs and says how many fit
// in the memory given, in JSON with the prediction beside.
func TestLimitsMemoryFitJSON(t *testing.T) {
	code, stdout, stderr := invoke(t, "limits", "--stack=100MiB", "--depth=16KiB", "--memory=1GiB", "--format=json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var l struct {
		Prediction struct {
			Binding struct {
				Name string `json:"name"`
			} `json:"binding"`
		} `json:"prediction"`
		PerStack struct {
			Resident   int64 `json:"resident"`
			PageTables int64 `json:"page_tables"`
			Kernel     int64 `json:"kernel"`
			Total      int64 `json:"total"`
		} `json:"per_stack_bytes"`
		Fit struct {
			MemoryBytes int64  `json:"memory_bytes"`
			Source      string `json:"source"`
			Stacks      int64  `json:"stacks"`
		} `json:"fit_in_memory"`
	}
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatal(err)
	}
	checkNoNegativeSizes(t, []byte(stdout))
	p := l.PerStack
	// 16 KiB touched: exactly 4 pages resident; a 100 MiB stack's top needs
	// one PTE page of its own, plus its share of the PMD pages.
	if p.Resident != 16<<10 || p.PageTables < 4096 || p.PageTables > 4096+1024 || p.Total != p.Resident+p.PageTables+p.Kernel {
		t.Errorf("per stack %+v: want 16 KiB resident, 4 KiB + a PMD share of page tables, and their sum", p)
	}
	if l.Fit.MemoryBytes != 1<<30 || l.Fit.Source != "--memory" || l.Fit.Stacks != (1<<30)/p.Total {
		t.Errorf("fit %+v: want 1 GiB from --memory holding 1 GiB / %d B", l.Fit, p.Total)
	}
	if l.Prediction.Binding.Name == "" {
		t.Error("no binding limit named")
	}
}
