package procread

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// The usage-* fixture trees hold proc/4242 (with self linked to it) of a
// Go test binary captured on Linux 6.18, edited per case.

// TestReadUsage reads the fixture trees, one per case.
func TestReadUsage(t *testing.T) {
	full := Usage{
		VMAs:             11, // 12 lines of maps, the last the [vsyscall] gate
		VmSizeBytes:      1526208 * kiB,
		CommittedAS:      406984 * kiB,
		VmDataBytes:      94436 * kiB,
		UserReserveBytes: ptr[uint64](100405 * kiB),
	}
	if runtime.GOARCH == "amd64" {
		// The free ranges between mmap_min_addr (65536) and 2^47-4096,
		// worked out from the maps fixture: below the binary, between
		// its bss and the Go heap, between the heap arena and the first
		// mmap, between that and the stack less its 1 MiB guard gap,
		// between [stack] and [vvar], and above [vdso].
		full.AddressGaps = []uint64{
			0x7f3c5c000000 - 0xc004000000,
			0x7ffd2e5c6000 - 256*4096 - 0x7f3c60000000,
			0xc000000000 - 0x7b7000,
			1<<47 - 4096 - 0x7ffd2e5f9000,
			0x400000 - 0x10000,
			0x7ffd2e5f3000 - 0x7ffd2e5e7000,
		}
	}
	noOptional := full
	noOptional.UserReserveBytes = nil
	dataLimited := full
	dataLimited.RlimitData = ptr[uint64](2 << 30)
	cases := []struct {
		dir     string
		want    Usage
		wantErr string
	}{
		{dir: "usage-full", want: full},
		{dir: "usage-no-optional", want: noOptional},
		{dir: "usage-rlimit-data", want: dataLimited},
		{dir: "usage-malformed-vmdata", wantErr: "no VmData"},
		{dir: "usage-no-vmdata", wantErr: "no VmData"},
		{dir: "does-not-exist", wantErr: "does-not-exist"},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			got, err := ReadUsage(filepath.Join("testdata", c.dir, "proc"), 0)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.dir != "usage-full" {
				// Only usage-full has mmap_min_addr; the others start at 0.
				got.AddressGaps, c.want.AddressGaps = nil, nil
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			// The same process by its pid.
			byPID, err := ReadUsage(filepath.Join("testdata", c.dir, "proc"), 4242)
			if err != nil {
				t.Fatal(err)
			}
			if byPID.VMAs != got.VMAs || byPID.VmDataBytes != got.VmDataBytes {
				t.Errorf("by pid %+v, by self %+v", byPID, got)
			}
		})
	}
}

func TestAddressGaps(t *testing.T) {
	m := func(lo, hi uintptr, name string) *procfs.ProcMap {
		return &procfs.ProcMap{StartAddr: lo, EndAddr: hi, Pathname: name}
	}
	maps := []*procfs.ProcMap{
		m(0x1000, 0x3000, "/bin"),         // below lo: no gap before it
		m(0x3000, 0x5000, ""),             // adjacent: no gap
		m(0x9000, 0xa000, ""),             // gap 0x4000
		m(0x20000, 0x21000, "[stack]"),    // gap 0x16000 less the 0x2000 guard gap
		m(0x30000, 0x31000, "[vdso]"),     // gap 0xf000
		m(0xf0000, 0xf1000, "[vsyscall]"), // above top: ignored
	}
	got := addressGaps(maps, 0x2000, 0x40000, 0x2000)
	want := []uint64{0x14000, 0xf000, 0xf000, 0x4000} // the last 0xf000: 0x31000..0x40000
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gaps %#x, want %#x", got, want)
	}
}

