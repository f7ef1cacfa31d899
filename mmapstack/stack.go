package mmapstack

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PageSize is the base page size of this process, in bytes.
var PageSize = sync.OnceValue(os.Getpagesize)

// HugeBlock is the PMD-mapped transparent huge page size on x86-64 and
// arm64 with 4 KiB pages: the unit a THP-backed stack grows in.
const HugeBlock = 2 << 20

// Options describe one stack reservation.
type Options struct {
	// Size is the whole reservation in bytes, guard included. It is
	// rounded up to whole pages.
	Size int
	// Guard selects the guard at the low end. With GuardNone the whole
	// reservation is usable.
	Guard Guard
	// THP selects transparent-huge-page advice for the mapping.
	THP THP
	// MapStack adds MAP_STACK (on Linux >= 6.7 it implies VM_NOHUGEPAGE,
	// which THPHuge clears again).
	MapStack bool
	// Populate adds MAP_POPULATE: every page is backed at reservation, the
	// cost an eager allocator pays.
	Populate bool
	// Release is applied by (*Stack).Release after each step.
	Release Release
	// KeepTop is how many bytes below Top Release leaves resident (rounded
	// up to pages). Zero means one page, as glibc keeps for exiting threads.
	KeepTop int
}

// MmapFlags are the mmap(2) flags a stack with these options is mapped with.
func (o Options) MmapFlags() int {
	flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_NORESERVE
	if o.MapStack {
		flags |= unix.MAP_STACK
	}
	if o.Populate {
		flags |= unix.MAP_POPULATE
	}
	return flags
}

// Stack is one reserved stack. It is not safe for concurrent use; a
// coroutine owns its stack.
type Stack struct {
	mem     []byte // the whole mapping, guard included
	guard   int    // bytes at the bottom of mem that fault
	keep    int    // bytes kept resident by Release
	release Release
	thp     THP
	deepest int // deepest Touch since the last Release, bytes
	// madvises counts Release's madvise calls.
	madvises int
}

// RoundUp rounds n up to a multiple of the page size.
func RoundUp(n int) int {
	p := PageSize()
	return (n + p - 1) / p * p
}

// Reserve maps a stack as opts describe. On error nothing stays mapped.
func Reserve(opts Options) (*Stack, error) { return reserve(opts, nil, 0) }

