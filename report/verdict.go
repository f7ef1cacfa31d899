package report

import (
	"fmt"
	"strings"
	"time"

	"stackprobe/frames"
	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/sizes"
)

// Verdicts computes the evidence's conclusions from the measured depths.
// Nothing here is decided in advance: each sentence follows from numbers in r.
func Verdicts(r *probe.Result) []string {
	var out []string
	if len(r.Rows()) == 0 {
		return []string{"no depth was measured; there is no evidence either way"}
	}
	page := int64(r.PageSize)
	stacks := r.Config.Stacks()
	pingpong := r.PingPong != nil
	released := r.Config.Release != mmapstack.ReleaseNone
	if pingpong && released {
		// A ping-pong is measured at its end, after the releases: what
		// can be checked is what the release leaves.
		return append(releaseVerdicts(r), commonVerdicts(r)...)
	}
	var mismatched []probe.DepthResult
	for _, d := range r.Rows() {
		if d.Matched != d.Stacks {
			mismatched = append(mismatched, d)
		}
	}
	switch {
	case len(mismatched) == 0 && pingpong:
		total := 0
		for _, d := range r.Rows() {
			total += d.Stacks
		}
		out = append(out, fmt.Sprintf("after the ping-pong, all %d stacks held exactly ceil(d/%s) pages, d being the deepest depth their task used (%s): the claim holds for this configuration",
			total, sizes.IEC(page), plural(len(r.Rows()), "depth group")))
	case len(mismatched) == 0:
		out = append(out, fmt.Sprintf("all %d stacks matched ceil(depth/%s) pages at %s: the claim holds for this configuration",
			stacks, sizes.IEC(page), every(len(r.Rows()), "depth")))
	default:
		out = append(out, fmt.Sprintf("the claim failed at %d of %d depths: stacks did not hold exactly ceil(depth/%s) pages",
			len(mismatched), len(r.Rows()), sizes.IEC(page)))
		for _, d := range mismatched {
			out = append(out, explain(r, d))
		}
	}
	if released {
		out = append(out, releaseVerdicts(r)...)
	}
	return append(out, commonVerdicts(r)...)
}

// releaseVerdicts compares what each step left after its release with
// what the release mode should leave.
func releaseVerdicts(r *probe.Result) []string {
	var bad []string
	for _, d := range r.Rows() {
		if d.MatchedAfterRelease != d.Stacks {
			bad = append(bad, fmt.Sprintf("at depth %s %d of %d stacks held %s..%s, not the expected %s",
				sizes.IEC(d.DepthBytes), d.Stacks-d.MatchedAfterRelease, d.Stacks, sizes.IEC(d.RSSBytesMin), sizes.IEC(d.RSSBytesMax),
				sizes.IEC(d.ExpectedAfterReleaseBytes)))
		}
	}
	deeper := false
	for _, d := range r.Rows() {
		deeper = deeper || d.HighWaterBytes > r.Config.KeepTopBytes
	}
	what := "the kept top (--keep-top), MADV_DONTNEED having dropped the rest"
	switch {
	case !deeper && r.Config.THP == mmapstack.THPNever:
		what = "what it touched: no step went below the kept top (--keep-top), so nothing was released"
	case r.Config.Release == mmapstack.ReleaseFree:
		what = "the high-water mark: pages given MADV_FREE stay counted in Rss until memory pressure makes the kernel take them"
	}
	if len(bad) == 0 {
		return []string{fmt.Sprintf("after each release (--release=%s) every stack held exactly %s, at %s",
			r.Config.Release, what, every(len(r.Rows()), "depth"))}
	}
	return append([]string{fmt.Sprintf("after the release (--release=%s) stacks did not hold what it should leave (%s) at %d of %d depths",
		r.Config.Release, what, len(bad), len(r.Rows()))}, bad...)
}

