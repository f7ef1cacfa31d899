package limits

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"stackprobe/mmapstack"
	"stackprobe/procread"
	"stackprobe/sizes"
)

// Names of the limits a Prediction lists, in the order it lists them.
const (
	NameStackSize    = "stack size"
	NameGuardSupport = "MADV_GUARD_INSTALL"
	NameMapCount     = "vm.max_map_count"
	NameOvercommit   = "vm.overcommit_memory"
	NameRlimitAS     = "RLIMIT_AS"
	NameRlimitData   = "RLIMIT_DATA"
	NameAddressSpace = "address space"
	NamePageTables   = "page tables"
	NameCgroup       = "cgroup memory.max"
	// NameNone is the Binding of a Prediction no limit bounds.
	NameNone = "none"
)

// Unbounded is the Max of a limit that does not bound the stack count.
const Unbounded = -1

// RuntimeHeadroomVMAs is how many VMAs a prediction keeps free for the
// mappings the Go runtime and the run itself make after the prediction is
// read: every new OS thread is a pthread stack plus its guard (2 VMAs) in
// a cgo binary, and heap arenas and spans that the runtime maps or changes
// add more. Measured on Linux 6.18 from the limit check to the end of a
// run: 20 VMAs for a ping-pong of 100 clients, 27 for 1000 and 2000
// clients (with 2 VMAs per stack taken out), 1 for a touch run of 1000
// stacks. Kept at more than twice the largest: a run holding all but a
// few VMAs of vm.max_map_count dies in pthread_create.
const RuntimeHeadroomVMAs = 64

// defaultUserReserve is vm.user_reserve_kbytes at its cap (128 MiB), used
// when the sysctl could not be read.
const defaultUserReserve = 128 << 20

// The first Linux release with MADV_GUARD_INSTALL.
const (
	guardInstallMajor = 6
	guardInstallMinor = 13
)

// Limit is one kernel limit on the number of stacks.
type Limit struct {
	// Name says which limit, one of the Name constants.
	Name string `json:"name"`
	// Max is how many more stacks the limit allows, a count; Unbounded
	// (-1) when it does not bound them or could not be read.
	Max int64 `json:"max"`
	// Detail gives the figures the count was computed from, for people.
	Detail string `json:"detail"`
}

// Bounded reports whether the limit bounds the stack count.
func (l Limit) Bounded() bool { return l.Max >= 0 }

// MaxString is Max for people: the count, or "unbounded".
func (l Limit) MaxString() string {
	if !l.Bounded() {
		return "unbounded"
	}
	return strconv.FormatInt(l.Max, 10)
}

// Prediction is how many stacks of StackBytes the process can reserve
// with Guard, computed from the limits it read. It is a prediction: Verify
// tells what the kernel really allows.
type Prediction struct {
	// StackBytes is the size of one stack as asked for, bytes.
	StackBytes int64 `json:"stack_bytes"`
	// MappedBytes is StackBytes rounded up to whole pages: what one
	// reservation maps, bytes.
	MappedBytes int64 `json:"mapped_bytes"`
	// Guard is the guard mode of the stacks.
	Guard mmapstack.Guard `json:"guard"`
	// Limits lists every limit considered, bounded or not.
	Limits []Limit `json:"limits"`
	// Binding is the bounded limit with the smallest Max (the first listed
	// on a tie), or a Limit named NameNone when none is bounded.
	Binding Limit `json:"binding"`
	// Max is Binding.Max: the predicted number of stacks, or Unbounded.
	// It is what the kernel allows when nothing else maps meanwhile, the
	// count Verify checks.
	Max int64 `json:"max"`
	// HeadroomVMAs is the VMAs Usable keeps free for the Go runtime's own
	// mappings, a count: RuntimeHeadroomVMAs.
	HeadroomVMAs int64 `json:"runtime_headroom_vmas"`
	// Usable is how many stacks a run may hold: Max, less the stacks whose
	// VMAs HeadroomVMAs keeps for the runtime where vm.max_map_count
	// counts VMAs per stack (guard mprotect); Unbounded when nothing bounds
	// it. A run asking for more is refused up front.
	Usable int64 `json:"usable"`
	// UsableBinding is the limit that sets Usable: Binding, or the
	// vm.max_map_count limit with the headroom taken out.
	UsableBinding Limit `json:"usable_binding"`
}

