package limits

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// childEnv carries a childConfig, as JSON, to a re-executed test binary.
// Reaching a limit makes other mappings of the process fail too, the Go
// runtime's included, so every test that goes to a limit does it in a
// child process and reads the outcome back.
const childEnv = "STACKPROBE_LIMITS_CHILD"

// childConfig says what a child process verifies.
type childConfig struct {
	StackBytes int64  `json:"stack_bytes"`
	Guard      string `json:"guard"`
	N          int64  `json:"n"`
	// Rlimit is "as" or "data" to lower RLIMIT_AS or RLIMIT_DATA, in the
	// child only, to leave room for RlimitStacks more stacks; "" leaves
	// the limits alone.
	Rlimit       string `json:"rlimit,omitempty"`
	RlimitStacks int64  `json:"rlimit_stacks,omitempty"`
}

// childResult is what a child reports on its stdout.
type childResult struct {
	Max          int64        `json:"max"`
	Usable       int64        `json:"usable"`
	MaxMapCount  int64        `json:"max_map_count"`
	Binding      Limit        `json:"binding"`
	Limits       []Limit      `json:"limits"`
	Verification Verification `json:"verification"`
	Text         string       `json:"text"`
	Current      Current      `json:"current"`
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		if err := runChild(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "limits child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild lowers a limit if asked, predicts, verifies and prints a
// childResult as JSON.
func runChild(cfgJSON string) error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		return err
	}
	guard, err := mmapstack.ParseGuard(cfg.Guard)
	if err != nil {
		return err
	}
	if cfg.Rlimit != "" {
		if err := lowerRlimit(cfg, guard); err != nil {
			return err
		}
	}
	in, err := procread.ReadLimitInputs("", "")
	if err != nil {
		return err
	}
	cur := in.Usage
	var maxMapCount int64
	if in.System.MaxMapCount != nil {
		maxMapCount = *in.System.MaxMapCount
	}
	p := PredictInputs(in, cfg.StackBytes, guard)
	v, err := Verify(context.Background(), mmapstack.Options{Size: int(cfg.StackBytes), Guard: guard, MapStack: true}, cfg.N)
	if err != nil {
		return err
	}
	var text bytes.Buffer
	if err := WriteText(&text, p, &v); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{
		Max: p.Max, Usable: p.Usable, MaxMapCount: maxMapCount, Binding: p.Binding, Limits: p.Limits, Verification: v, Text: text.String(), Current: cur,
	})
}

// lowerRlimit sets the soft RLIMIT_AS or RLIMIT_DATA so that exactly
// cfg.RlimitStacks more stacks fit, with 7/8 of a stack to spare for the Go
// runtime's own growth (a race-enabled binary on a loaded machine maps
// more than half a 256 MiB stack meanwhile).
func lowerRlimit(cfg childConfig, guard mmapstack.Guard) error {
	cur, err := procread.ReadUsage("", 0)
	if err != nil {
		return err
	}
	size := uint64(mmapstack.RoundUp(int(cfg.StackBytes)))
	g := uint64(mmapstack.PageSize())
	if guard == mmapstack.GuardNone {
		g = 0
	}
	k := uint64(cfg.RlimitStacks)
	var res int
	var limit uint64
	switch cfg.Rlimit {
	case "as":
		res, limit = unix.RLIMIT_AS, cur.VmSizeBytes+k*size+size*7/8
	case "data":
		// The k-th stack is checked with all of its size, the earlier
		// ones count without their guard page.
		res, limit = unix.RLIMIT_DATA, cur.VmDataBytes+(k-1)*(size-g)+size+size*7/8
	default:
		return fmt.Errorf("unknown rlimit %q", cfg.Rlimit)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(res, &rl); err != nil {
		return err
	}
	rl.Cur = limit
	return unix.Setrlimit(res, &rl)
}

// child runs cfg in a re-executed test binary and returns its result.
func child(t *testing.T, cfg childConfig) childResult {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// A race-enabled child would otherwise sleep a second at exit
	// (the race detector's atexit_sleep_ms).
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b), "GORACE="+gorace)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child %s: %v\nstderr:\n%s", b, err, stderr.Bytes())
	}
	var r childResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("child %s: decoding %q: %v\nstderr:\n%s", b, stdout.Bytes(), err, stderr.Bytes())
	}
	return r
}
