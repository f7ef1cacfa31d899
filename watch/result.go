package watch

import (
	"stackprobe/procread"
	"stackprobe/stackfind"
)

// Result is what a watch found and measured: the summary.json of
// `stackprobe watch`. Sizes are bytes, times are nanoseconds since the
// watch started (its first sample began at or after 0).
type Result struct {
	// Workload is "watch".
	Workload string `json:"workload"`
	// Target is the process watched.
	Target TargetInfo `json:"target"`
	// Stacks are every stack measured in at least one sample, in the order
	// they were first seen (then by address).
	Stacks []Stack `json:"stacks"`
	// Totals are the process's figures at the last recorded sample; absent
	// when no sample was recorded.
	Totals *Totals `json:"totals,omitempty"`
	// Sampler describes the sampling.
	Sampler SamplerStats `json:"sampler"`
	// Missing names the figures of Stacks this run could not measure:
	// "huge_bytes", "zero_page_bytes", "swapped_bytes" and
	// "guard_marker_bytes", each when the residency method cannot tell its
	// page class apart (procread.Pagemap.Known); they are absent from
	// Stacks, never 0.
	Missing []string `json:"missing,omitempty"`
	// Timeline is the bounded series of per-sample totals for charts (see
	// Options.TimelineLen); not part of summary.json.
	Timeline []Point `json:"-"`
	// PageMap is the runs of present pages of up to Options.PageMapStacks
	// stacks at the last recorded sample, for charts; nil when no sample
	// was recorded or PageMapStacks is negative. Not part of summary.json.
	PageMap *PageMap `json:"-"`
}

// PageMap is which pages of some stacks were present at one recorded
// sample, read from the page tables (procread.Pagemap.Runs) right after
// that sample's residency measurement.
type PageMap struct {
	// TimeNS is when that sample began.
	TimeNS int64
	// PageSize is the base page size, bytes.
	PageSize int
	// Method is the residency method that read it: "scan" or "pagemap".
	Method string
	// Found is how many stacks the sample recorded; the rows are up to
	// Options.PageMapStacks of them, evenly spread by address.
	Found int
	// Stacks are the Result.Stacks indexes of the rows' stacks, by address.
	Stacks []int
	// Rows[i] are the runs of present pages of stack Stacks[i], top first.
	Rows [][]PageRun
}

// PageRun is a run of present pages of one class in a PageMap row.
type PageRun struct {
	// From and To bound it in bytes below the stack's End, [From, To):
	// From 0 is the topmost page.
	From, To int64
	// Class is procread.ClassResident (with ClassHuge for the pages of a
	// transparent huge page) or procread.ClassZeroPage (present, not
	// memory). Swapped pages and guard markers are not in a PageMap.
	Class procread.PageClass
}

