package limits

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReadCurrent reads the fixture trees under testdata, one per case.
func TestReadCurrent(t *testing.T) {
	full := Current{
		VMAs:             11,
		VmSizeBytes:      1526208 * kib,
		CommittedAS:      406984 * kib,
		VmDataBytes:      94436 * kib,
		UserReserveBytes: u64(100405 * kib),
	}
	noOptional := full
	noOptional.UserReserveBytes = nil
	dataLimited := full
	dataLimited.RlimitData = u64(2 * gib)
	cases := []struct {
		dir     string
		want    Current
		wantErr string
	}{
		{dir: "current-full", want: full},
		{dir: "current-no-optional", want: noOptional},
		{dir: "current-rlimit-data", want: dataLimited},
		{dir: "current-malformed-vmdata", wantErr: "VmData"},
		{dir: "current-no-vmdata", wantErr: "no VmData line"},
		{dir: "does-not-exist", wantErr: "does-not-exist"},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			got, err := ReadCurrent(filepath.Join("testdata", c.dir, "proc"))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseRlimitDataFrom(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    *uint64
		wantErr bool
	}{
		{in: "Limit  Soft Limit  Hard Limit  Units\nMax data size   unlimited   unlimited   bytes\n"},
		{in: "Max data size   4096   8192   bytes\n", want: u64(4096)},
		{in: "Max data size   4k   8192   bytes\n", wantErr: true},
		{in: "Max data size\n", wantErr: true},
		{in: "Max stack size   8388608   unlimited   bytes\n", wantErr: true},
	} {
		got, err := parseRlimitDataFrom(strings.NewReader(c.in))
		if (err != nil) != c.wantErr || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseRlimitDataFrom(%q) = %v, %v; want %v, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

// TestReadCurrentLive reads this process: the figures must be sane, and
// Predict must accept them.
func TestReadCurrentLive(t *testing.T) {
	if _, err := os.Stat("/proc/self/maps"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	c, err := ReadCurrent("")
	if err != nil {
		t.Fatal(err)
	}
	if c.VMAs < 5 || c.VmSizeBytes == 0 || c.VmDataBytes == 0 || c.VmDataBytes > c.VmSizeBytes || c.CommittedAS == 0 {
		t.Errorf("implausible %+v", c)
	}
}
