package mmapstack

import "fmt"

// Guard selects how the lowest page of a stack is made to fault.
type Guard int

const (
	// GuardMprotect makes the lowest page PROT_NONE with mprotect(2). The
	// mapping splits into two VMAs, so vm.max_map_count caps the stack count
	// near max_map_count/2.
	GuardMprotect Guard = iota
	// GuardMadvise installs a guard region with madvise(MADV_GUARD_INSTALL)
	// (Linux >= 6.13). No VMA is added.
	GuardMadvise
	// GuardNone reserves no guard: an overflow writes into whatever lies
	// below the mapping.
	GuardNone
)

func guardNames() []string { return []string{"mprotect", "madvise", "none"} }

func (g Guard) String() string { return enumString(guardNames(), int(g)) }

// ParseGuard parses "mprotect", "madvise" or "none".
func ParseGuard(s string) (Guard, error) {
	i, err := enumParse(guardNames(), s)
	return Guard(i), err
}

// THP selects the transparent-huge-page advice given to a stack. The advice
// is per mapping and wins over the system-wide mode in
// /sys/kernel/mm/transparent_hugepage/enabled, except that enabled=never
// turns huge pages off whatever the advice. MAP_STACK (Options.MapStack)
// sets VM_NOHUGEPAGE itself on Linux >= 6.7, as THPNoHuge does;
// MADV_HUGEPAGE given after it clears that flag again.
type THP int

const (
	// THPSystem gives no advice: the system-wide mode decides, and on Linux
	// >= 6.7 a MAP_STACK mapping is VM_NOHUGEPAGE (smaps VmFlags "nh").
	THPSystem THP = iota
	// THPNoHuge applies MADV_NOHUGEPAGE (VmFlags "nh"): the stack is
	// backed in base pages even when the system-wide mode is always.
	THPNoHuge
	// THPHuge applies MADV_HUGEPAGE (VmFlags "hg"): 2 MiB-aligned blocks
	// may be backed by one huge page on first touch, also with MAP_STACK,
	// when the system-wide mode is always or madvise.
	THPHuge
)

func thpNames() []string { return []string{"system", "nohuge", "huge"} }

// thpAliases are the names ParseTHP also accepts: the advice named after
// the system-wide modes it resembles.
func thpAliases() map[string]THP { return map[string]THP{"never": THPNoHuge, "always": THPHuge} }

func (t THP) String() string { return enumString(thpNames(), int(t)) }

// ParseTHP parses "system", "nohuge" or "huge", and the older names
// "never" (nohuge) and "always" (huge).
func ParseTHP(s string) (THP, error) {
	if t, ok := thpAliases()[s]; ok {
		return t, nil
	}
	i, err := enumParse(thpNames(), s)
	return THP(i), err
}

// Release selects what Release does to the pages a step left resident.
type Release int

const (
	// ReleaseNone keeps every touched page: residency is the high-water mark.
	ReleaseNone Release = iota
	// ReleaseDontneed drops the pages below the kept top with
	// MADV_DONTNEED; they leave Rss at once and read back as zero.
	ReleaseDontneed
	// ReleaseFree marks the pages below the kept top MADV_FREE; the kernel
	// reclaims them only under memory pressure, so they stay in Rss.
	ReleaseFree
	// ReleaseIdle drops the pages below the kept top with MADV_DONTNEED,
	// as ReleaseDontneed does, but the workload calls Release only when
	// the stack's coroutine has been idle for a while, not after each use.
	ReleaseIdle
)

func releaseNames() []string { return []string{"none", "dontneed", "free", "idle"} }

func (r Release) String() string { return enumString(releaseNames(), int(r)) }

// ParseRelease parses "none", "dontneed", "free" or "idle".
func ParseRelease(s string) (Release, error) {
	i, err := enumParse(releaseNames(), s)
	return Release(i), err
}

func enumString(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return fmt.Sprintf("invalid(%d)", i)
	}
	return names[i]
}

func enumParse(names []string, s string) (int, error) {
	for i, n := range names {
		if n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%q is not one of %v", s, names)
}

// MarshalText implements encoding.TextMarshaler so modes appear by name in JSON.
func (g Guard) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (t THP) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// MarshalText implements encoding.TextMarshaler.
func (r Release) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
