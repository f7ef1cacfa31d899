package report

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"stackprobe/outdir"
)

// RemoveStale deletes only files a manifest lists; without one, nothing, whatever the names.
func TestRemoveStaleOnlyListed(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".notes.backup.tmp", "strategies.png", "stacks.csv"} {
		os.WriteFile(filepath.Join(dir, n), []byte("mine"), 0o644)
	}
	if err := RemoveStale(dir, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, outdir.ManifestName), []byte(`{"tool":"stackprobe","files":["stacks.csv","samples.csv"]}`), 0o644)
	if err := RemoveStale(dir, []string{"samples.csv"}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".notes.backup.tmp", outdir.ManifestName, "strategies.png"}; !slices.Equal(names, want) {
		t.Errorf("left %v, want %v", names, want)
	}
}
