package limits

import "stackprobe/procread"

// Current is what this process already uses of the limits a reservation is
// checked against: procread.Usage, read by procread.ReadUsage or
// procread.ReadLimitInputs.
type Current = procread.Usage
