// Package mmapstack reserves large, lazily backed stacks the way a stackful
// coroutine runtime would: one anonymous private mmap with MAP_NORESERVE,
// optionally MAP_STACK, with a guard at the low end.
//
// A Stack is used from its top downward. Touch(depth) writes one byte into
// every page of [Top-depth, Top), which is exactly what a call chain of that
// depth does to the pages beneath it; the kernel backs each page on its first
// write, so residency after Touch(d) is ceil(d/pagesize) pages unless
// transparent huge pages back the region in 2 MiB blocks.
//
// Layout of one stack of Size bytes (Size is rounded up to whole pages):
//
//	Base                 Lo                                   Top
//	|-- guard (1 page) --|---------- usable (Size-guard) ------|
//
// The guard is a PROT_NONE page (GuardMprotect: splits the mapping into two
// VMAs), a MADV_GUARD_INSTALL marker (GuardMadvise, Linux >= 6.13: no extra
// VMA), or absent (GuardNone: the usable range is the whole mapping).
package mmapstack
