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
	var mismatched, kept []probe.DepthResult
	for _, d := range r.Rows() {
		switch {
		case d.Matched == d.Stacks:
		case !pingpong && keptHighWater(r, d):
			kept = append(kept, d)
		default:
			mismatched = append(mismatched, d)
		}
	}
	held := len(r.Rows()) - len(kept) - len(mismatched)
	switch {
	case len(mismatched) == 0 && pingpong:
		total := 0
		for _, d := range r.Rows() {
			total += d.Stacks
		}
		out = append(out, fmt.Sprintf("after the ping-pong, all %d stacks held exactly ceil(d/%s) pages, d being the deepest depth their task used (%s): the claim holds for this configuration",
			total, sizes.IEC(page), plural(len(r.Rows()), "depth group")))
	case len(mismatched) == 0 && len(kept) == 0:
		out = append(out, fmt.Sprintf("all %d stacks matched ceil(depth/%s) pages at %s: the claim holds for this configuration",
			stacks, sizes.IEC(page), every(len(r.Rows()), "depth")))
	case len(mismatched) == 0:
		out = append(out, fmt.Sprintf("all %d stacks matched ceil(depth/%s) pages at every step that went deeper than the steps before it (%d of %d steps): the claim holds while a stack grows",
			stacks, sizes.IEC(page), held, len(r.Rows())))
		out = append(out, highWaterVerdict(r, kept))
	default:
		msg := fmt.Sprintf("the claim did not hold at %d of %d steps: stacks did not hold exactly ceil(depth/%s) pages", len(mismatched), len(r.Rows()), sizes.IEC(page))
		if held > 0 {
			msg += fmt.Sprintf("; it held at %d", held)
		}
		out = append(out, msg)
		for _, d := range mismatched {
			out = append(out, explain(r, d))
		}
		if len(kept) > 0 {
			out = append(out, highWaterVerdict(r, kept))
		}
	}
	if released {
		out = append(out, releaseVerdicts(r)...)
	}
	return append(out, commonVerdicts(r)...)
}

// keptHighWater reports whether d is a step shallower than an earlier one
// whose stacks kept exactly that earlier step's pages: the high-water mark
// of memory that is not given back, expected and not a failure of the
// claim.
func keptHighWater(r *probe.Result, d probe.DepthResult) bool {
	if d.HighWaterBytes <= d.ExpectedRSSBytes || r.Config.Release == mmapstack.ReleaseDontneed {
		return false
	}
	lo, hi := d.RSSBytesMin, d.RSSBytesMax
	if d.Step != nil && r.Config.Release != mmapstack.ReleaseNone {
		lo, hi = d.Step.PeakRSSBytesMin, d.Step.PeakRSSBytesMax
	}
	return lo == d.HighWaterBytes && hi == d.HighWaterBytes
}

// highWaterVerdict says what the steps after a deeper one kept.
func highWaterVerdict(r *probe.Result, kept []probe.DepthResult) string {
	var parts []string
	for _, d := range kept {
		parts = append(parts, fmt.Sprintf("%s at depth %s", sizes.IEC(d.HighWaterBytes), sizes.IEC(d.DepthBytes)))
	}
	given := "touched pages are never given back"
	if r.Config.Release == mmapstack.ReleaseFree {
		given = "MADV_FREE pages stay counted in Rss until memory pressure makes the kernel take them"
	}
	return fmt.Sprintf("at %s after a deeper one every stack still held its high-water mark (%s), not ceil(depth/page): with release %s %s",
		plural(len(kept), "step"), strings.Join(parts, ", "), r.Config.Release, given)
}

