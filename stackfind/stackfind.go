// Package stackfind decides which mappings of a process are stacks, and
// says why, from its parsed /proc/PID/maps and its threads' stack pointers.
// It reads nothing itself: procread reads the files, watch measures the
// stacks.
//
// A stack is found by one or more of:
//
//   - main: the "[stack]" mapping, the main thread's stack (it grows down,
//     so its Start moves as it grows);
//   - thread: the mapping that holds a thread's stack pointer while the
//     thread sleeps in the kernel — a pthread stack, or the fiber the
//     thread is on. A Go program's threads run on stacks inside the Go heap,
//     so there this finds a heap arena, with Threads > 1;
//   - guard: a private anonymous read-write mapping whose low end sits
//     directly on a private PROT_NONE mapping of at most MaxGuard bytes
//     ("---p" below it), the layout of glibc pthread stacks, boost.context,
//     folly fibers and the seed's ucontext fibers; or whose lowest page is
//     a MADV_GUARD_INSTALL marker, which only the page tables show (see
//     MarkerCandidates and AddMarked);
//   - size: a private anonymous read-write mapping of exactly Size bytes, or
//     of Size bytes together with the PROT_NONE guard directly below it
//     (SizeMatch says which);
//   - range: an address range given by the caller.
//
// Adjacent anonymous mappings with identical flags are merged by the kernel
// into one VMA; stacks reserved that way without guards cannot be told
// apart in maps, and a merged VMA is reported as one stack (or, by size,
// not at all). Give such stacks as ranges.
package stackfind

import (
	"encoding/json"
	"slices"
	"strings"

	"stackprobe/procread"
)

// FoundBy is the set of ways a stack was found.
type FoundBy uint8

// The FoundBy bits.
const (
	Main FoundBy = 1 << iota
	Thread
	Guard
	Size
	Range
)

var foundByNames = [...]string{"main", "thread", "guard", "size", "range"}

// Names lists the ways in the order main, thread, guard, size, range.
func (f FoundBy) Names() []string {
	var names []string
	for i, n := range foundByNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return names
}

// String joins Names with "+", e.g. "main+thread"; "" for none.
func (f FoundBy) String() string { return strings.Join(f.Names(), "+") }

// MarshalText gives String, for CSV cells.
func (f FoundBy) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// MarshalJSON gives Names as a JSON array, e.g. ["main","thread"].
func (f FoundBy) MarshalJSON() ([]byte, error) {
	names := f.Names()
	if names == nil {
		names = []string{}
	}
	return json.Marshal(names)
}

// GuardKind is what sits at a stack's low end to catch an overflow.
type GuardKind uint8

// The GuardKinds.
const (
	// GuardNone: nothing found (the stack may still have a guard that the
	// maps and page tables do not show, e.g. a PROT_NONE page larger
	// than MaxGuard).
	GuardNone GuardKind = iota
	// GuardProtNoneBelow: a PROT_NONE mapping ("---p") ends where the stack
	// starts.
	GuardProtNoneBelow
	// GuardMarkers: the stack's lowest pages are MADV_GUARD_INSTALL guard
	// markers (Linux >= 6.13), which need no mapping of their own.
	GuardMarkers
)

// String is "none", "prot_none_below" or "guard_markers".
func (g GuardKind) String() string {
	switch g {
	case GuardProtNoneBelow:
		return "prot_none_below"
	case GuardMarkers:
		return "guard_markers"
	}
	return "none"
}

// MarshalText gives String.
func (g GuardKind) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// SizeMatch says how a stack found by size matched Options.Size.
type SizeMatch uint8

// The SizeMatches.
const (
	SizeNoMatch   SizeMatch = iota // not found by size
	SizeExact                      // the mapping itself is Size bytes
	SizeWithGuard                  // the mapping plus its PROT_NONE guard below are Size bytes
)

// String is "", "exact" or "with_guard".
func (s SizeMatch) String() string {
	switch s {
	case SizeExact:
		return "exact"
	case SizeWithGuard:
		return "with_guard"
	}
	return ""
}

// MarshalText gives String.
func (s SizeMatch) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// DefaultMaxGuard is the largest PROT_NONE mapping below a mapping that
// Find takes for a stack guard when Options.MaxGuard is 0: 64 KiB. glibc,
// boost.context, folly and the seed use one page; the Go runtime and
// glibc malloc reserve PROT_NONE regions of hundreds of KiB and more next
// to read-write ones that are not stacks.
const DefaultMaxGuard = 64 << 10

