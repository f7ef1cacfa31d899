package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as stackprobe itself, so that tests
// can signal a real process.
func TestMain(m *testing.M) {
	if os.Getenv("STACKPROBE_TEST_MAIN") == "1" {
		os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
	}
	os.Exit(m.Run())
}

// startWatched starts stackprobe and returns a channel closed once it says
// on stderr that the run has started (stacks reserved, signals handled).
func startWatched(t *testing.T, args ...string) (*exec.Cmd, <-chan struct{}) {
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
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			if !seen && strings.HasPrefix(sc.Text(), "stackprobe: started:") {
				seen = true
				close(started)
			}
		}
	}()
	return cmd, started
}

// awaitStart waits for the started line, failing t after 20 s.
func awaitStart(t *testing.T, started <-chan struct{}) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the run never said it started")
	}
}

func TestInterruptWritesPartialResults(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			cmd, started := startWatched(t, "--stack=16MiB", "--depth=4KiB,64KiB", "--tasks=10", "--messages=100000000",
				"--interval=5ms", "--out="+out)
			// Wait until samples are being taken, then interrupt.
			awaitStart(t, started)
			time.Sleep(300 * time.Millisecond)
			took := signalAndWait(t, cmd, c.sig, c.code)
			// Writing the outputs (three charts) takes about 0.2 s here; the
			// bound leaves room for a loaded machine, and the race detector
			// slows drawing many times over.
			limit := 2 * time.Second
			if raceEnabled {
				limit = 30 * time.Second
			}
			if took > limit {
				t.Errorf("took %v to exit after %v, want under %v", took, c.sig, limit)
			}
			t.Logf("exited %v after %v", c.code, took)
			s := readSummary(t, out)
			if !s.Partial || s.PingPong == nil || s.PingPong.RoundTrips == 0 || s.PingPong.Sampler.Samples == 0 {
				t.Errorf("summary: partial %v pingpong %+v", s.Partial, s.PingPong)
			}
			if rows := readCSV(t, filepath.Join(out, "samples.csv")); len(rows) < 1+20 {
				t.Errorf("samples.csv has %d rows", len(rows))
			}
			checkPNG(t, filepath.Join(out, "rss-over-time.png"))
			checkPNG(t, filepath.Join(out, "rss-vs-depth.png"))
			ev, _ := os.ReadFile(filepath.Join(out, "evidence.md"))
			if !bytesContains(ev, "PARTIAL RUN") {
				t.Errorf("evidence.md does not say the run is partial")
			}
		})
	}
}

// SIGINT in the middle of a long touch step stops the run at the next
// stack, not at the end of the step: 1000 stacks touched 4 MiB deep take
// tens of seconds here when their pages are backed for the first time.
func TestInterruptDuringTouchStep(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a 4 GiB touch step")
	}
	out := filepath.Join(t.TempDir(), "run")
	cmd, started := startWatched(t, "--workload=touch", "--tasks=1000", "--depth=4KiB,4MiB,8KiB", "--thp=nohuge", "--out="+out)
	awaitStart(t, started)
	time.Sleep(time.Second)
	took := signalAndWait(t, cmd, syscall.SIGINT, 130)
	// The run stops at the next stack (at most ~0.4 s of touching), then
	// writes its partial outputs (about 0.2 s): 0.5–0.7 s by hand here
	// with the machine loaded. This bound only catches a run that waits
	// for the whole step (tens of seconds); it leaves room for a loaded
	// machine, and the race detector slows both.
	limit := 5 * time.Second
	if raceEnabled {
		limit = 30 * time.Second
	}
	if took > limit {
		t.Errorf("took %v to exit after SIGINT, want under %v", took, limit)
	}
	t.Logf("exited after %v", took)
	if s := readSummary(t, out); !s.Partial {
		t.Errorf("summary.json not marked partial")
	}
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// A run killed outright (SIGKILL: nothing of it runs) over an earlier
// run's folder leaves every earlier file whole: new files only replace old
// ones by rename once complete.
func TestKillKeepsPreviousRunWhole(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, _, stderr := invoke(t, "--workload=touch", "--stack=16MiB", "--depth=4KiB,64KiB", "--tasks=4", "--out="+out)
	if code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	before := map[string][]byte{}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		before[e.Name()] = b
	}
	cmd, started := startWatched(t, "--stack=16MiB", "--depth=4KiB,64KiB", "--tasks=10", "--messages=100000000",
		"--interval=5ms", "--out="+out, "--force")
	// Kill once the new run is streaming samples into its staging folder.
	awaitStart(t, started)
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for name, want := range before {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s changed or vanished after the killed run (err %v)", name, err)
		}
	}
	if s := readSummary(t, out); s.Partial || s.Config.Workload != "touch" {
		t.Errorf("summary.json is not the first run's complete one: %+v", s.Config)
	}
}

