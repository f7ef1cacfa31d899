package main

import (
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

func startStackprobe(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "STACKPROBE_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestInterruptWritesPartialResults(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			cmd := startStackprobe(t, "--stack=16MiB", "--depth=4KiB,64KiB", "--tasks=10", "--messages=100000000",
				"--interval=5ms", "--out="+out)
			// Wait until samples are being taken, then interrupt.
			deadline := time.Now().Add(20 * time.Second)
			for {
				if ents, _ := os.ReadDir(out); len(ents) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the run never started writing")
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			sent := time.Now()
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			took := time.Since(sent)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("exit: %v, want status %d", err, c.code)
			}
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
	cmd := startStackprobe(t, "--workload=touch", "--tasks=1000", "--depth=4KiB,4MiB,8KiB", "--thp=never", "--quiet", "--out="+out)
	time.Sleep(time.Second)
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130", err)
	}
	// The run stops at the next stack (at most ~0.4 s of touching), then
	// writes its partial outputs (about 0.2 s); the bound leaves room for
	// a loaded machine, and the race detector slows both.
	limit := 2 * time.Second
	if raceEnabled {
		limit = 20 * time.Second
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
	cmd := startStackprobe(t, "--stack=16MiB", "--depth=4KiB,64KiB", "--tasks=10", "--messages=100000000",
		"--interval=5ms", "--out="+out, "--force")
	// Kill once the new run is streaming samples into its temporary files.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ents, _ := os.ReadDir(out)
		if len(ents) > len(before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second run never started writing")
		}
		time.Sleep(10 * time.Millisecond)
	}
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