// Predict computes how many more stacks of stackBytes this process can
// reserve with guard, given the machine facts sys and the process state
// cur. It reads nothing: every input is an argument.
func Predict(sys procread.System, cur Current, stackBytes int64, guard mmapstack.Guard) Prediction {
	page := int64(sys.PageSize)
	if page <= 0 {
		page = 4096
	}
	p := Prediction{StackBytes: stackBytes, Guard: guard, HeadroomVMAs: RuntimeHeadroomVMAs}
	if stackBytes <= 0 || stackBytes > sizes.MaxBytes {
		p.Limits = []Limit{{Name: NameStackSize, Max: 0,
			Detail: fmt.Sprintf("%d bytes is not a stack size (want 1 byte to 128 TiB)", stackBytes)}}
		p.Binding, p.Max = p.Limits[0], 0
		p.Usable, p.UsableBinding = 0, p.Binding
		return p
	}
	size := (stackBytes + page - 1) / page * page
	p.MappedBytes = size
	guardBytes := page
	if guard == mmapstack.GuardNone {
		guardBytes = 0
	}
	if size <= guardBytes {
		p.Limits = append(p.Limits, Limit{Name: NameStackSize, Max: 0,
			Detail: fmt.Sprintf("%d bytes leave no room above the %d-byte guard page", size, guardBytes)})
	}
	if guard == mmapstack.GuardMadvise {
		if l, ok := guardSupport(sys.Kernel); ok {
			p.Limits = append(p.Limits, l)
		}
	}
	// Only an mprotect'ed guard page stops being writable, and with it
	// stops counting as committed memory and as data.
	uncounted := int64(0)
	if guard == mmapstack.GuardMprotect {
		uncounted = page
	}
	p.Limits = append(p.Limits,
		mapCount(sys, cur, guard),
		overcommit(sys, cur, size, uncounted),
		rlimitAS(sys, cur, size),
		rlimitData(cur, size, uncounted),
		addressSpace(sys, cur, size, page),
	)
	pt := int64(0)
	if guard == mmapstack.GuardMadvise {
		pt = pageTableBytes(size, page)
		p.Limits = append(p.Limits, pageTables(sys, pt))
	}
	p.Limits = append(p.Limits, cgroup(sys, guard, pt))
	p.Binding = Limit{Name: NameNone, Max: Unbounded, Detail: "no limit bounds the number of stacks"}
	for _, l := range p.Limits {
		if l.Bounded() && (!p.Binding.Bounded() || l.Max < p.Binding.Max) {
			p.Binding = l
		}
	}
	p.Max = p.Binding.Max
	p.Usable, p.UsableBinding = p.Max, p.Binding
	if l, ok := mapCountUsable(sys, cur, guard, p.HeadroomVMAs); ok && (!p.Binding.Bounded() || l.Max < p.Max) {
		p.Usable, p.UsableBinding = l.Max, l
	}
	return p
}

// MaxTasks is how many tasks, one stack of stackBytes each, a run can
// reserve, and the limit that says so: Predict's Usable and UsableBinding,
// which keep RuntimeHeadroomVMAs free for the mappings the run makes
// meanwhile (threads, heap). It is Unbounded when nothing bounds it.
func MaxTasks(sys procread.System, cur Current, stackBytes int64, guard mmapstack.Guard) (int64, Limit) {
	p := Predict(sys, cur, stackBytes, guard)
	return p.Usable, p.UsableBinding
}

// PredictInputs is Predict on what procread.ReadLimitInputs read.
func PredictInputs(in procread.LimitInputs, stackBytes int64, guard mmapstack.Guard) Prediction {
	return Predict(in.System, in.Usage, stackBytes, guard)
}

