package report

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"stackprobe/procread"
	"stackprobe/sizes"
	"stackprobe/stackfind"
	"stackprobe/watch"
)

// WatchSummary is summary.json of `stackprobe watch`: the watch's Result
// (its fields at the top level) with the command, the machine and the page
// tables the stacks' resident pages need.
type WatchSummary struct {
	// Command is the command line, as a shell would need it typed.
	Command string `json:"command"`
	// Started is when the watch began (UTC); Seconds how long it sampled.
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// Environment are the machine's facts (limits are stackprobe's own).
	Environment procread.System `json:"environment"`
	watch.Result
	// PageTables is what the resident pages of the stacks measured in the
	// last sample need in page tables, where it can be worked out; absent
	// otherwise.
	PageTables *StackPageTables `json:"page_tables,omitempty"`
	// Partial says the watch ended on an error (Error), not normally.
	Partial bool   `json:"partial"`
	Error   string `json:"error,omitempty"`
}

// StackPageTables is the page-table cost of the stacks' resident pages: a
// 4 KiB PTE page maps one 2 MiB-aligned block, so every block holding
// resident 4 KiB pages of a stack needs one (blocks shared by neighbouring
// stacks are counted once). It is worked out only for stacks whose resident
// pages are one run from the top (so the blocks are known) and hold no huge
// page (mapped without a PTE page).
type StackPageTables struct {
	// Blocks counts the distinct 2 MiB blocks, so PTE pages.
	Blocks int `json:"pte_pages"`
	// Bytes is Blocks × the page size.
	Bytes int64 `json:"pte_bytes"`
	// Stacks counts the stacks it covers; Unknown those it does not.
	Stacks  int `json:"stacks"`
	Unknown int `json:"stacks_unknown"`
}

// pmdSpan is the address span one PTE page maps with 4 KiB pages.
const pmdSpan = 2 << 20

// ptePages works out the PTE pages of the resident pages of the stacks
// measured in the last sample (the one at lastNS), and per stack (the
// others too, at the last sample that measured them) the blocks it
// touches, -1 when unknown.
func ptePages(stacks []watch.Stack, pageSize int, lastNS int64) (*StackPageTables, []int) {
	per := make([]int, len(stacks))
	blocks := map[uint64]bool{}
	pt := &StackPageTables{}
	for i, st := range stacks {
		last := atLast(&st, lastNS)
		known := st.RSSBytes == 0 || (st.ContiguousFromTop && st.HugeBytes != nil && *st.HugeBytes == 0)
		if !known {
			per[i] = -1
		}
		if st.RSSBytes > 0 && known {
			lo, hi := st.End-uint64(st.RSSBytes), st.End
			for b := lo &^ (pmdSpan - 1); b < hi; b += pmdSpan {
				if last {
					blocks[b] = true
				}
				per[i]++
			}
		}
		switch {
		case !last:
		case known:
			pt.Stacks++
		default:
			pt.Unknown++
		}
	}
	pt.Blocks = len(blocks)
	pt.Bytes = int64(pt.Blocks) * int64(pageSize)
	if pt.Stacks == 0 {
		return nil, per
	}
	return pt, per
}

// atLast reports whether st was measured in the last sample, the one at
// lastNS: not gone, and last seen then (a stack still mapped that the last
// sample did not find keeps the figures of an earlier one).
func atLast(st *watch.Stack, lastNS int64) bool { return !st.Gone && st.LastSeenNS == lastNS }

// lastNS is the time of the last recorded sample, 0 when none was.
func lastNS(r *watch.Result) int64 {
	if r.Totals == nil {
		return 0
	}
	return r.Totals.TimeNS
}

// NewWatchSummary builds summary.json's contents from a watch's Result.
func NewWatchSummary(command string, started time.Time, seconds float64, env procread.System, r watch.Result, runErr error) *WatchSummary {
	s := &WatchSummary{Command: command, Started: started.UTC(), Seconds: seconds, Environment: env, Result: r}
	s.PageTables, _ = ptePages(r.Stacks, env.PageSize, lastNS(&r))
	if runErr != nil {
		s.Partial, s.Error = true, runErr.Error()
	}
	return s
}