// A user's files are never deleted, rewritten or written through, and a
// folder holding them is refused unless --force; even then a file that
// shares an output name is refused, not replaced.
func TestUserFilesAreSacred(t *testing.T) {
	touch := []string{"--workload=touch", "--tasks=2", "--depth=4KiB", "--quiet"}
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	same := func(p, want string) {
		t.Helper()
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want the user's %q untouched", p, got, err, want)
		}
	}
	hidden := write("d/.notes.backup.tmp", "precious")
	if code, _, stderr := invoke(t, append(touch, "--out="+filepath.Join(dir, "d"))...); code != 2 || !strings.Contains(stderr, "--out") {
		t.Errorf("folder with a user's file, no --force: exit %d %q, want 2 naming --out", code, stderr)
	}
	same(hidden, "precious")
	if code, _, stderr := invoke(t, append(touch, "--out="+filepath.Join(dir, "d"), "--force")...); code != 0 {
		t.Errorf("--force beside a user's file: exit %d %q", code, stderr)
	}
	same(hidden, "precious")

	png := write("e/strategies.png", "mine")
	if code, _, stderr := invoke(t, append(touch, "--out="+filepath.Join(dir, "e"), "--force")...); code != 2 || !strings.Contains(stderr, "strategies.png") {
		t.Errorf("--force over a user's file of an output name: exit %d %q, want 2 naming it", code, stderr)
	}
	same(png, "mine")

	victim := write("victim.json", "victim")
	if err := os.MkdirAll(filepath.Join(dir, "f"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "f", "summary.json")); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := invoke(t, append(touch, "--out="+filepath.Join(dir, "f"), "--force")...); code != 2 {
		t.Errorf("--force with summary.json a link out of --out: exit %d, want 2", code)
	}
	same(victim, "victim")

	out := filepath.Join(dir, "g")
	if code, _, stderr := invoke(t, append(touch, "--out="+out)...); code != 0 {
		t.Fatalf("fresh run: exit %d %q", code, stderr)
	}
	ev, err := os.ReadFile(filepath.Join(out, "evidence.md"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := invoke(t, append(touch, "--out="+out, "--notes="+filepath.Join(out, "evidence.md"))...); code != 2 || !strings.Contains(stderr, "--notes") {
		t.Errorf("--notes naming the run's own evidence.md: exit %d %q, want 2", code, stderr)
	}
	same(filepath.Join(out, "evidence.md"), string(ev))
	for _, bad := range []string{"/", os.Getenv("HOME")} {
		if bad == "" {
			continue
		}
		if code, _, _ := invoke(t, append(touch, "--out="+bad, "--force")...); code != 2 {
			t.Errorf("--out=%s --force: exit %d, want 2", bad, code)
		}
	}
}

// A second run into an --out that a running one holds is refused at once.
func TestConcurrentRunRefused(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd, started := startWatched(t, "--stack=16MiB", "--depth=4KiB", "--tasks=4", "--messages=100000000", "--out="+out)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}()
	awaitStart(t, started)
	code, _, stderr := invoke(t, "--workload=touch", "--tasks=2", "--depth=4KiB", "--quiet", "--out="+out, "--force")
	if code != 2 || !strings.Contains(stderr, "in use") {
		t.Errorf("second run into a busy --out: exit %d %q, want 2 saying it is in use", code, stderr)
	}
}

// signalAndWait sends sig to the started stackprobe, waits for it to exit,
// fails the test unless it exited with status code, and returns how long
// it took after the signal.
func signalAndWait(t *testing.T, cmd *exec.Cmd, sig os.Signal, code int) time.Duration {
	t.Helper()
	sent := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != code {
		t.Fatalf("exit: %v, want status %d", err, code)
	}
	return took
}
