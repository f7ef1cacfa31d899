package procread

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseSmaps(f *testing.F) {
	fixtures, _ := filepath.Glob("testdata/smaps-*")
	for _, p := range fixtures {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("7f00-7f01 rw-p 00000000 00:00 0\nRss: 4 kB\nVmFlags: rd wr\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := ParseSmaps(bytes.NewReader(data), func(v *VMA) error {
			n++
			if v.End < v.Start {
				t.Fatalf("VMA %#x-%#x ends before it starts", v.Start, v.End)
			}
			return nil
		})
		if err == nil && n == 0 && bytes.Count(data, []byte("\n")) > 0 && bytes.HasPrefix(data, []byte("7f00-7f01 ")) {
			t.Fatalf("a header line gave no VMA")
		}
	})
}
