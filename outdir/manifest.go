package outdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// ManifestName is the file, in a result folder and in a staging folder, that
// marks it as this tool's and lists the files the tool wrote there.
const ManifestName = ".stackprobe-manifest.json"

// ToolName is the Manifest.Tool of every manifest this package writes.
const ToolName = "stackprobe"

// States of a manifest.
const (
	StateStaging  = "staging"  // a run is writing into a staging folder; Files are the names it may write
	StateMerging  = "merging"  // files are being moved into a folder that also holds a user's files
	StateComplete = "complete" // the run finished; Files are all it wrote
	StatePartial  = "partial"  // the run stopped early (signal, failure); Files are what it wrote
)

// Manifest is the content of ManifestName.
type Manifest struct {
	Tool     string    `json:"tool"`              // always ToolName
	RunID    string    `json:"run_id"`            // 128 random bits in hex, one per run
	Out      string    `json:"out"`               // the result folder: cleaned absolute path, parent resolved
	PID      int       `json:"pid"`               // process that wrote the manifest
	Started  time.Time `json:"started"`           // when Begin ran
	Finished time.Time `json:"finished,omitzero"` // when Commit ran; absent while staging
	State    string    `json:"state"`             // one of the State constants
	Files    []string  `json:"files"`             // base names, sorted, never ManifestName
}

// ReadManifest reads the manifest of folder dir. It returns an error
// wrapping fs.ErrNotExist when there is none; a manifest that is a symbolic
// link or not a regular file, that does not parse, or whose Tool is not
// ToolName, is an error (the folder is then not provably the tool's).
func ReadManifest(dir string) (Manifest, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|noFollow|unix.O_DIRECTORY, 0)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest in %s: %w", dir, err)
	}
	defer d.Close()
	return readManifestAt(d)
}

// readManifestAt reads the manifest in the folder open as d.
func readManifestAt(d *os.File) (Manifest, error) {
	p := filepath.Join(d.Name(), ManifestName)
	fd, err := unix.Openat(int(d.Fd()), ManifestName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, os.NewSyscallError("openat", err))
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return Manifest{}, fmt.Errorf("manifest %s is not a regular file", p)
	}
	return parseManifest(p, f)
}

func parseManifest(name string, r io.Reader) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest %s: %w", name, err)
	}
	if m.Tool != ToolName {
		return Manifest{}, fmt.Errorf("manifest %s: tool %q, not %q", name, m.Tool, ToolName)
	}
	for _, f := range m.Files {
		if !validName(f) || f == ManifestName {
			return Manifest{}, fmt.Errorf("manifest %s lists %q, which is not a plain file name", name, f)
		}
	}
	return m, nil
}

// validName reports whether name is a plain file name: no separator, not . or ..
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && filepath.Base(name) == name && !slices.Contains([]byte(name), 0)
}

func (m Manifest) lists(name string) bool { return slices.Contains(m.Files, name) }

func encodeManifest(w io.Writer, m Manifest) error {
	m.Files = slices.Sorted(slices.Values(m.Files))
	if m.Files == nil {
		m.Files = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