// TestReadLimitInputsLive reads this process: the figures must be sane and
// the VMA count must be what the sampler's Totals count.
func TestReadLimitInputsLive(t *testing.T) {
	in, err := ReadLimitInputs("", "")
	if err != nil {
		t.Fatal(err)
	}
	u := in.Usage
	if u.VMAs < 5 || u.VmSizeBytes == 0 || u.VmDataBytes == 0 || u.VmDataBytes > u.VmSizeBytes || u.CommittedAS == 0 {
		t.Errorf("implausible %+v", u)
	}
	if in.System.MaxMapCount == nil || in.System.MemAvailable == 0 {
		t.Errorf("system facts unread: missing %q", in.System.Missing)
	}
	if runtime.GOARCH == "amd64" {
		var free uint64
		for _, g := range u.AddressGaps {
			free += g
		}
		// The gaps and VmSize together cannot pass the user address space.
		if free == 0 || free+u.VmSizeBytes > 1<<47 {
			t.Errorf("%d bytes free and %d mapped of 2^47", free, u.VmSizeBytes)
		}
	}
	avail, err := MemAvailable("")
	if err != nil || avail == 0 {
		t.Errorf("MemAvailable = %d, %v", avail, err)
	}
}

func TestMemAvailableFixtures(t *testing.T) {
	got, err := MemAvailable("testdata/system-full/proc")
	if err != nil || got != 24365476*kiB {
		t.Errorf("MemAvailable = %d, %v; want %d", got, err, 24365476*kiB)
	}
	if _, err := MemAvailable("testdata/system-malformed/proc"); err == nil || !strings.Contains(err.Error(), "meminfo") {
		t.Errorf("no meminfo: err = %v, want one naming meminfo", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal:  1000 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := MemAvailable(dir); err == nil || !strings.Contains(err.Error(), "no MemAvailable line") {
		t.Errorf("no MemAvailable line: err = %v", err)
	}
}

// TestMemoryBound has one case per binding source.
func TestMemoryBound(t *testing.T) {
	const gb = 1 << 30
	base := func() LimitInputs {
		return LimitInputs{System: System{MemAvailable: 20 * gb}, Usage: Usage{VmSizeBytes: 3 * gb}}
	}
	cases := []struct {
		name    string
		edit    func(*LimitInputs)
		want    MemoryLimit
		sources int
	}{
		{"MemAvailable alone", func(*LimitInputs) {}, MemoryLimit{MemSourceAvailable, 20 * gb}, 1},
		{"cgroup v2", func(in *LimitInputs) {
			in.System.CgroupVersion, in.System.CgroupMemoryMax, in.System.CgroupMemoryCurrent = 2, ptr[uint64](4*gb), ptr[uint64](1*gb)
		}, MemoryLimit{MemSourceCgroupV2, 3 * gb}, 2},
		{"cgroup v1 over its limit", func(in *LimitInputs) {
			in.System.CgroupVersion, in.System.CgroupMemoryMax, in.System.CgroupMemoryCurrent = 1, ptr[uint64](1*gb), ptr[uint64](2*gb)
		}, MemoryLimit{MemSourceCgroupV1, 0}, 2},
		{"cgroup unlimited", func(in *LimitInputs) {
			in.System.CgroupVersion, in.System.CgroupMemoryCurrent = 2, ptr[uint64](1*gb)
		}, MemoryLimit{MemSourceAvailable, 20 * gb}, 1},
		{"RLIMIT_AS", func(in *LimitInputs) { in.System.RlimitAS = ptr[uint64](8 * gb) }, MemoryLimit{MemSourceRlimitAS, 5 * gb}, 2},
		{"tie goes to the first", func(in *LimitInputs) { in.System.RlimitAS = ptr[uint64](23 * gb) }, MemoryLimit{MemSourceAvailable, 20 * gb}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			c.edit(&in)
			b, ok := in.MemoryBound()
			if !ok || b.Binding != c.want || len(b.Limits) != c.sources {
				t.Errorf("MemoryBound = %+v, %v; want binding %+v of %d", b, ok, c.want, c.sources)
			}
		})
	}
	if b, ok := (LimitInputs{}).MemoryBound(); ok {
		t.Errorf("nothing known, yet bound %+v", b)
	}
}
