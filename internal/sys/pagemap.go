package sys

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PAGEMAP_SCAN is _IOWR('f', 16, struct pm_scan_arg): the ioctl on an open
// /proc/PID/pagemap that walks the page tables of [Start, End) and reports
// runs of pages by category (include/uapi/linux/fs.h, Linux >= 6.7).
const PAGEMAP_SCAN = 0xc0606610

// Page categories of PAGEMAP_SCAN: the bits of PmScanArg's masks and of
// PageRegion.Categories (include/uapi/linux/fs.h).
const (
	PAGE_IS_WPALLOWED  = 1 << 0 // userfaultfd async write-protect is enabled for the page
	PAGE_IS_WRITTEN    = 1 << 1 // written since write-protected (meaningless without uffd WP)
	PAGE_IS_FILE       = 1 << 2 // file backed (or shared anonymous)
	PAGE_IS_PRESENT    = 1 << 3 // mapped to a physical page (the zero page included)
	PAGE_IS_SWAPPED    = 1 << 4 // swapped out (a swap entry in the page table)
	PAGE_IS_PFNZERO    = 1 << 5 // mapped to the shared zero page (or huge zero page)
	PAGE_IS_HUGE       = 1 << 6 // part of a PMD-mapped transparent huge page or a hugetlb page
	PAGE_IS_SOFT_DIRTY = 1 << 7 // soft-dirty bit set
	PAGE_IS_GUARD      = 1 << 8 // MADV_GUARD_INSTALL guard marker (Linux >= 6.14)
)

// PM_SCAN_* operation flags for PmScanArg.Flags. A read-only scan passes 0.
const (
	PM_SCAN_WP_MATCHING   = 1 << 0 // write-protect the matching pages
	PM_SCAN_CHECK_WPASYNC = 1 << 1 // abort on a page without async write-protect
)

// PmScanArg is struct pm_scan_arg, the argument of PAGEMAP_SCAN. All
// addresses are virtual addresses in the pagemap's process.
type PmScanArg struct {
	Size              uint64 // sizeof(struct pm_scan_arg) = 96; anything else is EINVAL
	Flags             uint64 // PM_SCAN_* operations; 0 only reads
	Start             uint64 // first address to walk, page aligned
	End               uint64 // end of the walk (exclusive); rounded up to a page
	WalkEnd           uint64 // out: where the walk stopped (End when it finished)
	Vec               uint64 // address of an array of VecLen PageRegion
	VecLen            uint64 // capacity of Vec, in regions
	MaxPages          uint64 // stop after this many matching pages; 0 = no limit
	CategoryInverted  uint64 // categories to invert before matching
	CategoryMask      uint64 // categories that must all be set (after inversion)
	CategoryAnyofMask uint64 // at least one of these must be set
	ReturnMask        uint64 // categories reported in PageRegion.Categories
}

// PageRegion is struct page_region: a maximal run of pages in [Start, End)
// that share the categories in Categories (masked by ReturnMask). The
// kernel merges neighbouring pages across VMA boundaries.
type PageRegion struct {
	Start      uint64 // first byte of the run
	End        uint64 // end of the run (exclusive)
	Categories uint64 // PAGE_IS_* bits
}

// PagemapScan issues PAGEMAP_SCAN on the pagemap file descriptor fd and
// returns the number of regions the kernel wrote into arg.Vec. arg.Size is
// set here. The caller keeps the memory arg.Vec points at alive and
// reachable (Go's collector does not move heap objects).
func PagemapScan(fd int, arg *PmScanArg) (int, error) {
	arg.Size = uint64(unsafe.Sizeof(*arg))
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), PAGEMAP_SCAN, uintptr(unsafe.Pointer(arg)))
	if errno != 0 {
		return 0, os.NewSyscallError("ioctl PAGEMAP_SCAN", errno)
	}
	return int(n), nil
}

// Mincore fills vec, one byte per page of [addr, addr+len(vec)*pagesize),
// with the kernel's residency bit (bit 0). addr must be page aligned. The
// range is passed as plain integers: the memory is never dereferenced,
// so it may be PROT_NONE or not backed at all; an unmapped hole is ENOMEM.
func Mincore(addr uintptr, pageSize int, vec []byte) error {
	if len(vec) == 0 {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, addr, uintptr(len(vec)*pageSize), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return os.NewSyscallError("mincore", errno)
	}
	return nil
}
