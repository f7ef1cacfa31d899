// Package sys holds the raw Linux system calls and kernel structs that
// golang.org/x/sys/unix lacks: the PAGEMAP_SCAN ioctl on /proc/PID/pagemap
// (Linux >= 6.7) with struct pm_scan_arg and struct page_region, mincore(2)
// over a raw address range, and the userfaultfd ioctls a test needs to map
// the shared zero page.
//
// Every struct mirrors its uapi definition field for field (all fields are
// __u64, so there is no padding on any architecture); layout_test.go checks
// sizes and offsets, and the ioctl numbers against the _IOWR encoding.
// Errors from the kernel are *os.SyscallError wrapping the unix.Errno, so
// errors.Is(err, unix.EINVAL) works.
package sys
