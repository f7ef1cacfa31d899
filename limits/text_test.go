package limits

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stackprobe/mmapstack"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// enomem is a refused reservation as mmapstack reports it.
var enomem = fmt.Errorf("stack 32737: %w", os.NewSyscallError("mprotect(PROT_NONE)", unix.ENOMEM))

// TestWriteTextGolden renders fabricated predictions and verifications and
// compares them with testdata/text-*.golden (go test -update rewrites them).
func TestWriteTextGolden(t *testing.T) {
	mapCount := Predict(machine(), process(), 100*mib, mmapstack.GuardMprotect)
	sys := machine()
	sys.OvercommitMemory, sys.CommitLimit = i64(2), 4*gib
	strict := Predict(sys, process(), 100*mib, mmapstack.GuardMprotect)
	cases := []struct {
		name string
		p    Prediction
		v    *Verification
	}{
		{"prediction-only", mapCount, nil},
		{"map-count-verified", mapCount, &Verification{Requested: 40000, Reserved: 32735, StoppedBy: enomem, Errno: "ENOMEM",
			Seconds: 0.21, VMAsPerStack: 2.00003, VMAsBefore: 58, VMAsPeak: 65529, VMAsAfter: 59}},
		{"map-count-exact", mapCount, &Verification{Requested: 40000, Reserved: 32736, StoppedBy: enomem, Errno: "ENOMEM",
			Seconds: 0.21, VMAsPerStack: 2, VMAsBefore: 58, VMAsPeak: 65530, VMAsAfter: 58}},
		{"madvise-not-reached", Predict(machine(), process(), 100*mib, mmapstack.GuardMadvise),
			&Verification{Requested: 40000, Reserved: 40000, Seconds: 1.3, VMAsPerStack: 0.0002, VMAsBefore: 60, VMAsPeak: 68, VMAsAfter: 64}},
		{"overcommit-disagrees", strict, &Verification{Requested: 100, Reserved: 20, StoppedBy: errors.New("stack 21: mmap: cannot allocate memory"),
			Errno: "ENOMEM", Seconds: 0.001, VMAsPerStack: 2, VMAsBefore: 58, VMAsPeak: 98, VMAsAfter: 58}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteText(&b, c.p, c.v); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "text-"+c.name+".golden")
			if *update {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("WriteText differs from %s:\n%s", path, b.Bytes())
			}
		})
	}
}

func TestAgreement(t *testing.T) {
	p := Predict(machine(), process(), 100*mib, mmapstack.GuardMprotect) // 32736
	for _, c := range []struct {
		reserved int64
		want     string
	}{
		{32736, "verified 32736, predicted 32736: exact"},
		{32735, "verified 32735, predicted 32736: within 0.003%"},
		{32500, "verified 32500, predicted 32736: within 0.72%"},
		{32000, "verified 32000, predicted 32736: off by 2.2%"},
	} {
		got := agreement(p, Verification{Requested: 40000, Reserved: c.reserved, StoppedBy: enomem})
		if got != c.want {
			t.Errorf("agreement(%d) = %q, want %q", c.reserved, got, c.want)
		}
	}
	if got := agreement(p, Verification{Requested: 40000, Reserved: 40000}); !strings.Contains(got, "too low") {
		t.Errorf("count past the prediction: %q", got)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteTextError(t *testing.T) {
	p := Predict(machine(), process(), 100*mib, mmapstack.GuardMprotect)
	if err := WriteText(failWriter{}, p, nil); err == nil {
		t.Error("write error lost")
	}
}
