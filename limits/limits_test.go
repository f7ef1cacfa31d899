package limits

import (
	"math/rand/v2"
	"strings"
	"testing"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
)

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }

// machine is a fabricated amd64 machine like the team's: 24 GiB, no swap,
// heuristic overcommit, the default vm.max_map_count, no rlimits, a memory
// cgroup without a limit.
func machine() procread.System {
	return procread.System{
		Kernel:           "6.18.44-fc-v657",
		Arch:             "amd64",
		PageSize:         4096,
		OvercommitMemory: i64(0),
		OvercommitRatio:  i64(50),
		MaxMapCount:      i64(65530),
		CommitLimit:      12342044 * kib,
		CommittedAS:      66340 * kib,
		MemTotal:         24684092 * kib,
		CgroupVersion:    1,
	}
}

// process is a fabricated process: 58 VMAs, 1 GiB mapped, 100 MiB of data.
func process() Current {
	return Current{VMAs: 58, VmSizeBytes: 1 * gib, CommittedAS: 1 * gib, VmDataBytes: 100 * mib}
}

// limitNamed returns the limit of p called name.
func limitNamed(t *testing.T, p Prediction, name string) Limit {
	t.Helper()
	for _, l := range p.Limits {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no %q limit in %+v", name, p.Limits)
	return Limit{}
}

// TestPredictBinding has one case per limit that can bind. Each expected
// count is worked out by hand in the comment beside it.
func TestPredictBinding(t *testing.T) {
	cases := []struct {
		name    string
		sys     func(*procread.System)
		cur     func(*Current)
		stack   int64
		guard   mmapstack.Guard
		binding string
		max     int64
		usable  int64 // Max less the runtime's headroom; 0 means Max
	}{
		// (65530 - 58) / 2 VMAs per stack; usable: (65530 - 58 - 64) / 2.
		{name: "map count, guard mprotect", stack: 100 * mib, guard: mmapstack.GuardMprotect,
			binding: NameMapCount, max: 32736, usable: 32704},
		// An odd number of free VMAs leaves one unused.
		{name: "map count, odd free", cur: func(c *Current) { c.VMAs = 57 }, stack: 100 * mib,
			guard: mmapstack.GuardMprotect, binding: NameMapCount, max: 32736, usable: 32704},
		// The headroom alone: 2000 - 60 = 1940 free VMAs, 970 stacks the
		// kernel allows, (1940 - 64) / 2 = 938 a run may use.
		{name: "map count 2000", sys: func(s *procread.System) { s.MaxMapCount = i64(2000) },
			cur: func(c *Current) { c.VMAs = 60 }, stack: 100 * mib, guard: mmapstack.GuardMprotect,
			binding: NameMapCount, max: 970, usable: 938},
		{name: "map count already exceeded", sys: func(s *procread.System) { s.MaxMapCount = i64(30) },
			stack: 100 * mib, guard: mmapstack.GuardMprotect, binding: NameMapCount, max: 0},
		// Merging stacks leave the 128 TiB address space: (2^47 - 4096 - 1 GiB) / 100 MiB.
		{name: "guard none merges", stack: 100 * mib, guard: mmapstack.GuardNone,
			binding: NameAddressSpace, max: 1342167},
		// Strict overcommit, CommitLimit 4 GiB, Committed_AS 1 GiB, user
		// reserve 128 MiB: 1 GiB + 28*(100 MiB - 4 KiB) + 100 MiB + 128 MiB
		// < 4 GiB, one more is not.
		{name: "overcommit 2, guard mprotect",
			sys:   func(s *procread.System) { s.OvercommitMemory, s.CommitLimit = i64(2), 4*gib },
			stack: 100 * mib, guard: mmapstack.GuardMprotect, binding: NameOvercommit, max: 29},
		// A small process keeps back VmSize/32, not the whole reserve:
		// 1 GiB + 9*100 MiB + (64 MiB + 8*100 MiB)/32 < 2 GiB.
		{name: "overcommit 2, small process",
			sys:   func(s *procread.System) { s.OvercommitMemory, s.CommitLimit = i64(2), 2*gib },
			cur:   func(c *Current) { c.VmSizeBytes = 64 * mib; c.UserReserveBytes = u64(128 * mib) },
			stack: 100 * mib, guard: mmapstack.GuardNone, binding: NameOvercommit, max: 9},
		{name: "overcommit 2, committed past the limit",
			sys:   func(s *procread.System) { s.OvercommitMemory, s.CommitLimit = i64(2), 512*mib },
			stack: 100 * mib, guard: mmapstack.GuardMprotect, binding: NameOvercommit, max: 0},
		// (8 GiB - 1 GiB) / 100 MiB = 71.68.
		{name: "RLIMIT_AS", sys: func(s *procread.System) { s.RlimitAS = u64(8 * gib) },
			stack: 100 * mib, guard: mmapstack.GuardMprotect, binding: NameRlimitAS, max: 71},
		// 1 + (2 GiB - 100 MiB - 100 MiB) / (100 MiB - 4 KiB) = 1 + 18.48.
		{name: "RLIMIT_DATA", cur: func(c *Current) { c.RlimitData = u64(2 * gib) },
			stack: 100 * mib, guard: mmapstack.GuardMprotect, binding: NameRlimitData, max: 19},
		{name: "RLIMIT_DATA below one stack", cur: func(c *Current) { c.RlimitData = u64(150 * mib) },
			stack: 100 * mib, guard: mmapstack.GuardNone, binding: NameRlimitData, max: 0},
		// (2^47 - 4096 - 1 GiB) / 1 TiB.
		{name: "address space", stack: 1 * tib, guard: mmapstack.GuardMprotect,
			binding: NameAddressSpace, max: 127},
		// Mode 0 does not refuse one MAP_NORESERVE mapping larger than RAM.
		{name: "one stack larger than RAM, overcommit 0", stack: 64 * gib, guard: mmapstack.GuardNone,
			binding: NameAddressSpace, max: 2047},
		{name: "madvise on an old kernel", sys: func(s *procread.System) { s.Kernel = "6.6.30-generic" },
			stack: 100 * mib, guard: mmapstack.GuardMadvise, binding: NameGuardSupport, max: 0},
		// 2 MiB stacks, one 4 KiB PTE page each plus 1/512 of a PMD page
		// (and a sliver of a PUD page): 4105 bytes against 24684092 KiB.
		{name: "madvise page tables", stack: 2 * mib, guard: mmapstack.GuardMadvise,
			binding: NamePageTables, max: 6157493},
		// (1 GiB - 100 MiB) / 4105 bytes.
		{name: "madvise page tables in a cgroup",
			sys: func(s *procread.System) {
				s.CgroupMemoryMax, s.CgroupMemoryCurrent = u64(1*gib), u64(100*mib)
			},
			stack: 2 * mib, guard: mmapstack.GuardMadvise, binding: NameCgroup, max: 236025},
		{name: "stack of one page with a guard", stack: 4096, guard: mmapstack.GuardMprotect,
			binding: NameStackSize, max: 0},
		{name: "zero stack", stack: 0, guard: mmapstack.GuardNone, binding: NameStackSize, max: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sys, cur := machine(), process()
			if c.sys != nil {
				c.sys(&sys)
			}
			if c.cur != nil {
				c.cur(&cur)
			}
			p := Predict(sys, cur, c.stack, c.guard)
			if p.Binding.Name != c.binding || p.Max != c.max || p.Binding.Max != p.Max {
				t.Errorf("binding %q max %d (binding max %d), want %q %d\nlimits: %+v",
					p.Binding.Name, p.Max, p.Binding.Max, c.binding, c.max, p.Limits)
			}
			usable := c.usable
			if usable == 0 {
				usable = c.max
			}
			if p.Usable != usable || p.UsableBinding.Max != usable || p.HeadroomVMAs != RuntimeHeadroomVMAs {
				t.Errorf("usable %d (%+v), headroom %d; want %d, %d", p.Usable, p.UsableBinding, p.HeadroomVMAs, usable, RuntimeHeadroomVMAs)
			}
			if usable != c.max && (p.UsableBinding.Name != NameMapCount || !strings.Contains(p.UsableBinding.Detail, "64 kept for the Go runtime")) {
				t.Errorf("usable binding %+v, want the map count with the headroom named", p.UsableBinding)
			}
			n, l := MaxTasks(sys, cur, c.stack, c.guard)
			if n != p.Usable || l != p.UsableBinding {
				t.Errorf("MaxTasks = %d, %+v; Predict says usable %d, %+v", n, l, p.Usable, p.UsableBinding)
			}
		})
	}
}

