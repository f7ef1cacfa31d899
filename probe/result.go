package probe

import (
	"time"

	"stackprobe/procread"
)

// Header is what every result file starts with: how the run went, what
// it ran, where and with which settings.
type Header struct {
	// Partial is true when the run was interrupted or failed after it had
	// measured something: the figures are real but the schedule is incomplete.
	Partial bool `json:"partial"`
	// Error says why a partial run stopped.
	Error   string    `json:"error,omitempty"`
	Command string    `json:"command"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// PageSize is the base page the expectations are computed in, bytes.
	PageSize    int             `json:"page_size"`
	Environment procread.System `json:"environment"`
	Config      Config          `json:"config"`
}

// Result is what one run measured: Summary is the summary.json schema,
// Series the bulk data that only the charts draw.
type Result struct {
	Summary
	Series Series `json:"-"`
}

// Rows are the per-depth records of either workload: the touch steps in
// schedule order, or the ping-pong's high-water groups by depth.
func (r *Result) Rows() []DepthResult {
	if r.Config.Workload == WorkloadPingPong {
		return r.HighWaterGroups
	}
	return r.Steps
}

// Summary is everything one run measured that summary.json holds.
type Summary struct {
	Header
	// Baseline is the process before any stack was reserved.
	Baseline Totals `json:"baseline"`
	// Reserved is the process with every stack reserved, before the first
	// touch: page-table growth from here on is the stacks' use.
	Reserved Totals `json:"reserved"`
	// Steps (touch workload) has one entry per depth of the schedule, in
	// the order run: every stack used to that depth, then measured.
	Steps []DepthResult `json:"steps,omitempty"`
	// HighWaterGroups (ping-pong) groups the stacks by the deepest depth
	// their task used over the whole run, measured after the IO stopped;
	// one entry per depth reached, shallowest first.
	HighWaterGroups []DepthResult `json:"high_water_groups,omitempty"`
	// GuardChecks is set with --check-guard: one deliberate overflow per
	// guard mode.
	GuardChecks []GuardCheck `json:"guard_checks,omitempty"`
	// PingPong is set for the ping-pong workload.
	PingPong *PingPongResult `json:"pingpong,omitempty"`
	// TopsAligned2M counts stacks whose top is 2 MiB aligned: only then can
	// a transparent huge page back the topmost block.
	TopsAligned2M int `json:"tops_aligned_2m"`
	// Tool is stackprobe's own memory outside the stacks.
	Tool ToolMemory `json:"tool"`
	// ReserveNanos is the wall time to reserve every stack (with
	// MAP_POPULATE this includes backing every page).
	ReserveNanos int64 `json:"reserve_ns"`
	// Cost is one coroutine's cost at the end of the run, set by
	// Run.Cost; absent when it was not measured.
	Cost *Cost `json:"cost,omitempty"`
	// Residency says how per-stack residency was read and how the
	// cross-checks went.
	Residency ResidencyInfo `json:"residency"`
}

// ResidencyInfo is how a run read residency from the page tables.
type ResidencyInfo struct {
	// Requested is the method --residency asked for: "scan", "pagemap"
	// or "mincore".
	Requested string `json:"requested"`
	// Method is the method that produced every figure: Requested, or
	// "pagemap" where the kernel lacks PAGEMAP_SCAN.
	Method string `json:"method"`
	// Missing names the per-stack page classes the method cannot tell
	// apart ("huge_bytes", "zero_page_bytes", "swapped_bytes"): they are
	// absent from summary.json and empty in samples.csv, never 0.
	Missing []string `json:"missing,omitempty"`
	// Lanes is how many walks the final measurement ran at once, each over
	// a part of the stacks by address (procread.Pagemap.Lanes); 1 means
	// one walk over all stacks. Absent when nothing was measured.
	Lanes int `json:"lanes,omitempty"`
	// CrossCheck compares the final measurement, page for page, with a
	// second method (mincore, or the scan when mincore is the method).
	// Absent when no second method could run.
	CrossCheck *CrossCheck `json:"cross_check,omitempty"`
}

// CrossCheck compares the present pages (resident or zero page) that two
// methods see in the same stacks at the same moment, page for page.
type CrossCheck struct {
	// Method is the second method: "mincore" or "scan".
	Method string `json:"method"`
	// Stacks is how many stacks were compared, of StacksOf in the run:
	// every stack unless their reservation is too large to walk twice
	// with mincore (then an evenly spread subset).
	Stacks   int `json:"stacks"`
	StacksOf int `json:"stacks_of"`
	// PresentBytes is the present bytes the method in use found in the
	// compared stacks.
	PresentBytes int64 `json:"present_bytes"`
	// DifferingBytes is the bytes of pages that one method found present
	// and the other did not; Agree is true when it is 0.
	DifferingBytes int64 `json:"differing_bytes"`
	Agree          bool  `json:"agree"`
	// DifferingStacks counts the compared stacks with any differing page.
	DifferingStacks int `json:"differing_stacks"`
}

// Series is what the charts draw beyond the summary.
type Series struct {
	// Residency is the page map of some stacks after the last step, and
	// ResidencyFirst after the first (touch workload).
	Residency      *ResidencyMap
	ResidencyFirst *ResidencyMap
	// Timeline is the sampled history the over-time chart draws (bounded;
	// samples.csv has every sample).
	Timeline []TimelinePoint
	// PerStackRSS[i] is each stack's resident bytes for Rows()[i], in
	// stack order.
	PerStackRSS [][]int64
}

// Totals are process-wide figures at one moment, bytes unless named.
type Totals struct {
	VmRSS       uint64 `json:"vmrss_bytes"`
	VmHWM       uint64 `json:"vmhwm_bytes"`
	VmPTE       uint64 `json:"vmpte_bytes"`
	MinorFaults uint64 `json:"minor_faults"`
	VMAs        int    `json:"vma_count"`
}

func totalsFrom(t procread.Totals) Totals {
	return Totals{VmRSS: t.VmRSS, VmHWM: t.VmHWM, VmPTE: t.VmPTE, MinorFaults: t.MinorFaults, VMAs: t.VMAs}
}

// DepthResult is the measurement after every stack was used to one depth.
type DepthResult struct {
	DepthBytes int64 `json:"depth_bytes"`
	// ExpectedRSSBytes is the seed's claim: ceil(depth/page)·page per stack.
	ExpectedRSSBytes int64 `json:"expected_rss_bytes"`
	ExpectedPages    int64 `json:"expected_pages"`
	// HighWaterBytes is ceil(deepest depth so far/page)·page: what a stack
	// that never gives pages back holds.
	HighWaterBytes int64 `json:"high_water_bytes"`
	// ExpectedAfterReleaseBytes is what the release mode should leave:
	// the high-water mark for none and free, the kept top for dontneed.
	// With idle (ping-pong) it is the high-water mark, the most a stack
	// of the group may hold: each stack is held to its own state instead
	// (MatchedAfterRelease).
	ExpectedAfterReleaseBytes int64 `json:"expected_after_release_bytes"`
	// Per-stack memory held, bytes: the resident pages of each whole
	// mapping (guard included), shared zero page excluded, as the page
	// tables say (Summary.Residency.Method); equal to smaps Rss.
	RSSBytesMin   int64 `json:"rss_bytes_min"`
	RSSBytesMax   int64 `json:"rss_bytes_max"`
	RSSBytesTotal int64 `json:"rss_bytes_total"`
	// HugeBytesTotal, ZeroPageBytesTotal and SwappedBytesTotal sum the
	// stacks' page classes, bytes: resident in transparent huge pages,
	// mapped to the shared zero page (present, not memory, not in Rss),
	// swapped out. Absent when the method cannot tell the class apart
	// (Summary.Residency.Missing names it).
	HugeBytesTotal     *int64 `json:"huge_bytes_total,omitempty"`
	ZeroPageBytesTotal *int64 `json:"zero_page_bytes_total,omitempty"`
	SwappedBytesTotal  *int64 `json:"swapped_bytes_total,omitempty"`
	// LowHugeStacks counts stacks whose lowest pages are part of a 2 MiB
	// huge page that begins in the mapping below (adjacent stacks merged
	// into one VMA), and LowHugeBytesTotal sums those pages' bytes: they
	// are attributed by address to the stack that holds them. Absent
	// when the method cannot see huge pages.
	LowHugeStacks     *int   `json:"low_huge_stacks,omitempty"`
	LowHugeBytesTotal *int64 `json:"low_huge_bytes_total,omitempty"`
	// Matched counts stacks whose resident bytes equal ExpectedRSSBytes at
	// the peak of the step, before any release (touch workload), or at the
	// end of the run (ping-pong).
	Matched int `json:"matched"`
	// MatchedAfterRelease counts stacks equal to what the release mode
	// should leave in them: ExpectedAfterReleaseBytes, or with idle, for
	// a stack released for being idle, the larger of its kept top
	// (ceil(min(deepest, keep-top)/page) pages) and ceil(deepest depth
	// since its last idle release/page) pages.
	MatchedAfterRelease int `json:"matched_after_release"`
	Stacks              int `json:"stacks"`
	// AnonHugeBytesTotal sums smaps AnonHugePages over the stacks' VMAs;
	// -1 when these stacks share VMAs with stacks outside this group
	// (a ping-pong depth group with merged VMAs), so nothing is attributable.
	AnonHugeBytesTotal int64 `json:"anon_huge_bytes_total"`
	// Smaps is the cross-check of the per-stack figures against
	// /proc/self/smaps Rss.
	Smaps SmapsCheck `json:"smaps"`
	// Process totals right after this depth.
	VmPTEBytes  uint64 `json:"vmpte_bytes"`
	VmRSSBytes  uint64 `json:"vmrss_bytes"`
	VMACount    int    `json:"vma_count"`
	MinorFaults uint64 `json:"minor_faults"`
	// Step is what the touch step did (touch workload only: the ping-pong
	// measures its steps live, in the samples).
	Step *StepCost `json:"step,omitempty"`
}

// StepCost is one touch step of every stack, measured around it.
type StepCost struct {
	// PeakRSSBytesMin/Max are per-stack resident bytes right after the
	// touch, before the release (the same as after it with release none).
	PeakRSSBytesMin int64 `json:"peak_rss_bytes_min"`
	PeakRSSBytesMax int64 `json:"peak_rss_bytes_max"`
	// UsedBytes is the most any stack really used below its top: the depth
	// with --touch=pages, the depth rounded up to whole frames with frames.
	UsedBytes int64 `json:"used_bytes"`
	// TouchNanos is the wall time to touch every stack (release excluded).
	TouchNanos int64 `json:"touch_ns"`
	// NewPages is how many pages became resident during the touch: the
	// stacks' residency at the peak minus after the previous step.
	NewPages int64 `json:"new_pages"`
	// PeakVmPTEBytes is the process's VmPTE right after the touch, before
	// the release (release none: absent, the row's VmPTE is the peak).
	// This kernel frees page tables on MADV_DONTNEED, so it can be far
	// above the row's VmPTE after the release.
	PeakVmPTEBytes uint64 `json:"peak_vmpte_bytes,omitempty"`
	// PeakRSSBytesTotal sums the stacks' resident bytes at the peak.
	PeakRSSBytesTotal int64 `json:"peak_rss_bytes_total"`
}

// SmapsCheck compares per-stack residency from the page tables with smaps
// Rss.
type SmapsCheck struct {
	// VMAs is how many smaps VMAs overlap the stacks.
	VMAs int `json:"vmas"`
	// OwnVMAStacks counts stacks that are the only stack in their VMAs, so
	// smaps gives their Rss directly.
	OwnVMAStacks int `json:"own_vma_stacks"`
	// Groups counts runs of merged stacks whose VMAs cover exactly those
	// stacks: smaps Rss of the run must equal their summed resident bytes.
	Groups int `json:"groups"`
	// Agree is true when every comparable stack and group agreed.
	Agree bool `json:"agree"`
	// Disagreements counts comparable stacks or groups that did not.
	Disagreements int `json:"disagreements"`
	// RSSBytesTotal is the smaps Rss summed over comparable groups.
	RSSBytesTotal int64 `json:"rss_bytes_total"`
}

// PingPongResult is the workload section of summary.json.
type PingPongResult struct {
	Transport         string  `json:"transport"`
	Clients           int     `json:"clients"`
	MessagesPerClient int     `json:"messages_per_client"`
	RoundTrips        int64   `json:"round_trips"`
	Errors            int64   `json:"errors"`
	Seconds           float64 `json:"seconds"`
	// RoundTripsPerSecond and LatencyNanos (round-trip latency
	// percentiles) are absent when no round trip completed.
	RoundTripsPerSecond *float64     `json:"round_trips_per_second,omitempty"`
	LatencyNanos        *Latency     `json:"latency_ns,omitempty"`
	Sampler             SamplerStats `json:"sampler"`
	// PredictionExactSamples counts live samples in which the stacks'
	// summed residency equalled the schedule's prediction exactly.
	PredictionExactSamples int `json:"prediction_exact_samples"`
	// PredictionMaxGapBytes is the largest |measured - predicted| of any
	// live sample (a task caught between publishing its depth and touching).
	PredictionMaxGapBytes int64 `json:"prediction_max_gap_bytes"`
	// UnusedDepths are depths of the list no task ever used (a random
	// draw that missed them, or a run that stopped early).
	UnusedDepths []int64 `json:"unused_depths,omitempty"`
	// ThreadCPUNs is each IO thread's CPU time over the run, user and
	// system (getrusage RUSAGE_THREAD), nanoseconds.
	ThreadCPUNs struct {
		Clients int64 `json:"clients"`
		Server  int64 `json:"server"`
	} `json:"thread_cpu_ns"`
	// MinorFaultsPerRoundTrip is the process's minor faults from the
	// reservation to the end of the IO over the round trips; absent when
	// no round trip completed.
	MinorFaultsPerRoundTrip *float64 `json:"minor_faults_per_round_trip,omitempty"`
	// MadviseCallsPerRoundTrip is the release calls every stack made,
	// over the round trips; absent when no round trip completed.
	MadviseCallsPerRoundTrip *float64 `json:"madvise_calls_per_round_trip,omitempty"`
	// IdleReleases counts releases of idle stacks, and IdleStacks the
	// stacks released at least once that way (--release=idle).
	IdleReleases int64 `json:"idle_releases,omitempty"`
	IdleStacks   int   `json:"idle_stacks,omitempty"`
	// IdleAtEnd counts stacks whose last event was an idle release (no use
	// since), and IdleAtEndKeptTop those of them holding exactly the kept
	// top: ceil(min(deepest, keep-top)/page) pages.
	IdleAtEnd        int `json:"idle_at_end,omitempty"`
	IdleAtEndKeptTop int `json:"idle_at_end_kept_top,omitempty"`
	// IdleReleasesChecked counts idle releases whose stack was measured
	// right after (mincore, base pages only), and IdleReleasesKeptTop
	// those after which it held exactly the kept top it had touched.
	IdleReleasesChecked int64 `json:"idle_releases_checked,omitempty"`
	IdleReleasesKeptTop int64 `json:"idle_releases_kept_top,omitempty"`
	// PeakStackRSSBytes is the stacks' summed residency at the live
	// sample that found the most.
	PeakStackRSSBytes int64 `json:"peak_stack_rss_bytes"`
	// LiveSteps is what the stacks held at each depth of the list while
	// the IO ran, from the live samples' clean steps (see LiveStep); one
	// entry per distinct depth that some sample caught, in list order.
	LiveSteps []LiveStep `json:"live_steps,omitempty"`
	// LiveStepsMissing are the distinct depths of the list that no live
	// sample caught in a clean step (never used, or used only between
	// samples): the chart falls back to the high-water groups for them.
	LiveStepsMissing []int64 `json:"live_steps_missing,omitempty"`
	// SocketBytesPerConnection is the kernel memory of each connection's
	// two sockets (SO_MEMINFO receive and send allocations, forward
	// allocation and write queue), per connection.
	SocketBytesPerConnection SocketBytes `json:"socket_bytes_per_connection"`
}

// LiveStep is what the stacks held at one depth of the list while the
// ping-pong ran. A stack counts in a live sample (one observation) when its
// task's latest step and its deepest step so far were both this depth, and
// no step or release of that task ran while the sample walked the page
// tables: then the stack holds exactly what a step of this depth leaves,
// with no earlier deeper step or half-done touch mixed in.
type LiveStep struct {
	DepthBytes int64 `json:"depth_bytes"`
	// ExpectedBytes is what one step of this depth leaves under the run's
	// release mode: ceil(depth/page)·page, or the kept top with
	// --release=dontneed.
	ExpectedBytes int64 `json:"expected_bytes"`
	// Stacks counts the distinct stacks observed at this depth, Samples
	// the live samples with at least one observation, Observations the
	// (stack, sample) pairs, and Matched the observations equal to
	// ExpectedBytes.
	Stacks       int   `json:"stacks"`
	Samples      int   `json:"samples"`
	Observations int64 `json:"observations"`
	Matched      int64 `json:"matched"`
	// RSSBytesMin, RSSBytesMax and RSSBytesTotal are the least, the most
	// and the sum of the observed stacks' resident bytes (the run's
	// residency method, shared zero page excluded), over every observation.
	RSSBytesMin   int64 `json:"rss_bytes_min"`
	RSSBytesMax   int64 `json:"rss_bytes_max"`
	RSSBytesTotal int64 `json:"rss_bytes_total"`
}

// RSSBytesMean is the mean resident bytes of one observation; 0 when there
// was none.
func (l LiveStep) RSSBytesMean() float64 {
	if l.Observations == 0 {
		return 0
	}
	return float64(l.RSSBytesTotal) / float64(l.Observations)
}

// SocketBytes is socket memory per connection, bytes.
type SocketBytes struct {
	// MeanEnd is the sockets' memory over the connections at the last look
	// while every connection was open; absent when no look saw them all.
	MeanEnd *int64 `json:"mean_end,omitempty"`
	// Max is the most any look found, over the connections; absent when
	// no look was seen (Peak 0 and no sample found a socket).
	Max *int64 `json:"max,omitempty"`
	// AtClose is what a connection's two sockets held just before they
	// were closed (their queues are normally empty by then): the mean per
	// socket over the AtCloseSockets sockets whose memory was read then,
	// times two. Absent when none was.
	AtClose        *int64 `json:"at_close,omitempty"`
	AtCloseSockets int64  `json:"at_close_sockets,omitempty"`
	// Looks is how many looks saw every connection open.
	Looks int `json:"looks"`
}

// SamplerStats is what live sampling cost.
type SamplerStats struct {
	Samples    int   `json:"samples"`
	IntervalNs int64 `json:"interval_ns"`
	// MeanCostNs and MaxCostNs are the wall time of one sample.
	MeanCostNs int64 `json:"mean_cost_ns"`
	MaxCostNs  int64 `json:"max_cost_ns"`
	// CPUNs is the sampler thread's CPU time (getrusage RUSAGE_THREAD).
	CPUNs int64 `json:"cpu_ns"`
	// CPUFraction is CPUNs over the whole process's CPU time during the run.
	CPUFraction float64 `json:"cpu_fraction"`
	// TimelinePoints is how many samples the over-time chart keeps.
	TimelinePoints int `json:"timeline_points"`
}

// TimelinePoint is one sample kept for the over-time chart.
type TimelinePoint struct {
	Elapsed time.Duration
	// StackRSS is the memory held, summed over all stacks' whole mappings.
	StackRSS int64
	// Expected is what the schedule predicts for StackRSS at this moment.
	Expected int64
	VmRSS    uint64
	VmPTE    uint64
	// Depth is the ramp's depth at this moment (0 for other patterns).
	Depth int64
}

// ToolMemory is stackprobe's own footprint, outside the stacks.
type ToolMemory struct {
	// GoHeapBytes is the Go heap in use at the end (runtime/metrics).
	GoHeapBytes uint64 `json:"go_heap_bytes"`
	// GoTotalBytes is all memory mapped by the Go runtime.
	GoTotalBytes uint64 `json:"go_total_bytes"`
	// NonStackRSSBytes is VmRSS minus the stacks' resident bytes at the
	// end; absent when no depth was measured.
	NonStackRSSBytes *int64 `json:"non_stack_rss_bytes,omitempty"`
}

// ResidencyMap is which pages at the top of some stacks are resident.
type ResidencyMap struct {
	// WindowBytes is how much of each stack's top the map covers: chosen
	// from the data, the smallest power of two at least twice the deepest
	// resident byte of any row below its top, at least 16 pages, at most
	// the stack.
	WindowBytes int64
	PageSize    int
	// Method is the residency method that read the map.
	Method string
	// Stacks are the indexes of the stacks drawn, one row each.
	Stacks []int
	// Rows[i] are the runs of present pages of stack Stacks[i] inside the
	// window, top first.
	Rows [][]ResidentRun
}

// ResidentRun is a run of pages of one class in a ResidencyMap row.
type ResidentRun struct {
	// From and To bound the run in bytes below the stack's top, [From, To):
	// From 0 is the topmost page.
	From, To int64
	// Huge marks pages of a transparent huge page.
	Huge bool
	// ZeroPage marks pages mapped to the shared zero page (present to
	// mincore and pagemap, but not memory).
	ZeroPage bool
}

// PingPongComparison is compare --workload=pingpong: the same ping-pong
// under each stack strategy, every strategy run Rounds times, the rounds
// interleaved (round 1 of every strategy, then round 2, ...), so that a
// drift of the machine's speed over the run spreads over all strategies.
type PingPongComparison struct {
	Header
	// Rounds is how many times each strategy was to run.
	Rounds     int                `json:"rounds"`
	Strategies []PingPongStrategy `json:"strategies"`
}

// PingPongStrategy is one strategy's rounds and the figures over them.
type PingPongStrategy struct {
	// Name is short and stable (lazy-4k, lazy-thp, dontneed, free,
	// idle-dontneed, eager, no-touch); Label is for charts and tables.
	Name  StrategyName `json:"name"`
	Label string       `json:"label"`
	// Skipped says why the strategy did not run at all.
	Skipped string `json:"skipped,omitempty"`
	// Error is the first error a round of this strategy ended with (the
	// watchdog, say); the figures then come from the rounds that finished.
	Error string `json:"error,omitempty"`
	// PingPongFigures are over the rounds that finished without error;
	// absent when none did.
	*PingPongFigures
	// Rounds are the raw figures of every round that ran, in order.
	Rounds []PingPongRound `json:"rounds,omitempty"`
}

// PingPongFigures condense a strategy's finished rounds: medians, with the
// spread of the throughput.
type PingPongFigures struct {
	// RoundsMeasured counts the rounds that finished without error.
	RoundsMeasured int `json:"rounds_measured"`
	// RoundTrips is the fewest round trips any round completed (each
	// should complete clients × messages); Errors sums every round's.
	RoundTrips int64 `json:"round_trips"`
	Errors     int64 `json:"errors"`
	// RoundTripsPerSecond is the median over the rounds; _Min and _Max
	// are the slowest and fastest round: the spread.
	RoundTripsPerSecond    float64 `json:"round_trips_per_second"`
	RoundTripsPerSecondMin float64 `json:"round_trips_per_second_min"`
	RoundTripsPerSecondMax float64 `json:"round_trips_per_second_max"`
	// LatencyNanos and CPUNanos are medians over the rounds, nanoseconds.
	LatencyNanos Latency   `json:"latency_ns"`
	CPUNanos     ThreadCPU `json:"cpu_ns"`
	// MinorFaultsPerRoundTrip and MadviseCallsPerRoundTrip are medians
	// over the rounds (see PingPongResult).
	MinorFaultsPerRoundTrip  float64 `json:"minor_faults_per_round_trip"`
	MadviseCallsPerRoundTrip float64 `json:"madvise_calls_per_round_trip"`
	// PeakRSSBytesPerStack and EndRSSBytesPerStack are medians over the
	// rounds of the stacks' resident bytes (page tables, PAGEMAP_SCAN or
	// mincore) per stack: at the live sample that found the most, and
	// after the IO stopped.
	PeakRSSBytesPerStack int64 `json:"peak_rss_bytes_per_stack"`
	EndRSSBytesPerStack  int64 `json:"end_rss_bytes_per_stack"`
	// PTEBytesPerStack is the median over the rounds of the process's
	// VmPTE growth from before the reservation to the end of the IO, over
	// the stack count: the page tables reserving (MAP_POPULATE) and using
	// the stacks built. Process-wide, so the tool's own small churn is in
	// it. Absent when no round's VmPTE grew.
	PTEBytesPerStack *int64 `json:"pte_bytes_per_stack,omitempty"`
	// VmRSSBytes is the median over the rounds of the process's VmRSS at
	// the end of the IO.
	VmRSSBytes uint64 `json:"vmrss_bytes"`
}

// Latency is round-trip latency percentiles, nanoseconds.
type Latency struct {
	P50 int64 `json:"p50"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

// ThreadCPU is the CPU time (user and system, getrusage RUSAGE_THREAD) of
// the ping-pong's two IO threads, nanoseconds.
type ThreadCPU struct {
	Clients int64 `json:"clients"`
	Server  int64 `json:"server"`
}

// PingPongRound is one run of one strategy.
type PingPongRound struct {
	// Round counts from 1.
	Round int `json:"round"`
	// Error is why the round stopped early; its figures are what it
	// measured until then and do not count in the strategy's figures.
	Error      string `json:"error,omitempty"`
	RoundTrips int64  `json:"round_trips"`
	Errors     int64  `json:"errors"`
	// RoundTripsPerSecond, LatencyNanos, MinorFaultsPerRoundTrip and
	// MadviseCallsPerRoundTrip are as in PingPongResult: absent when no
	// round trip completed.
	RoundTripsPerSecond      *float64  `json:"round_trips_per_second,omitempty"`
	LatencyNanos             *Latency  `json:"latency_ns,omitempty"`
	CPUNanos                 ThreadCPU `json:"cpu_ns"`
	MinorFaultsPerRoundTrip  *float64  `json:"minor_faults_per_round_trip,omitempty"`
	MadviseCallsPerRoundTrip *float64  `json:"madvise_calls_per_round_trip,omitempty"`
	// PeakRSSBytesPerStack is the stacks' summed residency at the live
	// sample that found the most, over the stack count (mean per stack).
	PeakRSSBytesPerStack int64 `json:"peak_rss_bytes_per_stack"`
	// EndRSSBytesPerStack is the mean of the stacks' residency after the
	// IO stopped; EndRSSBytesMin/Max the least and most one stack held.
	EndRSSBytesPerStack int64 `json:"end_rss_bytes_per_stack"`
	EndRSSBytesMin      int64 `json:"end_rss_bytes_min"`
	EndRSSBytesMax      int64 `json:"end_rss_bytes_max"`
	// EndAsPredicted counts stacks that ended holding exactly what the
	// release mode predicts from their deepest depth: ceil(deepest/page)
	// pages without a release or with MADV_FREE, the kept top with
	// MADV_DONTNEED after every message. For the idle policy each stack
	// is held to its own state: the kept top after its last idle release,
	// or what it used since (its high-water mark if it never idled);
	// IdleAtEndKeptTop counts those whose last event was an idle release.
	EndAsPredicted int `json:"end_as_predicted"`
	Stacks         int `json:"stacks"`
	// PTEBytesPerStack is VmPTE at the end minus VmPTE before the
	// reservation, over the stack count; absent when it fell.
	PTEBytesPerStack *int64 `json:"pte_bytes_per_stack,omitempty"`
	VmRSSBytes       uint64 `json:"vmrss_bytes"`
	// IdleStacks, IdleAtEnd and IdleAtEndKeptTop are as in PingPongResult
	// (idle-dontneed only).
	IdleStacks       int `json:"idle_stacks,omitempty"`
	IdleAtEnd        int `json:"idle_at_end,omitempty"`
	IdleAtEndKeptTop int `json:"idle_at_end_kept_top,omitempty"`
	// IdleReleasesChecked and IdleReleasesKeptTop are as in PingPongResult:
	// each idle release measured at once, and those that left exactly the
	// kept top.
	IdleReleasesChecked int64 `json:"idle_releases_checked,omitempty"`
	IdleReleasesKeptTop int64 `json:"idle_releases_kept_top,omitempty"`
	// Seconds is the round's wall time, reservation and measurement
	// included.
	Seconds float64 `json:"seconds"`
}

// PerConnection turns a per-stack figure into one per connection: every
// connection has two tasks, a client and the server's peer, each with a
// stack of its own.
func (c *PingPongComparison) PerConnection(perStack int64) int64 {
	return perStack * int64(c.Config.Stacks()) / int64(max(c.Config.Tasks, 1))
}
