package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stackprobe/procread"
)

// compare --linger keeps each size's last mmap strategy's stacks mapped
// while it lingers, and stacks.csv lists them with what pmap -X shows
// there and what summary.json says that strategy held at its last step;
// they are unmapped when the command returns.
func TestCompareLingerStacksAgreeWithPmap(t *testing.T) {
	if _, err := exec.LookPath("pmap"); err != nil {
		t.Skip("pmap not installed (procps)")
	}
	out := filepath.Join(t.TempDir(), "cmp")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"compare", "--stack=4MiB,8MiB", "--depth=4KiB,64KiB", "--tasks=3",
			"--linger=1m", "--format=json", "--out=" + out}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "lingering pid=") {
		select {
		case err := <-done:
			t.Fatalf("compare ended before lingering: %v; stderr %q", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no linger message; stderr %q", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The fields of compare's summary.json this test reads.
	type strategy struct {
		Strategy struct {
			Name     string `json:"name"`
			GoStacks bool   `json:"go_stacks"`
		} `json:"strategy"`
		StackBytes int64  `json:"stack_bytes"`
		Skipped    string `json:"skipped"`
		Steps      []struct {
			RSSBytesMin int64 `json:"rss_bytes_min"`
			RSSBytesMax int64 `json:"rss_bytes_max"`
		} `json:"steps"`
	}
	c, _ := decodeSummary[struct {
		Strategies []strategy `json:"strategies"`
	}](t, out)
	last := map[int64]strategy{}
	for _, s := range c.Strategies {
		if !s.Strategy.GoStacks && s.Skipped == "" {
			last[s.StackBytes] = s
		}
	}
	rows := readCSV(t, filepath.Join(out, "stacks.csv"))
	if strings.Join(rows[0], ",") != "strategy,stack_bytes,stack,base_addr,size_bytes,rss_bytes" || len(rows) != 1+2*3 {
		t.Fatalf("stacks.csv: header %q, %d rows; want 6 stacks", rows[0], len(rows)-1)
	}
	pm := pmapRss(t, os.Getpid())
	var bases []uint64
	for i, row := range rows[1:] {
		stackBytes, _ := strconv.ParseInt(row[1], 10, 64)
		base, err := strconv.ParseUint(strings.TrimPrefix(row[3], "0x"), 16, 64)
		if err != nil {
			t.Fatalf("row %d: base %q: %v", i, row[3], err)
		}
		size, _ := strconv.ParseUint(row[4], 10, 64)
		rss, _ := strconv.ParseInt(row[5], 10, 64)
		bases = append(bases, base)
		want := last[stackBytes]
		step := want.Steps[len(want.Steps)-1]
		if row[0] != want.Strategy.Name || row[2] != strconv.Itoa(i%3) || size != uint64(stackBytes) ||
			rss < step.RSSBytesMin || rss > step.RSSBytesMax {
			t.Errorf("row %q: want strategy %s, stack %d, size %d, rss within the last step's %d..%d",
				row, want.Strategy.Name, i%3, stackBytes, step.RSSBytesMin, step.RSSBytesMax)
		}
		var got int64
		mappings := 0
		for addr, r := range pm {
			if addr >= base && addr < base+size {
				got += r
				mappings++
			}
		}
		if mappings != 2 || got != rss { // the stack and its mprotect guard
			t.Errorf("stack %d at %#x: pmap shows %d bytes in %d mappings, stacks.csv lists %d", i, base, got, mappings, rss)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	dir, err := procread.OpenProcDir("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	maps, err := dir.Maps(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if slices.Contains(bases, m.Start) {
			t.Errorf("a mapping still starts at kept stack base %#x after compare returned", m.Start)
		}
	}
}

// Only the touch compare keeps stacks: the ping-pong compare refuses
// --linger as bad input.
func TestComparePingPongRefusesLinger(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := invoke(t, "compare", "--workload=pingpong", "--linger=1s", "--out="+out)
	if code != 2 || stdout != "" || stderr != "stackprobe: --linger: only compare --workload=touch takes it\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 and one line naming --linger", code, stdout, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output folder exists after bad input")
	}
}
