// Package report writes a run's result folder: summary.json, the streamed
// samples CSVs, evidence.md, and the short summary printed on stdout.
//
// Every file is written to a temporary name in the same folder and renamed
// into place when complete (package atomicfile); the folder as a whole is
// staged and put in place by package outdir.
package report

import (
	"io"

	"stackprobe/atomicfile"
)

// WriteFile writes path atomically (see package atomicfile).
func WriteFile(path string, fill func(w io.Writer) error) error {
	return atomicfile.Write(path, fill)
}

// OutputNames are every file a run or a compare may write into its folder:
// the names to give outdir.Check and outdir.Begin.
func OutputNames() []string {
	return append([]string{EvidenceFile, SummaryFile, ChartRSSVsDepth, ChartRSSOverTime, ChartResidency, ChartStrategies,
		ChartTradeoff, ChartStackDepths},
		CSVFiles()...)
}

// CSVFiles are the files a CSV recorder writes.
func CSVFiles() []string { return []string{samplesFile, totalsFile, stacksFile} }
