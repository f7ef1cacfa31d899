package probe

// schedule gives the depth a task uses at each step of the ping-pong.
type schedule struct {
	depths   []int64
	messages int
	pattern  Pattern
	seed     uint64
}

// depth is the depth task uses when it handles message step.
func (s schedule) depth(task, step int) int64 { return s.depths[s.index(task, step)] }

// index is the position in the list of the depth task uses at step.
func (s schedule) index(task, step int) int {
	n := len(s.depths)
	switch s.pattern {
	case PatternSpread:
		return task % n
	case PatternRandom:
		// A hash of (seed, task, step): reproducible from --seed, and
		// needing no state shared between the two IO threads.
		return int(splitmix64(s.seed^uint64(task)<<32^uint64(step)) % uint64(n))
	default: // ramp: step through the list evenly over the run
		return max(0, min(step*n/s.messages, n-1))
	}
}

// rampDepth is the ramp's depth at step, or 0 for other patterns and
// before the first step (step < 0).
func (s schedule) rampDepth(step int) int64 {
	if s.pattern != PatternRamp || step < 0 {
		return 0
	}
	return s.depth(0, step)
}

// splitmix64 is Steele, Lea and Flood's 64-bit mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
