package report

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateNotesIdempotent(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "docs", "design.md")
	if err := os.MkdirAll(filepath.Dir(notes), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notes, []byte("# Stacks\n\nOur plan.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "runs", "a")
	links, err := ChartLinks(notes, out, []string{"rss-vs-depth.png"})
	if err != nil || links[0] != "../runs/a/rss-vs-depth.png" {
		t.Fatalf("links %v, %v", links, err)
	}
	section := func(n int) func(io.Writer) error {
		return func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "# evidence %d\n\n![c](%s)\n", n, links[0])
			return err
		}
	}
	for n := 1; n <= 2; n++ {
		if err := UpdateNotes(notes, out, section(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := UpdateNotes(notes, filepath.Join(dir, "runs", "b"), section(3)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(notes)
	got := string(b)
	if strings.Count(got, "stackprobe:begin") != 2 || strings.Contains(got, "evidence 1") ||
		!strings.Contains(got, "## evidence 2") || !strings.Contains(got, "## evidence 3") ||
		!strings.HasPrefix(got, "# Stacks\n\nOur plan.\n\n<!-- stackprobe:begin") {
		t.Errorf("notes after three updates:\n%s", got)
	}
	if err := UpdateNotes(notes, out, section(4)); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(notes)
	if strings.Count(string(b2), "stackprobe:begin") != 2 || !strings.Contains(string(b2), "evidence 4") {
		t.Errorf("fourth update:\n%s", b2)
	}
	if err := CheckNotes(filepath.Join(dir, "missing.md")); err == nil {
		t.Error("CheckNotes accepted a missing file")
	}
}
