package watch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stackprobe/procread"
	"stackprobe/stackfind"
)

const page = 4096

// buildFixture compiles testdata/stackdepth.c with the system cc.
func buildFixture(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("stackdepth fixture needs a C compiler: " + err.Error())
	}
	bin := filepath.Join(t.TempDir(), "stackdepth")
	out, err := exec.Command(cc, "-O1", "-pthread", "-o", bin, "testdata/stackdepth.c").CombinedOutput()
	if err != nil {
		t.Skipf("stackdepth fixture does not build: %v: %s", err, out)
	}
	return bin
}

// startFixture starts the fixture and reads its report up to "ready".
func startFixture(t *testing.T, bin string, args ...string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return cmd, lines
}

type threadReport struct {
	tid      int
	sp0, spd uint64
}

func parseThreads(t *testing.T, lines []string) []threadReport {
	var rs []threadReport
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "thread" {
			t.Fatalf("fixture line %q", l)
		}
		tid, _ := strconv.Atoi(f[1])
		sp0, _ := strconv.ParseUint(f[2], 16, 64)
		spd, _ := strconv.ParseUint(f[3], 16, 64)
		rs = append(rs, threadReport{tid, sp0, spd})
	}
	return rs
}

var depthsKiB = []int{16, 64, 256, 1024}

func fixtureArgs(holdMS, code int) []string {
	args := []string{strconv.Itoa(holdMS), strconv.Itoa(code), "threads"}
	for _, d := range depthsKiB {
		args = append(args, strconv.Itoa(d))
	}
	return args
}

// checkThreadStacks checks every fixture thread was found by its stack
// pointer and holds the pages its recursion used.
//
// The bound: a thread's stack mapping holds, from its top down, glibc's
// struct pthread and static TLS (End-SP0, about 4.3 KiB here: the
// fixture reports SP0, its first frame), then the recursion down to SPD,
// then read(2)'s few frames below SPD. So the resident bytes are the pages
// from SPD's page up to End, plus at most one page more for read's frames:
// exactly within a page of (End - SPD), which is the depth asked for plus
// End-SP0 plus less than one 1 KiB frame.
func checkThreadStacks(t *testing.T, r Result, reps []threadReport) {
	t.Helper()
	for i, rep := range reps {
		var st *Stack
		for k := range r.Stacks {
			if r.Stacks[k].TID == rep.tid {
				st = &r.Stacks[k]
			}
		}
		if st == nil {
			t.Errorf("thread %d (%d KiB) not found", rep.tid, depthsKiB[i])
			continue
		}
		if st.FoundBy&stackfind.Thread == 0 || st.FoundBy&stackfind.Guard == 0 || st.Guard != stackfind.GuardProtNoneBelow {
			t.Errorf("thread %d: found by %v guard %v, want thread+guard, prot_none_below", rep.tid, st.FoundBy, st.Guard)
		}
		used := int64(st.End - rep.spd&^(page-1)) // pages from SPD's up to the top
		if st.RSSBytes < used || st.RSSBytes > used+page {
			t.Errorf("thread %d: rss %d, want %d..%d (End-SPD %d, depth %d KiB, thread start %d B)",
				rep.tid, st.RSSBytes, used, used+page, st.End-rep.spd, depthsKiB[i], st.End-rep.sp0)
		}
		if depth := int64(depthsKiB[i]) << 10; st.RSSBytes < depth {
			t.Errorf("thread %d: rss %d below its depth %d", rep.tid, st.RSSBytes, depth)
		}
		if st.DeepestBytes != st.RSSBytes || !st.ContiguousFromTop {
			t.Errorf("thread %d: deepest %d, rss %d, contiguous %v: want one run from the top", rep.tid, st.DeepestBytes, st.RSSBytes, st.ContiguousFromTop)
		}
		if st.RSSBytesMax != st.RSSBytes || st.Samples < 2 || st.LastSeenNS <= st.FirstSeenNS {
			t.Errorf("thread %d: max %d, samples %d, seen %d..%d ns", rep.tid, st.RSSBytesMax, st.Samples, st.FirstSeenNS, st.LastSeenNS)
		}
		t.Logf("thread %d depth %4d KiB: rss %7d B, thread start uses %d B", rep.tid, depthsKiB[i], st.RSSBytes, st.End-rep.sp0)
	}
}

var threadFind = stackfind.Options{Main: true, Thread: true, Guard: true}

