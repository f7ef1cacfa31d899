package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"stackprobe/watch"
)

// watchStack is one stack of watch's summary.json.
type watchStack struct {
	Index             int      `json:"index"`
	Start             uint64   `json:"start"`
	End               uint64   `json:"end"`
	SizeBytes         uint64   `json:"size_bytes"`
	FoundBy           []string `json:"found_by"`
	TID               int      `json:"tid"`
	Guard             string   `json:"guard"`
	SizeMatch         string   `json:"size_match"`
	RSSBytes          int64    `json:"rss_bytes"`
	RSSBytesMax       int64    `json:"rss_bytes_max"`
	DeepestBytes      int64    `json:"deepest_bytes"`
	HugeBytes         *int64   `json:"huge_bytes"`
	ContiguousFromTop bool     `json:"contiguous_from_top"`
	Samples           int      `json:"samples"`
}

// watchSummary is the part of watch's summary.json the tests read.
type watchSummary struct {
	Workload string `json:"workload"`
	Command  string `json:"command"`
	Target   struct {
		PID      int      `json:"pid"`
		Argv     []string `json:"argv"`
		Exited   bool     `json:"exited"`
		ExitCode *int     `json:"exit_code"`
	} `json:"target"`
	Stacks []watchStack `json:"stacks"`
	Totals *struct {
		VmRSSBytes     uint64 `json:"vm_rss_bytes"`
		VmPTEBytes     uint64 `json:"vm_pte_bytes"`
		Threads        int    `json:"threads"`
		StacksRSSBytes int64  `json:"stacks_rss_bytes"`
	} `json:"totals"`
	Sampler struct {
		Samples    int    `json:"samples"`
		IntervalNS int64  `json:"interval_ns"`
		MeanCostNS int64  `json:"mean_cost_ns"`
		Method     string `json:"method"`
	} `json:"sampler"`
	Partial bool `json:"partial"`
}

func readWatchSummary(t *testing.T, dir string) (watchSummary, []byte) {
	t.Helper()
	return decodeSummary[watchSummary](t, dir)
}

// startLingering starts stackprobe (this test binary) with args and waits
// until it says it lingers: its outputs are written and its stacks still
// mapped.
func startLingering(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "STACKPROBE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lingering := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.HasPrefix(sc.Text(), "stackprobe: lingering") {
				seen = true
				close(lingering)
			}
		}
	}()
	select {
	case <-lingering:
	case <-time.After(20 * time.Second):
		t.Fatal("the run never said it lingers")
	}
	return cmd
}

// csvColumn maps a CSV's header names to column indexes.
func csvColumn(t *testing.T, rows [][]string, name string) int {
	t.Helper()
	i := slices.Index(rows[0], name)
	if i < 0 {
		t.Fatalf("no column %q in %v", name, rows[0])
	}
	return i
}