// mapCountUsable is the vm.max_map_count limit with headroom VMAs kept
// free for the runtime; ok is false when the map count does not bound the
// stacks (not read, or stacks that merge).
func mapCountUsable(sys procread.System, cur Current, guard mmapstack.Guard, headroom int64) (Limit, bool) {
	if sys.MaxMapCount == nil || guard != mmapstack.GuardMprotect {
		return Limit{}, false
	}
	limit := *sys.MaxMapCount
	free := max(limit-int64(cur.VMAs)-headroom, 0)
	return Limit{Name: NameMapCount, Max: free / 2,
		Detail: fmt.Sprintf("%d, 2 VMAs per stack (guard mprotect), %d VMAs in use, %d kept for the Go runtime's threads and heap",
			limit, cur.VMAs, headroom)}, true
}

// guardSupport refuses GuardMadvise on a kernel older than 6.13, where
// madvise(MADV_GUARD_INSTALL) fails with EINVAL. ok is false when the
// release cannot be parsed (the limit is then left out).
func guardSupport(kernel string) (Limit, bool) {
	v, ok := parseRelease(kernel)
	if !ok {
		return Limit{}, false
	}
	l := Limit{Name: NameGuardSupport, Max: Unbounded,
		Detail: fmt.Sprintf("kernel %s has it (Linux >= %d.%d)", kernel, guardInstallMajor, guardInstallMinor)}
	if v[0] < guardInstallMajor || v[0] == guardInstallMajor && v[1] < guardInstallMinor {
		l.Max = 0
		l.Detail = fmt.Sprintf("kernel %s lacks it (needs Linux >= %d.%d): every guard madvise fails with EINVAL",
			kernel, guardInstallMajor, guardInstallMinor)
	}
	return l, true
}

// parseRelease returns the major and minor numbers of a kernel release
// such as "6.18.44-fc-v657".
func parseRelease(s string) ([2]int, bool) {
	major, rest, ok := strings.Cut(s, ".")
	if !ok {
		return [2]int{}, false
	}
	minor := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i]
	}
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return [2]int{}, false
	}
	return [2]int{a, b}, true
}

// mapCount is the vm.max_map_count limit. A guarded (mprotect) stack adds
// two VMAs: mmap adds one while the count is at most max_map_count, and
// the mprotect split adds the second only while the count is below it, so
// a stack succeeds when two more VMAs still fit. Stacks of the other modes
// merge with their neighbours and add no VMA each.
func mapCount(sys procread.System, cur Current, guard mmapstack.Guard) Limit {
	l := Limit{Name: NameMapCount, Max: Unbounded}
	if sys.MaxMapCount == nil {
		l.Detail = "not read: not counted"
		return l
	}
	limit := *sys.MaxMapCount
	free := max(limit-int64(cur.VMAs), 0)
	if guard == mmapstack.GuardMprotect {
		l.Max = free / 2
		l.Detail = fmt.Sprintf("%d, 2 VMAs per stack (guard mprotect), %d VMAs in use", limit, cur.VMAs)
		return l
	}
	l.Detail = fmt.Sprintf("%d, %d VMAs in use; predicted not binding: 1 VMA per stack (guard %s), "+
		"but side-by-side stacks merge into one VMA (at worst, none merging: %d stacks)",
		limit, cur.VMAs, guard, free)
	return l
}

// overcommit is the commit-charge limit. Under vm.overcommit_memory=2 the
// kernel ignores MAP_NORESERVE and charges each writable stack in full at
// mmap time; mprotect(PROT_NONE) of a guard page not yet touched takes its
// charge back. A mapping is refused unless Committed_AS after the charge
// stays below CommitLimit less the user reserve, min(VmSize/32,
// vm.user_reserve_kbytes). (A process without CAP_SYS_ADMIN also leaves
// vm.admin_reserve_kbytes, which this does not model.) uncounted is the
// charge mprotect gives back per stack.
func overcommit(sys procread.System, cur Current, size, uncounted int64) Limit {
	l := Limit{Name: NameOvercommit, Max: Unbounded}
	if sys.OvercommitMemory == nil {
		l.Detail = "not read: not counted"
		return l
	}
	switch mode := *sys.OvercommitMemory; mode {
	case 0:
		l.Detail = "0 (heuristic): MAP_NORESERVE stacks are not charged, and the check that refuses " +
			"one mapping larger than RAM+swap does not apply to them"
		return l
	case 1:
		l.Detail = "1 (always): nothing is charged"
		return l
	case 2:
	default:
		l.Detail = fmt.Sprintf("%d: unknown mode, not counted", mode)
		return l
	}
	committed := cur.CommittedAS
	if committed == 0 {
		committed = sys.CommittedAS
	}
	reserve := uint64(defaultUserReserve)
	if cur.UserReserveBytes != nil {
		reserve = *cur.UserReserveBytes
	}
	l.Max = commitFit(sys.CommitLimit, committed, reserve, cur.VmSizeBytes, uint64(size), uint64(size-uncounted))
	l.Detail = fmt.Sprintf("2 (strict): MAP_NORESERVE ignored, %d bytes charged per stack; CommitLimit %s, Committed_AS %s, "+
		"user reserve min(VmSize/32, %s)", size-uncounted, iec(sys.CommitLimit), iec(committed), iec(reserve))
	return l
}