// TestWatchPIDThreads watches the fixture by pid until it exits.
func TestWatchPIDThreads(t *testing.T) {
	bin := buildFixture(t)
	cmd, lines := startFixture(t, bin, fixtureArgs(400, 0)...)
	rec := &memRecorder{}
	w, err := Start(context.Background(), Options{Target: Target{PID: cmd.Process.Pid}, Find: threadFind, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	r := w.Result()
	if !r.Target.Exited || r.Target.ExitCode != nil || r.Target.PID != cmd.Process.Pid {
		t.Errorf("target %+v: want exited, no exit code (not our child)", r.Target)
	}
	checkThreadStacks(t, r, parseThreads(t, lines))
	// The main thread, asleep in nanosleep on [stack].
	if i := slices.IndexFunc(r.Stacks, func(s Stack) bool { return s.FoundBy&stackfind.Main != 0 }); i < 0 || r.Stacks[i].TID != cmd.Process.Pid {
		t.Errorf("main stack not found by main with the main thread's tid")
	}
	if r.Sampler.Samples != len(rec.samples) || r.Sampler.Samples < 5 || (r.Sampler.Method != "scan" && r.Sampler.Method != "pagemap") || r.Sampler.IntervalNS != int64(DefaultInterval) {
		t.Errorf("sampler %+v, recorder got %d samples", r.Sampler, len(rec.samples))
	}
	// The last recorded sample holds each stack's final figure.
	last := rec.samples[len(rec.samples)-1]
	for _, ss := range last.Stacks {
		if st := r.Stacks[ss.Index]; st.LastSeenNS == last.Totals.TimeNS && st.RSSBytes != ss.RSSBytes {
			t.Errorf("stack %d: result rss %d, last sample %d", ss.Index, st.RSSBytes, ss.RSSBytes)
		}
	}
	if r.Totals == nil || r.Totals.Threads != 1+len(depthsKiB) || r.Totals.VMAs < 10 || r.Totals.VmRSSBytes == 0 || r.Totals.VmPTEBytes == 0 {
		t.Errorf("totals %+v", r.Totals)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workload", "target", "stacks", "totals", "sampler"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary JSON has no %q: %s", k, b)
		}
	}
	// A figure is present exactly when the method measures its class.
	s0 := m["stacks"].([]any)[0].(map[string]any)
	_, hasHuge := s0["huge_bytes"]
	if knows := r.Sampler.Method == procread.MethodScan.String(); hasHuge != knows {
		t.Errorf("method %s: huge_bytes present %v, want %v", r.Sampler.Method, hasHuge, knows)
	}
}

type memRecorder struct{ samples []Sample }

func (m *memRecorder) RecordSample(s *Sample) error {
	c := *s
	c.Stacks = slices.Clone(s.Stacks)
	m.samples = append(m.samples, c)
	return nil
}