// TestWatchSelf watches a lingering stackprobe touch run by pid: every one
// of its stacks must be found, with exactly the resident bytes the run
// itself recorded in its last sample. With guard pages each stack is its
// own mapping above a PROT_NONE one (found by guard). Without, neighbouring
// stacks merge into one VMA (see DESIGN.md), so they are given as ranges,
// and --size finds exactly those that are a mapping of their own.
func TestWatchSelf(t *testing.T) {
	for _, c := range []struct {
		guard string
		gap   uint64 // bytes of guard below the usable stack
	}{{"mprotect", 4096}, {"none", 0}} {
		t.Run(c.guard, func(t *testing.T) {
			if os.Getpagesize() != 4096 {
				t.Skipf("the page is %d bytes, not 4096", os.Getpagesize())
			}
			dir := t.TempDir()
			a, b := filepath.Join(dir, "A"), filepath.Join(dir, "B")
			target := startLingering(t, "--workload=touch", "--tasks=4", "--stack=16MiB", "--depth=4KiB,64KiB", "--thp=never",
				"--guard="+c.guard, "--linger=30s", "--out="+a)
			pid := target.Process.Pid

			stacks := readCSV(t, filepath.Join(a, "stacks.csv"))
			samples := readCSV(t, filepath.Join(a, "samples.csv"))
			baseCol, sizeCol := csvColumn(t, stacks, "base_addr"), csvColumn(t, stacks, "size_bytes")
			sampleCol, stackCol, rssCol := csvColumn(t, samples, "sample"), csvColumn(t, samples, "stack"), csvColumn(t, samples, "rss_bytes")
			lastSample := samples[len(samples)-1][sampleCol]
			want := map[string]int64{} // A's stack index -> its rss in A's last sample
			for _, row := range samples[1:] {
				if row[sampleCol] == lastSample {
					want[row[stackCol]], _ = strconv.ParseInt(row[rssCol], 10, 64)
				}
			}
			type span struct{ start, end uint64 }
			spans := map[string]span{}
			var ranges []string
			for _, row := range stacks[1:] {
				base, err := strconv.ParseUint(row[baseCol], 0, 64)
				if err != nil {
					t.Fatal(err)
				}
				size, _ := strconv.ParseUint(row[sizeCol], 10, 64)
				spans[row[0]] = span{base + c.gap, base + size}
				ranges = append(ranges, fmt.Sprintf("%#x-%#x", base, base+size))
			}
			if len(spans) != 4 || len(want) != 4 {
				t.Fatalf("run A: %d stacks, %d in its last sample (%s)", len(spans), len(want), lastSample)
			}

			args := []string{"watch", "--pid=" + strconv.Itoa(pid), "--duration=1s", "--out=" + b, "--quiet"}
			if c.guard == "none" {
				args = append(args, "--find=main", "--size=16MiB", "--range="+strings.Join(ranges, ","))
			}
			code, stdout, stderr := invoke(t, args...)
			if code != 0 {
				t.Fatalf("watch exit %d: %s", code, stderr)
			}
			s, _ := readWatchSummary(t, b)
			if s.Workload != "watch" || s.Target.PID != pid || s.Target.Exited || s.Target.ExitCode != nil || s.Partial {
				t.Errorf("target %+v partial %v", s.Target, s.Partial)
			}
			ownVMA := ownMappings(t, pid)
			for idx, sp := range spans {
				i := slices.IndexFunc(s.Stacks, func(st watchStack) bool {
					return st.Start == sp.start && st.End == sp.end
				})
				if i < 0 {
					t.Errorf("A's stack %s [%#x, %#x) not found", idx, sp.start, sp.end)
					continue
				}
				st := s.Stacks[i]
				if st.RSSBytes != want[idx] || st.RSSBytesMax != want[idx] || st.DeepestBytes != want[idx] || !st.ContiguousFromTop {
					t.Errorf("A's stack %s: watch rss %d (max %d, deepest %d, one run %v), A's last sample %d",
						idx, st.RSSBytes, st.RSSBytesMax, st.DeepestBytes, st.ContiguousFromTop, want[idx])
				}
				switch {
				case c.guard == "mprotect" && (!slices.Contains(st.FoundBy, "guard") || st.Guard != "prot_none_below"):
					t.Errorf("A's stack %s: found by %v guard %s, want guard, prot_none_below", idx, st.FoundBy, st.Guard)
				case c.guard == "none" && !slices.Contains(st.FoundBy, "range"):
					t.Errorf("A's stack %s: found by %v, want range", idx, st.FoundBy)
				case c.guard == "none" && ownVMA[sp] != slices.Contains(st.FoundBy, "size"):
					t.Errorf("A's stack %s: own mapping %v, found by %v", idx, ownVMA[sp], st.FoundBy)
				}
			}
			if !strings.Contains(stdout, "verdict: grows in 4 KiB steps from the top") {
				t.Errorf("stdout has no contiguity verdict:\n%s", stdout)
			}
		})
	}
}

// ownMappings is the set of pid's mappings, by bounds.
func ownMappings(t *testing.T, pid int) map[struct{ start, end uint64 }]bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[struct{ start, end uint64 }]bool{}
	for l := range strings.Lines(string(b)) {
		lo, hi, _ := strings.Cut(strings.Fields(l)[0], "-")
		s, _ := strconv.ParseUint(lo, 16, 64)
		e, _ := strconv.ParseUint(hi, 16, 64)
		m[struct{ start, end uint64 }{s, e}] = true
	}
	return m
}