func TestPredictMapCountPerGuard(t *testing.T) {
	for _, g := range []mmapstack.Guard{mmapstack.GuardMadvise, mmapstack.GuardNone} {
		p := Predict(machine(), process(), 100*mib, g)
		l := limitNamed(t, p, NameMapCount)
		if l.Bounded() || !strings.Contains(l.Detail, "merge") || !strings.Contains(l.Detail, "65472 stacks") {
			t.Errorf("guard %s: map count limit %+v, want unbounded with the merge explained and the worst case", g, l)
		}
	}
	p := Predict(machine(), process(), 100*mib, mmapstack.GuardMprotect)
	if l := limitNamed(t, p, NameMapCount); l.Detail != "65530, 2 VMAs per stack (guard mprotect), 58 VMAs in use" {
		t.Errorf("detail %q", l.Detail)
	}
}

func TestPredictOvercommitModes(t *testing.T) {
	for _, mode := range []int64{0, 1} {
		sys := machine()
		sys.OvercommitMemory = i64(mode)
		sys.CommitLimit = 1 * gib // would bind at once under mode 2
		l := limitNamed(t, Predict(sys, process(), 100*mib, mmapstack.GuardMprotect), NameOvercommit)
		if l.Bounded() {
			t.Errorf("mode %d: %+v, want unbounded: MAP_NORESERVE stacks are not charged", mode, l)
		}
	}
	// Under mode 2 the guard page is not charged: a guard-none stack
	// costs a page more, which shows once enough stacks add up. With
	// 1 MiB stacks, 1000 guarded ones fit exactly (the 1001st would bring
	// the charge to the limit, which the strict check refuses); without a
	// guard the 1000 spare pages are 3.9 stacks fewer.
	sys := machine()
	sys.OvercommitMemory, sys.CommitLimit = i64(2), 1*gib+128*mib+(1*mib-4096)*1000+1*mib
	cur := process()
	cur.UserReserveBytes = u64(128 * mib)
	cur.VmSizeBytes = 128 * gib // VmSize/32 is past the reserve from the start
	mp := limitNamed(t, Predict(sys, cur, 1*mib, mmapstack.GuardMprotect), NameOvercommit)
	none := limitNamed(t, Predict(sys, cur, 1*mib, mmapstack.GuardNone), NameOvercommit)
	// A MADV_GUARD_INSTALL guard page stays writable and charged.
	madv := limitNamed(t, Predict(sys, cur, 1*mib, mmapstack.GuardMadvise), NameOvercommit)
	if mp.Max != 1000 || none.Max != 997 || madv.Max != 997 {
		t.Errorf("mode 2: guard mprotect %d, none %d, madvise %d stacks; want 1000, 997, 997", mp.Max, none.Max, madv.Max)
	}
	// Not read: not counted.
	sys.OvercommitMemory = nil
	if l := limitNamed(t, Predict(sys, cur, 100*mib, mmapstack.GuardNone), NameOvercommit); l.Bounded() {
		t.Errorf("unknown mode: %+v", l)
	}
}

