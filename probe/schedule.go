package probe

import "slices"

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

// HighWaterRange bounds the deepest depth any one task of cfg's ping-pong
// uses over a whole run, bytes: every task of a ramp reaches the same
// depth; with spread task k keeps depth k mod len(list) (lo and hi are
// the least and the most of those); with random any depth of the list can
// be a task's deepest.
func HighWaterRange(cfg Config) (lo, hi int64) {
	s := schedule{depths: cfg.Depths, messages: cfg.Messages, pattern: cfg.Pattern, seed: uint64(cfg.Seed)}
	n := len(cfg.Depths)
	if n == 0 || cfg.Messages < 1 {
		return 0, 0
	}
	switch cfg.Pattern {
	case PatternSpread:
		used := make([]int64, 0, n)
		for task := range max(min(cfg.Stacks(), n), 1) {
			used = append(used, s.depth(task, 0))
		}
		return slices.Min(used), slices.Max(used)
	case PatternRandom:
		return slices.Min(cfg.Depths), slices.Max(cfg.Depths)
	}
	// The ramp's index grows with the step: every task reaches the same
	// part of the list.
	hi = slices.Max(cfg.Depths[:s.index(0, cfg.Messages-1)+1])
	return hi, hi
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