// releaseVerdicts compares what each step left after its release with
// what the release mode should leave.
func releaseVerdicts(r *probe.Result) []string {
	idle := r.Config.Release == mmapstack.ReleaseIdle
	var bad []string
	for _, d := range r.Rows() {
		switch {
		case d.MatchedAfterRelease == d.Stacks:
		case idle:
			// Each stack has its own expectation: no one figure to name.
			bad = append(bad, fmt.Sprintf("at depth %s %d of %d stacks held neither the kept top after an idle release nor what they used since (the group held %s)",
				sizes.IEC(d.DepthBytes), d.Stacks-d.MatchedAfterRelease, d.Stacks, span(d.RSSBytesMin, d.RSSBytesMax)))
		default:
			bad = append(bad, fmt.Sprintf("at depth %s %d of %d stacks held %s, not the expected %s",
				sizes.IEC(d.DepthBytes), d.Stacks-d.MatchedAfterRelease, d.Stacks, span(d.RSSBytesMin, d.RSSBytesMax),
				sizes.IEC(d.ExpectedAfterReleaseBytes)))
		}
	}
	deeper := false
	for _, d := range r.Rows() {
		deeper = deeper || d.HighWaterBytes > r.Config.KeepTopBytes
	}
	what := "the kept top (--keep-top), MADV_DONTNEED having dropped the rest"
	switch {
	case idle:
		what = "the kept top (--keep-top) after an idle release, or what it used since (its high-water mark if it was never idle)"
	case !deeper && r.Config.THP == mmapstack.THPNoHuge:
		what = "what it touched: no step went below the kept top (--keep-top), so nothing was released"
	case r.Config.Release == mmapstack.ReleaseFree:
		what = "the high-water mark: pages given MADV_FREE stay counted in Rss until memory pressure makes the kernel take them"
	}
	var out []string
	if len(bad) == 0 {
		out = []string{fmt.Sprintf("after each release (--release=%s) every stack held exactly %s, at %s",
			r.Config.Release, what, every(len(r.Rows()), "depth"))}
	} else {
		out = append([]string{fmt.Sprintf("after the release (--release=%s) stacks did not hold what it should leave (%s) at %d of %d depths",
			r.Config.Release, what, len(bad), len(r.Rows()))}, bad...)
	}
	if p := r.PingPong; idle && p != nil {
		msg := fmt.Sprintf("%s released for being idle at least once (%d idle releases)", pluralVerb(p.IdleStacks, "stack", "was", "were"), p.IdleReleases)
		if p.IdleReleasesChecked > 0 {
			msg += fmt.Sprintf("; measured right after each release, %d of %d releases left exactly the kept top the stack had touched", p.IdleReleasesKeptTop, p.IdleReleasesChecked)
		}
		if p.IdleAtEnd > 0 {
			msg += fmt.Sprintf("; %d stacks were idle at the end (released, unused since) and %d of them held exactly the kept top", p.IdleAtEnd, p.IdleAtEndKeptTop)
		} else {
			msg += "; none was idle at the end"
		}
		out = append(out, msg)
	}
	return out
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
	if p := r.PingPong; p != nil && len(p.LiveSteps) > 0 {
		out = append(out, liveStepsVerdict(p))
	}
	last := r.Rows()[len(r.Rows())-1]
	out = append(out, pageTableVerdicts(r)...)
	if stacks > 0 {
		vmas := float64(last.Smaps.VMAs) / float64(stacks)
		out = append(out, fmt.Sprintf("the stacks occupy %s (%.2f per stack, guard %s) of vm.max_map_count %s",
			plural(last.Smaps.VMAs, "VMA"), vmas, r.Config.Guard, optional(r.Environment.MaxMapCount)))
	}
	lowStacks, lowBytes := lowHuge(r)
	if lowStacks > 0 {
		out = append(out, fmt.Sprintf("%s at their low end part of a 2 MiB page that begins in the stack below (%s in all): adjacent stacks share one VMA, so the huge page around a stack's top reaches into the stack mapped above it; every page counts for the stack whose range holds its address",
			pluralVerb(lowStacks, "stack", "holds", "hold"), sizes.IEC(lowBytes)))
	}
	if r.Config.THP == mmapstack.THPHuge && r.TopsAligned2M < r.Config.Stacks() {
		aligned := fmt.Sprintf("only %d of %d stack tops are 2 MiB aligned (the kernel aligns anonymous mappings whose size is a multiple of 2 MiB; %d bytes is %s)",
			r.TopsAligned2M, r.Config.Stacks(), r.Config.StackBytes, multipleOf2M(r.Config.StackBytes))
		switch huge, from := hugeBytes(r); {
		case huge > 0 && lowStacks > 0:
			out = append(out, fmt.Sprintf("huge pages were asked for and %s of the stacks' memory is in transparent huge pages (%s), though %s: the kernel backs any 2 MiB-aligned block that lies wholly inside one VMA and was touched, not only an aligned top, and here the blocks straddle stack boundaries",
				sizes.IEC(huge), from, aligned))
		case huge > 0:
			out = append(out, fmt.Sprintf("huge pages were asked for and %s of the stacks' memory is in transparent huge pages (%s), though %s: the kernel backs any 2 MiB-aligned block that lies wholly inside one VMA and was touched, not only an aligned top",
				sizes.IEC(huge), from, aligned))
		case huge == 0:
			out = append(out, fmt.Sprintf("huge pages were asked for, but no stack holds one (%s): %s, and no touched 2 MiB-aligned block lay wholly inside a stack's VMA",
				from, aligned))
		default:
			out = append(out, fmt.Sprintf("huge pages were asked for; %s, and neither smaps nor the residency method could attribute huge pages to the stacks", aligned))
		}
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
	return append(out, residencyVerdicts(r)...)
}

// checkedRows are the rows whose figures describe the end of the run: the
// last step of a touch run, or every depth group of a ping-pong (they
// partition the stacks at the final measurement).
func checkedRows(r *probe.Result) []probe.DepthResult {
	rows := r.Rows()
	if r.PingPong == nil && len(rows) > 0 {
		return rows[len(rows)-1:]
	}
	return rows
}

// hugeBytes is the stacks' memory in transparent huge pages at the end of
// the run and where the figure comes from, or -1 when neither the page
// tables nor smaps could tell.
func hugeBytes(r *probe.Result) (int64, string) {
	var pt, smaps int64
	ptKnown, smapsKnown := true, true
	for _, d := range checkedRows(r) {
		if d.HugeBytesTotal == nil {
			ptKnown = false
		} else {
			pt += *d.HugeBytesTotal
		}
		if d.AnonHugeBytesTotal < 0 {
			smapsKnown = false
		} else {
			smaps += d.AnonHugeBytesTotal
		}
	}
	switch {
	case ptKnown:
		return pt, "page tables"
	case smapsKnown && r.PingPong == nil:
		return smaps, "smaps AnonHugePages"
	}
	return -1, ""
}

// lowHuge counts the stacks holding, at their low end, part of a huge page
// that begins below them at the end of the run, and those bytes.
func lowHuge(r *probe.Result) (stacks int, bytes int64) {
	for _, d := range checkedRows(r) {
		if d.LowHugeStacks != nil && d.LowHugeBytesTotal != nil {
			stacks += *d.LowHugeStacks
			bytes += *d.LowHugeBytesTotal
		}
	}
	return stacks, bytes
}

// methodWords names how residency was read, for sentences.
func methodWords(method string) string {
	switch method {
	case "scan":
		return "PAGEMAP_SCAN"
	case "pagemap":
		return "/proc/self/pagemap"
	case "mincore":
		return "mincore(2)"
	}
	return "the page tables"
}

// residencyVerdicts say which method produced the figures, which page
// classes it could not see, and whether a second method agreed with the
// final measurement page for page.
func residencyVerdicts(r *probe.Result) []string {
	ri := r.Residency
	if ri.Method == "" {
		return nil
	}
	m := methodWords(ri.Method)
	walks := "all stacks in one walk per measurement"
	if ri.Lanes > 1 {
		walks = fmt.Sprintf("each measurement in %d walks run at once, over parts of the stacks by address", ri.Lanes)
	}
	msg := fmt.Sprintf("every residency figure was read with %s over each stack's whole mapping (guard included), %s", m, walks)
	if ri.Requested != "" && ri.Requested != ri.Method {
		msg += fmt.Sprintf("; %s was asked for (--residency=%s), but this kernel lacks it", methodWords(ri.Requested), ri.Requested)
	}
	if len(ri.Missing) > 0 {
		msg += fmt.Sprintf("; it cannot tell %s apart, so those figures are missing, not 0", strings.Join(ri.Missing, ", "))
	}
	out := []string{msg}
	when := "at the final measurement (after the last step)"
	if r.PingPong != nil {
		when = "at the final measurement (after the IO stopped)"
	}
	switch cc := ri.CrossCheck; {
	case cc == nil:
		out = append(out, "no second method could cross-check the residency figures here")
	case cc.Agree:
		which := fmt.Sprintf("all %d stacks", cc.Stacks)
		if cc.Stacks < cc.StacksOf {
			which = fmt.Sprintf("%d of %d stacks, evenly spread (all of them would take %s longer than the run's own measurements)", cc.Stacks, cc.StacksOf, methodWords(cc.Method))
		}
		out = append(out, fmt.Sprintf("%s agreed with %s page for page %s, for %s (%s present)",
			methodWords(cc.Method), m, when, which, sizes.IEC(cc.PresentBytes)))
	default:
		out = append(out, fmt.Sprintf("%s DISAGREED with %s %s: %s of pages in %d of %d compared stacks were present to one and not the other",
			methodWords(cc.Method), m, when, sizes.IEC(cc.DifferingBytes), cc.DifferingStacks, cc.Stacks))
	}
	return out
}

// pluralVerb is "1 stack holds" or "N stacks hold".
func pluralVerb(n int, noun, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s %s", noun, one)
	}
	return fmt.Sprintf("%d %ss %s", n, noun, many)
}