// TestCommitFit checks the bisection against reserving stacks one by one.
func TestCommitFit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		size := uint64(r.IntN(64)+1) * 4096 * uint64(r.IntN(4096)+1)
		kept := size - 4096*uint64(r.IntN(2))
		limit := uint64(r.Int64N(64 * gib))
		committed := uint64(r.Int64N(8 * gib))
		reserve := uint64(r.Int64N(256 * mib))
		vm := uint64(r.Int64N(64 * gib))
		want := int64(0)
		for i := uint64(1); kept > 0; i++ {
			if committed+(i-1)*kept+size+min((vm+(i-1)*size)/32, reserve) >= limit {
				break
			}
			want++
		}
		if got := commitFit(limit, committed, reserve, vm, size, kept); got != want {
			t.Fatalf("commitFit(%d, %d, %d, %d, %d, %d) = %d, want %d", limit, committed, reserve, vm, size, kept, got, want)
		}
	}
}

func TestPredictCgroupNeverBindsReservations(t *testing.T) {
	sys := machine()
	sys.CgroupMemoryMax, sys.CgroupMemoryCurrent = u64(64*mib), u64(63*mib)
	for _, g := range []mmapstack.Guard{mmapstack.GuardMprotect, mmapstack.GuardNone} {
		p := Predict(sys, process(), 100*mib, g)
		l := limitNamed(t, p, NameCgroup)
		if l.Bounded() || !strings.Contains(l.Detail, "not the reserved bytes") {
			t.Errorf("guard %s: cgroup limit %+v, want unbounded and explained", g, l)
		}
		if p.Binding.Name == NameCgroup {
			t.Errorf("guard %s: cgroup binds", g)
		}
	}
}