// targetWords names the target for people: "pid 123 (./prog --x), exited
// with status 0".
func targetWords(t watch.TargetInfo) string {
	w := fmt.Sprintf("pid %d", t.PID)
	if len(t.Argv) > 0 {
		w += fmt.Sprintf(" (`%s`)", strings.Join(t.Argv, " "))
	}
	switch {
	case t.ExitCode != nil:
		w += fmt.Sprintf(", exited with status %d", *t.ExitCode)
	case t.Signal != "":
		w += ", killed by signal " + t.Signal
	case t.Exited:
		w += ", exited"
	default:
		w += ", still running when the watch ended"
	}
	return w
}

// foundCounts is how many stacks each way found, e.g. "thread 4, guard 40".
func foundCounts(stacks []watch.Stack) string {
	var n [5]int
	for _, st := range stacks {
		for i := range n {
			if st.FoundBy&(1<<i) != 0 {
				n[i]++
			}
		}
	}
	var parts []string
	for i, name := range stackfind.FoundBy(0x1f).Names() {
		if n[i] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n[i]))
		}
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// WatchVerdicts are the conclusions computed from a watch's data.
func WatchVerdicts(s *WatchSummary) []string {
	r := &s.Result
	if r.Sampler.Samples == 0 {
		// No stack can have been seen: a sample's stacks are recorded only
		// once the next maps read confirms them.
		why := "the watch ended"
		if r.Target.Exited {
			why = "the target exited"
		}
		return []string{fmt.Sprintf("no sample was recorded of %s: %s before a sample could be confirmed "+
			"(a sample's figures are recorded only once the next read of the maps shows its stacks still mapped), so nothing is known of its stacks",
			targetWords(r.Target), why)}
	}
	if len(r.Stacks) == 0 {
		return []string{fmt.Sprintf("no stack was found in %s (found by: %s); try --size or --range", targetWords(r.Target), foundCounts(nil))}
	}
	var v []string
	// The claim: resident pages are exactly the run from the top down to
	// the deepest page ever resident.
	var holds, empty, released, broken []int
	for _, st := range r.Stacks {
		switch {
		case st.RSSBytes == 0 && st.DeepestBytes == 0:
			empty = append(empty, st.Index)
		case st.ContiguousFromTop && st.RSSBytes == st.DeepestBytes:
			holds = append(holds, st.Index)
		case st.ContiguousFromTop:
			released = append(released, st.Index)
		default:
			broken = append(broken, st.Index)
		}
	}
	withPages := len(r.Stacks) - len(empty)
	claim := fmt.Sprintf("grows in %s steps from the top: %d of %d stacks holding pages hold exactly the contiguous run from their top down to their deepest page",
		sizes.IEC(int64(s.Environment.PageSize)), len(holds), withPages)
	if len(broken) > 0 {
		claim += fmt.Sprintf("; %d hold pages that are not one run from the top (stacks %s)", len(broken), indexList(broken))
	}
	if len(released) > 0 {
		claim += fmt.Sprintf("; %d hold one run from the top that is shallower than their deepest page seen (pages given back; stacks %s)", len(released), indexList(released))
	}
	if len(empty) > 0 {
		claim += fmt.Sprintf("; %d held no page", len(empty))
	}
	v = append(v, claim)

	// Huge pages.
	if slices.Contains(r.Missing, "huge_bytes") {
		v = append(v, fmt.Sprintf("huge pages in stacks: not measured (the %s method cannot see them)", r.Sampler.Method))
	} else {
		var huge int64
		var with []int
		for _, st := range r.Stacks {
			if st.HugeBytes != nil && *st.HugeBytes > 0 {
				huge += *st.HugeBytes
				with = append(with, st.Index)
			}
		}
		if len(with) == 0 {
			v = append(v, fmt.Sprintf("huge pages in stacks: none in any of the %d stacks at the last sample", len(r.Stacks)))
		} else {
			v = append(v, fmt.Sprintf("huge pages in stacks: %s in %d of %d stacks (stacks %s)", sizes.IEC(huge), len(with), len(r.Stacks), indexList(with)))
		}
	}

	// Total against VmRSS.
	if t := r.Totals; t != nil && t.VmRSSBytes > 0 {
		held := "hold " + sizes.IEC(t.StacksRSSBytes) + " of"
		if slices.Contains(r.Missing, "zero_page_bytes") {
			held = fmt.Sprintf("have %s of pages present, zero-page mappings included (the %s method cannot tell them apart), against",
				sizes.IEC(t.StacksRSSBytes), r.Sampler.Method)
		}
		cost := fmt.Sprintf("the %d stacks measured in the last sample %s the process's %s VmRSS (%.1f%%)",
			t.Stacks, held, sizes.IEC(int64(t.VmRSSBytes)), 100*float64(t.StacksRSSBytes)/float64(t.VmRSSBytes))
		if pt := s.PageTables; pt != nil && t.VmPTEBytes > 0 {
			cost += fmt.Sprintf("; their resident pages need %d PTE pages (%s) of the process's %s VmPTE", pt.Blocks, sizes.IEC(pt.Bytes), sizes.IEC(int64(t.VmPTEBytes)))
			if pt.Unknown > 0 {
				cost += fmt.Sprintf(" (%d stacks not counted: pages not one run from the top, or huge pages)", pt.Unknown)
			}
		}
		unfound := 0
		for i := range r.Stacks {
			if !r.Stacks[i].Gone && !atLast(&r.Stacks[i], t.TimeNS) {
				unfound++
			}
		}
		if unfound > 0 {
			cost += fmt.Sprintf("; %d more stacks were still mapped but not found in the last sample (e.g. their thread was running), so not measured in it", unfound)
		}
		v = append(v, cost)
	}
	var swapped, zero int64
	for _, st := range r.Stacks {
		if st.SwappedBytes != nil {
			swapped += *st.SwappedBytes
		}
		if st.ZeroPageBytes != nil {
			zero += *st.ZeroPageBytes
		}
	}
	if swapped > 0 {
		v = append(v, fmt.Sprintf("%s of stack pages were swapped out at the last sample", sizes.IEC(swapped)))
	}
	if zero > 0 {
		v = append(v, fmt.Sprintf("%s of stack pages map the shared zero page (present, but no memory)", sizes.IEC(zero)))
	}
	return v
}

