// Package limits answers one question before a run: how many stacks of S
// bytes, with a given guard mode, can this process reserve, and which limit
// binds first?
//
// Reserving a lazily backed stack costs no physical memory, but it is not
// free. Each reservation is checked against:
//
//   - vm.max_map_count, the most VMAs a process may hold (mm->map_count,
//     which does not count the [vsyscall] gate page /proc/PID/maps lists). A GuardMprotect
//     stack is two VMAs (the PROT_NONE page splits the mapping, and the
//     guard and the usable VMA of neighbouring stacks alternate, so they
//     never merge). GuardMadvise and GuardNone stacks are one VMA each, but
//     the kernel places consecutive reservations side by side and adjacent
//     anonymous mappings with identical flags merge: a thousand of them add
//     about one VMA in all.
//   - vm.overcommit_memory. Mode 2 ignores MAP_NORESERVE and charges every
//     writable page against CommitLimit; a PROT_NONE guard page is
//     unaccounted again by mprotect. Modes 0 and 1 do not charge
//     MAP_NORESERVE mappings at all, so even mode 0's heuristic (which
//     refuses one mapping larger than RAM plus swap) does not look at them.
//   - RLIMIT_AS, against the whole mapping (VmSize).
//   - RLIMIT_DATA, against private writable mappings (VmData): a stack
//     without VM_GROWSDOWN is data to the kernel.
//   - the user address space (128 TiB with 4-level page tables on x86-64).
//   - with GuardMadvise only, page tables: the guard's PTE marker needs a
//     page-table page per stack (about 4.4 KiB for 100 MiB stacks), kernel
//     memory that counts against RAM and the cgroup.
//
// A cgroup memory.max charges resident pages and kernel objects, not the
// reserved bytes: it is listed, and counted only for the page tables of
// GuardMadvise stacks.
//
// Predict is a pure function of the facts procread.ReadLimitInputs reads
// (limits opens no file), so every case can be tested with fabricated
// inputs. Verify
// checks a prediction the only sure way: by reserving stacks until the
// kernel refuses, then releasing all of them.
package limits