// Options choose the ways stacks are found.
type Options struct {
	// Main finds the "[stack]" mapping.
	Main bool
	// Thread finds the mapping holding each thread's stack pointer.
	Thread bool
	// Guard finds anonymous read-write mappings with a PROT_NONE guard
	// directly below (and, through MarkerCandidates, guard markers).
	Guard bool
	// Size, if > 0, finds anonymous read-write mappings of exactly Size
	// bytes, or of Size bytes together with their guard below; bytes.
	Size int64
	// Ranges are taken as stacks as given. A mapping found otherwise that
	// overlaps a range is folded into it (its FoundBy and TID added).
	Ranges []procread.PageRange
	// MaxGuard is the largest PROT_NONE mapping that counts as a guard,
	// bytes; 0 means DefaultMaxGuard.
	MaxGuard int64
}

// Stack is one stack found.
type Stack struct {
	// Start and End bound the stack, [Start, End): the mapping (without a
	// PROT_NONE guard below it, which is a mapping of its own; with any
	// guard markers, which are not), or the range given.
	Start, End uint64
	// FoundBy says how it was found.
	FoundBy FoundBy
	// TID is the lowest id of the threads whose stack pointer is in the
	// stack, 0 when none.
	TID int
	// Threads counts the threads whose stack pointer is in it: 1 for a
	// thread's own stack, more for a mapping shared by stacks (a Go heap
	// arena).
	Threads int
	// Guard is what sits at its low end.
	Guard GuardKind
	// GuardBytes is the size of that guard: the PROT_NONE mapping below, or
	// (set by AddMarked) the guard marker bytes, bytes.
	GuardBytes uint64
	// SizeMatch says how it matched Options.Size.
	SizeMatch SizeMatch
}

// Size returns End-Start, bytes.
func (s *Stack) Size() uint64 { return s.End - s.Start }

// Range returns [Start, End).
func (s *Stack) Range() procread.PageRange { return procread.PageRange{Start: s.Start, End: s.End} }

// stackLike reports whether m could be a stack a program made for itself:
// private, anonymous, readable and writable.
func stackLike(m *procread.Mapping) bool {
	return m.Perms == procread.PermRead|procread.PermWrite && m.Anonymous()
}

// Find appends to dst[:0] the stacks found in maps (sorted by address, as
// /proc/PID/maps lists them) and threads, sorted by Start and not
// overlapping, and returns it.
func Find(maps []procread.Mapping, threads []procread.Thread, opts Options, dst []Stack) []Stack {
	dst = dst[:0]
	maxGuard := uint64(opts.MaxGuard)
	if maxGuard == 0 {
		maxGuard = DefaultMaxGuard
	}
	// The mapping index each sleeping thread's stack pointer is in.
	type hit struct{ idx, tid int }
	var hits []hit
	if opts.Thread {
		for _, t := range threads {
			if t.State == procread.Running {
				continue // no stack pointer this time
			}
			i, ok := slices.BinarySearchFunc(maps, t.SP, func(m procread.Mapping, sp uint64) int {
				switch {
				case m.End <= sp:
					return -1
				case m.Start > sp:
					return 1
				}
				return 0
			})
			if ok && maps[i].Perms&procread.PermWrite != 0 {
				hits = append(hits, hit{i, t.TID})
			}
		}
		slices.SortFunc(hits, func(a, b hit) int {
			if a.idx != b.idx {
				return a.idx - b.idx
			}
			return a.tid - b.tid
		})
	}
	for i := range maps {
		m := &maps[i]
		var s Stack
		guardBelow := i > 0 && maps[i-1].End == m.Start && maps[i-1].ProtNone() &&
			maps[i-1].Inode == 0 && maps[i-1].Size() <= maxGuard && maps[i-1].Size() < m.Size()
		if opts.Main && m.Path == "[stack]" {
			s.FoundBy |= Main
		}
		for len(hits) > 0 && hits[0].idx == i {
			s.FoundBy |= Thread
			if s.Threads == 0 {
				s.TID = hits[0].tid
			}
			s.Threads++
			hits = hits[1:]
		}
		if stackLike(m) {
			if opts.Guard && guardBelow {
				s.FoundBy |= Guard
			}
			if opts.Size > 0 {
				switch size := uint64(opts.Size); {
				case m.Size() == size:
					s.FoundBy |= Size
					s.SizeMatch = SizeExact
				case guardBelow && m.Size()+maps[i-1].Size() == size:
					s.FoundBy |= Size
					s.SizeMatch = SizeWithGuard
				}
			}
		}
		if s.FoundBy == 0 {
			continue
		}
		s.Start, s.End = m.Start, m.End
		if guardBelow {
			s.Guard, s.GuardBytes = GuardProtNoneBelow, maps[i-1].Size()
		}
		dst = append(dst, s)
	}
	if len(opts.Ranges) > 0 {
		dst = foldRanges(dst, opts.Ranges)
	}
	return dst
}