// TestWatchCommand watches the C thread fixture started as a child:
// threads recursing to known depths, then exiting with status 3. Each
// thread's stack is found by its stack pointer and holds within a page of
// what its recursion used; the exit status is recorded, not returned.
func TestWatchCommand(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("the thread fixture needs a C compiler: " + err.Error())
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stackdepth")
	if out, err := exec.Command(cc, "-O1", "-pthread", "-o", bin, "../../watch/testdata/stackdepth.c").CombinedOutput(); err != nil {
		t.Skipf("the thread fixture does not build: %v: %s", err, out)
	}
	out := filepath.Join(dir, "D")
	depths := []int{16, 64, 256}
	cmd := exec.Command(os.Args[0], "watch", "--out="+out, "--interval=5ms", "--quiet", "--", bin, "400", "3", "threads",
		strconv.Itoa(depths[0]), strconv.Itoa(depths[1]), strconv.Itoa(depths[2]))
	cmd.Env = append(os.Environ(), "STACKPROBE_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("watch: %v\n%s", err, stderr.String())
	}
	s, raw := readWatchSummary(t, out)
	if s.Target.ExitCode == nil || *s.Target.ExitCode != 3 || !s.Target.Exited || len(s.Target.Argv) != 7 || s.Target.Argv[0] != bin {
		t.Errorf("target %+v, want exited with status 3", s.Target)
	}
	if s.Sampler.Samples < 5 || s.Sampler.IntervalNS != int64(5*time.Millisecond) || s.Sampler.MeanCostNS <= 0 || s.Totals == nil || s.Totals.Threads != 4 {
		t.Errorf("sampler %+v totals %+v", s.Sampler, s.Totals)
	}
	// The fixture's own report passed through our stdout: "thread TID SP0 SPD".
	reps := regexp.MustCompile(`(?m)^thread (\d+) ([0-9a-f]+) ([0-9a-f]+)$`).FindAllStringSubmatch(stdout.String(), -1)
	if len(reps) != len(depths) {
		t.Fatalf("fixture reported %d threads:\n%s", len(reps), stdout.String())
	}
	for k, rep := range reps {
		tid, _ := strconv.Atoi(rep[1])
		spd, _ := strconv.ParseUint(rep[3], 16, 64)
		i := slices.IndexFunc(s.Stacks, func(st watchStack) bool {
			return st.TID == tid
		})
		if i < 0 {
			t.Errorf("thread %d not found", tid)
			continue
		}
		st := s.Stacks[i]
		// From SPD's page up to the top, plus at most one page of read(2)'s
		// frames below SPD (see watch's checkThreadStacks).
		used := int64(st.End - spd&^4095)
		if !slices.Contains(st.FoundBy, "thread") || st.RSSBytes < used || st.RSSBytes > used+4096 || st.RSSBytes < int64(depths[k])<<10 {
			t.Errorf("thread %d (%d KiB): found by %v, rss %d, want %d..%d", tid, depths[k], st.FoundBy, st.RSSBytes, used, used+4096)
		}
	}
	for _, f := range []string{"samples.csv", "totals.csv", "stacks.csv", "evidence.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if rows := readCSV(t, filepath.Join(out, "stacks.csv")); len(rows) != 1+len(s.Stacks) {
		t.Errorf("stacks.csv has %d rows for %d stacks", len(rows), len(s.Stacks))
	}
	if rows := readCSV(t, filepath.Join(out, "totals.csv")); len(rows) != 1+s.Sampler.Samples {
		t.Errorf("totals.csv has %d rows for %d samples", len(rows), s.Sampler.Samples)
	}
	checkPNG(t, filepath.Join(out, "rss-over-time.png"))
	checkPNG(t, filepath.Join(out, "stack-depths.png"))
	checkPNG(t, filepath.Join(out, "residency.png"))
	ev, _ := os.ReadFile(filepath.Join(out, "evidence.md"))
	for _, want := range []string{"| stack | found by |", "exited with status 3", "## Verdict", "![stack-depths](stack-depths.png)", "![residency](residency.png)"} {
		if !bytes.Contains(ev, []byte(want)) {
			t.Errorf("evidence.md lacks %q", want)
		}
	}
	if !bytes.Contains(raw, []byte(`"workload": "watch"`)) {
		t.Errorf("summary.json has no workload watch")
	}
}

