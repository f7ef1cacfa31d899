package probe

import (
	"fmt"

	"stackprobe/frames"
	"stackprobe/mmapstack"
)

// use uses depth bytes of st as mode says and returns the bytes below Top
// actually used: depth for pages, depth rounded up to whole frames for
// frames.
func use(st *mmapstack.Stack, mode TouchMode, depth int64) (int64, error) {
	if mode != TouchFrames {
		return depth, st.Touch(int(depth))
	}
	span, err := frames.Span(int(depth))
	if err != nil {
		return 0, err
	}
	if span > st.Usable() {
		// A fault on the foreign stack would be fatal: never let frames
		// reach the guard. (Span includes the entry sequence.)
		return 0, fmt.Errorf("frames for depth %d need %d bytes, the stack has %d usable", depth, span, st.Usable())
	}
	used, err := frames.Touch(st.Top(), int(depth))
	if err != nil {
		return 0, err
	}
	st.MarkUsed(used)
	return int64(used), nil
}