// foldRanges adds the ranges to found (sorted by Start), folding every
// stack that overlaps a range into that range.
func foldRanges(found []Stack, ranges []procread.PageRange) []Stack {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b procread.PageRange) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	out := make([]Stack, 0, len(found)+len(rs))
	j := 0
	for _, r := range rs {
		for j < len(found) && found[j].End <= r.Start {
			out = append(out, found[j])
			j++
		}
		s := Stack{Start: r.Start, End: r.End, FoundBy: Range}
		for j < len(found) && found[j].Start < r.End {
			f := found[j]
			s.FoundBy |= f.FoundBy
			if f.Threads > 0 && (s.TID == 0 || f.TID < s.TID) {
				s.TID = f.TID
			}
			s.Threads += f.Threads
			if f.Start == r.Start {
				s.Guard, s.GuardBytes, s.SizeMatch = f.Guard, f.GuardBytes, f.SizeMatch
			}
			j++
		}
		// Overlapping ranges are merged into one.
		if n := len(out); n > 0 && out[n-1].FoundBy&Range != 0 && out[n-1].End > s.Start {
			p := &out[n-1]
			p.End = max(p.End, s.End)
			p.FoundBy |= s.FoundBy
			p.Threads += s.Threads
			if s.TID != 0 && (p.TID == 0 || s.TID < p.TID) {
				p.TID = s.TID
			}
			continue
		}
		out = append(out, s)
	}
	return append(out, found[j:]...)
}

// MarkerCandidates appends to dst the lowest page, [Start, Start+pageSize),
// of every private anonymous read-write mapping that is not among stacks
// (as Find returned them), for a caller that can ask the page tables
// whether it is a MADV_GUARD_INSTALL marker. Such guards make no mapping of
// their own, so maps alone cannot show them.
func MarkerCandidates(maps []procread.Mapping, stacks []Stack, pageSize uint64, dst []procread.PageRange) []procread.PageRange {
	dst = dst[:0]
	j := 0
	for i := range maps {
		m := &maps[i]
		for j < len(stacks) && stacks[j].End <= m.Start {
			j++
		}
		if j < len(stacks) && stacks[j].Start < m.End {
			continue // already a stack, or inside one
		}
		if stackLike(m) && m.Size() > pageSize {
			dst = append(dst, procread.PageRange{Start: m.Start, End: m.Start + pageSize})
		}
	}
	return dst
}

// AddMarked adds to stacks, keeping them sorted, the mapping of every
// candidate whose counts (counts[i] for candidates[i], as measured from
// the page tables) show guard markers, found by Guard with GuardMarkers.
// It returns the grown stacks.
func AddMarked(stacks []Stack, maps []procread.Mapping, candidates []procread.PageRange, counts []procread.PageCounts) []Stack {
	added := false
	for i, c := range candidates {
		if counts[i].GuardBytes <= 0 {
			continue
		}
		k, ok := slices.BinarySearchFunc(maps, c.Start, func(m procread.Mapping, a uint64) int {
			switch {
			case m.Start < a:
				return -1
			case m.Start > a:
				return 1
			}
			return 0
		})
		if !ok {
			continue
		}
		stacks = append(stacks, Stack{
			Start: maps[k].Start, End: maps[k].End, FoundBy: Guard,
			Guard: GuardMarkers, GuardBytes: uint64(counts[i].GuardBytes),
		})
		added = true
	}
	if added {
		slices.SortFunc(stacks, func(a, b Stack) int {
			switch {
			case a.Start < b.Start:
				return -1
			case a.Start > b.Start:
				return 1
			}
			return 0
		})
	}
	return stacks
}