// TestWatchCommand starts the fixture as a child and records its exit code.
func TestWatchCommand(t *testing.T) {
	bin := buildFixture(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	w, err := Start(context.Background(), Options{
		Target: Target{Argv: append([]string{bin}, fixtureArgs(400, 3)...)}, Find: threadFind, Stdout: pw,
	})
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	out, _ := io.ReadAll(pr)
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	r := w.Result()
	if !r.Target.Exited || r.Target.ExitCode == nil || *r.Target.ExitCode != 3 || r.Target.Signal != "" || r.Target.Argv[0] != bin {
		t.Errorf("target %+v, want exited with code 3", r.Target)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	checkThreadStacks(t, r, parseThreads(t, lines[:len(lines)-1]))
}

// TestWatchInterrupt forwards SIGINT to a child, which dies of it.
func TestWatchInterrupt(t *testing.T) {
	w, err := Start(context.Background(), Options{Target: Target{Argv: []string{"sleep", "10"}}, Find: threadFind})
	if err != nil {
		t.Skip("sleep(1) not runnable: " + err.Error())
	}
	defer w.Close()
	time.Sleep(50 * time.Millisecond)
	if err := w.Interrupt(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	r := w.Result()
	if !r.Target.Exited || r.Target.Signal != "interrupt" || r.Target.ExitCode != nil {
		t.Errorf("target %+v, want ended by SIGINT", r.Target)
	}
	if i := slices.IndexFunc(r.Stacks, func(s Stack) bool { return s.FoundBy&stackfind.Main != 0 }); i < 0 {
		t.Errorf("sleep's [stack] not found in %d samples", r.Sampler.Samples)
	}
}

// TestWatchFibers finds seed-like fiber stacks by guard and by size, and
// stops on Duration while the target runs.
func TestWatchFibers(t *testing.T) {
	bin := buildFixture(t)
	const n, size, kib = 8, 100 << 20, 40
	cmd, lines := startFixture(t, bin, "5000", "0", "fibers", strconv.Itoa(n), strconv.Itoa(size), strconv.Itoa(kib))
	bases := map[uint64]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		b, _ := strconv.ParseUint(f[1], 16, 64)
		bases[b+page] = true // the stack starts above its guard page
	}
	w, err := Start(context.Background(), Options{
		Target: Target{PID: cmd.Process.Pid}, Duration: 150 * time.Millisecond,
		Find: stackfind.Options{Guard: true, Size: size},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	r := w.Result()
	if r.Target.Exited {
		t.Errorf("target marked exited; it runs on")
	}
	got := 0
	for _, st := range r.Stacks {
		if !bases[st.Start] {
			continue
		}
		got++
		if st.FoundBy != stackfind.Guard|stackfind.Size || st.SizeMatch != stackfind.SizeWithGuard || st.SizeBytes != size-page {
			t.Errorf("fiber %#x: found by %v (%v), size %d", st.Start, st.FoundBy, st.SizeMatch, st.SizeBytes)
		}
		if st.RSSBytes != kib<<10 || st.DeepestBytes != kib<<10 || !st.ContiguousFromTop || st.Gone {
			t.Errorf("fiber %#x: rss %d deepest %d contiguous %v gone %v, want %d from the top", st.Start, st.RSSBytes, st.DeepestBytes, st.ContiguousFromTop, st.Gone, kib<<10)
		}
	}
	if got != n {
		t.Errorf("found %d of %d fibers", got, n)
	}
	// The page map of the last recorded sample: every stack it found (at
	// most DefaultPageMapStacks of them), each fiber one run of base pages
	// from its top.
	pm := r.PageMap
	if pm == nil {
		t.Fatal("no page map")
	}
	if pm.Found != r.Totals.Stacks || len(pm.Stacks) != min(pm.Found, DefaultPageMapStacks) || len(pm.Rows) != len(pm.Stacks) ||
		pm.PageSize != page || pm.Method != r.Sampler.Method || pm.TimeNS != r.Totals.TimeNS {
		t.Fatalf("page map of %d stacks (%d found) at %d ns, page %d, method %q; last sample %d stacks at %d ns",
			len(pm.Stacks), pm.Found, pm.TimeNS, pm.PageSize, pm.Method, r.Totals.Stacks, r.Totals.TimeNS)
	}
	fibers := 0
	for i, idx := range pm.Stacks {
		if !bases[r.Stacks[idx].Start] {
			continue
		}
		fibers++
		want := []PageRun{{From: 0, To: kib << 10, Class: procread.ClassResident}}
		if !slices.Equal(pm.Rows[i], want) {
			t.Errorf("fiber %d page map row %v, want %v", idx, pm.Rows[i], want)
		}
	}
	if fibers != n {
		t.Errorf("page map holds %d of the %d fibers", fibers, n)
	}
}

func TestStartNoSuchPID(t *testing.T) {
	_, err := Start(context.Background(), Options{Target: Target{PID: 1 << 30}, Find: threadFind})
	if !errors.Is(err, procread.ErrGone) {
		t.Errorf("err = %v, want ErrGone", err)
	}
}

// TestStartFastChild starts children that exit at once: whether Start
// still finds their /proc files or they are already reaped, the watch ends
// normally with their exit status, never an error or a panic.
func TestStartFastChild(t *testing.T) {
	for i := range 50 {
		argv, want := []string{"true"}, 0
		if i%2 == 1 {
			argv, want = []string{"false"}, 1
		}
		w, err := Start(context.Background(), Options{Target: Target{Argv: argv}, Find: threadFind, Interval: time.Millisecond})
		if err != nil {
			t.Fatalf("run %d: %s: %v", i, argv[0], err)
		}
		if err := w.Wait(); err != nil {
			t.Fatalf("run %d: wait: %v", i, err)
		}
		w.Close()
		r := w.Result()
		if !r.Target.Exited || r.Target.ExitCode == nil || *r.Target.ExitCode != want || r.Target.Signal != "" {
			t.Fatalf("run %d: %s: target %+v, want exited with status %d", i, argv[0], r.Target, want)
		}
	}
}

// TestStartChildReaped is a child whose /proc directory is gone when Start
// opens it (here: an empty proc root): a child that exits ends the watch
// with 0 samples and its status; one still running is killed and reaped,
// and Start fails.
func TestStartChildReaped(t *testing.T) {
	empty := t.TempDir()
	w, err := Start(context.Background(), Options{Target: Target{Argv: []string{"sh", "-c", "exit 7"}}, Find: threadFind, ProcRoot: empty})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	r := w.Result()
	if !r.Target.Exited || r.Target.ExitCode == nil || *r.Target.ExitCode != 7 || r.Sampler.Samples != 0 || len(r.Stacks) != 0 || r.Totals != nil {
		t.Errorf("target %+v, %d samples, %d stacks, totals %v: want exited with status 7 and nothing sampled", r.Target, r.Sampler.Samples, len(r.Stacks), r.Totals)
	}
	if err := w.Close(); err != nil {
		t.Error(err)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	_, err = Start(context.Background(), Options{Target: Target{Argv: []string{"sh", "-c", "echo $$; exec sleep 30"}}, Find: threadFind, ProcRoot: empty, Stdout: pw})
	pw.Close()
	if !errors.Is(err, procread.ErrGone) {
		t.Fatalf("start of a running child under an empty proc root: %v, want ErrGone", err)
	}
	out, _ := io.ReadAll(pr) // EOF: the child and its pipe end are gone
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("child's pid %q: %v", out, perr)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("child %d still exists after Start failed (stat: %v)", pid, err)
	}
}

// leaderExitSrc is a program whose main thread exits (pthread_exit) while
// another thread sleeps on: its /proc/PID/maps reads empty, as for a
// process gone, while it still runs. With an argument it ignores SIGTERM.
const leaderExitSrc = `#include <pthread.h>
#include <signal.h>
#include <unistd.h>
static void *sleeper(void *a) { (void)a; sleep(30); return 0; }
int main(int argc, char **argv) {
  (void)argv;
  if (argc > 1) signal(SIGTERM, SIG_IGN);
  pthread_t t;
  pthread_create(&t, 0, sleeper, 0);
  pthread_exit(0);
}
`

// buildC compiles src with the system cc.
func buildC(t *testing.T, name, src string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("needs a C compiler: " + err.Error())
	}
	dir := t.TempDir()
	c, bin := filepath.Join(dir, name+".c"), filepath.Join(dir, name)
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O1", "-pthread", "-o", bin, c).CombinedOutput(); err != nil {
		t.Skipf("%s does not build: %v: %s", name, err, out)
	}
	return bin
}

// TestWatchChildLooksGone watches a child whose /proc files look gone while
// it runs on: Duration and Stop still end the watch on time, the child
// recorded as running.
func TestWatchChildLooksGone(t *testing.T) {
	bin := buildC(t, "leaderexit", leaderExitSrc)
	for _, byStop := range []bool{false, true} {
		opts := Options{Target: Target{Argv: []string{bin}}, Find: threadFind}
		if !byStop {
			opts.Duration = 200 * time.Millisecond
		}
		t0 := time.Now()
		w, err := Start(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if byStop {
			time.Sleep(200 * time.Millisecond)
			err = w.Stop()
		} else {
			err = w.Wait()
		}
		took := time.Since(t0)
		r := w.Result()
		w.Close()
		if err != nil || took > 1500*time.Millisecond {
			t.Errorf("stop %v: sampling ended after %v with %v, want about 200ms", byStop, took, err)
		}
		if r.Target.Exited || r.Target.ExitCode != nil || r.Target.Signal != "" {
			t.Errorf("stop %v: target %+v, want still running", byStop, r.Target)
		}
	}
}

// TestCloseTerminates ends a child still running when sampling ends:
// SIGTERM first; SIGKILL only for one that outlives TermGrace after it.
// The Result taken after Close names the signal.
func TestCloseTerminates(t *testing.T) {
	bin := buildC(t, "leaderexit", leaderExitSrc)
	for _, c := range []struct {
		argv     []string
		signal   string
		min, max time.Duration // Close's duration
	}{
		{[]string{"sleep", "30"}, "terminated", 0, TermGrace / 2},
		{[]string{bin, "ignore-term"}, "killed", TermGrace, TermGrace + 500*time.Millisecond},
	} {
		w, err := Start(context.Background(), Options{Target: Target{Argv: c.argv}, Find: threadFind, Duration: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
		if r := w.Result(); r.Target.Exited {
			t.Errorf("%s: target %+v before Close, want running", c.argv[0], r.Target)
		}
		t0 := time.Now()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		took := time.Since(t0)
		r := w.Result()
		if !r.Target.Exited || r.Target.Signal != c.signal || r.Target.ExitCode != nil || took < c.min || took > c.max {
			t.Errorf("%s: target %+v after Close, which took %v; want ended by %q within %v..%v", c.argv[0], r.Target, took, c.signal, c.min, c.max)
		}
	}
}