func TestPredictUnknownFacts(t *testing.T) {
	sys := procread.System{PageSize: 4096, Arch: "amd64"} // nothing read
	p := Predict(sys, Current{}, 100*mib, mmapstack.GuardMprotect)
	for _, l := range p.Limits {
		if l.Name != NameAddressSpace && l.Bounded() {
			t.Errorf("%s bounded (%d) from unread facts", l.Name, l.Max)
		}
	}
	if p.Binding.Name != NameAddressSpace || p.Max != (1<<47-4096)/(100*mib) {
		t.Errorf("binding %+v", p.Binding)
	}
}

func TestPredictArm64AddressSpace(t *testing.T) {
	sys := machine()
	sys.Arch = "arm64"
	p := Predict(sys, Current{}, 1*tib, mmapstack.GuardNone)
	if p.Binding.Name != NameAddressSpace || p.Max != 255 {
		t.Errorf("arm64 with 48-bit addresses: %+v, want 255 stacks of 1 TiB", p.Binding)
	}
}

func TestPredictTieGoesToFirstListed(t *testing.T) {
	sys := machine()
	// RLIMIT_AS allowing exactly as many stacks as vm.max_map_count.
	sys.RlimitAS = u64(1*gib + 32736*100*mib + 50*mib)
	p := Predict(sys, process(), 100*mib, mmapstack.GuardMprotect)
	if p.Binding.Name != NameMapCount || limitNamed(t, p, NameRlimitAS).Max != 32736 {
		t.Errorf("binding %+v, RLIMIT_AS %+v", p.Binding, limitNamed(t, p, NameRlimitAS))
	}
}

func TestPageTableBytes(t *testing.T) {
	cases := []struct{ size, want int64 }{
		// Stacks 100 MiB apart: a PTE page each plus 100/1024 of a PMD
		// page. Measured: 20000 such stacks raised VmPTE by 4.39 KiB each.
		{100 * mib, 4497},
		{2 * mib, 4105},
		{4096 * 2, 17},        // 256 stacks share a PTE page
		{1 * tib, 3 * 4096},   // a PTE, a PMD and a PUD page each
		{1 * gib, 2*4096 + 8}, // a PTE and a PMD page, 1/512 of a PUD page
	}
	for _, c := range cases {
		if got := pageTableBytes(c.size, 4096); got != c.want {
			t.Errorf("pageTableBytes(%d) = %d, want %d", c.size, got, c.want)
		}
	}
}

func TestParseRelease(t *testing.T) {
	for s, want := range map[string][2]int{"6.18.44-fc-v657": {6, 18}, "6.13": {6, 13}, "5.4.0-150-generic": {5, 4}, "6.13-rc1": {6, 13}} {
		if got, ok := parseRelease(s); !ok || got != want {
			t.Errorf("parseRelease(%q) = %v, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "six", "6", "x.y"} {
		if _, ok := parseRelease(s); ok {
			t.Errorf("parseRelease(%q) accepted", s)
		}
	}
	// An unparsable release leaves the guard-support limit out.
	sys := machine()
	sys.Kernel = ""
	for _, l := range Predict(sys, process(), 100*mib, mmapstack.GuardMadvise).Limits {
		if l.Name == NameGuardSupport {
			t.Errorf("guard support judged from an empty release: %+v", l)
		}
	}
}
