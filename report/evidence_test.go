package report

import (
	"bytes"
	"strings"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/probe"
)

func contains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestWriteEvidenceRelease(t *testing.T) {
	d := step(100, 8*mib, 8*mib, 8*mib, 4*kib, 4*kib)
	d.Step.PeakVmPTEBytes = 920 * uint64(kib)
	d.VmPTEBytes = 320 * uint64(kib)
	r := touchResult(100, mmapstack.ReleaseDontneed, d)
	r.Command = "stackprobe --release=dontneed"
	r.Partial, r.Error = true, "interrupted after 1 of 2 depths"
	r.GuardChecks = []probe.GuardCheck{{Guard: mmapstack.GuardMprotect, Target: "stack below", Faulted: true, FaultAddr: "0x1000", Detail: "SIGSEGV"}}
	cg := uint64(1 << 30)
	r.Environment.CgroupMemoryMax = &cg
	r.Environment.Missing = []string{"overcommit_memory"}
	var b bytes.Buffer
	if err := WriteEvidence(&b, r, []string{"rss-vs-depth.png"}); err != nil {
		t.Fatal(err)
	}
	contains(t, "evidence.md", b.String(),
		"**PARTIAL RUN** — interrupted after 1 of 2 depths",
		"| depth (bytes) | expected at peak (claim) | peak per stack | matched at peak | VmPTE at peak (process) | expected after release | after release per stack | matched after release | VmPTE after release (process) |",
		"| 8388608 | 8 MiB | 8 MiB | 100/100 | 920 KiB | 4 KiB | 4 KiB | 100/100 | 320 KiB |",
		"Page tables (VmPTE, process): 100 KiB before the stacks, 100 KiB with them reserved.",
		"| mprotect | stack below | true | 0x1000 | false | SIGSEGV |",
		"| cgroup memory.max | 1 GiB |", "| unreadable | overcommit_memory |",
		"![rss-vs-depth](rss-vs-depth.png)")

	b.Reset()
	if err := WriteText(&b, r, "out"); err != nil {
		t.Fatal(err)
	}
	contains(t, "stdout", b.String(), "peak/stack", "matched at peak", "after release/stack", "VmPTE (process)", "guard mprotect: SIGSEGV",
		"verdict: all 100 stacks matched", "PARTIAL: interrupted", "results in out")
}

func TestWriteEvidenceTouchAndPingPong(t *testing.T) {
	r := touchResult(4, mmapstack.ReleaseNone, step(4, 1, 1, 4*kib, 4*kib, 4*kib))
	var b bytes.Buffer
	if err := WriteEvidence(&b, r, nil); err != nil {
		t.Fatal(err)
	}
	contains(t, "evidence.md", b.String(),
		"| depth (bytes) | expected (claim) | measured per stack | pages per stack | matched | AnonHugePages total | VmPTE (process) | VMAs | smaps |",
		"| 1 | 4 KiB | 4 KiB | 1 | 4/4 | 0 B | 200 KiB | 100 | agrees |")
	if strings.Contains(b.String(), "## Charts") {
		t.Error("a charts section without charts")
	}

	a := step(60, 4*kib, 4*kib, 4*kib, 4*kib, 4*kib)
	a.AnonHugeBytesTotal = -1
	a.Smaps.Agree, a.Smaps.Disagreements = false, 2
	p := pingPongResult(30, mmapstack.ReleaseNone, a)
	b.Reset()
	if err := WriteEvidence(&b, p, nil); err != nil {
		t.Fatal(err)
	}
	contains(t, "evidence.md", b.String(), "## Workload", "over unix: 30 clients × 100 one-byte messages, 3000 round trips in 0.500 s (6000 round trips/s), 0 errors; latency p50 1ms, p99 3ms, max 5ms.",
		"The sampler took 50 samples, one per 10ms on average", "| unknown |", "| 2 differ |")
	b.Reset()
	if err := WriteText(&b, p, "out"); err != nil {
		t.Fatal(err)
	}
	contains(t, "stdout", b.String(), "pingpong: unix, 30 clients x 100 messages: 3000 round trips in 0.500s (6000/s), p50 1ms p99 3ms, 0 errors")

	// Interrupted before the first round trip: no rate, no latency.
	p.PingPong.RoundTrips, p.PingPong.RoundTripsPerSecond, p.PingPong.LatencyNanos = 0, nil, nil
	b.Reset()
	if err := WriteEvidence(&b, p, nil); err != nil {
		t.Fatal(err)
	}
	contains(t, "evidence.md", b.String(), "0 round trips in 0.500 s, 0 errors; no round trip completed, so there is no latency. The sampler took 50 samples")
	b.Reset()
	if err := WriteText(&b, p, "out"); err != nil {
		t.Fatal(err)
	}
	contains(t, "stdout", b.String(), "pingpong: unix, 30 clients x 100 messages: 0 round trips in 0.500s, 0 errors\n")
}
