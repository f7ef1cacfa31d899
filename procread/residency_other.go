//go:build !linux

package procread

import "errors"

// ResidentPages needs mincore(2) as Linux provides it.
func ResidentPages(addr, length uintptr, vec []byte) (pages int, vecOut []byte, err error) {
	return 0, vec, errors.ErrUnsupported
}

// ResidentMap needs mincore(2) as Linux provides it.
func ResidentMap(addr, length uintptr, vec []byte, dst []bool) (vecOut []byte, err error) {
	return vec, errors.ErrUnsupported
}
