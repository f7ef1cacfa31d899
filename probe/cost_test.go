package probe

import (
	"context"
	"math"
	"strings"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// costOf on fabricated counts: 4 stacks of 300 MiB side by side from
// 1 GiB - 300 MiB: stack 0 in GiB 0, stacks 1-3 in GiB 1, all in the
// first PUD block.
func TestCostOf(t *testing.T) {
	const gib = 1 << 30
	start := uint64(gib - 300*mib)
	ranges := make([]procread.PageRange, 4)
	for i := range ranges {
		ranges[i] = procread.PageRange{Start: start + uint64(i)*300*mib, End: start + uint64(i+1)*300*mib}
	}
	// Stacks 0-2 hold entries; stack 3 holds nothing, so it adds no PMD
	// page.
	counts := []procread.PageCounts{
		{ResidentBytes: 16 << 10, PTEBlocks: 1},
		{ResidentBytes: 16 << 10, PTEBlocks: 1},
		{ResidentBytes: 20 << 10, PTEBlocks: 2},
		{},
	}
	obj := int64(192)
	c := costOf(ranges, counts, costInputs{pageSize: 4096, depth: 16 << 10, vmaDelta: 8, vmPTEDelta: 8 * 4096, vmaObject: &obj})
	pt := c.PageTables
	// PTE pages 4; PMD pages 2 (GiB 0 and GiB 1); PUD pages 1.
	if pt.PTEPages != 4 || pt.PMDPages != 2 || pt.PUDPages != 1 || pt.TotalBytes != 7*4096 {
		t.Errorf("page tables %+v, want 4 PTE, 2 PMD, 1 PUD pages, %d bytes", pt, 7*4096)
	}
	if pt.PTEBytes != 4096 || pt.PMDShareBytes != 2048 || pt.PUDShareBytes != 1024 || pt.PerStackBytes != 7168 {
		t.Errorf("per stack %+v, want 4096 + 2048 + 1024 = 7168", pt)
	}
	if c.ResidentBytes != 13<<10 || c.VMAsPerStack != 2 || c.KernelBytes == nil || *c.KernelBytes != 384 {
		t.Errorf("resident %d, VMAs %v, kernel %v; want 13 KiB, 2, 384", c.ResidentBytes, c.VMAsPerStack, c.KernelBytes)
	}
	if c.TotalBytes != 13<<10+7168+384 || c.KernelMissing != "" {
		t.Errorf("total %d (missing %q), want %d", c.TotalBytes, c.KernelMissing, 13<<10+7168+384)
	}
	if c.AttributedOverDelta == nil || *c.AttributedOverDelta != 7.0/8 {
		t.Errorf("attributed/delta %v, want 0.875", c.AttributedOverDelta)
	}
	c = costOf(ranges, counts, costInputs{pageSize: 4096, vmaDelta: 8, slabMissing: "root only"})
	if c.KernelBytes != nil || c.VMAObjectBytes != nil || c.KernelMissing != "root only" || c.TotalBytes != 13<<10+7168 {
		t.Errorf("without slabinfo: kernel %v, missing %q, total %d", c.KernelBytes, c.KernelMissing, c.TotalBytes)
	}
	if c.AttributedOverDelta != nil {
		t.Errorf("no VmPTE growth, yet attributed/delta %v", *c.AttributedOverDelta)
	}
	// Page tables the method could not count are left out, not summed
	// as what it saw.
	c = costOf(ranges, counts, costInputs{pageSize: 4096, vmaDelta: 8, vmPTEDelta: 8 * 4096, vmaObject: &obj, ptMissing: "mincore only"})
	if c.PageTables != nil || c.PageTablesMissing != "mincore only" || c.AttributedOverDelta != nil || c.TotalBytes != 13<<10+384 {
		t.Errorf("page tables not measured: %+v (missing %q), attributed %v, total %d; want absent, total %d",
			c.PageTables, c.PageTablesMissing, c.AttributedOverDelta, c.TotalBytes, 13<<10+384)
	}
}

// The page tables are counted from page-table entries whatever the run's
// --residency: with mincore, which sees resident pages only, Cost reads a
// fresh PAGEMAP_SCAN, so the PTE page holding each madvise guard's markers
// is counted as with the scan (two PTE pages per 8 MiB stack used to
// 16 KiB: its top and its guard).
func TestCostPageTablesWithMincore(t *testing.T) {
	skipUnlessGuardMadvise(t)
	const n = 8
	for _, guard := range []mmapstack.Guard{mmapstack.GuardMadvise, mmapstack.GuardMprotect} {
		want := n
		if guard == mmapstack.GuardMadvise {
			want = 2 * n
		}
		for _, method := range []procread.Method{procread.MethodScan, procread.MethodMincore} {
			cfg := touchConfig(n, 16<<10)
			cfg.StackBytes, cfg.Guard, cfg.Residency = 8*mib, guard, method
			res, err := runOnce(context.Background(), cfg, Env{})
			if err != nil {
				t.Fatal(err)
			}
			c := res.Cost
			switch pm, err := procread.OpenPagemap("", 0, procread.MethodScan); {
			case err != nil:
				t.Fatal(err)
			case guard == mmapstack.GuardMadvise && pm.Known()&procread.ClassGuard == 0:
				pm.Close()
				if c.PageTables != nil || c.PageTablesMissing == "" {
					t.Errorf("%s, %s: page tables %+v without seeing guard markers, want left out", guard, method, c.PageTables)
				}
				continue
			default:
				pm.Close()
			}
			if c.PageTables == nil || c.PageTables.PTEPages != want || c.ResidentBytes != 16<<10 {
				t.Errorf("%s, %s: page tables %+v (missing %q), resident %d; want %d PTE pages, 16 KiB resident",
					guard, method, c.PageTables, c.PageTablesMissing, c.ResidentBytes, want)
			}
		}
	}
}

// Where no page-table scan can run, a mincore run's cost leaves the page
// tables out and says why; residency still comes from mincore.
func TestCostPagemapWithoutScan(t *testing.T) {
	own, err := procread.OpenPagemap("", 0, procread.MethodMincore)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	r := &Run{env: Env{ProcRoot: t.TempDir()}, cfg: touchConfig(1, 4096)}
	pm, missing, err := r.costPagemap(own)
	if err != nil || pm != own || !strings.HasPrefix(missing, "mincore sees resident pages only and no page-table scan could run: ") {
		t.Errorf("pagemap %v (own %v), missing %q, err %v; want the run's mincore and the page tables missing", pm, own, missing, err)
	}
	r.env.ProcRoot = "/proc"
	pm, missing, err = r.costPagemap(own)
	if err != nil || pm == own || pm.Method() == procread.MethodMincore || missing != "" {
		t.Errorf("pagemap %v, missing %q, err %v; want a fresh scan", pm, missing, err)
	}
	if pm != nil && pm != own {
		pm.Close()
	}
}

// A touch run whose depths are not ascending: the cost records the last
// step's depth and the deepest, whose pages the stacks still hold.
func TestCostDepths(t *testing.T) {
	res, err := runOnce(context.Background(), touchConfig(2, 64<<10, 4096), Env{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Cost
	if c == nil || c.DepthBytes != 4096 || c.HighWaterBytes != 64<<10 || c.ResidentBytes != 64<<10 {
		t.Fatalf("cost %+v: want last step 4096, deepest 65536, 64 KiB resident per stack", c)
	}
}

// TestCostPageTables is issue 14's acceptance check: 1,000 stacks of
// 100 MiB touched to 16 KiB with an mprotect guard need one PTE page each
// plus their share of the PMD pages (one per GiB spanned), within 2%, and
// the attribution matches the process's VmPTE growth within 5% (the Go
// runtime's own page tables may grow meanwhile).
func TestCostPageTables(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 300
	}
	cfg := touchConfig(n, 16<<10)
	r, err := Start(context.Background(), cfg, Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Measure(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := r.Cost()
	if err != nil {
		t.Fatal(err)
	}
	if r.res.Cost == nil || *r.res.Cost != c {
		t.Error("Cost not recorded in the Result")
	}
	page := int64(mmapstack.PageSize())
	pt := c.PageTables
	if c.Stacks != n || c.DepthBytes != 16<<10 || c.ResidentBytes != 4*page {
		t.Errorf("%d stacks at depth %d hold %d bytes each; want %d at 16 KiB holding %d", c.Stacks, c.DepthBytes, c.ResidentBytes, n, 4*page)
	}
	if pt.PTEPages != n {
		t.Errorf("%d PTE pages for %d stacks whose 16 KiB tops are 100 MiB apart", pt.PTEPages, n)
	}
	// The stacks span n × 100 MiB: about that many GiB, plus one or two
	// partly used at the ends.
	span := float64(n) * 100 * mib / (1 << 30)
	if f := float64(pt.PMDPages); f < span || f > span+2 {
		t.Errorf("%d PMD pages for %.1f GiB of stacks", pt.PMDPages, span)
	}
	want := float64(page) + float64(pt.PMDPages)*float64(page)/float64(n)
	if got := float64(pt.PTEBytes + pt.PMDShareBytes); math.Abs(got-want)/want > 0.02 {
		t.Errorf("PTE + PMD share per stack %v bytes, want %v within 2%%", got, want)
	}
	if c.AttributedOverDelta == nil || math.Abs(*c.AttributedOverDelta-1) > 0.05 {
		t.Errorf("attributed %d bytes of page tables, VmPTE grew %d: want within 5%%", pt.TotalBytes, c.VmPTEDeltaBytes)
	}
	if c.VMAsPerStack < 2 || c.VMAsPerStack > 2.01 {
		t.Errorf("%v VMAs per stack with mprotect guards, want 2", c.VMAsPerStack)
	}
	if c.KernelBytes == nil {
		t.Logf("kernel VMA cost left out: %s", c.KernelMissing)
	} else if *c.KernelBytes != int64(math.Round(c.VMAsPerStack*float64(*c.VMAObjectBytes))) {
		t.Errorf("kernel bytes %d, VMAs %v × %d", *c.KernelBytes, c.VMAsPerStack, *c.VMAObjectBytes)
	}
	var kernel int64
	if c.KernelBytes != nil {
		kernel = *c.KernelBytes
	}
	if c.TotalBytes != c.ResidentBytes+pt.PerStackBytes+kernel {
		t.Errorf("total %d != %d + %d + %d", c.TotalBytes, c.ResidentBytes, pt.PerStackBytes, kernel)
	}
	t.Logf("%d stacks: %+v; kernel %d (%s); VmPTE delta %d, attributed/delta %.4f",
		n, pt, kernel, c.KernelMissing, c.VmPTEDeltaBytes, *c.AttributedOverDelta)
}