// commitFit is the largest k such that each of k stacks, reserved one
// after another, passes the strict-overcommit check: before the i-th
// (i = 1..k) the charge is committed + (i-1)*kept + size, and it must stay
// below limit - min(vmSize_before/32, reserve).
func commitFit(limit, committed, reserve, vmSize, size, kept uint64) int64 {
	fits := func(i uint64) bool { // the i-th stack passes, i >= 1
		vm := vmSize + (i-1)*size
		charge := committed + (i-1)*kept + size
		return charge+min(vm/32, reserve) < limit
	}
	if kept == 0 || !fits(1) {
		return 0
	}
	// Each term grows with i, so the passing i form a prefix: bisect it.
	lo, hi := uint64(1), limit/kept+1 // fits(lo); hi is past the end
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return int64(lo)
}

// rlimitAS is the RLIMIT_AS limit: the kernel refuses a mapping that would
// take VmSize past it. A guard page still counts.
func rlimitAS(sys procread.System, cur Current, size int64) Limit {
	l := Limit{Name: NameRlimitAS, Max: Unbounded}
	if sys.RlimitAS == nil {
		l.Detail = "unlimited"
		return l
	}
	limit := *sys.RlimitAS
	l.Max = fitCount(limit, cur.VmSizeBytes, uint64(size))
	l.Detail = fmt.Sprintf("%s, VmSize %s, %s per stack", iec(limit), iec(cur.VmSizeBytes), sizes.IEC(size))
	return l
}

// rlimitData is the RLIMIT_DATA limit: private writable mappings without
// VM_GROWSDOWN (which MAP_STACK does not set) count as data, checked at
// mmap with the whole stack; a PROT_NONE guard page stops counting once
// mprotect has made it so. uncounted is what stops counting per stack.
func rlimitData(cur Current, size, uncounted int64) Limit {
	l := Limit{Name: NameRlimitData, Max: Unbounded}
	if cur.RlimitData == nil {
		l.Detail = "unlimited"
		return l
	}
	limit := *cur.RlimitData
	// The first stack needs size; each further one (size-guard) more.
	if limit < cur.VmDataBytes || limit-cur.VmDataBytes < uint64(size) {
		l.Max = 0
	} else {
		l.Max = 1 + fitCount(limit-uint64(size), cur.VmDataBytes, uint64(size-uncounted))
	}
	l.Detail = fmt.Sprintf("%s, VmData %s, %d bytes per stack", iec(limit), iec(cur.VmDataBytes), size-uncounted)
	return l
}

// addressSpace is the user address space limit: 2^47 bytes less one page
// on x86-64 (4-level page tables, or 5-level without a hint above 47
// bits), 2^48 on arm64 with 48-bit virtual addresses. It is an upper
// bound: holes between existing mappings that are smaller than a stack,
// mmap_min_addr and the gap kept below the main thread's stack are lost.
func addressSpace(sys procread.System, cur Current, size, page int64) Limit {
	if cur.AddressGaps != nil {
		return addressGaps(cur.AddressGaps, size)
	}
	bitsVA := 47
	if sys.Arch == "arm64" {
		bitsVA = 48
	}
	total := uint64(1)<<bitsVA - uint64(page)
	l := Limit{Name: NameAddressSpace, Max: fitCount(total, cur.VmSizeBytes, uint64(size))}
	l.Detail = fmt.Sprintf("%d-bit user space %s, VmSize %s in use; an upper bound (holes smaller than a stack are lost)",
		bitsVA, iec(uint64(1)<<bitsVA), iec(cur.VmSizeBytes))
	return l
}

