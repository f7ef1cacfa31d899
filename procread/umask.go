package procread

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Umask is this process's file mode creation mask, from the Umask line of
// /proc/self/status under procRoot ("" means /proc). Reading it there,
// unlike umask(2), does not change it for a moment under other threads.
func Umask(procRoot string) (fs.FileMode, error) {
	path := filepath.Join(cmp.Or(procRoot, "/proc"), "self", "status")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("umask: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0, fmt.Errorf("umask: %s: %q: %w", path, strings.TrimSpace(v), err)
			}
			return fs.FileMode(m), nil
		}
	}
	return 0, fmt.Errorf("umask: %s has no Umask line", path)
}