// ReservePair reserves two stacks as opts describe, lower directly below
// upper, so that an overflow of upper lands in lower when upper has no
// guard. The pair's address range is claimed first as one PROT_NONE
// mapping, which each stack then replaces (MAP_FIXED), so no other mapping
// can slip in between.
func ReservePair(opts Options) (upper, lower *Stack, err error) {
	size := RoundUp(opts.Size)
	base, err := unix.MmapPtr(-1, 0, nil, uintptr(2*size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, syscallError("mmap", err)
	}
	if lower, err = reserve(opts, base, unix.MAP_FIXED); err != nil {
		_ = unix.MunmapPtr(base, uintptr(2*size))
		return nil, nil, err
	}
	if upper, err = reserve(opts, unsafe.Add(base, size), unix.MAP_FIXED); err != nil {
		_ = lower.Close()
		_ = unix.MunmapPtr(unsafe.Add(base, size), uintptr(size))
		return nil, nil, err
	}
	return upper, lower, nil
}

// reserve maps a stack at the address at (nil: the kernel chooses) with
// extra mmap flags.
func reserve(opts Options, at unsafe.Pointer, extra int) (s *Stack, err error) {
	if opts.Size <= 0 {
		return nil, fmt.Errorf("reserve stack: size %d must be positive", opts.Size)
	}
	size := RoundUp(opts.Size)
	page := PageSize()
	guard := page
	if opts.Guard == GuardNone {
		guard = 0
	}
	if size <= guard {
		return nil, fmt.Errorf("reserve stack: size %d leaves no room above the %d-byte guard", size, guard)
	}
	flags := opts.MmapFlags()
	ptr, err := unix.MmapPtr(-1, 0, at, uintptr(size), unix.PROT_READ|unix.PROT_WRITE, flags|extra)
	if err != nil {
		return nil, syscallError("mmap", err)
	}
	mem := unsafe.Slice((*byte)(ptr), size)
	defer func() {
		if err != nil {
			_ = unix.MunmapPtr(ptr, uintptr(size))
		}
	}()
	switch opts.THP {
	case THPNoHuge:
		if err := unix.Madvise(mem, unix.MADV_NOHUGEPAGE); err != nil {
			return nil, syscallError("madvise(MADV_NOHUGEPAGE)", err)
		}
	case THPHuge:
		if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil {
			return nil, syscallError("madvise(MADV_HUGEPAGE)", err)
		}
	}
	switch opts.Guard {
	case GuardMprotect:
		if err := unix.Mprotect(mem[:guard], unix.PROT_NONE); err != nil {
			return nil, syscallError("mprotect(PROT_NONE)", err)
		}
	case GuardMadvise:
		if err := unix.Madvise(mem[:guard], unix.MADV_GUARD_INSTALL); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return nil, fmt.Errorf("%w (MADV_GUARD_INSTALL needs Linux >= 6.13; use --guard=mprotect)",
					syscallError("madvise(MADV_GUARD_INSTALL)", err))
			}
			return nil, syscallError("madvise(MADV_GUARD_INSTALL)", err)
		}
	}
	keep := opts.KeepTop
	if keep <= 0 {
		keep = page
	}
	keep = min(RoundUp(keep), size-guard)
	return &Stack{mem: mem, guard: guard, keep: keep, release: opts.Release, thp: opts.THP}, nil
}

// Base is the lowest address of the mapping, guard included.
func (s *Stack) Base() uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(s.mem))) }

// Lo is the lowest usable address (just above the guard).
func (s *Stack) Lo() uintptr { return s.Base() + uintptr(s.guard) }

// Top is one past the highest address; the stack grows down from here.
func (s *Stack) Top() uintptr { return s.Base() + uintptr(len(s.mem)) }

// Size is the whole mapping in bytes, guard included.
func (s *Stack) Size() int { return len(s.mem) }

// Usable is how many bytes below Top may be touched.
func (s *Stack) Usable() int { return len(s.mem) - s.guard }

// GuardBytes is the size of the guard at the low end (0 with GuardNone).
func (s *Stack) GuardBytes() int { return s.guard }

// Touch uses depth bytes of the stack: it writes one byte into every page of
// [Top-depth, Top), from the top downward, as a call chain that deep would.
// A depth beyond Usable is refused.
func (s *Stack) Touch(depth int) error {
	if depth < 0 || depth > s.Usable() {
		return fmt.Errorf("touch depth %d outside the %d usable bytes of the stack", depth, s.Usable())
	}
	s.touch(depth)
	return nil
}

// touch writes one byte per page of [Top-depth, Top) without checking depth.
func (s *Stack) touch(depth int) {
	page := PageSize()
	mem := s.mem
	top := len(mem)
	for off := 1; off <= depth; off += page {
		mem[top-off] = byte(off)
	}
	s.deepest = max(s.deepest, depth)
}

// MarkUsed records that something other than Touch (real call frames)
// used depth bytes below Top, so that Release covers those pages.
func (s *Stack) MarkUsed(depth int) { s.deepest = max(s.deepest, depth) }

