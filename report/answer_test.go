package report

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/probe"
)

// costResult is a touch run of 1000 stacks of 100 MiB with mprotect guards
// used to 16 KiB, with the cost measured here for it: 20.8 KiB per stack,
// on a machine with 20 GiB available.
func costResult() *probe.Result {
	r := touchResult(1000, mmapstack.ReleaseNone, step(1000, 16*kib, 16*kib, 16*kib, 16*kib, 16*kib))
	r.Config.Guard = mmapstack.GuardMprotect
	r.Environment.Kernel = "6.18.44"
	r.Environment.MemAvailable = 20 << 30
	r.Baseline.VMAs = 58
	obj, kernel, ratio := int64(192), int64(384), 0.9973
	r.Cost = &probe.Cost{
		Stacks: 1000, DepthBytes: 16 * kib, ResidentBytes: 16 * kib,
		PageTables: &probe.PageTableCost{PTEPages: 1000, PMDPages: 98, PUDPages: 2, TotalBytes: 1100 * 4096,
			PTEBytes: 4096, PMDShareBytes: 401, PUDShareBytes: 8, PerStackBytes: 4506},
		VMAsPerStack: 2, VMAObjectBytes: &obj, KernelBytes: &kernel,
		TotalBytes: 16*kib + 4506 + 384, VmPTEDeltaBytes: 4517888, AttributedOverDelta: &ratio,
	}
	return r
}

func TestAnswer(t *testing.T) {
	r := costResult()
	want := []string{
		"At depth 16 KiB a coroutine on a 100 MiB (104857600-byte) lazy stack with guard mprotect holds 20.8 KiB " +
			"(16 KiB resident + 4506 B page tables + 384 B kernel: 2 VMAs of 192 B), measured over 1000 stacks; " +
			"the page tables are 4 KiB of PTE pages + 401 B of PMD + 8 B of PUD share (99.7% of the process's VmPTE growth)",
		// 20 GiB / 21274 B = 1009440.5
		"1009440 such coroutines fit in this machine's memory (MemAvailable 20 GiB at the start of the run)",
		// (65530 - 58) / 2
		"The binding limit is vm.max_map_count: 32736 stacks (65530, 2 VMAs per stack (guard mprotect), 58 VMAs in use), before memory's 1009440",
	}
	if got := Answer(r); !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}

	// Guard none: the stacks merge, memory binds; the runner-up is named.
	r.Config.Guard = mmapstack.GuardNone
	r.Environment.MemAvailable = 1 << 30
	got := Answer(r)
	if len(got) != 3 || got[2] != "The binding limit is memory: 50472 stacks, before address space at 1342177" {
		t.Errorf("guard none, 1 GiB: %q", got)
	}

	// No slabinfo: the kernel part is left out with its reason.
	r.Cost.KernelBytes, r.Cost.VMAObjectBytes, r.Cost.KernelMissing = nil, nil, "/proc/slabinfo is readable by root only"
	has(t, Answer(r), "(16 KiB resident + 4506 B page tables); the kernel's VMA cost (2 VMAs per stack) is left out: /proc/slabinfo is readable by root only")

	// Nothing to fit against.
	r.Environment.MemAvailable = 0
	has(t, Answer(r), "How many fit in memory is left out: neither MemAvailable nor a cgroup limit was read")

	// No cost measured: said, not zero.
	r.Cost = nil
	if got := Answer(r); len(got) != 1 || got[0] != "The cost per coroutine on a 100 MiB (104857600-byte) lazy stack with guard none was not measured in this run, so neither is how many fit" {
		t.Errorf("no cost: %q", got)
	}
}

// Upper-level pages that predate the stacks are attributed to them by
// address: a ratio above 1 says so rather than read as a share.
func TestAnswerAttributedOverGrowth(t *testing.T) {
	r := costResult()
	ratio := 1.25
	r.Cost.AttributedOverDelta = &ratio
	has(t, Answer(r), "(125.0% of the process's VmPTE growth: PMD and PUD pages count by address, also those that mapped other memory before the stacks)")
}

// When the depths are not ascending and the release keeps pages, the
// stacks hold the deepest step's pages: the answer names that depth, not
// the last step's.
func TestAnswerHighWaterDepth(t *testing.T) {
	r := costResult()
	r.Cost.DepthBytes, r.Cost.HighWaterBytes = 4*kib, mib
	const after = " a coroutine on a 100 MiB (104857600-byte) lazy stack with guard mprotect holds 20.8 KiB (16 KiB resident"
	for _, rel := range []mmapstack.Release{mmapstack.ReleaseNone, mmapstack.ReleaseFree} {
		r.Config.Release = rel
		if got := Answer(r)[0]; !strings.HasPrefix(got, "After depths up to 1 MiB (last step 4 KiB)"+after) {
			t.Errorf("release %s: %q", rel, got)
		}
	}
	// MADV_DONTNEED leaves the kept top after the last step: its depth.
	r.Config.Release = mmapstack.ReleaseDontneed
	if got := Answer(r)[0]; !strings.HasPrefix(got, "At depth 4 KiB"+after) {
		t.Errorf("release dontneed: %q", got)
	}
}

// Page tables that were not measured are left out of the cost, with the
// reason, and so is the fit in memory, which would count too many.
func TestAnswerPageTablesMissing(t *testing.T) {
	r := costResult()
	r.Cost.PageTables, r.Cost.AttributedOverDelta, r.Cost.TotalBytes = nil, nil, 16*kib+384
	r.Cost.PageTablesMissing = "mincore sees resident pages only and no page-table scan could run: open /proc/self/pagemap: permission denied"
	want := []string{
		"At depth 16 KiB a coroutine on a 100 MiB (104857600-byte) lazy stack with guard mprotect holds 16.4 KiB " +
			"(16 KiB resident + 384 B kernel: 2 VMAs of 192 B); the page tables are left out: mincore sees resident pages only and no page-table scan could run: open /proc/self/pagemap: permission denied, " +
			"measured over 1000 stacks",
		"How many fit in memory is left out: the page tables were not measured",
	}
	if got := Answer(r); !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestAnswerConnection(t *testing.T) {
	r := costResult()
	r.PingPong = &probe.PingPongResult{Clients: 100}
	has(t, Answer(r), "A connection's socket memory is left out: no look saw every connection open")
	mean, most := int64(2304), int64(4608)
	r.PingPong.SocketBytesPerConnection = probe.SocketBytes{MeanEnd: &mean, Max: &most, Looks: 12}
	got := Answer(r)
	if w := "A connection adds 2304 B of socket memory (its two sockets' SO_MEMINFO, mean over 100 connections at the last of 12 looks; at most 4608 B)"; got[len(got)-1] != w {
		t.Errorf("got %q, want %q", got[len(got)-1], w)
	}
	var b bytes.Buffer
	if err := WriteAnswer(&b, r); err != nil {
		t.Fatal(err)
	}
	contains(t, "answer block", b.String(), "## Answer\n\nAt depth 16 KiB", "at most 4608 B).\n\n")

	// A maximum that was not measured is left out, not shown as 0.
	r.PingPong.SocketBytesPerConnection.Max = nil
	got = Answer(r)
	if w := "A connection adds 2304 B of socket memory (its two sockets' SO_MEMINFO, mean over 100 connections at the last of 12 looks)"; got[len(got)-1] != w {
		t.Errorf("got %q, want %q", got[len(got)-1], w)
	}
}
