package limits

import (
	"strings"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// perStack16K (21269 bytes; 20 GiB / 21269 = 1009677.2) is a calibration like the one measured here for 100 MiB
// stacks used to 16 KiB with an mprotect guard: 16 KiB resident, one PTE
// page plus 405 B of PMD/PUD share, 2 VMAs of 192 B.
func perStack16K() PerStack {
	k := int64(384)
	return PerStack{DepthBytes: 16 * kib, Stacks: 300, Resident: 16 * kib, PageTables: 4096 + 405, Kernel: &k, Total: 16*kib + 4501 + 384}
}

func TestFitMemory(t *testing.T) {
	per := perStack16K() // 21269 bytes
	f := FitMemory(per, 20*gib, procread.MemSourceAvailable)
	if want := int64(20 * gib / 21269); f.Stacks != want || f.MemoryBytes != 20*gib || f.Source != procread.MemSourceAvailable {
		t.Errorf("got %+v, want %d stacks in 20 GiB", f, want)
	}
	if f := FitMemory(PerStack{}, gib, SourceGiven); f.Stacks != 0 {
		t.Errorf("a zero cost fits %d stacks, want 0 (not measured)", f.Stacks)
	}
}

func TestMachineMemory(t *testing.T) {
	in := procread.LimitInputs{System: machine(), Usage: process()}
	in.System.MemAvailable = 20 * gib
	in.System.RlimitAS = u64(2 * gib) // an address-space limit: not memory
	b, src, ok := MachineMemory(in)
	if !ok || b != 20*gib || src != procread.MemSourceAvailable {
		t.Errorf("MemAvailable only: %d %q %v", b, src, ok)
	}
	in.System.CgroupVersion = 2
	in.System.CgroupMemoryMax, in.System.CgroupMemoryCurrent = u64(8*gib), u64(3*gib)
	if b, src, ok = MachineMemory(in); !ok || b != 5*gib || src != procread.MemSourceCgroupV2 {
		t.Errorf("cgroup 8 GiB, 3 used: %d %q %v; want 5 GiB from the cgroup", b, src, ok)
	}
	if _, _, ok := MachineMemory(procread.LimitInputs{}); ok {
		t.Error("nothing read, yet a memory figure")
	}
}

// TestWithMemory: the memory fit joins the limits and binds when it is the
// smallest; otherwise the old binding stays.
func TestWithMemory(t *testing.T) {
	per := perStack16K()
	p := Predict(machine(), process(), 100*mib, mmapstack.GuardMprotect) // map count binds: 32736
	small := p.WithMemory(per, FitMemory(per, 256*mib, SourceGiven))
	if small.Binding.Name != NameMemory || small.Max != int64(256*mib/21269) || small.Usable != small.Max {
		t.Errorf("256 MiB: binding %q max %d usable %d", small.Binding.Name, small.Max, small.Usable)
	}
	if l := limitNamed(t, small, NameMemory); !strings.Contains(l.Detail, "256 MiB (--memory)") {
		t.Errorf("detail %q", l.Detail)
	}
	if len(p.Limits) == len(small.Limits) {
		t.Error("WithMemory changed the original's limits")
	}
	big := p.WithMemory(per, FitMemory(per, 20*gib, procread.MemSourceAvailable))
	if big.Binding.Name != NameMapCount || big.Max != 32736 || big.Usable != 32704 {
		t.Errorf("20 GiB: binding %q max %d usable %d; want the map count's 32736/32704", big.Binding.Name, big.Max, big.Usable)
	}
	none := Predict(machine(), process(), 100*mib, mmapstack.GuardNone)
	if none.Binding.Name == NameMemory {
		t.Fatal("memory binds before it was added")
	}
	withMem := none.WithMemory(per, FitMemory(per, 20*gib, procread.MemSourceAvailable))
	if withMem.Binding.Name != NameMemory {
		t.Errorf("guard none, 20 GiB: binding %q (max %d), want memory", withMem.Binding.Name, withMem.Max)
	}
}

func TestWriteMemoryText(t *testing.T) {
	per := perStack16K()
	var b strings.Builder
	if err := WriteMemoryText(&b, per, FitMemory(per, 20*gib, procread.MemSourceAvailable)); err != nil {
		t.Fatal(err)
	}
	want := "Per coroutine used to 16 KiB: 20.8 KiB = resident 16 KiB + page tables 4501 B + kernel 384 B, measured on 300 stacks.\n" +
		"In memory: 1009677 stacks fit in 20 GiB (MemAvailable).\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	per.Kernel, per.KernelMissing, per.Total = nil, "/proc/slabinfo is readable by root only", 16*kib+4501
	b.Reset()
	_ = WriteMemoryText(&b, per, FitMemory(per, 20*gib, procread.MemSourceAvailable))
	if !strings.Contains(b.String(), "(kernel VMA cost left out: /proc/slabinfo is readable by root only)") {
		t.Errorf("missing kernel cost not said: %s", b.String())
	}
}
