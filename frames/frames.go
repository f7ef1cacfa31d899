// Package frames touches a reserved stack with real call frames.
//
// The simulated touch elsewhere in stackprobe writes one byte per page below
// the top of a reserved region. That is what a coroutine does to its stack in
// the page-granular sense, but it is not literally the same code path: a real
// coroutine grows its stack with CALL instructions and stores into its frames.
// Touch does exactly that. A small assembly routine saves the goroutine's
// stack pointer in a register, points SP at the top of the reserved region,
// recurses with fixed-size frames (each CALL pushes a return address, each
// frame stores a word at its lowest address) until the requested depth is in
// use, unwinds with RET, and switches SP back.
//
// The routine is assembly, marked NOSPLIT, and never calls Go code while SP is
// on the reserved region, so the goroutine stack bounds, stack growth and the
// garbage collector never see the foreign stack. It only stores integers, so
// nothing there looks like a pointer to anyone.
//
// Because the routine runs without the runtime's help, a fault on the
// reserved region (a guard page, an unmapped address, PROT_NONE) is fatal to
// the process: it cannot be turned into a Go panic, and
// debug.SetPanicOnFault does not help. Callers must make sure that Span(depth)
// bytes below top are mapped and writable before calling Touch. Overflow
// experiments belong to the simulated-touch path.
package frames

import (
	"errors"
	"fmt"
	"math"
	"runtime"
)

// FrameBytes is the fixed size of one recursion level, including the 8-byte
// return address pushed by CALL. It divides the 4 KiB page size, so every page
// below top that the recursion passes through receives at least one return
// address and one frame store.
const FrameBytes = 256

// EntryBytes is how many bytes the entry sequence uses at the top of the
// region before the first frame. The goroutine's stack pointer is kept in a
// register for the duration of the call, and top is required to be 16-byte
// aligned, so nothing is stored above the first frame.
const EntryBytes = 0

// Alignment is the required alignment of top.
const Alignment = 16

// ErrUnsupported is returned by Touch on architectures without the assembly
// routine. It wraps errors.ErrUnsupported.
var ErrUnsupported = fmt.Errorf("--touch=frames is unsupported on %s: %w", runtime.GOARCH, errors.ErrUnsupported)

// Span returns the number of bytes below top that Touch(top, depth) uses:
// EntryBytes plus depth rounded up to whole frames. Span(0) is 0. It returns
// an error for a negative depth or one whose rounded size overflows.
func Span(depth int) (int, error) {
	if depth < 0 {
		return 0, fmt.Errorf("frames: negative depth %d", depth)
	}
	if depth == 0 {
		return 0, nil
	}
	if depth > math.MaxInt-FrameBytes-EntryBytes {
		return 0, fmt.Errorf("frames: depth %d too large", depth)
	}
	n := (depth + FrameBytes - 1) / FrameBytes
	return EntryBytes + n*FrameBytes, nil
}

// Touch runs call frames on the stack whose top (exclusive high end) is top
// until at least depth bytes below top are in use, with depth rounded up to
// whole frames, and returns the bytes actually used below top: the distance
// from top to the deepest stack pointer reached, which equals Span(depth).
// Every page of [top-used, top) is written; nothing outside it is.
//
// top must be non-zero and a multiple of Alignment. Depth 0 touches nothing
// and returns 0.
//
// The caller guarantees that [top-Span(depth), top) is mapped and writable.
// A fault there is fatal, not recoverable.
//
// Touch does not return to the scheduler while it runs: the routine cannot
// be preempted, so a very deep first touch (tens of thousands of page
// faults) delays any stop-the-world phase by that long.
func Touch(top uintptr, depth int) (used int, err error) {
	if !Supported {
		return 0, ErrUnsupported
	}
	span, err := Span(depth)
	if err != nil {
		return 0, err
	}
	if top == 0 {
		return 0, errors.New("frames: top is 0")
	}
	if top%Alignment != 0 {
		return 0, fmt.Errorf("frames: top %#x is not %d-byte aligned", top, Alignment)
	}
	if span == 0 {
		return 0, nil
	}
	if uint64(span) > uint64(top) {
		return 0, fmt.Errorf("frames: depth %d does not fit below top %#x", depth, top)
	}
	n := (span - EntryBytes) / FrameBytes
	used = int(touch(top, n))
	if used != span {
		// Cannot happen unless the routine and Span disagree.
		return used, fmt.Errorf("frames: routine used %d bytes below top, expected %d", used, span)
	}
	return used, nil
}