// Release applies the stack's release mode to the pages below the kept top
// that the steps since the previous Release touched.
func (s *Stack) Release() error {
	// Without huge pages nothing below the kept top can be resident when
	// the step stayed within it; with them, one byte may have made a whole
	// 2 MiB block resident.
	if s.release == ReleaseNone || s.deepest <= s.keep && s.thp == THPNoHuge {
		s.deepest = 0
		return nil
	}
	top := len(s.mem)
	lo := top - RoundUp(s.deepest)
	if s.thp != THPNoHuge {
		// A huge page covers the whole 2 MiB block around the deepest
		// touch: release down to that block's low edge, an address
		// boundary (the top itself need not be aligned).
		lo -= int((s.Top() - uintptr(top-lo)) % HugeBlock)
	}
	lo = max(lo, s.guard)
	hi := top - s.keep
	if lo >= hi {
		s.deepest = 0
		return nil
	}
	advice, name := unix.MADV_DONTNEED, "madvise(MADV_DONTNEED)"
	if s.release == ReleaseFree {
		advice, name = unix.MADV_FREE, "madvise(MADV_FREE)"
	}
	s.deepest = 0
	s.madvises++
	if err := unix.Madvise(s.mem[lo:hi], advice); err != nil {
		return syscallError(name, err)
	}
	return nil
}

// Madvises counts the madvise calls Release has made on this stack.
func (s *Stack) Madvises() int { return s.madvises }

// Close unmaps the stack. It is safe to call more than once.
func (s *Stack) Close() error {
	if s.mem == nil {
		return nil
	}
	// The mapping was made with MmapPtr, so it is unmapped by pointer
	// (unix.Munmap only knows mappings made by unix.Mmap).
	err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(s.mem)), uintptr(len(s.mem)))
	s.mem = nil
	if err != nil {
		return syscallError("munmap", err)
	}
	return nil
}

// CloseAll unmaps every stack of stacks, with one munmap for each run of
// stacks that lie side by side in the address space (consecutive
// reservations usually do): each munmap costs a TLB flush on every CPU the
// process runs on, whatever it covers. It is safe to call on stacks already
// closed.
func CloseAll(stacks []*Stack) error {
	open := make([]*Stack, 0, len(stacks))
	for _, s := range stacks {
		if s != nil && s.mem != nil {
			open = append(open, s)
		}
	}
	slices.SortFunc(open, func(a, b *Stack) int { return cmp.Compare(a.Base(), b.Base()) })
	var errs []error
	for i := 0; i < len(open); {
		lo, hi := open[i].Base(), open[i].Base()+uintptr(len(open[i].mem))
		j := i + 1
		for j < len(open) && open[j].Base() == hi {
			hi += uintptr(len(open[j].mem))
			j++
		}
		// The range spans several Go slices' backing mappings, so it is
		// passed as plain integers.
		if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, lo, hi-lo, 0); errno != 0 {
			errs = append(errs, syscallError("munmap", errno))
		}
		for _, s := range open[i:j] {
			s.mem = nil
		}
		i = j
	}
	return errors.Join(errs...)
}

// TopByte returns the highest byte of the stack (at Top-1).
func (s *Stack) TopByte() byte { return s.mem[len(s.mem)-1] }

// Fault describes a write that faulted.
type Fault struct {
	// Addr is the faulting address the kernel reported.
	Addr uintptr
	// Err is the runtime error the fault became.
	Err error
}

// WriteBelow writes one byte at Lo()-1, one byte past the usable stack, as an
// overflow would. With a guard the write faults; the fault is turned into a
// panic by debug.SetPanicOnFault, recovered, and returned. With GuardNone the
// write lands in whatever lies below the mapping: if that is mapped and
// writable the byte is changed and the returned Fault is nil.
func (s *Stack) WriteBelow() (f *Fault) {
	prev := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(prev)
		r := recover()
		if r == nil {
			return
		}
		err, ok := r.(error)
		if !ok {
			panic(r)
		}
		f = &Fault{Err: err}
		var a interface{ Addr() uintptr }
		if errors.As(err, &a) {
			f.Addr = a.Addr()
		}
	}()
	// The pointer leaves the mapping on purpose: this is the overflow.
	p := (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(s.mem)), s.guard-1))
	*p = 0x5a
	return nil
}

// syscallError wraps err as os.NewSyscallError does, so that the errno
// stays reachable with errors.Is (the command line adds advice for ENOMEM).
func syscallError(call string, err error) error {
	return os.NewSyscallError(call, err)
}
