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

// THP selects the transparent-huge-page advice given to a stack.
type THP int

const (
	// THPSystem gives no advice; /sys/kernel/mm/transparent_hugepage/enabled decides.
	THPSystem THP = iota
	// THPNever applies MADV_NOHUGEPAGE: the stack is backed in base pages.
	THPNever
	// THPAlways applies MADV_HUGEPAGE: 2 MiB-aligned blocks may be backed by
	// one huge page on first touch.
	THPAlways
)

func thpNames() []string { return []string{"system", "never", "always"} }

func (t THP) String() string { return enumString(thpNames(), int(t)) }

// ParseTHP parses "system", "never" or "always".
func ParseTHP(s string) (THP, error) {
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