// commonVerdicts are the findings every run has: sampling, page tables,
// VMAs, alignment, frames and the smaps cross-check.
func commonVerdicts(r *probe.Result) []string {
	var out []string
	page := int64(r.PageSize)
	stacks := r.Config.Stacks()
	if p := r.PingPong; p != nil && len(p.UnusedDepths) > 0 {
		out = append(out, fmt.Sprintf("no task ever used %s of the depth list (%s), so this run says nothing about them",
			plural(len(p.UnusedDepths), "depth"), depthList(p.UnusedDepths)))
	}
	if p := r.PingPong; p != nil && p.Sampler.Samples > 0 {
		msg := fmt.Sprintf("while the IO ran, the stacks' summed residency equalled the schedule's prediction in %d of %d live samples",
			p.PredictionExactSamples, p.Sampler.Samples)
		if p.PredictionMaxGapBytes > 0 {
			msg += fmt.Sprintf("; the largest gap was %s (%d pages) (the sampler never stops the IO threads; a task in the middle of a step would show as such a gap)",
				sizes.IEC(p.PredictionMaxGapBytes), p.PredictionMaxGapBytes/page)
		}
		out = append(out, msg)
	}
	last := r.Rows()[len(r.Rows())-1]
	// From the reservation on (MAP_POPULATE builds page tables while
	// reserving, so then from before it).
	base := r.Reserved.VmPTE
	if r.Config.Populate {
		base = r.Baseline.VmPTE
	}
	if grew := int64(last.VmPTEBytes) - int64(base); stacks > 0 && grew > 0 {
		if per := grew / int64(stacks); per >= page {
			out = append(out, fmt.Sprintf("page tables grew by %s while the stacks were used (%s per stack, VmPTE), memory that Rss does not count",
				sizes.IEC(grew), sizes.IEC(per)))
		} else {
			out = append(out, fmt.Sprintf("the process's page tables grew by %s while the stacks were used, less than a page per stack: not attributable to the stacks", sizes.IEC(grew)))
		}
	}
	if stacks > 0 {
		vmas := float64(last.Smaps.VMAs) / float64(stacks)
		out = append(out, fmt.Sprintf("the stacks occupy %s (%.2f per stack, guard %s) of vm.max_map_count %s",
			plural(last.Smaps.VMAs, "VMA"), vmas, r.Config.Guard, optional(r.Environment.MaxMapCount)))
	}
	if r.Config.THP == mmapstack.THPAlways && !r.Config.MapStack && r.TopsAligned2M < r.Config.Stacks() {
		out = append(out, fmt.Sprintf("huge pages were asked for, but only %d of %d stack tops are 2 MiB aligned (the kernel aligns anonymous mappings whose size is a multiple of 2 MiB; %d bytes is %s): a stack's top block is huge-page eligible only when aligned",
			r.TopsAligned2M, r.Config.Stacks(), r.Config.StackBytes, multipleOf2M(r.Config.StackBytes)))
	}
	if r.Config.TouchMode == probe.TouchFrames && r.PingPong == nil {
		var parts []string
		samePages := true
		for _, d := range r.Rows() {
			if d.Step == nil {
				continue
			}
			if used := d.Step.UsedBytes; used != d.DepthBytes {
				parts = append(parts, fmt.Sprintf("%d bytes for depth %d (+%d)", used, d.DepthBytes, used-d.DepthBytes))
			}
			samePages = samePages && probe.ExpectedPages(d.Step.UsedBytes, r.PageSize) == d.ExpectedPages
		}
		msg := "real call frames (--touch=frames) used exactly the scheduled depths"
		if len(parts) > 0 {
			msg = fmt.Sprintf("real call frames (--touch=frames, whole frames of %d bytes) used %s", frames.FrameBytes, strings.Join(parts, ", "))
		}
		if samePages {
			msg += "; every depth's frames ended inside the page the claim counts last, so the claim's page count applies to frames unchanged"
		} else {
			msg += "; some frames reached a page below the claimed depth, one page more than ceil(depth/page)"
		}
		out = append(out, msg)
	}
	out = append(out, smapsVerdict(r))
	return out
}

