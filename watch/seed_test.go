package watch

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"stackprobe/stackfind"
)

// TestWatchSeed runs the seed's stackful ping-pong under watch and checks
// its 40 task stacks of 100 MiB against the program's own smaps report.
// Its rss_kb sums smaps Rss over the VMAs of each fiber mapping, guard page
// included; the guard is PROT_NONE and never resident, so it equals the
// resident bytes of the read-write part that watch measures. The program
// prints no addresses, so the sorted lists of figures are compared.
func TestWatchSeed(t *testing.T) {
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("the seed needs a C++ compiler: " + err.Error())
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-r", "/work/shared/anchors/seed-pingpong/.", dir).CombinedOutput(); err != nil {
		t.Skipf("seed sources not available: %v: %s", err, out)
	}
	if out, err := exec.Command("make", "-C", dir, "pingpong_stackful").CombinedOutput(); err != nil {
		t.Skipf("seed does not build: %v: %s", err, out)
	}
	const stack = 104857600
	var stdout bytes.Buffer
	w, err := Start(context.Background(), Options{
		Target: Target{Argv: []string{filepath.Join(dir, "pingpong_stackful"), "--clients", "20", "--messages", "200",
			"--stack", strconv.Itoa(stack), "--depth", "65536", "--hold", "2"}},
		Find:   stackfind.Options{Main: true, Thread: true, Guard: true, Size: stack},
		Stdout: &stdout,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	r := w.Result()
	if r.Target.ExitCode == nil || *r.Target.ExitCode != 0 {
		t.Fatalf("seed exit %+v; output:\n%s", r.Target, stdout.String())
	}
	var want []int64
	for _, m := range regexp.MustCompile(`(?m)^stack task=\d+ kind=\w+ rss_kb=(\d+)`).FindAllStringSubmatch(stdout.String(), -1) {
		kb, _ := strconv.ParseInt(m[1], 10, 64)
		want = append(want, kb<<10)
	}
	if len(want) != 40 {
		t.Fatalf("seed reported %d stacks, want 40:\n%s", len(want), stdout.String())
	}
	var got []int64
	for _, st := range r.Stacks {
		if st.SizeMatch == stackfind.SizeWithGuard {
			if st.SizeBytes != stack-page || st.FoundBy&stackfind.Guard == 0 || st.Guard != stackfind.GuardProtNoneBelow {
				t.Errorf("stack %d: size %d found by %v guard %v", st.Index, st.SizeBytes, st.FoundBy, st.Guard)
			}
			got = append(got, st.RSSBytes)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("resident bytes per stack\n got %v\nwant %v (the seed's rss_kb)", got, want)
	}
	t.Logf("%d stacks, %d samples, mean cost %d ns, max %d ns", len(got), r.Sampler.Samples, r.Sampler.MeanCostNS, r.Sampler.MaxCostNS)
}
