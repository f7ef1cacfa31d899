package limits

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// MaxVerify is the most stacks Verify reserves: it caps the array of
// addresses Verify allocates up front (8 MiB), which never grows during the
// loop, so that reaching a limit never coincides with an allocation.
const MaxVerify = 1 << 20

// ctxEvery is how many reservations pass between checks of the context.
const ctxEvery = 256

// Verification is what really happened when Verify reserved stacks until
// the kernel refused or the requested count was reached.
type Verification struct {
	// Requested is the most stacks Verify was asked to reserve, a count.
	Requested int64 `json:"requested"`
	// Reserved is how many stacks were held at once, a count.
	Reserved int64 `json:"reserved"`
	// StoppedBy is the error that ended the loop before Requested stacks
	// were reserved: the failed reservation or the context's error. It is
	// nil if Requested was reached.
	StoppedBy error `json:"-"`
	// Stopped is StoppedBy's message, "" when it is nil (for JSON).
	Stopped string `json:"stopped_by,omitempty"`
	// Errno names the errno that refused the last reservation, such as
	// "ENOMEM"; "" if none did.
	Errno string `json:"errno,omitempty"`
	// Seconds is how long the reservation loop took, seconds.
	Seconds float64 `json:"seconds"`
	// VMAsPerStack is (VMAsPeak - VMAsBefore) / Reserved: the VMAs each
	// stack really cost, Go runtime mappings made meanwhile included.
	VMAsPerStack float64 `json:"vmas_per_stack"`
	// VMAsBefore is the number of mappings of the process before the
	// first reservation, a count (lines of /proc/self/maps).
	VMAsBefore int `json:"vmas_before"`
	// VMAsPeak is the number of mappings with all Reserved stacks held.
	VMAsPeak int `json:"vmas_peak"`
	// VMAsAfter is the number of mappings once every stack was released;
	// it should equal VMAsBefore.
	VMAsAfter int `json:"vmas_after"`
}

// Deviation is (Reserved - predicted) / predicted in percent: how far the
// verified count is from a prediction. It is NaN when predicted is not
// positive.
func (v Verification) Deviation(predicted int64) float64 {
	if predicted <= 0 {
		return math.NaN()
	}
	return 100 * float64(v.Reserved-predicted) / float64(predicted)
}