// explain says, from the numbers, how a depth differed from the claim and
// which measured cause fits.
func explain(r *probe.Result, d probe.DepthResult) string {
	// The claim is judged where it was measured: at the step's peak.
	lo, hi, when := d.RSSBytesMin, d.RSSBytesMax, ""
	if d.Step != nil && r.Config.Release != mmapstack.ReleaseNone {
		lo, hi, when = d.Step.PeakRSSBytesMin, d.Step.PeakRSSBytesMax, " right after the touch, before the release"
	}
	s := fmt.Sprintf("at depth %s (%d bytes) %d of %d stacks differed: resident %s..%s per stack%s against the claimed %s (%+d pages at most)",
		sizes.IEC(d.DepthBytes), d.DepthBytes, d.Stacks-d.Matched, d.Stacks, sizes.IEC(lo), sizes.IEC(hi), when,
		sizes.IEC(d.ExpectedRSSBytes), pagesOff(lo, hi, d.ExpectedRSSBytes, int64(r.PageSize)))
	switch {
	case d.AnonHugeBytesTotal < 0:
		s += "; these stacks share VMAs with others, so smaps cannot attribute huge pages to them (AnonHugePages unknown)"
	case d.AnonHugeBytesTotal > 0:
		s += fmt.Sprintf("; smaps shows %s in transparent huge pages (AnonHugePages), %s per stack: the kernel backed each touched 2 MiB-aligned block with one huge page (thp %s, system %q, map_stack %v; %d of %d stack tops 2 MiB aligned)",
			sizes.IEC(d.AnonHugeBytesTotal), sizes.IEC(d.AnonHugeBytesTotal/int64(d.Stacks)), r.Config.THP, r.Environment.THPEnabled, r.Config.MapStack,
			r.TopsAligned2M, r.Config.Stacks())
	case d.MatchedAfterRelease == d.Stacks && d.HighWaterBytes > d.ExpectedRSSBytes && r.Config.Release != mmapstack.ReleaseDontneed:
		given := "touched pages are never given back"
		if r.Config.Release == mmapstack.ReleaseFree {
			given = "MADV_FREE pages stay resident until memory pressure, and writing one takes it back"
		}
		s += fmt.Sprintf("; every stack still holds its high-water mark of %s from a deeper earlier step: with release %s %s",
			sizes.IEC(d.HighWaterBytes), r.Config.Release, given)
	case d.MatchedAfterRelease == d.Stacks && r.Config.Release == mmapstack.ReleaseDontneed:
		s += fmt.Sprintf("; every stack holds exactly the %s kept top after MADV_DONTNEED released the rest", sizes.IEC(d.ExpectedAfterReleaseBytes))
	case d.RSSBytesMin > d.ExpectedRSSBytes:
		s += "; no huge pages and no high-water explanation fits: the extra pages are unexplained by this run"
	}
	return s
}

func pagesOff(lo, hi, expected, page int64) int64 {
	lo, hi = lo-expected, hi-expected
	if -lo > hi {
		return lo / page
	}
	return hi / page
}

func smapsVerdict(r *probe.Result) string {
	checks := r.Rows()
	if r.PingPong != nil {
		// One check at the end of the run, repeated in every depth group.
		checks = r.Rows()[:1]
	}
	var own, groups, differ int
	for _, d := range checks {
		own, groups, differ = max(own, d.Smaps.OwnVMAStacks), max(groups, d.Smaps.Groups), differ+d.Smaps.Disagreements
	}
	stacks := r.Config.Stacks()
	switch {
	case own+groups == 0:
		return "no stack's VMAs could be compared with smaps (they share VMAs with other memory); per-stack figures come from mincore alone"
	case differ == 0 && groups == 0 && own == stacks:
		return fmt.Sprintf("smaps Rss and mincore agreed to the page for all %d stacks at every measurement (each stack is its own VMA)", own)
	case differ == 0 && groups == 0:
		return fmt.Sprintf("smaps Rss and mincore agreed to the page for the %d of %d stacks that are their own VMAs; the other %d share VMAs with other memory and were not compared", own, stacks, stacks-own)
	case differ == 0:
		return fmt.Sprintf("smaps and mincore agreed at every measurement: %s with VMAs of their own, and %s compared as sums (adjacent stacks share VMAs, so per-stack figures come from mincore)",
			plural(own, "stack"), plural(groups, "run")+" of merged stacks")
	default:
		return fmt.Sprintf("smaps and mincore DISAGREED %d times across the depths; see samples.csv (smaps_rss_bytes vs rss_bytes)", differ)
	}
}

func optional(p *int64) string {
	if p == nil {
		return "(unreadable)"
	}
	return fmt.Sprint(*p)
}

// nanos formats a nanosecond count for people, to the microsecond.
func nanos(n int64) time.Duration { return time.Duration(n).Round(time.Microsecond) }

func multipleOf2M(n int64) string {
	if n%(2<<20) == 0 {
		return "a multiple of 2 MiB"
	}
	return "not a multiple of 2 MiB"
}

// every is "the only depth" or "all N depths".
func every(n int, noun string) string {
	if n == 1 {
		return "the only " + noun
	}
	return fmt.Sprintf("all %d %ss", n, noun)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
