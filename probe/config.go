// Package probe runs stackprobe's experiments: it reserves the stacks, drives
// a workload that touches them to the scheduled depths, measures per-stack
// residency and process totals, and returns a Result that the report and
// plots packages turn into files.
package probe

import (
	"time"

	"stackprobe/mmapstack"
	"stackprobe/procread"
)

// Workload names what runs on the stacks.
type Workload string

const (
	// WorkloadTouch touches every stack to each depth of the list in turn
	// and measures after each depth.
	WorkloadTouch Workload = "touch"
	// WorkloadPingPong runs the two-thread epoll echo workload; each task
	// touches its stack to the scheduled depth per message.
	WorkloadPingPong Workload = "pingpong"
)

// Pattern names how the ping-pong schedule assigns depths to steps.
type Pattern string

const (
	// PatternRamp steps every task through the depth list over the run.
	PatternRamp Pattern = "ramp"
	// PatternSpread gives task k the depth k mod len(list) for the whole run.
	PatternSpread Pattern = "spread"
	// PatternRandom draws each step's depth from the list with a seeded PRNG.
	PatternRandom Pattern = "random"
)

// TouchMode names how stacks are used.
type TouchMode string

const (
	// TouchPages writes one byte into every page of [Top-depth, Top).
	TouchPages TouchMode = "pages"
	// TouchFrames recurses with real CALL frames on the stack (amd64).
	TouchFrames TouchMode = "frames"
)

// Config is one experiment, fully resolved: sizes in bytes, modes parsed.
type Config struct {
	Workload Workload `json:"workload"`
	// StackBytes is the whole reservation per stack, guard included, rounded
	// up to whole pages.
	StackBytes int64 `json:"stack_bytes"`
	// GuardBytes is the guard at the low end of each stack (0 with guard none).
	GuardBytes int64 `json:"guard_bytes"`
	// Depths is the depth list in bytes, in the order given.
	Depths   []int64           `json:"depths"`
	Tasks    int               `json:"tasks"`
	Guard    mmapstack.Guard   `json:"guard"`
	THP      mmapstack.THP     `json:"thp"`
	MapStack bool              `json:"map_stack"`
	Release  mmapstack.Release `json:"release"`
	// KeepTopBytes is how much of the top a release leaves resident.
	KeepTopBytes int64 `json:"keep_top_bytes"`
	// Populate maps stacks with MAP_POPULATE (eager).
	Populate bool `json:"populate,omitempty"`

	// TouchMode is how a task uses its stack: TouchPages writes one byte
	// per page; TouchFrames runs real call frames on it.
	TouchMode TouchMode `json:"touch"`
	// CheckGuard overflows a stack by one byte under each guard mode.
	CheckGuard bool `json:"check_guard,omitempty"`
	// Residency is how residency is read (--residency); summary.json
	// records it, and the method really used, in Summary.Residency.
	Residency procread.Method `json:"-"`

	// Ping-pong only.
	Transport string        `json:"transport,omitempty"`
	Messages  int           `json:"messages_per_client,omitempty"`
	Pattern   Pattern       `json:"pattern,omitempty"`
	Seed      int64         `json:"seed,omitempty"`
	Interval  time.Duration `json:"interval_ns,omitempty"`
	// Idle is how long a task must be parked before --release=idle gives
	// its stack's pages back.
	Idle     time.Duration `json:"idle_ns,omitempty"`
	Watchdog time.Duration `json:"watchdog_ns,omitempty"`
}

// StackOptions are the mmapstack options every stack of the run uses.
func (c Config) StackOptions() mmapstack.Options {
	return mmapstack.Options{
		Size:     int(c.StackBytes),
		Guard:    c.Guard,
		THP:      c.THP,
		MapStack: c.MapStack,
		Release:  c.Release,
		KeepTop:  int(c.KeepTopBytes),
		Populate: c.Populate,
	}
}

// Stacks is how many stacks the run reserves: one per touch task, or one per
// client and one per peer in the ping-pong.
func (c Config) Stacks() int {
	if c.Workload == WorkloadPingPong {
		return 2 * c.Tasks
	}
	return c.Tasks
}

// ExpectedPages is the seed's claim for a stack used to depth bytes:
// ceil(depth/page) pages.
func ExpectedPages(depth int64, page int) int64 {
	return (depth + int64(page) - 1) / int64(page)
}
