package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"stackprobe/mmapstack"
	"stackprobe/probe"
	"stackprobe/sizes"
)

// WriteJSON writes a result (a *probe.Result or *probe.Comparison) as
// summary.json's indented JSON.
func WriteJSON(w io.Writer, r any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	return nil
}

// WriteText writes the short human summary printed on stdout.
func WriteText(w io.Writer, r *probe.Result, outDir string) error {
	c := r.Config
	fmt.Fprintf(w, "stackprobe: %s, %d stacks of %s (%d bytes, %d pages), guard %s, thp %s, map_stack %v, release %s\n",
		c.Workload, c.Stacks(), sizes.IEC(c.StackBytes), c.StackBytes, c.StackBytes/int64(r.PageSize),
		c.Guard, c.THP, c.MapStack, c.Release)
	if p := r.PingPong; p != nil {
		fmt.Fprintf(w, "pingpong: %s, %d clients x %d messages: %d round trips in %.3fs", p.Transport, p.Clients, p.MessagesPerClient, p.RoundTrips, p.Seconds)
		if p.RoundTripsPerSecond != nil && p.LatencyNanos != nil {
			fmt.Fprintf(w, " (%.0f/s), p50 %v p99 %v", *p.RoundTripsPerSecond, nanos(p.LatencyNanos.P50), nanos(p.LatencyNanos.P99))
		}
		fmt.Fprintf(w, ", %d errors\n", p.Errors)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	released := c.Release != mmapstack.ReleaseNone && r.PingPong == nil
	if released {
		fmt.Fprintln(tw, "depth\texpected/stack\tpeak/stack\tmatched at peak\tafter release/stack\tmatched after\tAnonHuge total\tVmPTE (process)\tsmaps\t")
	} else {
		fmt.Fprintln(tw, "depth\texpected/stack\tmin/stack\tmax/stack\tmatched\tAnonHuge total\tVmPTE (process)\tsmaps\t")
	}
	for _, d := range r.Rows() {
		if released && d.Step != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%d/%d\t%s\t%s\t%s\t\n",
				sizes.IEC(d.DepthBytes), sizes.IEC(d.ExpectedRSSBytes), span(d.Step.PeakRSSBytesMin, d.Step.PeakRSSBytesMax), d.Matched, d.Stacks,
				span(d.RSSBytesMin, d.RSSBytesMax), d.MatchedAfterRelease, d.Stacks, hugeWord(d.AnonHugeBytesTotal), sizes.IEC(int64(d.VmPTEBytes)), smapsWord(d.Smaps))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t\n",
			sizes.IEC(d.DepthBytes), sizes.IEC(d.ExpectedRSSBytes), sizes.IEC(d.RSSBytesMin), sizes.IEC(d.RSSBytesMax),
			d.Matched, d.Stacks, hugeWord(d.AnonHugeBytesTotal), sizes.IEC(int64(d.VmPTEBytes)), smapsWord(d.Smaps))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range r.GuardChecks {
		fmt.Fprintf(w, "guard %s: %s\n", g.Guard, g.Detail)
	}
	return writeConclusion(w, Verdicts(r), r.Partial, r.Error, outDir, "evidence.md, summary.json, samples.csv, charts")
}

// writeConclusion ends a stdout summary: the verdicts, whether the run is
// partial, and where its files are.
func writeConclusion(w io.Writer, verdicts []string, partial bool, why, outDir, files string) error {
	for _, v := range verdicts {
		fmt.Fprintf(w, "verdict: %s\n", v)
	}
	if partial {
		fmt.Fprintf(w, "PARTIAL: %s\n", why)
	}
	_, err := fmt.Fprintf(w, "results in %s (%s)\n", outDir, files)
	return err
}

func smapsWord(c probe.SmapsCheck) string {
	switch {
	case c.OwnVMAStacks+c.Groups == 0:
		return "n/a"
	case c.Agree:
		return "agrees"
	default:
		return fmt.Sprintf("%d differ", c.Disagreements)
	}
}

// hugeWord is an AnonHugePages total for people; -1 means not attributable.
func hugeWord(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return sizes.IEC(n)
}

// NegativeSizes lists every key of a decoded JSON document (as
// encoding/json decodes into any) whose name says it holds bytes
// ("_bytes", "bytes_") and whose value is negative, as "path = value".
// No size a stackprobe result reports can be negative; tests of every
// command scan their summary.json with it.
func NegativeSizes(v any) []string {
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				p := path + "." + k
				if n, ok := e.(float64); ok && n < 0 && (strings.HasSuffix(k, "_bytes") || strings.Contains(k, "bytes_")) {
					out = append(out, fmt.Sprintf("%s = %v", p, n))
				}
				walk(p, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", v)
	return out
}
