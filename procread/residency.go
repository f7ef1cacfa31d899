//go:build linux

package procread

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"

	"stackprobe/internal/sys"
)

// ResidentPages returns how many base pages of [addr, addr+length) are
// resident in RAM, asking mincore(2). The range is widened to whole pages:
// addr is rounded down and addr+length up to a page boundary. The whole
// range must be mapped (else the error wraps ENOMEM).
//
// vec is a scratch buffer of one byte per page; it is grown if short and
// returned, so a caller polling many ranges allocates once.
func ResidentPages(addr, length uintptr, vec []byte) (pages int, vecOut []byte, err error) {
	vec, err = mincore(addr, length, vec)
	if err != nil {
		return 0, vec, err
	}
	return countResident(vec), vec, nil
}

// ResidentMap sets dst[i] to whether page i of [addr, addr+length) is
// resident, for a picture of which parts of a stack are backed. The range
// is widened to whole pages as in ResidentPages; dst must hold at least
// one entry per page, and entries past them are left alone. vec is the same
// reusable scratch buffer as in ResidentPages.
func ResidentMap(addr, length uintptr, vec []byte, dst []bool) (vecOut []byte, err error) {
	lo, hi, err := pageSpan(addr, length)
	if err != nil {
		return vec, err
	}
	if n := int((hi - lo) / uintptr(os.Getpagesize())); len(dst) < n {
		return vec, fmt.Errorf("resident map of %#x+%#x: dst holds %d pages, need %d", addr, length, len(dst), n)
	}
	vec, err = mincore(addr, length, vec)
	if err != nil {
		return vec, err
	}
	for i, b := range vec {
		dst[i] = b&1 != 0
	}
	return vec, nil
}

// pageSpan widens [addr, addr+length) to page boundaries.
func pageSpan(addr, length uintptr) (lo, hi uintptr, err error) {
	ps := uintptr(os.Getpagesize())
	lo = addr &^ (ps - 1)
	end := addr + length
	if end < addr || end+ps-1 < end {
		return 0, 0, fmt.Errorf("range %#x+%#x wraps the address space", addr, length)
	}
	hi = (end + ps - 1) &^ (ps - 1)
	return lo, hi, nil
}

// mincore fills vec (grown as needed) with one byte per page of the range;
// bit 0 of each is set when the page is resident.
func mincore(addr, length uintptr, vec []byte) ([]byte, error) {
	lo, hi, err := pageSpan(addr, length)
	if err != nil {
		return vec, err
	}
	n := int((hi - lo) / uintptr(os.Getpagesize()))
	if cap(vec) < n {
		vec = make([]byte, n)
	}
	vec = vec[:n]
	if n == 0 {
		return vec, nil
	}
	if err := sys.Mincore(lo, os.Getpagesize(), vec); err != nil {
		return vec, fmt.Errorf("residency of %#x+%#x: %w", lo, hi-lo, err)
	}
	return vec, nil
}

// countResident counts the bytes of vec with bit 0 set, eight at a time.
func countResident(vec []byte) int {
	const lsb = 0x0101010101010101
	n := 0
	for len(vec) >= 8 {
		n += bits.OnesCount64(binary.LittleEndian.Uint64(vec) & lsb)
		vec = vec[8:]
	}
	for _, b := range vec {
		n += int(b & 1)
	}
	return n
}
