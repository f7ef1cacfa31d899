// Package report writes a run's result folder: summary.json, the streamed
// samples CSVs, evidence.md, and the short summary printed on stdout.
//
// Every file is written to a temporary name in the same folder and renamed
// into place when complete, so a killed run never leaves half a file where a
// complete one was, and never damages an earlier run's files.
package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"stackprobe/atomicfile"
)

// WriteFile writes path atomically (see package atomicfile).
func WriteFile(path string, fill func(w io.Writer) error) error {
	return atomicfile.Write(path, fill)
}

// CheckOutDir reports whether dir may receive a run's files without
// writing anything: it must not be a file, and an existing folder must be
// empty unless force is set. A missing dir is fine if its parent exists.
func CheckOutDir(dir string, force bool) error {
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		parent := filepath.Dir(filepath.Clean(dir))
		pfi, perr := os.Stat(parent)
		if perr != nil {
			return fmt.Errorf("parent folder %s: %w", parent, perr)
		}
		if !pfi.IsDir() {
			return fmt.Errorf("parent %s is not a folder", parent)
		}
		return writable(parent)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s exists and is not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	// Temporary files a killed run left do not make a folder a result.
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return atomicfile.IsTemp(e.Name()) })
	if len(entries) > 0 && !force {
		return fmt.Errorf("%s is not empty (pass --force to write into it)", dir)
	}
	return writable(dir)
}

// writable checks write permission on dir with access(2), writing nothing.
func writable(dir string) error {
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, os.NewSyscallError("access", err))
	}
	return nil
}

// outputNames are every file a run or a compare writes into its folder.
func outputNames() []string {
	return append([]string{EvidenceFile, SummaryFile, ChartRSSVsDepth, ChartRSSOverTime, ChartResidency, ChartStrategies},
		CSVFiles()...)
}

// CSVFiles are the files a CSV recorder writes.
func CSVFiles() []string { return []string{samplesFile, totalsFile, stacksFile} }

// RemoveStale deletes, from a result folder written again with --force,
// the outputs of an earlier run that this run did not write (so that no
// file disagrees with the recorded command), and temporary files that a
// killed run left. Files of other names are left alone.
func RemoveStale(dir string, written []string) error {
	keep := map[string]bool{}
	for _, w := range written {
		keep[w] = true
	}
	var errs []error
	for _, name := range outputNames() {
		if keep[name] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if atomicfile.IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