// pageTableVerdicts report the process's page tables (VmPTE, not in Rss)
// at the reservation and at each step, per stack when the growth is at
// least an eighth of a page per stack (512 B with 4 KiB pages): below
// that the process's own churn can account for it.
func pageTableVerdicts(r *probe.Result) []string {
	stacks := int64(r.Config.Stacks())
	page := int64(r.PageSize)
	if stacks == 0 {
		return nil
	}
	var out []string
	perStack := func(grew int64) string {
		if grew/stacks >= page/8 {
			return fmt.Sprintf("%s, %s per stack", sizes.IEC(grew), sizes.IEC(grew/stacks))
		}
		return fmt.Sprintf("%s, too little per stack to attribute to the stacks", sizes.IEC(grew))
	}
	if grew := int64(r.Reserved.VmPTE) - int64(r.Baseline.VmPTE); grew > 0 {
		why := ""
		switch {
		case r.Config.Populate:
			why = " (MAP_POPULATE backs every page, page tables included, while reserving)"
		case r.Config.Guard == mmapstack.GuardMadvise:
			why = " (MADV_GUARD_INSTALL writes its guard markers into page tables while reserving)"
		}
		out = append(out, fmt.Sprintf("page tables grew by %s when the stacks were reserved, before any touch%s", perStack(grew), why))
	}
	rows := r.Rows()
	if r.PingPong != nil {
		rows = rows[len(rows)-1:] // one measurement, at the end
	}
	var steps []string
	for _, d := range rows {
		if grew := int64(d.VmPTEBytes) - int64(r.Reserved.VmPTE); grew > 0 {
			s := fmt.Sprintf("%s at %s", perStack(grew), sizes.IEC(d.DepthBytes))
			if d.Step != nil && d.Step.PeakVmPTEBytes > d.VmPTEBytes {
				s = fmt.Sprintf("%s at %s's peak and %s after its release", perStack(int64(d.Step.PeakVmPTEBytes)-int64(r.Reserved.VmPTE)), sizes.IEC(d.DepthBytes), sizes.IEC(grew))
			}
			steps = append(steps, s)
		}
	}
	if len(steps) > 0 {
		when := "after each step"
		if r.PingPong != nil {
			when = "by the end of the ping-pong"
		}
		out = append(out, fmt.Sprintf("from the reservation on, page tables (VmPTE, memory Rss does not count) grew %s by %s", when, strings.Join(steps, "; ")))
	}
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
	s := fmt.Sprintf("at depth %s (%s) %d of %d stacks differed: resident %s per stack%s against the claimed %s (%s)",
		sizes.IEC(d.DepthBytes), plural64(d.DepthBytes, "byte"), d.Stacks-d.Matched, d.Stacks, span(lo, hi), when,
		sizes.IEC(d.ExpectedRSSBytes), pagesOff(lo, hi, d.ExpectedRSSBytes, int64(r.PageSize)))
	switch {
	case d.HighWaterBytes > d.ExpectedRSSBytes && r.Config.Release != mmapstack.ReleaseDontneed && lo >= d.ExpectedRSSBytes:
		given := "touched pages are never given back"
		if r.Config.Release == mmapstack.ReleaseFree {
			given = "MADV_FREE pages stay resident until memory pressure, and writing one takes it back"
		}
		s += fmt.Sprintf("; a deeper earlier step left a high-water mark of %s: with release %s %s", sizes.IEC(d.HighWaterBytes), r.Config.Release, given)
		if d.AnonHugeBytesTotal > 0 {
			s += fmt.Sprintf(", and what was kept includes %s per stack in transparent huge pages from that step (AnonHugePages)", sizes.IEC(d.AnonHugeBytesTotal/int64(d.Stacks)))
		}
	case d.AnonHugeBytesTotal < 0:
		s += "; these stacks share VMAs with others, so smaps cannot attribute huge pages to them (AnonHugePages unknown)"
	case d.AnonHugeBytesTotal > 0:
		s += fmt.Sprintf("; smaps shows %s in transparent huge pages (AnonHugePages), %s per stack: the kernel backed each touched 2 MiB-aligned block with one huge page (thp %s, system %q, map_stack %v; %d of %d stack tops 2 MiB aligned)",
			sizes.IEC(d.AnonHugeBytesTotal), sizes.IEC(d.AnonHugeBytesTotal/int64(d.Stacks)), r.Config.THP, r.Environment.THPEnabled, r.Config.MapStack,
			r.TopsAligned2M, r.Config.Stacks())
	case d.MatchedAfterRelease == d.Stacks && r.Config.Release == mmapstack.ReleaseDontneed:
		s += fmt.Sprintf("; every stack holds exactly the %s kept top after MADV_DONTNEED released the rest", sizes.IEC(d.ExpectedAfterReleaseBytes))
	case lo > d.ExpectedRSSBytes:
		s += "; no huge pages and no high-water explanation fits: the extra pages are unexplained by this run"
	}
	return s
}