// costWords words what sampling cost: format (taking the mean and the max)
// when samples were recorded; when none was, the cost of the measurements
// taken (the last one is never confirmed when the target exits), or that
// none completed.
func costWords(st watch.SamplerStats, format string) string {
	switch {
	case st.MeanCostNS == 0:
		return "no measurement completed"
	case st.Samples == 0:
		return fmt.Sprintf("the measurements taken, none confirmed so none recorded, took %v on average (max %v)", nanos(st.MeanCostNS), nanos(st.MaxCostNS))
	}
	return fmt.Sprintf(format, nanos(st.MeanCostNS), nanos(st.MaxCostNS))
}

// indexList lists up to 10 stack indexes, then how many more.
func indexList(idx []int) string {
	var parts []string
	for i, x := range idx {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(idx)-10))
			break
		}
		parts = append(parts, strconv.Itoa(x))
	}
	return strings.Join(parts, ", ")
}

// samplerMethod is prefix and the residency method, or "" when the target
// was gone before its page tables could be opened.
func samplerMethod(st watch.SamplerStats, prefix string) string {
	if st.Method == "" {
		return ""
	}
	return prefix + st.Method
}

// WriteWatchText writes the short human summary printed on stdout.
func WriteWatchText(w io.Writer, s *WatchSummary, outDir string) error {
	r := &s.Result
	fmt.Fprintf(w, "stackprobe watch: %s\n", strings.ReplaceAll(targetWords(r.Target), "`", ""))
	fmt.Fprintf(w, "sampler: %d samples over %.2f s (interval %v%s), %s\n",
		r.Sampler.Samples, s.Seconds, time.Duration(r.Sampler.IntervalNS), samplerMethod(r.Sampler, ", method "), costWords(r.Sampler, "%v each on average, max %v"))
	fmt.Fprintf(w, "stacks: %d found (%s)\n", len(r.Stacks), foundCounts(r.Stacks))
	if err := writeStackTable(w, r.Stacks, 20); err != nil {
		return err
	}
	return writeConclusion(w, WatchVerdicts(s), s.Partial, s.Error, outDir, "evidence.md, summary.json, samples.csv, totals.csv, stacks.csv, charts")
}

