package frames

// Supported reports whether Touch has an implementation on this architecture.
const Supported = true

// touchFrames switches SP to top, recurses n (>= 1) frames of FrameBytes
// each, switches SP back and returns top minus the deepest SP reached.
//
//go:noescape
func touchFrames(top uintptr, n int) (used uintptr)

func touch(top uintptr, n int) uintptr { return touchFrames(top, n) }
