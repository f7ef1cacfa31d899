package sys

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userfaultfd constants (include/uapi/linux/userfaultfd.h).
const (
	UFFD_API                      = 0xAA       // the API version UFFDIO_API handshakes
	UFFD_USER_MODE_ONLY           = 1          // userfaultfd(2) flag: handle user-mode faults only
	UFFDIO_REGISTER_MODE_MISSING  = 1 << 0     // track faults on missing pages
	UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1 << 0     // do not wake faulting threads
	UFFDIO_API                    = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	UFFDIO_REGISTER               = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	UFFDIO_ZEROPAGE               = 0xc020aa04 // _IOWR(0xAA, 0x04, struct uffdio_zeropage)
)

// UffdioAPI is struct uffdio_api.
type UffdioAPI struct {
	API      uint64 // in: UFFD_API
	Features uint64 // in: features wanted; out: features granted
	Ioctls   uint64 // out: bit n set when ioctl number n is available
}

// UffdioRange is struct uffdio_range: [Start, Start+Len), page aligned.
type UffdioRange struct {
	Start uint64
	Len   uint64
}

// UffdioRegister is struct uffdio_register.
type UffdioRegister struct {
	Range  UffdioRange
	Mode   uint64 // UFFDIO_REGISTER_MODE_*
	Ioctls uint64 // out: ioctls available on the range
}

// UffdioZeropage is struct uffdio_zeropage.
type UffdioZeropage struct {
	Range    UffdioRange
	Mode     uint64 // UFFDIO_ZEROPAGE_MODE_*
	Zeropage int64  // out: bytes mapped, or a negative errno
}

// Userfaultfd creates a userfaultfd (flags: unix.O_CLOEXEC, unix.O_NONBLOCK,
// UFFD_USER_MODE_ONLY).
func Userfaultfd(flags int) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("userfaultfd", errno)
	}
	return int(fd), nil
}

// UffdIoctl issues one of the UFFDIO_* ioctls on fd with arg, a pointer to
// the matching struct.
func UffdIoctl[T UffdioAPI | UffdioRegister | UffdioZeropage](fd int, req uint, arg *T) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(arg)))
	if errno != 0 {
		return os.NewSyscallError("ioctl userfaultfd", errno)
	}
	return nil
}