// writeStackTable writes up to limit stacks (0: all) as an aligned table.
func writeStackTable(w io.Writer, stacks []watch.Stack, limit int) error {
	if len(stacks) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stack\tfound by\ttid\tsize\tresident\tmax\tdeepest\t% of size\t")
	for i, st := range stacks {
		if limit > 0 && i == limit {
			break
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", st.Index, st.FoundBy, tidWord(st.TID), sizes.IEC(int64(st.SizeBytes)),
			sizes.IEC(st.RSSBytes), sizes.IEC(st.RSSBytesMax), sizes.IEC(st.DeepestBytes), percent(st.DeepestBytes, st.SizeBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if limit > 0 && len(stacks) > limit {
		fmt.Fprintf(w, "… %d more stacks in stacks.csv\n", len(stacks)-limit)
	}
	return nil
}

func tidWord(tid int) string {
	if tid == 0 {
		return "—"
	}
	return strconv.Itoa(tid)
}

func percent(n int64, of uint64) string {
	if of == 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f%%", 100*float64(n)/float64(of))
}

// WriteWatchEvidence writes evidence.md of a watch: the command, the
// target, the verdicts, the per-stack table and links to charts.
func WriteWatchEvidence(w io.Writer, s *WatchSummary, charts []string) error {
	r := &s.Result
	var b strings.Builder
	fmt.Fprintf(&b, "# stackprobe watch evidence: %d stacks of %s\n\n", len(r.Stacks), targetWords(r.Target))
	if s.Partial {
		fmt.Fprintf(&b, "> **PARTIAL RUN** — %s. The figures below are real measurements, but the watch ended on an error.\n\n", s.Error)
	}
	fmt.Fprintf(&b, "Command, run %s (%.2f s):\n\n    %s\n\n", s.Started.Format("2006-01-02 15:04:05 UTC"), s.Seconds, s.Command)
	fmt.Fprintf(&b, "Target: %s. It was only read (its /proc files and page tables), never stopped, traced or injected into.\n\n", targetWords(r.Target))
	fmt.Fprintf(&b, "Sampling: %d samples, interval %v%s; %s.\n\n",
		r.Sampler.Samples, time.Duration(r.Sampler.IntervalNS), samplerMethod(r.Sampler, ", residency method "), costWords(r.Sampler, "one sample took %v on average (max %v)"))
	b.WriteString("## Verdict\n\n")
	for _, v := range WatchVerdicts(s) {
		fmt.Fprintf(&b, "- %s.\n", v)
	}
	if t := r.Totals; t != nil {
		fmt.Fprintf(&b, "\n## Process at the last sample (%.3f s)\n\n| VmRSS | VmPTE | minor faults | VMAs | threads | stacks | stacks' resident bytes |\n|---:|---:|---:|---:|---:|---:|---:|\n",
			float64(t.TimeNS)/1e9)
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s |\n", sizes.IEC(int64(t.VmRSSBytes)), sizes.IEC(int64(t.VmPTEBytes)), t.MinorFaults, t.VMAs, t.Threads, t.Stacks, sizes.IEC(t.StacksRSSBytes))
	}
	_, per := ptePages(r.Stacks, s.Environment.PageSize, lastNS(r))
	b.WriteString("\n## Stacks\n\n")
	if slices.Contains(r.Missing, "zero_page_bytes") {
		fmt.Fprintf(&b, "Resident bytes are the stack's present pages, mappings of the shared zero page included (the %s method cannot tell them apart here)", r.Sampler.Method)
	} else {
		b.WriteString("Resident bytes are the stack's pages that hold memory (the zero page excluded)")
	}
	b.WriteString(", from the page tables at the last sample that measured it; max is over all samples; deepest is from its top down to its lowest page ever resident. ")
	b.WriteString("VMAs counts its mapping and a PROT_NONE guard mapping below it. PTE pages counts the 2 MiB-aligned blocks its resident pages fall in (one 4 KiB page-table page each; — when its pages are not one run from the top or include huge pages).\n\n")
	b.WriteString("| stack | found by | tid | start | size | guard | resident now | max | deepest | % of size | one run from top | huge | VMAs | PTE pages | first seen (s) | last seen (s) |\n")
	b.WriteString("|---:|---|---:|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for i, st := range r.Stacks {
		vmas := "1"
		switch {
		case st.FoundBy&stackfind.Range != 0:
			vmas = "—"
		case st.Guard == stackfind.GuardProtNoneBelow:
			vmas = "2"
		}
		pte := "—"
		if per[i] >= 0 {
			pte = strconv.Itoa(per[i])
		}
		now := sizes.IEC(st.RSSBytes)
		if st.Gone {
			now += " (gone)"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %#x | %s | %s | %s | %s | %s | %s | %v | %s | %s | %s | %.3f | %.3f |\n",
			st.Index, st.FoundBy, tidWord(st.TID), st.Start, sizes.IEC(int64(st.SizeBytes)), st.Guard, now, sizes.IEC(st.RSSBytesMax),
			sizes.IEC(st.DeepestBytes), percent(st.DeepestBytes, st.SizeBytes), yesNo(st.ContiguousFromTop), optSize(st.HugeBytes), vmas, pte,
			float64(st.FirstSeenNS)/1e9, float64(st.LastSeenNS)/1e9)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "\nNot measured in this run: %s.\n", strings.Join(r.Missing, ", "))
	}
	b.WriteString("\n## Environment\n\n")
	writeEnvTable(&b, s.Environment)
	writeCharts(&b, charts)
	_, err := io.WriteString(w, b.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Watch CSV headers; the README documents each column.
const (
	watchSamplesHeader = "sample,elapsed_ns,stack,rss_bytes,deepest_bytes,huge_bytes,zero_page_bytes,swapped_bytes,runs\n"
	watchTotalsHeader  = "sample,elapsed_ns,stacks,stacks_rss_bytes,vmrss_bytes,vmpte_bytes,minor_faults,vma_count,threads,cost_ns\n"
	watchStacksHeader  = "stack,found_by,tid,start_addr,end_addr,size_bytes,guard,size_match,first_seen_ns,last_seen_ns,samples,gone," +
		"rss_bytes,rss_bytes_max,deepest_bytes,huge_bytes,zero_page_bytes,swapped_bytes,guard_marker_bytes,contiguous_from_top\n"
)

// WatchCSV is a watch.Recorder that streams samples.csv (one row per stack
// per sample) and totals.csv (one row per sample) into a folder as samples
// come; Close writes stacks.csv (one row per stack) and renames the three
// files into place.
type WatchCSV struct{ csvSet }

// NewWatchCSV opens the temporary files in dir.
func NewWatchCSV(dir string) (*WatchCSV, error) {
	c := &WatchCSV{}
	if err := c.open(dir, watchSamplesHeader, watchTotalsHeader, watchStacksHeader); err != nil {
		return nil, err
	}
	return c, nil
}

// RecordSample implements watch.Recorder. Huge, zero-page and swapped
// cells are empty when the method cannot see their class.
func (c *WatchCSV) RecordSample(s *watch.Sample) error {
	head := strconv.AppendInt(c.row[:0], int64(s.Index), 10)
	head = append(head, ',')
	head = strconv.AppendInt(head, s.Totals.TimeNS, 10)
	head = append(head, ',')
	n := len(head)
	for _, st := range s.Stacks {
		r := head[:n]
		r = strconv.AppendInt(r, int64(st.Index), 10)
		for _, v := range []int64{st.RSSBytes, st.DeepestBytes} {
			r = append(r, ',')
			r = strconv.AppendInt(r, v, 10)
		}
		for _, v := range [...]struct {
			n     int64
			class procread.PageClass
		}{{st.HugeBytes, procread.ClassHuge}, {st.ZeroPageBytes, procread.ClassZeroPage}, {st.SwappedBytes, procread.ClassSwapped}} {
			r = append(r, ',')
			if s.Known&v.class != 0 {
				r = strconv.AppendInt(r, v.n, 10)
			}
		}
		r = append(r, ',')
		r = strconv.AppendInt(r, int64(st.Runs), 10)
		r = append(r, '\n')
		head = r
		c.write(0, r)
	}
	t := &s.Totals
	r := head[:n]
	r = strconv.AppendInt(r, int64(t.Stacks), 10)
	r = append(r, ',')
	r = strconv.AppendInt(r, t.StacksRSSBytes, 10)
	for _, v := range []uint64{t.VmRSSBytes, t.VmPTEBytes, t.MinorFaults, uint64(t.VMAs), uint64(t.Threads), uint64(s.CostNS)} {
		r = append(r, ',')
		r = strconv.AppendUint(r, v, 10)
	}
	r = append(r, '\n')
	c.write(1, r)
	c.row = r
	return c.err
}

// Close writes stacks.csv from the watch's stacks and renames the files
// into place; whatever was recorded is kept, also after an error in the
// watch.
func (c *WatchCSV) Close(stacks []watch.Stack) error {
	for _, st := range stacks {
		r := c.row[:0]
		r = strconv.AppendInt(r, int64(st.Index), 10)
		r = append(r, ',')
		r = append(r, st.FoundBy.String()...)
		r = append(r, ',')
		if st.TID != 0 {
			r = strconv.AppendInt(r, int64(st.TID), 10)
		}
		r = append(r, ",0x"...)
		r = strconv.AppendUint(r, st.Start, 16)
		r = append(r, ",0x"...)
		r = strconv.AppendUint(r, st.End, 16)
		r = append(r, ',')
		r = strconv.AppendUint(r, st.SizeBytes, 10)
		r = append(r, ',')
		r = append(r, st.Guard.String()...)
		r = append(r, ',')
		r = append(r, st.SizeMatch.String()...)
		for _, v := range []int64{st.FirstSeenNS, st.LastSeenNS, int64(st.Samples)} {
			r = append(r, ',')
			r = strconv.AppendInt(r, v, 10)
		}
		r = append(r, ',')
		r = strconv.AppendBool(r, st.Gone)
		for _, v := range []int64{st.RSSBytes, st.RSSBytesMax, st.DeepestBytes} {
			r = append(r, ',')
			r = strconv.AppendInt(r, v, 10)
		}
		for _, p := range []*int64{st.HugeBytes, st.ZeroPageBytes, st.SwappedBytes, st.GuardMarkerBytes} {
			r = append(r, ',')
			if p != nil {
				r = strconv.AppendInt(r, *p, 10)
			}
		}
		r = append(r, ',')
		r = strconv.AppendBool(r, st.ContiguousFromTop)
		r = append(r, '\n')
		c.row = r
		c.write(2, r)
	}
	return c.csvSet.Close()
}
