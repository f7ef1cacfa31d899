package probe

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"stackprobe/mmapstack"
)

const mib = 1 << 20

func touchConfig(tasks int, depths ...int64) Config {
	return Config{
		Workload:     WorkloadTouch,
		StackBytes:   100 * mib,
		GuardBytes:   int64(mmapstack.PageSize()),
		Depths:       depths,
		Tasks:        tasks,
		Guard:        mmapstack.GuardMprotect,
		THP:          mmapstack.THPNoHuge,
		MapStack:     true,
		KeepTopBytes: int64(mmapstack.PageSize()),
	}
}

type memRecorder struct {
	infos   []StackInfo
	samples int
	rows    int
}

func (m *memRecorder) Begin(s []StackInfo) error { m.infos = s; return nil }
func (m *memRecorder) Record(s *Sample) error    { m.samples++; m.rows += len(s.Stacks); return nil }

// The seed's claim, checked to the page: with base pages only, a stack used
// to depth d holds exactly ceil(d/4096) pages.
func TestTouchExactPages(t *testing.T) {
	depths := []int64{1, 4096, 4097, 64 << 10, 1 * mib, 8 * mib}
	wantPages := []int64{1, 1, 2, 16, 256, 2048}
	for _, guard := range []mmapstack.Guard{mmapstack.GuardMprotect, mmapstack.GuardNone} {
		t.Run(guard.String(), func(t *testing.T) {
			cfg := touchConfig(8, depths...)
			cfg.Guard = guard
			rec := &memRecorder{}
			res, err := runOnce(context.Background(), cfg, Env{Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows()) != len(depths) || rec.samples != len(depths) || rec.rows != 8*len(depths) || len(rec.infos) != 8 {
				t.Fatalf("%d depths, %d samples, %d rows, %d stacks recorded", len(res.Rows()), rec.samples, rec.rows, len(rec.infos))
			}
			page := int64(mmapstack.PageSize())
			for i, d := range res.Rows() {
				want := wantPages[i] * page
				if d.ExpectedRSSBytes != want || d.RSSBytesMin != want || d.RSSBytesMax != want || d.Matched != 8 {
					t.Errorf("depth %d: expected %d min %d max %d matched %d; want %d for all 8",
						d.DepthBytes, d.ExpectedRSSBytes, d.RSSBytesMin, d.RSSBytesMax, d.Matched, want)
				}
				if !d.Smaps.Agree || d.Smaps.OwnVMAStacks+d.Smaps.Groups == 0 {
					t.Errorf("depth %d: smaps check %+v", d.DepthBytes, d.Smaps)
				}
				if d.AnonHugeBytesTotal != 0 {
					t.Errorf("depth %d: %d bytes of huge pages with thp=nohuge", d.DepthBytes, d.AnonHugeBytesTotal)
				}
			}
			last := res.Rows()[len(res.Rows())-1]
			if guard == mmapstack.GuardMprotect && (last.Smaps.OwnVMAStacks != 8 || last.Smaps.VMAs != 16) {
				t.Errorf("guard mprotect: %d own-VMA stacks over %d VMAs, want 8 over 16", last.Smaps.OwnVMAStacks, last.Smaps.VMAs)
			}
			if last.VmPTEBytes <= res.Baseline.VmPTE {
				t.Errorf("VmPTE %d did not grow from %d", last.VmPTEBytes, res.Baseline.VmPTE)
			}
		})
	}
}

// A shallower step after a deep one keeps the high-water mark unless the
// stack releases its pages.
func TestHighWaterAndRelease(t *testing.T) {
	page := int64(mmapstack.PageSize())
	for _, c := range []struct {
		release mmapstack.Release
		want    int64 // resident bytes per stack after the 4 KiB step
	}{
		{mmapstack.ReleaseNone, 1 * mib},
		{mmapstack.ReleaseDontneed, page},
	} {
		cfg := touchConfig(4, 1*mib, 4096)
		cfg.Release = c.release
		res, err := runOnce(context.Background(), cfg, Env{})
		if err != nil {
			t.Fatal(err)
		}
		d := res.Rows()[1]
		if d.RSSBytesMin != c.want || d.RSSBytesMax != c.want || d.MatchedAfterRelease != 4 {
			t.Errorf("release %v: %d..%d bytes per stack (after-release matches %d), want %d",
				c.release, d.RSSBytesMin, d.RSSBytesMax, d.MatchedAfterRelease, c.want)
		}
	}
}

func TestHugePagesShowTwoMiB(t *testing.T) {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(b), "[never]") {
		t.Skip("transparent huge pages unavailable or disabled (enabled=never)")
	}
	if p := mmapstack.PageSize(); p != 4096 {
		t.Skipf("the page is %d bytes, not 4096: a huge page is not 512 pages here", p)
	}
	cfg := touchConfig(4, 1)
	cfg.THP, cfg.MapStack = mmapstack.THPHuge, false
	res, err := runOnce(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if res.TopsAligned2M < 4 {
		t.Skipf("only %d of 4 stack tops are 2 MiB aligned: the kernel did not align these mappings, so no huge page can back them", res.TopsAligned2M)
	}
	d := res.Rows()[0]
	if d.RSSBytesMin != 2*mib || d.RSSBytesMax != 2*mib || d.AnonHugeBytesTotal != 4*2*mib || d.Matched != 0 {
		t.Errorf("1-byte touch with MADV_HUGEPAGE: %d..%d per stack, AnonHugePages %d, matched %d; want 2 MiB each, 8 MiB huge, 0 matched",
			d.RSSBytesMin, d.RSSBytesMax, d.AnonHugeBytesTotal, d.Matched)
	}
}

func TestCancelledRunIsPartial(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, touchConfig(2, 4096, 8192, 16384), Env{Recorder: cancelAfterFirst{cancel}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Measure(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a cancellation", err)
	}
	done, total := r.Progress()
	if !res.Partial || len(res.Rows()) != 1 || done != 1 || total != 3 {
		t.Fatalf("partial=%v depths=%d progress=%d of %d, want partial with 1 of 3 depths", res.Partial, len(res.Rows()), done, total)
	}
}

// cancelAfterFirst cancels the run as soon as its first step is recorded.
type cancelAfterFirst struct{ cancel context.CancelFunc }

func (cancelAfterFirst) Begin([]StackInfo) error { return nil }
func (c cancelAfterFirst) Record(*Sample) error {
	c.cancel()
	return nil
}

func TestCheckGuards(t *testing.T) {
	for _, c := range CheckGuards() {
		switch c.Guard {
		case mmapstack.GuardMprotect:
			if !c.Faulted || c.FaultAddr != c.Target || c.Corrupted {
				t.Errorf("mprotect: %+v, want a caught fault at the target", c)
			}
		case mmapstack.GuardMadvise:
			if strings.Contains(c.Detail, "could not set up") {
				t.Logf("madvise guard unsupported here: %s", c.Detail)
				continue
			}
			if !c.Faulted || c.FaultAddr != c.Target {
				t.Errorf("madvise: %+v, want a caught fault at the target", c)
			}
		case mmapstack.GuardNone:
			if c.Faulted || !c.Corrupted {
				t.Errorf("none: %+v, want a silent write into the stack below", c)
			}
		}
	}
}

// A /proc without smaps (a container, hidepid, gVisor) ends the run with
// an error naming the file, never with zeros reported as measurements.
func TestMissingSmapsIsNamed(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(root+"/self", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"status", "stat", "maps"} {
		b, err := os.ReadFile("/proc/self/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+"/self/"+f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Without a pagemap nothing can be measured: the run does not start.
	if _, err := runOnce(context.Background(), touchConfig(2, 4096), Env{ProcRoot: root}); err == nil || !strings.Contains(err.Error(), root+"/self/pagemap") {
		t.Fatalf("without pagemap: err = %v, want one naming %s/self/pagemap", err, root)
	}
	if err := os.Symlink("/proc/self/pagemap", root+"/self/pagemap"); err != nil {
		t.Fatal(err)
	}
	res, err := runOnce(context.Background(), touchConfig(2, 4096), Env{ProcRoot: root})
	if err == nil || !strings.Contains(err.Error(), root+"/self/smaps") {
		t.Fatalf("err = %v, want one naming %s/self/smaps", err, root)
	}
	if res == nil || !res.Partial || len(res.Rows()) != 0 {
		t.Fatalf("result %+v, want a partial result with no depth", res)
	}
	if len(res.Environment.Missing) == 0 {
		t.Error("system facts that could not be read are not listed as missing")
	}
}

// TestRunLanes checks that the run records how many walks its final
// measurement ran at once: one for a few stacks, two for 1100 (512 stacks
// a lane at the least), and that the split changes no figure.
func TestRunLanes(t *testing.T) {
	for _, c := range []struct{ tasks, lanes int }{{8, 1}, {1100, 2}} {
		cfg := touchConfig(c.tasks, 8<<10)
		cfg.StackBytes = 64 << 10
		res, err := runOnce(context.Background(), cfg, Env{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Residency.Lanes != c.lanes {
			t.Errorf("%d stacks: final measurement on %d lanes, want %d", c.tasks, res.Residency.Lanes, c.lanes)
		}
		last := res.Rows()[len(res.Rows())-1]
		if want := int64(c.tasks) * 8 << 10; last.RSSBytesTotal != want || last.Matched != c.tasks || !last.Smaps.Agree {
			t.Errorf("%d stacks: %d resident bytes (want %d), %d matched, smaps %+v", c.tasks, last.RSSBytesTotal, want, last.Matched, last.Smaps)
		}
		if cc := res.Residency.CrossCheck; cc == nil || !cc.Agree || cc.Stacks != c.tasks {
			t.Errorf("%d stacks: cross-check %+v", c.tasks, cc)
		}
	}
}
