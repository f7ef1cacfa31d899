package report

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// notesMarkers are the lines that enclose a run's section in a design
// note. They name the result folder, so runs into different folders keep
// sections of their own, and a run repeated into the same folder replaces
// its section instead of adding one.
func notesMarkers(outDir string) (begin, end string) {
	key := filepath.ToSlash(filepath.Clean(outDir))
	return fmt.Sprintf("<!-- stackprobe:begin %s -->", key), fmt.Sprintf("<!-- stackprobe:end %s -->", key)
}

// CheckNotes reports whether path is an existing, writable Markdown file.
func CheckNotes(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// ChartLinks returns the chart paths as seen from the notes file: relative
// to its folder.
func ChartLinks(notesPath, outDir string, charts []string) ([]string, error) {
	rel, err := filepath.Rel(filepath.Dir(absPath(notesPath)), absPath(outDir))
	if err != nil {
		return nil, fmt.Errorf("chart links for %s: %w", notesPath, err)
	}
	links := make([]string, len(charts))
	for i, c := range charts {
		links[i] = filepath.ToSlash(filepath.Join(rel, c))
	}
	return links, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// UpdateNotes inserts the section that write produces into the design note
// at path, between markers naming outDir: it replaces the section an
// earlier run into outDir left, or appends one at the end. Headings of
// the section are demoted one level to sit under the note's own. The file
// is replaced atomically.
func UpdateNotes(path, outDir string, write func(w io.Writer) error) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("notes: %w", err)
	}
	var sec bytes.Buffer
	if err := write(&sec); err != nil {
		return fmt.Errorf("notes: %w", err)
	}
	begin, end := notesMarkers(outDir)
	var section strings.Builder
	section.WriteString(begin + "\n")
	for _, line := range strings.Split(strings.TrimRight(sec.String(), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			line = "#" + line
		}
		section.WriteString(line + "\n")
	}
	section.WriteString(end + "\n")

	text := string(old)
	var out string
	if i := strings.Index(text, begin); i >= 0 {
		j := strings.Index(text[i:], end)
		if j < 0 {
			return fmt.Errorf("notes %s: %q has no matching %q", path, begin, end)
		}
		rest := text[i+j+len(end):]
		rest = strings.TrimPrefix(rest, "\n")
		out = text[:i] + section.String() + rest
	} else {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		if text != "" {
			text += "\n"
		}
		out = text + section.String()
	}
	return WriteFile(path, func(w io.Writer) error {
		_, err := io.WriteString(w, out)
		return err
	})
}