func TestWatchBadInput(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pid=2147483647"}, "--pid 2147483647: no such process"},
		{[]string{"--pid=1", "--", "true"}, "either --pid or -- CMD"},
		{[]string{}, "give --pid=PID or -- CMD"},
		{[]string{"--"}, "-- needs a command"},
		{[]string{"--find=stack", "--", "true"}, `unknown way "stack"`},
		{[]string{"--find=", "--", "true"}, "no way to find a stack"},
		{[]string{"--size=1000", "--", "true"}, "--size 1000: want a positive multiple"},
		{[]string{"--range=0x2000-0x1000", "--", "true"}, "page-aligned START < END"},
		{[]string{"--residency=mincore", "--", "true"}, `--residency "mincore"`},
		{[]string{"--interval=0s", "--", "true"}, "--interval 0s"},
		{[]string{"--", "/nonexistent/prog", "x"}, "command /nonexistent/prog: no such file or directory"},
		{[]string{"--", "stackprobe-no-such-command"}, "command stackprobe-no-such-command: not found in $PATH"},
		{[]string{"--", plain}, "command " + plain + ": permission denied"},
		{[]string{"--", dir}, "command " + dir + ": is a directory"},
	} {
		code, stdout, stderr := invoke(t, append([]string{"watch", "--out=" + filepath.Join(dir, "o")}, c.args...)...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("watch %v: exit %d, stderr %q, want 2 and one line with %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); err == nil {
		t.Errorf("bad input created --out")
	}
}

// SIGINT during a watch of a child: the child gets SIGINT first (sleep
// dies of it, recorded as its signal), then the outputs are written and
// watch exits 130.
func TestWatchInterruptChild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "w")
	cmd, started := startWatched(t, "watch", "--out="+out, "--", "sleep", "30")
	awaitStart(t, started)
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130", err)
	}
	s, raw := readWatchSummary(t, out)
	if !s.Target.Exited || s.Target.ExitCode != nil || !bytes.Contains(raw, []byte(`"signal": "interrupt"`)) || s.Sampler.Samples < 2 || len(s.Stacks) == 0 {
		t.Errorf("target %+v, sampler %+v, %d stacks:\n%s", s.Target, s.Sampler, len(s.Stacks), raw)
	}
	checkPNG(t, filepath.Join(out, "stack-depths.png"))
}

// A child still running when the watch ends is ended by SIGTERM, and the
// summary says so: after --duration, and after the SIGINT grace when the
// child ignores SIGINT (exit 130 then).
func TestWatchEndsChild(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "d")
	code, _, stderr := invoke(t, "watch", "--duration=200ms", "--quiet", "--out="+out, "--", "sleep", "30")
	if code != 0 {
		t.Fatalf("watch --duration: exit %d: %s", code, stderr)
	}
	if s, raw := readWatchSummary(t, out); !s.Target.Exited || s.Target.ExitCode != nil || !bytes.Contains(raw, []byte(`"signal": "terminated"`)) {
		t.Errorf("after --duration: target %+v, want ended by SIGTERM:\n%s", s.Target, raw)
	}

	out = filepath.Join(dir, "i")
	cmd, started := startWatched(t, "watch", "--out="+out, "--", "sh", "-c", `trap "" INT; exec sleep 30`)
	awaitStart(t, started)
	time.Sleep(200 * time.Millisecond)
	took := signalAndWait(t, cmd, os.Interrupt, 130)
	// The 2 s grace, SIGTERM (at once fatal to sleep), then the outputs
	// (charts: slow under the race detector).
	limit := watchGrace + 2*time.Second
	if raceEnabled {
		limit = watchGrace + 30*time.Second
	}
	if took < watchGrace || took > limit {
		t.Errorf("exited %v after SIGINT, want after the %v grace, within %v", took, watchGrace, limit)
	}
	if s, raw := readWatchSummary(t, out); !s.Target.Exited || s.Target.ExitCode != nil || !bytes.Contains(raw, []byte(`"signal": "terminated"`)) {
		t.Errorf("after SIGINT ignored: target %+v, want ended by SIGTERM:\n%s", s.Target, raw)
	}
}