// pagesOff says in words how far lo..hi is from expected, in pages.
func pagesOff(lo, hi, expected, page int64) string {
	from, to := (lo-expected)/page, (hi-expected)/page
	switch {
	case from == to && to > 0:
		return plural64(to, "page") + " more"
	case from == to && to < 0:
		return plural64(-to, "page") + " fewer"
	case from > 0:
		return fmt.Sprintf("%d to %s more", from, plural64(to, "page"))
	case to < 0:
		return fmt.Sprintf("%d to %s fewer", -to, plural64(-from, "page"))
	case from == 0 && to > 0:
		return fmt.Sprintf("up to %s more", plural64(to, "page"))
	case to == 0 && from < 0:
		return fmt.Sprintf("up to %s fewer", plural64(-from, "page"))
	case from < 0 && to > 0:
		return fmt.Sprintf("from %s fewer to %s more", plural64(-from, "page"), plural64(to, "page"))
	}
	return "less than a page apart"
}

func plural64(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
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
	m := methodWords(r.Residency.Method)
	when := "at every measurement (after each step)"
	if r.PingPong != nil {
		when = fmt.Sprintf("when smaps was read, once, after the IO stopped (%s read at the same moment)", m)
	}
	switch {
	case own+groups == 0:
		return fmt.Sprintf("no stack's VMAs could be compared with smaps (they share VMAs with other memory); per-stack figures come from %s alone", m)
	case differ == 0 && groups == 0 && own == stacks:
		return fmt.Sprintf("smaps Rss and %s agreed to the page for all %d stacks %s (each stack is its own VMA)", m, own, when)
	case differ == 0 && groups == 0:
		return fmt.Sprintf("smaps Rss and %s agreed to the page %s for the %d of %d stacks that are their own VMAs; the other %d share VMAs with other memory and were not compared", m, when, own, stacks, stacks-own)
	case differ == 0:
		return fmt.Sprintf("smaps and %s agreed %s: %s with VMAs of their own, and %s compared as sums (adjacent stacks share VMAs, so per-stack figures come from %s, by address)",
			m, when, plural(own, "stack"), plural(groups, "run")+" of merged stacks", m)
	default:
		return fmt.Sprintf("smaps and %s DISAGREED %s %s; see samples.csv (smaps_rss_bytes vs rss_bytes)", m, plural(differ, "time"), when)
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

// liveStepsVerdict says, per depth of the schedule, how many of the live
// observations of a stack in a clean step of that depth held exactly what
// one step of it should leave.
func liveStepsVerdict(p *probe.PingPongResult) string {
	var parts []string
	all := true
	for _, l := range p.LiveSteps {
		all = all && l.Matched == l.Observations
		parts = append(parts, fmt.Sprintf("%s: %d of %d (%s each)", sizes.IEC(l.DepthBytes), l.Matched, l.Observations, sizes.IEC(l.ExpectedBytes)))
	}
	msg := "live samples that caught a stack in a clean step of a depth found it holding exactly what one step leaves, by depth: " + strings.Join(parts, "; ")
	if all {
		msg += " — every observation, at every depth caught"
	}
	if len(p.LiveStepsMissing) > 0 {
		msg += fmt.Sprintf("; no live sample caught %s clean", depthList(p.LiveStepsMissing))
	}
	return msg
}
