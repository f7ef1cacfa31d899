package limits

import "stackprobe/procread"

// Current is what this process already uses of the limits a reservation is
// checked against: procread.Usage, read by procread.ReadUsage or
// procread.ReadLimitInputs.
type Current = procread.Usage

// ReadCurrent reads the usage of the calling process under procRoot ("" means
// "/proc").
//
// Deprecated: use procread.ReadLimitInputs (or procread.ReadUsage(procRoot, 0));
// limits reads nothing itself.
func ReadCurrent(procRoot string) (Current, error) {
	return procread.ReadUsage(procRoot, 0)
}