// A refused /proc file is named in the error, with the fixes that fit it:
// a thread's syscall file (ptrace attach permission, refused by Yama's
// ptrace_scope 1) suggests finding stacks without threads. The refusals
// are made up: this test cannot count on an unprivileged user or Yama.
func TestWatchPermissionHint(t *testing.T) {
	syscallErr := fmt.Errorf("watch pid 5: /proc/5/task/6/syscall: %w", &fs.PathError{Op: "read", Path: "/proc/5/task/6/syscall", Err: syscall.EPERM})
	pagemapErr := fmt.Errorf("watch: pagemap /proc/5/pagemap: open: %w", &fs.PathError{Op: "open", Path: "/proc/5/pagemap", Err: syscall.EACCES})
	underWatch := "; or start the program under watch: stackprobe watch [flags] -- CMD"
	threadHint := "reading /proc/5/task/6/syscall, a thread's stack pointer for --find=thread, needs ptrace attach permission: " +
		"the same user and kernel.yama.ptrace_scope 0 (1 allows only a descendant of watch), or CAP_SYS_PTRACE, or root; " +
		"or find stacks without threads: --find=main,guard"
	pagemapHint := "reading /proc/5/pagemap needs the same user as the target (one not setuid or otherwise undumpable), or CAP_SYS_PTRACE, or root"
	for _, c := range []struct {
		target watch.Target
		err    error
		want   string
	}{
		{watch.Target{PID: 5}, syscallErr, syscallErr.Error() + "\n(" + threadHint + underWatch + ")"},
		{watch.Target{Argv: []string{"prog"}}, syscallErr, syscallErr.Error() + "\n(" + threadHint + ")"},
		{watch.Target{PID: 5}, pagemapErr, pagemapErr.Error() + "\n(" + pagemapHint + underWatch + ")"},
	} {
		err := watchStartError(c.target, c.err)
		var stderr bytes.Buffer
		if code := exitCode(err, &stderr); code != 1 || stderr.String() != "stackprobe: "+c.want+"\n" || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("target %+v: exit %d, stderr\n%s\nwant exit 1 and\nstackprobe: %s", c.target, code, stderr.String(), c.want)
		}
	}
}

// A command that watch.Start cannot start for want of a runnable file (one
// gone after checkCommand, or a script's missing interpreter) is bad input
// too; a refusal after the start stays a runtime failure.
func TestWatchStartErrorCommand(t *testing.T) {
	for _, c := range []struct {
		argv []string
		code int
		want string
	}{
		{[]string{"/nonexistent/prog"}, 2, `stackprobe: command /nonexistent/prog: watch: cannot start "/nonexistent/prog": fork/exec /nonexistent/prog: no such file or directory` + "\n"},
		{[]string{"/dev/null"}, 2, `stackprobe: command /dev/null: watch: cannot start "/dev/null": fork/exec /dev/null: permission denied` + "\n"},
	} {
		_, err := watch.Start(t.Context(), watch.Options{Target: watch.Target{Argv: c.argv}})
		var stderr bytes.Buffer
		if code := exitCode(watchStartError(watch.Target{Argv: c.argv}, err), &stderr); code != c.code || stderr.String() != c.want {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", c.argv, code, stderr.String(), c.code, c.want)
		}
	}
	// Not a start failure.
	err := fmt.Errorf("watch: pagemap /proc/5/pagemap: open: %w", &fs.PathError{Op: "open", Path: "/proc/5/pagemap", Err: syscall.EACCES})
	if code := exitCode(watchStartError(watch.Target{Argv: []string{"prog"}}, err), io.Discard); code != 1 {
		t.Errorf("pagemap refused for a started command: exit %d, want 1", code)
	}
}