// addressGaps is the address space limit from the free ranges of the
// process's address space: a stack of size bytes fits floor(gap/size)
// times in each gap, as the kernel places each new mapping in a free range
// large enough for it (top-down below mmap_base, then bottom-up).
func addressGaps(gaps []uint64, size int64) Limit {
	var n uint64
	var largest uint64
	for _, g := range gaps {
		n += g / uint64(size)
		largest = max(largest, g)
	}
	return Limit{Name: NameAddressSpace, Max: int64(min(n, 1<<62)),
		Detail: fmt.Sprintf("%d free ranges of the user address space (largest %s) hold %d stacks; ranges smaller than a stack are lost",
			len(gaps), iec(largest), n)}
}

// pageTableBytes is the page-table memory one GuardMadvise stack costs
// untouched: its guard page holds a PTE marker, so it needs a PTE page of
// its own, and a share of the upper-level tables, when stacks of size bytes
// lie side by side. Each table is one page of 8-byte entries; a PTE page
// spans 2 MiB, a PMD page 1 GiB, a PUD page 512 GiB (4 KiB pages).
func pageTableBytes(size, page int64) int64 {
	entries := page / 8
	span := page
	var total float64
	for range 3 { // PTE, PMD, PUD
		span *= entries
		total += min(1, float64(size)/float64(span))
	}
	return int64(math.Ceil(total * float64(page)))
}

// pageTables is the RAM limit on the page tables of GuardMadvise stacks.
// Page tables are kernel memory: never swapped, never reclaimed while the
// mapping lives. It is an upper bound: other use of RAM is not subtracted.
func pageTables(sys procread.System, perStack int64) Limit {
	l := Limit{Name: NamePageTables, Max: Unbounded}
	if sys.MemTotal == 0 {
		l.Detail = fmt.Sprintf("%s per stack (the guard's PTE marker); MemTotal not read: not counted", sizes.IEC(perStack))
		return l
	}
	l.Max = fitCount(sys.MemTotal, 0, uint64(perStack))
	l.Detail = fmt.Sprintf("%s per stack (the guard's PTE marker needs page tables), against MemTotal %s; an upper bound",
		sizes.IEC(perStack), iec(sys.MemTotal))
	return l
}

// cgroup is the cgroup memory limit. The reserved bytes are never charged
// to it, only resident pages and kernel objects: the VMA structures (a few
// hundred bytes per VMA) and, with GuardMadvise, the page tables of every
// guard marker (ptBytes per stack). Only the latter is counted.
func cgroup(sys procread.System, guard mmapstack.Guard, ptBytes int64) Limit {
	l := Limit{Name: NameCgroup, Max: Unbounded}
	switch {
	case sys.CgroupVersion == 0:
		l.Detail = "no memory cgroup found"
		return l
	case sys.CgroupMemoryMax == nil:
		l.Detail = "unlimited"
		return l
	}
	limit := *sys.CgroupMemoryMax
	if guard != mmapstack.GuardMadvise || ptBytes == 0 {
		l.Detail = fmt.Sprintf("%s: charges resident pages and kernel objects (a few hundred bytes per VMA), "+
			"not the reserved bytes: not counted", iec(limit))
		return l
	}
	var used uint64
	if sys.CgroupMemoryCurrent != nil {
		used = *sys.CgroupMemoryCurrent
	}
	l.Max = fitCount(limit, used, uint64(ptBytes))
	l.Detail = fmt.Sprintf("%s, %s in use: reserved bytes are not charged, but the page tables of each guard marker are (%s per stack)",
		iec(limit), iec(used), sizes.IEC(ptBytes))
	return l
}

// fitCount is how many items of each bytes fit in limit-used, or 0.
func fitCount(limit, used, each uint64) int64 {
	if used >= limit || each == 0 {
		return 0
	}
	n := (limit - used) / each
	return int64(min(n, 1<<62))
}

// iec formats an unsigned byte count for people.
func iec(n uint64) string {
	if n > 1<<62 {
		return fmt.Sprintf("%d B", n)
	}
	return sizes.IEC(int64(n))
}