// Verify reserves stacks with opts, one after another, until n are held or
// a reservation fails; then it releases every one, on every path (a
// failure, a cancelled ctx, a panic). opts should be those of a run
// (MapStack true, THP system); Populate is cleared, as Verify measures
// reservations, not memory.
//
// The returned Verification says where and why the loop stopped. A
// refused reservation is the finding, not an error; the error is ctx's
// when it was cancelled, or a failure to read /proc/self or to unmap.
//
// While the process sits at a limit, other mappings fail too, including
// those the Go runtime makes for itself, and the runtime treats a failed
// mapping as fatal. Verify releases everything at once, but a program that
// cannot afford the risk should call it in a child process.
func Verify(ctx context.Context, opts mmapstack.Options, n int64) (v Verification, err error) {
	v.Requested = n
	if n < 0 || n > MaxVerify {
		return v, fmt.Errorf("limits: verify %d stacks: count must be 0 to %d", n, MaxVerify)
	}
	opts.Populate = false
	r, err := procread.NewReader("", 0)
	if err != nil {
		return v, fmt.Errorf("limits: verify: %w", err)
	}
	// This first read also sizes the Reader's buffers, so the read at the
	// peak allocates next to nothing.
	t, err := r.Totals()
	if err != nil {
		return v, fmt.Errorf("limits: verify: %w", err)
	}
	v.VMAsBefore = t.VMAs

	// The loop makes raw system calls into a preallocated array, with the
	// collector off: at a limit any mapping the Go runtime makes for itself
	// fails too, and the runtime treats that as fatal, so nothing in the
	// loop may allocate.
	size := uintptr(mmapstack.RoundUp(opts.Size))
	if opts.Size <= 0 || (opts.Guard != mmapstack.GuardNone && size <= uintptr(mmapstack.PageSize())) {
		v.StoppedBy = fmt.Errorf("stack size %d leaves no usable bytes", opts.Size)
		v.Stopped = v.StoppedBy.Error()
		return v, nil
	}
	flags := opts.MmapFlags()
	stacks := make([]uintptr, 0, n)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer func() {
		if rerr := unmapAll(stacks, size); rerr != nil {
			err = errors.Join(err, rerr)
		}
		t, terr := r.Totals()
		if terr != nil {
			err = errors.Join(err, fmt.Errorf("limits: verify: after release: %w", terr))
			return
		}
		v.VMAsAfter = t.VMAs
	}()

	start := time.Now()
	var failed string
	var errno unix.Errno
	for int64(len(stacks)) < n {
		if len(stacks)%ctxEvery == 0 && ctx.Err() != nil {
			v.StoppedBy = ctx.Err()
			err = fmt.Errorf("limits: verify: %w", ctx.Err())
			break
		}
		var addr uintptr
		addr, failed, errno = reserveRaw(size, flags, opts.Guard)
		if errno != 0 {
			break
		}
		stacks = append(stacks, addr)
	}
	if errno != 0 {
		v.StoppedBy = fmt.Errorf("stack %d: %w", len(stacks)+1, os.NewSyscallError(failed, errno))
		v.Errno = unix.ErrnoName(errno)
	}
	v.Seconds = time.Since(start).Seconds()
	v.Reserved = int64(len(stacks))
	if v.StoppedBy != nil {
		v.Stopped = v.StoppedBy.Error()
	}

	t, terr := r.Totals()
	if terr != nil {
		return v, errors.Join(err, fmt.Errorf("limits: verify: at the peak: %w", terr))
	}
	v.VMAsPeak = t.VMAs
	if v.Reserved > 0 {
		v.VMAsPerStack = float64(v.VMAsPeak-v.VMAsBefore) / float64(v.Reserved)
	}
	return v, err
}

// reserveRaw maps one stack as mmapstack.Reserve does (same flags, same
// guard), through raw system calls that never allocate. On failure nothing
// stays mapped and call names the failed system call.
func reserveRaw(size uintptr, flags int, guard mmapstack.Guard) (addr uintptr, call string, errno unix.Errno) {
	addr, _, errno = unix.Syscall6(unix.SYS_MMAP, 0, size, unix.PROT_READ|unix.PROT_WRITE, uintptr(flags), ^uintptr(0), 0)
	if errno != 0 {
		return 0, "mmap", errno
	}
	page := uintptr(mmapstack.PageSize())
	switch guard {
	case mmapstack.GuardMprotect:
		_, _, errno = unix.Syscall(unix.SYS_MPROTECT, addr, page, unix.PROT_NONE)
		call = "mprotect"
	case mmapstack.GuardMadvise:
		_, _, errno = unix.Syscall(unix.SYS_MADVISE, addr, page, unix.MADV_GUARD_INSTALL)
		call = "madvise(MADV_GUARD_INSTALL)"
	}
	if errno != 0 {
		unix.Syscall(unix.SYS_MUNMAP, addr, size, 0)
		return 0, call, errno
	}
	return addr, "", 0
}

// unmapAll unmaps every stack, going on past failures, and reports how
// many failed with the first failure.
func unmapAll(stacks []uintptr, size uintptr) error {
	var first error
	failed := 0
	for _, a := range stacks {
		if _, _, e := unix.Syscall(unix.SYS_MUNMAP, a, size, 0); e != 0 {
			failed++
			if first == nil {
				first = os.NewSyscallError("munmap", e)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("limits: verify: %d of %d stacks failed to unmap: %w", failed, len(stacks), first)
	}
	return nil
}
