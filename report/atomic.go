// Package report writes a run's result folder: summary.json, the streamed
// samples CSVs, evidence.md, and the short summary printed on stdout.
//
// Every file is written to a temporary name in the same folder and renamed
// into place when complete (package atomicfile); the folder as a whole is
// staged and put in place by package outdir.
package report

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"stackprobe/atomicfile"
	"stackprobe/outdir"
)

// WriteFile writes path atomically (see package atomicfile).
func WriteFile(path string, fill func(w io.Writer) error) error {
	return atomicfile.Write(path, fill)
}

// CheckOutDir reports whether dir may receive a run's files, writing
// nothing: see outdir.Check, called with every output name a run or a
// compare may write (OutputNames).
//
// Deprecated: call outdir.Check, then outdir.Begin and Folder.Commit, which
// also stage the run and put its folder in place as a whole.
func CheckOutDir(dir string, force bool) error {
	return outdir.Check(dir, force, OutputNames())
}

// OutputNames are every file a run or a compare may write into its folder:
// the names to give outdir.Check and outdir.Begin.
func OutputNames() []string {
	return append([]string{EvidenceFile, SummaryFile, ChartRSSVsDepth, ChartRSSOverTime, ChartResidency, ChartStrategies},
		CSVFiles()...)
}

// CSVFiles are the files a CSV recorder writes.
func CSVFiles() []string { return []string{samplesFile, totalsFile, stacksFile} }

// RemoveStale deletes, from a result folder written again with --force,
// the outputs of an earlier run that this run did not write, but only those
// the folder's manifest (outdir.ManifestName) lists: a file the tool cannot
// show it wrote is never deleted, whatever its name. Without a manifest it
// deletes nothing.
//
// Deprecated: Folder.Commit replaces the whole folder, which leaves no stale
// outputs.
func RemoveStale(dir string, written []string) error {
	m, err := outdir.ReadManifest(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, name := range m.Files {
		if slices.Contains(written, name) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
