package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pmapRss sums pmap -X's Rss column (KiB) per mapping start address.
func pmapRss(t *testing.T, pid int) map[uint64]int64 {
	t.Helper()
	out, err := exec.Command("pmap", "-X", strconv.Itoa(pid)).Output()
	if err != nil {
		t.Fatalf("pmap -X: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	rssCol := -1
	m := map[uint64]int64{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if rssCol < 0 {
			for i, h := range f {
				if h == "Rss" {
					rssCol = i
				}
			}
			continue
		}
		if len(f) <= rssCol {
			continue
		}
		addr, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			continue
		}
		kb, err := strconv.ParseInt(f[rssCol], 10, 64)
		if err != nil {
			t.Fatalf("pmap line %q: %v", sc.Text(), err)
		}
		m[addr] = kb << 10
	}
	if rssCol < 0 {
		t.Fatalf("pmap -X printed no Rss column:\n%s", out)
	}
	return m
}

// A lingering run's per-stack figures agree with pmap -X, a tool nobody
// here wrote, for every stack mapping.
func TestPmapAgrees(t *testing.T) {
	if _, err := exec.LookPath("pmap"); err != nil {
		t.Skip("pmap not installed (procps)")
	}
	out := filepath.Join(t.TempDir(), "linger")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--workload=touch", "--stack=16MiB", "--depth=4KiB,64KiB,1MiB,4097B", "--tasks=8",
			"--guard=mprotect", "--linger=1m", "--out=" + out}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "lingering pid=") {
		if time.Now().After(deadline) {
			t.Fatalf("no linger message; stderr %q", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stacks := readCSV(t, filepath.Join(out, "stacks.csv"))[1:]
	samples := readCSV(t, filepath.Join(out, "samples.csv"))[1:]
	last := samples[len(samples)-len(stacks):]
	pm := pmapRss(t, os.Getpid())
	for i, row := range stacks {
		base, err := strconv.ParseUint(strings.TrimPrefix(row[2], "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := strconv.ParseUint(row[3], 10, 64)
		var rss int64
		mappings := 0
		for addr, r := range pm {
			if addr >= base && addr < base+size {
				rss += r
				mappings++
			}
		}
		want, _ := strconv.ParseInt(last[i][5], 10, 64)
		if mappings != 2 || rss != want {
			t.Errorf("stack %d at %#x: pmap shows %d bytes in %d mappings, stackprobe reported %d", i, base, rss, mappings, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
