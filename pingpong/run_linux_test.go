package pingpong

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var transports = []Transport{TCP, Unix}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open fds: %v", err)
	}
	return len(ents)
}

// checkClean fails t if Run leaked file descriptors or left anything in TMPDIR. Tests using it
// must not run in parallel: they share the fd table.
func checkClean(t *testing.T, fdsBefore int, tmp string) {
	t.Helper()
	// Other goroutines of the test binary (timers, GC) do not open fds, so the count is exact.
	if after := openFDs(t); after != fdsBefore {
		t.Errorf("open fds: %d before Run, %d after", fdsBefore, after)
	}
	if ents, err := os.ReadDir(tmp); err != nil {
		t.Error(err)
	} else if len(ents) != 0 {
		t.Errorf("Run left %d entries in TMPDIR, first %q", len(ents), ents[0].Name())
	}
}

// privateTmp points TMPDIR at a fresh directory, so the unix socket directory can be checked.
func privateTmp(t *testing.T) string {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return tmp
}

func TestRun(t *testing.T) {
	const c, m = 4, 50
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			tmp := privateTmp(t)
			fds := openFDs(t)
			// Each task's slice is written only on that task's thread; Run's return orders the reads.
			steps := make([][]int, 2*c)
			kinds := make([]Kind, 2*c)
			var started, ended atomic.Int32
			cfg := Config{
				Transport: tr, Clients: c, Messages: m,
				OnStep: func(task int, kind Kind, step int) {
					steps[task] = append(steps[task], step)
					kinds[task] = kind
				},
				OnTaskStart: func(int, Kind) { started.Add(1) },
				OnTaskEnd:   func(int, Kind) { ended.Add(1) },
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.RoundTrips != c*m || res.Errors != 0 || res.Partial {
				t.Errorf("RoundTrips=%d Errors=%d Partial=%v, want %d 0 false", res.RoundTrips, res.Errors, res.Partial, c*m)
			}
			if res.Transport != tr || res.Clients != c || res.MessagesPerClient != m {
				t.Errorf("result echoes config wrongly: %+v", res)
			}
			want := make([]int, m)
			for i := range want {
				want[i] = i
			}
			for task := range 2 * c {
				wantKind := Client
				if task >= c {
					wantKind = Peer
				}
				if !slices.Equal(steps[task], want) {
					t.Errorf("task %d: OnStep steps %v, want 0..%d in order", task, steps[task], m-1)
				}
				if kinds[task] != wantKind {
					t.Errorf("task %d: kind %v, want %v", task, kinds[task], wantKind)
				}
			}
			if started.Load() != 2*c || ended.Load() != 2*c {
				t.Errorf("OnTaskStart called %d times, OnTaskEnd %d, want %d each", started.Load(), ended.Load(), 2*c)
			}
			l := res.Latency
			if res.Elapsed <= 0 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max || l.Max > res.Elapsed {
				t.Errorf("implausible timing: Elapsed=%v Latency=%+v", res.Elapsed, l)
			}
			checkClean(t, fds, tmp)
		})
	}
}

// A full backlog makes AF_UNIX connects fail with EAGAIN; clients must retry, not fail.
func TestRunUnixBacklogFull(t *testing.T) {
	tmp := privateTmp(t)
	fds := openFDs(t)
	cfg := Config{Transport: Unix, Clients: 64, Messages: 5, listenBacklog: 1}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.RoundTrips != 64*5 {
		t.Errorf("RoundTrips = %d, want %d", res.RoundTrips, 64*5)
	}
	checkClean(t, fds, tmp)
}

func TestRunPeerClosesEarly(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			tmp := privateTmp(t)
			fds := openFDs(t)
			cfg := Config{Transport: tr, Clients: 3, Messages: 100, Watchdog: time.Minute, peerCloseAfter: 10}
			start := time.Now()
			res, err := Run(context.Background(), cfg)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Run took %v to report a closed peer", took)
			}
			if err == nil {
				t.Fatal("Run succeeded although every peer closed after 10 messages")
			}
			re := regexp.MustCompile(`^client [0-2]: peer closed after 10 of 100 messages`)
			if !re.MatchString(err.Error()) {
				t.Errorf("error %q does not match %q", err, re)
			}
			if res.Errors < 1 || res.Partial {
				t.Errorf("Errors=%d Partial=%v, want >= 1 and false", res.Errors, res.Partial)
			}
			checkClean(t, fds, tmp)
		})
	}
}

func TestRunWatchdog(t *testing.T) {
	tmp := privateTmp(t)
	fds := openFDs(t)
	cfg := Config{Transport: TCP, Clients: 2, Messages: 100, Watchdog: 200 * time.Millisecond, peerStallAfter: 5}
	start := time.Now()
	_, err := Run(context.Background(), cfg)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %v with a 200ms watchdog", took)
	}
	want := "watchdog: 4 tasks unfinished after 200ms: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want prefix %q", err, want)
	}
	for _, name := range []string{"client 0", "client 1", "peer 2", "peer 3"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	checkClean(t, fds, tmp)
}

func TestRunCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			tmp := privateTmp(t)
			fds := openFDs(t)
			ctx, cancel := context.WithCancel(context.Background())
			var steps atomic.Int64
			cfg := Config{Transport: tr, Clients: 2, Messages: 1 << 30,
				OnStep: func(int, Kind, int) { steps.Add(1) }}
			type ret struct {
				res Result
				err error
			}
			done := make(chan ret, 1)
			go func() {
				res, err := Run(ctx, cfg)
				done <- ret{res, err}
			}()
			for steps.Load() < 100 {
				time.Sleep(time.Millisecond)
			}
			cancel()
			cancelled := time.Now()
			var got ret
			select {
			case got = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10s of cancel")
			}
			// The eventfd wakes both threads at once; 500ms leaves room for -race on a busy machine.
			if took := time.Since(cancelled); took > 500*time.Millisecond {
				t.Errorf("Run returned %v after cancel", took)
			}
			if !errors.Is(got.err, context.Canceled) || !got.res.Partial {
				t.Errorf("err=%v Partial=%v, want context.Canceled and true; %+v", got.err, got.res.Partial, got.res)
			}
			if got.res.RoundTrips <= 0 || got.res.Errors != 0 {
				t.Errorf("RoundTrips=%d Errors=%d, want > 0 and 0", got.res.RoundTrips, got.res.Errors)
			}
			checkClean(t, fds, tmp)
		})
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, Config{Transport: TCP, Clients: 1, Messages: 1})
	if !errors.Is(err, context.Canceled) || !res.Partial {
		t.Errorf("err=%v Partial=%v, want context.Canceled and true", err, res.Partial)
	}
}

// A panicking hook must not crash the process from a locked thread: Run re-panics in the caller
// after closing everything.
func TestRunHookPanic(t *testing.T) {
	tmp := privateTmp(t)
	fds := openFDs(t)
	cfg := Config{Transport: Unix, Clients: 2, Messages: 10, OnStep: func(task int, kind Kind, step int) {
		if task == 1 && step == 3 {
			panic("boom")
		}
	}}
	func() {
		defer func() {
			p := recover()
			if s := fmt.Sprint(p); !strings.Contains(s, "client 1") || !strings.Contains(s, "boom") {
				t.Errorf("recovered %q, want a panic naming client 1 and boom", s)
			}
		}()
		Run(context.Background(), cfg)
	}()
	checkClean(t, fds, tmp)
}

func TestValidate(t *testing.T) {
	ok := Config{Transport: TCP, Clients: 1, Messages: 1}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no transport", func(c *Config) { c.Transport = "" }, `transport must be "tcp" or "unix", got ""`},
		{"udp", func(c *Config) { c.Transport = "udp" }, `got "udp"`},
		{"zero clients", func(c *Config) { c.Clients = 0 }, "clients must be >= 1, got 0"},
		{"negative messages", func(c *Config) { c.Messages = -3 }, "messages must be >= 1, got -3"},
		{"negative watchdog", func(c *Config) { c.Watchdog = -time.Second }, "watchdog must be >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want it to contain %q", err, tc.want)
			}
			if _, rerr := Run(context.Background(), c); rerr == nil || rerr.Error() != err.Error() {
				t.Errorf("Run returned %v, want the Validate error", rerr)
			}
		})
	}
	err := Config{}.Validate()
	for _, field := range []string{"transport", "clients", "messages"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate of zero Config = %v, want it to name %s", err, field)
		}
	}
}

// Steady state allocates nothing per round trip: a run with 10x the messages allocates (almost)
// exactly as often as a short one. The fixed part (goroutines, closures, error-free setup) is
// the same in both; a per-message allocation would add 2*1000 here.
func TestRunAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the workload several times")
	}
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			allocs := func(m int) float64 {
				cfg := Config{Transport: tr, Clients: 2, Messages: m}
				return testing.AllocsPerRun(3, func() {
					if _, err := Run(context.Background(), cfg); err != nil {
						t.Fatal(err)
					}
				})
			}
			small, large := allocs(100), allocs(1100)
			t.Logf("allocs per run: %v with 100 messages, %v with 1100", small, large)
			// Slack for runtime noise such as a timer or GC helper allocating during the run.
			if large-small > 10 {
				t.Errorf("%v more allocations for 2*1000 more round trips", large-small)
			}
		})
	}
}

// A listener that cannot be set up is an error naming the cause, never a panic, and leaks nothing.
func TestRunListenerSetupFails(t *testing.T) {
	base := t.TempDir()
	file := base + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := base + "/" + strings.Repeat("d", 120)
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, tmpdir string
		errno        error  // wanted in the chain, or nil
		text         string // wanted in the message
	}{
		{"missing", base + "/nonexistent", syscall.ENOENT, "unix listener"},
		{"file", file, syscall.ENOTDIR, "unix listener"},
		{"too-long", long, nil, "is longer than 107 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("TMPDIR", c.tmpdir)
			fds := openFDs(t)
			res, err := Run(context.Background(), Config{Transport: Unix, Clients: 5, Messages: 10})
			if err == nil {
				t.Fatalf("Run with TMPDIR=%s succeeded: %+v", c.tmpdir, res)
			}
			if !strings.Contains(err.Error(), c.text) || (c.errno != nil && !errors.Is(err, c.errno)) {
				t.Errorf("error %q, want it to contain %q and wrap %v", err, c.text, c.errno)
			}
			if res.RoundTrips != 0 {
				t.Errorf("RoundTrips = %d after a failed setup", res.RoundTrips)
			}
			if after := openFDs(t); after != fds {
				t.Errorf("open fds: %d before Run, %d after", fds, after)
			}
		})
	}
	// The too-long case made its socket folder before finding the path too long: it must be gone.
	if ents, err := os.ReadDir(long); err != nil || len(ents) != 0 {
		t.Errorf("socket folder left in TMPDIR: %v, %v", ents, err)
	}
}