// TargetInfo identifies the watched process and how it ended.
type TargetInfo struct {
	// PID is its process id.
	PID int `json:"pid"`
	// Argv is the command started, absent when attached by pid.
	Argv []string `json:"argv,omitempty"`
	// Exited says whether it was seen to exit before the watch ended.
	Exited bool `json:"exited"`
	// ExitCode is a started command's exit status, when it exited normally.
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal names the signal that ended a started command (e.g.
	// "interrupt"), when one did.
	Signal string `json:"signal,omitempty"`
}

// Stack is one stack over the whole watch. The figures are those of the
// last recorded sample that measured it, unless named _max: a stack still
// mapped that a sample did not find (its thread running then) is not
// measured in that sample.
type Stack struct {
	// Index numbers the stacks from 0 in the order they were first seen.
	Index int `json:"index"`
	// Start and End bound it, [Start, End), addresses in the target.
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	// SizeBytes is End-Start.
	SizeBytes uint64 `json:"size_bytes"`
	// FoundBy is every way it was found, over all samples.
	FoundBy stackfind.FoundBy `json:"found_by"`
	// TID is the thread whose stack pointer was in it (the lowest, first
	// seen), absent when none.
	TID int `json:"tid,omitempty"`
	// Threads is the most threads whose stack pointers were in it at once
	// (more than 1: a mapping shared by stacks, like a Go heap arena).
	Threads int `json:"threads,omitempty"`
	// Guard is what sits at its low end.
	Guard stackfind.GuardKind `json:"guard"`
	// SizeMatch says how it matched --size, absent when not found by size.
	SizeMatch stackfind.SizeMatch `json:"size_match,omitempty"`
	// FirstSeenNS and LastSeenNS are the times of the first and last
	// recorded samples that measured it.
	FirstSeenNS int64 `json:"first_seen_ns"`
	LastSeenNS  int64 `json:"last_seen_ns"`
	// Samples counts the recorded samples that measured it.
	Samples int `json:"samples"`
	// Gone says it disappeared from the maps before the watch ended.
	Gone bool `json:"gone"`
	// RSSBytes is the memory it held (resident, zero page excluded; equal
	// to smaps Rss of its range). When zero_page_bytes is in
	// Result.Missing, the method cannot tell zero-page mappings apart and
	// they are included.
	RSSBytes int64 `json:"rss_bytes"`
	// RSSBytesMax is the most it held in any recorded sample.
	RSSBytesMax int64 `json:"rss_bytes_max"`
	// DeepestBytes is the largest End-Lowest over the samples: from its
	// top to its lowest resident page, how deep it has been used as far as
	// residency shows. 0 when no page was ever resident.
	DeepestBytes int64 `json:"deepest_bytes"`
	// HugeBytes are resident bytes in transparent huge pages; absent when
	// the residency method cannot see them.
	HugeBytes *int64 `json:"huge_bytes,omitempty"`
	// ZeroPageBytes are bytes mapped to the shared zero page (present but
	// not memory); absent when the method cannot see them.
	ZeroPageBytes *int64 `json:"zero_page_bytes,omitempty"`
	// SwappedBytes are bytes swapped out; absent when the method cannot
	// see swap entries.
	SwappedBytes *int64 `json:"swapped_bytes,omitempty"`
	// GuardMarkerBytes are MADV_GUARD_INSTALL guard markers in its range;
	// absent when the method cannot see them (PAGE_IS_GUARD, or pagemap
	// bit 58, needs Linux >= 6.14).
	GuardMarkerBytes *int64 `json:"guard_marker_bytes,omitempty"`
	// ContiguousFromTop says its resident pages were one run reaching its
	// End (true when none was resident): the pattern of a stack that grows
	// down page by page from its top.
	ContiguousFromTop bool `json:"contiguous_from_top"`
}

// Totals are whole-process figures at one sample.
type Totals struct {
	// TimeNS is when the sample began.
	TimeNS int64 `json:"time_ns"`
	// VmRSSBytes is /proc/PID/status VmRSS.
	VmRSSBytes uint64 `json:"vm_rss_bytes"`
	// VmPTEBytes is /proc/PID/status VmPTE: its page tables.
	VmPTEBytes uint64 `json:"vm_pte_bytes"`
	// MinorFaults is /proc/PID/stat minflt, a count.
	MinorFaults uint64 `json:"minor_faults"`
	// VMAs is the number of mappings in /proc/PID/maps.
	VMAs int `json:"vmas"`
	// Threads is /proc/PID/stat num_threads.
	Threads int `json:"threads"`
	// Stacks is the number of stacks measured in the sample.
	Stacks int `json:"stacks"`
	// StacksRSSBytes is the sum of their RSSBytes.
	StacksRSSBytes int64 `json:"stacks_rss_bytes"`
}

// SamplerStats describe the sampling.
type SamplerStats struct {
	// Samples counts the recorded samples.
	Samples int `json:"samples"`
	// IntervalNS is the interval asked for.
	IntervalNS int64 `json:"interval_ns"`
	// MeanCostNS and MaxCostNS are the wall time one sample took (maps,
	// threads, classification, residency, totals), over every sample that
	// completed its measurement, recorded or not (the last one before the
	// target exits is never confirmed, so never recorded: with Samples 0
	// they are the cost of measurements not recorded); absent when none
	// did.
	MeanCostNS int64 `json:"mean_cost_ns,omitempty"`
	MaxCostNS  int64 `json:"max_cost_ns,omitempty"`
	// Method is the residency method: "scan", "pagemap" or "mincore".
	Method string `json:"method"`
}

// Point is one recorded sample in the timeline.
type Point struct {
	TimeNS         int64
	StacksRSSBytes int64
	VmRSSBytes     uint64
	VmPTEBytes     uint64
	Stacks         int
}

// Sample is one recorded sample as a Recorder gets it.
type Sample struct {
	// Index numbers the recorded samples from 0.
	Index int
	// CostNS is the wall time the sample took.
	CostNS int64
	// Totals are the process figures.
	Totals Totals
	// Stacks are the stacks measured, by address.
	Stacks []StackSample
	// Known is the set of page classes the residency method tells apart:
	// a StackSample figure whose class (ClassHuge, ClassZeroPage,
	// ClassSwapped) is not in it is 0 without having been measured, and
	// without ClassZeroPage RSSBytes includes zero-page mappings.
	Known procread.PageClass
}

// StackSample is one stack in one Sample.
type StackSample struct {
	// Index is the stack's Result index.
	Index         int
	RSSBytes      int64
	DeepestBytes  int64 // End-Lowest in this sample, 0 when nothing resident
	HugeBytes     int64 // 0 also when Sample.Known lacks ClassHuge
	ZeroPageBytes int64 // 0 also when Sample.Known lacks ClassZeroPage
	SwappedBytes  int64 // 0 also when Sample.Known lacks ClassSwapped
	Runs          int   // maximal runs of resident pages
}

// Recorder receives every recorded sample, e.g. to stream it to a CSV
// file. RecordSample runs on the sampling goroutine, so it should be quick;
// s and its slices are reused after it returns. An error ends the watch and
// is returned by Wait.
type Recorder interface {
	RecordSample(s *Sample) error
}
