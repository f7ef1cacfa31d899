package report

import (
	"io"

	"stackprobe/notes"
)

// CheckNotes reports whether path is an existing, editable note whose
// markers are paired (see notes.Check, which also refuses a note that is one
// of the run's outputs when given --out).
//
// Deprecated: call notes.Check(path, out, OutputNames()).
func CheckNotes(path string) error { return notes.Check(path, "", nil) }

// ChartLinks returns the chart paths as seen from the notes file: relative
// to its folder.
//
// Deprecated: call notes.ChartLinks.
func ChartLinks(notesPath, outDir string, charts []string) ([]string, error) {
	return notes.ChartLinks(notesPath, outDir, charts)
}

// UpdateNotes sets the section for outDir in the note at path, in place.
//
// Deprecated: call notes.Update.
func UpdateNotes(path, outDir string, write func(w io.Writer) error) error {
	return notes.Update(path, outDir, write)
}
